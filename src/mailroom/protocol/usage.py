"""The error a caller of the protocol core gets for using it out of turn.

Kept in a module of its own because mypyc compiles a class only from ``Exception``, not from
``RuntimeError``: this module stays interpreted when the rest of the core is compiled.
"""

from __future__ import annotations

__all__ = ["ProtocolUsageError"]


class ProtocolUsageError(RuntimeError):
    """The caller used the connection out of turn (a reply with no event waiting, ...)."""
