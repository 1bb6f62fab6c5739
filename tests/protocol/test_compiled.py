"""The compiled build (setup.py, ``make fast``) really runs compiled code.

``make test-compiled`` runs the protocol, codes and server suites on .venv-fast with
MAILROOM_EXPECT_COMPILED=1; without this check a build that fell back to pure Python would pass
them all and prove nothing about the compiled core.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mailroom

ROOT = Path(__file__).resolve().parents[2]
EXPECT_COMPILED = os.environ.get("MAILROOM_EXPECT_COMPILED") == "1"


def compiled_modules() -> list[str]:
    """The modules setup.py hands to mypyc, by name."""
    spec = importlib.util.spec_from_file_location("mailroom_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)  # defines COMPILED; setup() runs only as __main__
    return [
        path.removeprefix("src/").removesuffix(".py").replace("/", ".") for path in setup.COMPILED
    ]


@pytest.mark.skipif(not EXPECT_COMPILED, reason="runs on the compiled build only")
def test_core_modules_are_extension_modules() -> None:
    assert not Path(mailroom.__file__).is_relative_to(ROOT / "src"), "the installed build"
    names = compiled_modules()
    assert "mailroom.protocol.server" in names and "mailroom.codes.reply" in names
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name in names:
        module = importlib.import_module(name)
        assert module.__file__ is not None and module.__file__.endswith(suffixes), (
            f"{name} is not compiled: {module.__file__}"
        )


def test_version_says_how_the_core_runs() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "mailroom", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    build = "compiled with mypyc" if EXPECT_COMPILED else "pure"
    assert shown.startswith(f"mailroom {mailroom.__version__} (") and build in shown, shown
