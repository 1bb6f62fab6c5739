"""Build hook: the protocol core is compiled with mypyc wherever a C compiler is found.

The sans-IO protocol core and the reply codes are typed strictly (mypy --strict), which is what
mypyc needs to compile them to C extensions: the same source, a shorter path per SMTP command
(see docs/benchmarks.md); the session that drives the core is compiled with it. Black ships its
wheels compiled the same way.

What a build makes (``MAILROOM_COMPILE`` chooses; ``auto`` when unset):

- ``pip install .``, ``python -m build`` and ``make run``: the compiled core when this machine
  can compile a Python extension (a C compiler and Python's headers), pure Python otherwise,
  with a note in the build's output. ``mailroom --version`` and ``mailroom serve`` say which.
- ``pip install -e .`` (``make test``'s development install): **always pure Python**. An
  editable install builds extensions in place, beside the sources; Python imports an extension
  before a ``.py`` file of the same name, so a compiled copy there would run instead of the
  source being edited. So this build refuses to compile in place, whatever is asked.
- ``MAILROOM_COMPILE=0``: pure Python. ``MAILROOM_COMPILE=1``: compiled, or the build fails
  (``make fast`` and CI use it, so a build that silently fell back cannot pass as compiled).

mypyc (part of mypy) is a build requirement (pyproject.toml's ``[build-system]``); nothing of it
is needed at run time. The C sources are written one file per module and compiled in parallel
(one job per CPU), which halves the build on two cores.

Left interpreted: ``protocol/usage.py`` (an exception derived from RuntimeError) and the package
``__init__`` files. The events (``protocol/events.py``) are compiled since each has an
``__init__`` of its own: the one ``@dataclass`` writes stays interpreted Python under mypyc,
and five events a message were made that slow way.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools._distutils.errors import CCompilerError, DistutilsError
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
# The files mypyc compiles, relative to this directory (where setuptools runs): the protocol
# core, the reply model it uses, and the session that drives it (the server's per-message path:
# compiled, it takes 15% less CPU a message; its annotations are checked at run time there, so
# the server suite runs on this build too, `make test-compiled`), and the queue ids it makes.
COMPILED = [
    # Interpreted, the activity records and the catcher's policy cost a few function frames
    # per command: a Python frame costs more than what these functions do.
    "src/mailroom/activity/transcript.py",
    "src/mailroom/logsafe.py",
    "src/mailroom/policy/catcher.py",
    # The fault injector and the AUTH guard wrap every policy: asked at every command. Their
    # rules and failure counts (pickled to workers, subclassed there) stay interpreted, in
    # faultrules.py and authfailures.py.
    "src/mailroom/policy/faults.py",
    "src/mailroom/policy/authguard.py",
    "src/mailroom/codes/enhanced.py",
    "src/mailroom/codes/reply.py",
    "src/mailroom/codes/template.py",
    "src/mailroom/server/session.py",
    "src/mailroom/store/ids.py",
    # The envelope of each stored message and its trace fields (Received, Return-Path).
    "src/mailroom/store/envelope.py",
    # The group commit's pipeline: its steps in the event loop run a few times a message.
    "src/mailroom/store/commit.py",
    *sorted(
        path.relative_to(HERE).as_posix()
        for path in (HERE / "src/mailroom/protocol").glob("*.py")
        if path.name not in {"__init__.py", "usage.py"}
    ),
]
# Stands in for the compiled modules until build_ext runs: a distribution with an extension
# makes a platform wheel, and mypyc (a few seconds of type checking) runs only when building,
# not each time pip asks for the metadata. build_ext replaces it before anything is compiled.
PLACEHOLDER = Extension("mailroom._compiled_core", sources=[])


def compile_mode() -> str:
    mode = os.environ.get("MAILROOM_COMPILE", "auto").strip().lower() or "auto"
    if mode not in ("0", "1", "auto"):
        raise SystemExit(f"MAILROOM_COMPILE is 0, 1 or auto, not {mode!r}")
    return mode


def why_not_compiled() -> str | None:
    """None when this machine can build a Python extension; otherwise what is missing."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.errors import CCompilerError, DistutilsError
    from setuptools._distutils.sysconfig import customize_compiler

    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").exists():
        return f"no Python.h in {include} (install Python's development headers)"
    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch, "probe.c")
        probe.write_text("#include <Python.h>\nint probe(void) { return 0; }\n")
        try:
            compiler.compile([str(probe)], output_dir=scratch, include_dirs=[include])
        except (CCompilerError, DistutilsError, OSError) as exc:
            return f"no working C compiler ({exc})"
    return None


@functools.cache
def mypyc_extensions() -> list[Extension]:
    # Cached: setuptools may finalize several build_ext commands in one build (bdist_wheel,
    # then install_lib's look at its outputs), and mypyc's type check takes seconds.
    try:
        from mypyc.build import mypycify
    except ImportError:
        raise SystemExit(
            "compiling the protocol core needs mypyc (part of mypy) where the build runs: "
            "pip install mypy setuptools wheel, then pip install --no-build-isolation ."
        ) from None
    note("mailroom: compiling the protocol core with mypyc (about a minute)")
    # The modules they import are read for their types but not judged: their errors (some
    # depend on which third-party packages the build environment has, which is none of the
    # dependencies under pip's build isolation) are the linters' business, not the build's.
    return list(mypycify(["--follow-imports=silent", *COMPILED], opt_level="3", multi_file=True))


class BuildExt(build_ext):
    """Compiles the protocol core with mypyc, or nothing (see the module's docstring)."""

    def finalize_options(self) -> None:
        # Only now is it known whether this build is in place (editable): the placeholder
        # gives way to the compiled modules, or to none.
        self.distribution.ext_modules = self._choose()
        super().finalize_options()

    def get_source_files(self) -> list[str]:
        # What sdist asks: the generated C is not a source (the sdist compiles it anew).
        return []

    def _choose(self) -> list[Extension]:
        if set(self.distribution.commands) <= {"sdist", "egg_info", "dist_info"}:
            return []  # asked only for the file list or the metadata: nothing is compiled
        if self.editable_mode or self.inplace:
            note(
                "mailroom: an editable install stays pure Python, so that the sources being "
                "edited are what runs (a compiled copy beside them would take precedence)"
            )
            return []
        required = compile_mode() == "1"
        if required:
            reason = why_not_compiled()
            if reason is not None:
                raise SystemExit(f"MAILROOM_COMPILE=1, but this machine cannot compile: {reason}")
        try:
            return mypyc_extensions()
        except (Exception, SystemExit) as exc:  # mypyc exits on a type error
            if required:
                raise
            note(f"mailroom: mypyc could not compile the core ({exc}); it stays pure Python")
            return []

    def build_extensions(self) -> None:
        # One job per CPU for the C files of one extension (mypyc puts every module of the
        # core into one shared library); setuptools would compile them one after another.
        compile_one = self.compiler.compile

        def compile_parallel(sources: list[str], *args: Any, **kwargs: Any) -> list[str]:
            if len(sources) <= 1:
                return list(compile_one(sources, *args, **kwargs))
            # The largest first, so that the last job to finish is a short one.
            ordered = sorted(sources, key=lambda source: -os.path.getsize(source))
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                done = pool.map(lambda source: compile_one([source], *args, **kwargs), ordered)
                return [obj for objects in done for obj in objects]

        self.compiler.compile = compile_parallel  # type: ignore[method-assign]
        try:
            super().build_extensions()
        except (CCompilerError, DistutilsError) as exc:
            if compile_mode() == "1":
                raise
            # Half a compiled core would mix compiled and interpreted copies of its classes:
            # none of it, then.
            for path in self.get_outputs():
                Path(path).unlink(missing_ok=True)
            self.extensions = []
            note(f"mailroom: the C compiler failed ({exc}); the core stays pure Python")


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def wants_compiled() -> bool:
    """Whether this build compiles (decided before setup(): a distribution with extensions
    makes a platform wheel, one without a pure one)."""
    mode = compile_mode()
    if mode != "auto":
        if mode == "0":
            note("mailroom: MAILROOM_COMPILE=0: the protocol core stays pure Python")
        return mode == "1"
    reason = why_not_compiled()
    if reason is not None:
        note(f"mailroom: the protocol core stays pure Python: {reason}")
    return reason is None


# setuptools runs this file as __main__; tests/protocol/test_compiled.py imports COMPILED.
if __name__ == "__main__":
    setup(
        ext_modules=[PLACEHOLDER] if wants_compiled() else [],
        cmdclass={"build_ext": BuildExt},
    )
