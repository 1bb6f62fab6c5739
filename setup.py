"""Build hook: with MAILROOM_COMPILE=1, the protocol core is compiled with mypyc.

mailroom is pure Python and every install works without a compiler. The sans-IO protocol core
and the reply codes are typed strictly (mypy --strict), which is what mypyc needs to compile
them to C extensions: the same source, a shorter path per SMTP command (see
docs/benchmarks.md). Black ships its wheels compiled the same way.

It is opt-in because an editable install of a compiled build would run the compiled copy, not
the sources being edited. ``make fast`` builds it into .venv-fast (``pip install
--no-build-isolation``, with mypy, setuptools and wheel in that venv); ``make bench`` and
``make test`` use it.

Left interpreted: ``protocol/events.py`` (dataclasses that inherit fields with defaults, which
mypyc does not compile), ``protocol/usage.py`` (an exception derived from RuntimeError) and the
package ``__init__`` files.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
# The files mypyc compiles, relative to this directory (where setuptools runs).
COMPILED = [
    "src/mailroom/codes/enhanced.py",
    "src/mailroom/codes/reply.py",
    "src/mailroom/codes/template.py",
    *sorted(
        path.relative_to(HERE).as_posix()
        for path in (HERE / "src/mailroom/protocol").glob("*.py")
        if path.name not in {"__init__.py", "events.py", "usage.py"}
    ),
]


def ext_modules() -> list[object]:
    if os.environ.get("MAILROOM_COMPILE") != "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        raise SystemExit(
            "MAILROOM_COMPILE=1 needs mypyc (part of mypy) where the build runs: "
            "pip install mypy setuptools wheel, then pip install --no-build-isolation ."
        ) from None
    return list(mypycify(COMPILED, opt_level="3"))


# setuptools runs this file as __main__; tests/protocol/test_compiled.py imports COMPILED.
if __name__ == "__main__":
    setup(ext_modules=ext_modules())
