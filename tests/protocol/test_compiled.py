"""The compiled build (setup.py, ``make fast``) really runs compiled code.

``make test-compiled`` runs the protocol, codes and server suites on .venv-fast with
MAILROOM_EXPECT_COMPILED=1; without this check a build that fell back to pure Python would pass
them all and prove nothing about the compiled core.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
from pathlib import Path

import pytest

import mailroom

SRC = Path(__file__).resolve().parents[2] / "src"
EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


@pytest.mark.skipif(
    os.environ.get("MAILROOM_EXPECT_COMPILED") != "1", reason="runs on the compiled build only"
)
def test_core_modules_are_extension_modules() -> None:
    assert not Path(mailroom.__file__).is_relative_to(SRC), "the installed build, not src/"
    names = ["mailroom.codes.enhanced", "mailroom.codes.reply", "mailroom.codes.template"]
    names += [
        f"mailroom.protocol.{path.stem}"
        for path in (SRC / "mailroom" / "protocol").glob("*.py")
        if path.name not in {"__init__.py", "events.py", "usage.py"}
    ]
    for name in names:
        module = importlib.import_module(name)
        assert module.__file__ is not None and module.__file__.endswith(EXTENSION_SUFFIXES), (
            f"{name} is not compiled: {module.__file__}"
        )


def test_version_says_how_the_core_runs() -> None:
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "mailroom", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    build = "compiled with mypyc" if os.environ.get("MAILROOM_EXPECT_COMPILED") == "1" else "pure"
    assert shown.startswith(f"mailroom {mailroom.__version__} (") and build in shown, shown
