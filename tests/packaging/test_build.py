"""What an install builds (setup.py): the compiled core where a C compiler is found, pure Python
where not, and never a compiled copy beside the sources of an editable install.

The last test builds a real wheel from a copy of the sources, as ``pip install .`` and
``python -m build`` do (the PEP 517 ``build_wheel`` hook, in an isolated build environment), and
looks inside it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

import mailroom

ROOT = Path(__file__).resolve().parents[2]
EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def load_setup() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mailroom_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() runs only as __main__
    return module


def compiled_module_names(setup: ModuleType) -> list[str]:
    return [
        path.removeprefix("src/").removesuffix(".py").replace("/", ".") for path in setup.COMPILED
    ]


def build_ext_for(setup: ModuleType, *commands: str, editable: bool = False):  # type: ignore[no-untyped-def]
    from setuptools import Distribution

    dist = Distribution(
        {"ext_modules": [setup.PLACEHOLDER], "cmdclass": {"build_ext": setup.BuildExt}}
    )
    dist.commands = list(commands)
    command = dist.get_command_obj("build_ext")
    command.editable_mode = editable
    return command


def test_no_compiled_file_in_the_source_tree() -> None:
    # Python imports an extension before a .py of the same name: one left in src/ would run
    # instead of the source beside it.
    found = [p for p in (ROOT / "src").rglob("*") if p.name.endswith(EXTENSION_SUFFIXES)]
    assert found == []


def test_a_development_install_runs_the_sources() -> None:
    if not Path(mailroom.__file__).is_relative_to(ROOT / "src"):
        pytest.skip("mailroom is installed, not run from its sources (the compiled half)")
    import importlib

    for name in compiled_module_names(load_setup()):
        module = importlib.import_module(name)
        assert module.__file__ is not None and module.__file__.endswith(".py"), module.__file__


def test_an_editable_build_compiles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = load_setup()
    monkeypatch.setattr(setup, "mypyc_extensions", lambda: pytest.fail("mypyc ran"))
    command = build_ext_for(setup, "editable_wheel", editable=True)
    command.ensure_finalized()
    assert command.extensions == []


def test_a_wheel_build_compiles_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from setuptools import Extension

    setup = load_setup()
    monkeypatch.delenv("MAILROOM_COMPILE", raising=False)
    chosen = [Extension("mailroom.protocol.server", ["server.c"])]
    monkeypatch.setattr(setup, "mypyc_extensions", lambda: chosen)
    command = build_ext_for(setup, "bdist_wheel")
    command.ensure_finalized()
    assert command.extensions == chosen


def test_an_sdist_compiles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = load_setup()
    monkeypatch.setattr(setup, "mypyc_extensions", lambda: pytest.fail("mypyc ran"))
    command = build_ext_for(setup, "sdist")
    command.ensure_finalized()
    assert command.extensions == [] and command.get_source_files() == []


def test_without_a_compiler_the_build_is_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = load_setup()
    monkeypatch.delenv("MAILROOM_COMPILE", raising=False)
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    reason = setup.why_not_compiled()
    assert reason is not None and "compiler" in reason
    assert setup.wants_compiled() is False
    monkeypatch.setenv("MAILROOM_COMPILE", "1")  # asked for compiled: the build must fail
    monkeypatch.setattr(setup, "mypyc_extensions", lambda: pytest.fail("mypyc ran"))
    command = build_ext_for(setup, "bdist_wheel")
    with pytest.raises(SystemExit, match="cannot compile"):
        command.ensure_finalized()


def test_compile_mode_zero_is_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = load_setup()
    monkeypatch.setenv("MAILROOM_COMPILE", "0")
    assert setup.wants_compiled() is False
    monkeypatch.setenv("MAILROOM_COMPILE", "sometimes")
    with pytest.raises(SystemExit, match="0, 1 or auto"):
        setup.compile_mode()


def test_the_wheel_holds_the_compiled_core(tmp_path: Path) -> None:
    """``pip wheel`` (the build_wheel hook ``pip install .`` and ``python -m build`` call) on a
    copy of the sources makes a platform wheel with every compiled module as an extension."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    env = {k: v for k, v in os.environ.items() if k != "MAILROOM_COMPILE"}
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path / "out"),
            str(source),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "out").glob("mailroom-*.whl")
    assert "-none-any" not in wheel.name, wheel.name  # a platform wheel: it holds extensions
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in compiled_module_names(load_setup()):
        stem = module.replace(".", "/")
        assert any(n.startswith(stem + ".") and n.endswith(EXTENSION_SUFFIXES) for n in names), (
            module
        )
        assert stem + ".py" in names  # the source too, for tracebacks and readers
    assert not (source / "src/mailroom/protocol/server.c").exists()


def test_a_failed_compile_falls_back_to_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = load_setup()

    def type_error() -> None:
        raise SystemExit("src/mailroom/server/session.py:1: error: something mypyc refuses")

    monkeypatch.setattr(setup, "mypyc_extensions", type_error)
    monkeypatch.delenv("MAILROOM_COMPILE", raising=False)
    command = build_ext_for(setup, "bdist_wheel")
    command.ensure_finalized()
    assert command.extensions == []
    monkeypatch.setenv("MAILROOM_COMPILE", "1")  # asked for compiled: the build fails
    with pytest.raises(SystemExit, match="mypyc refuses"):
        build_ext_for(setup, "bdist_wheel").ensure_finalized()
