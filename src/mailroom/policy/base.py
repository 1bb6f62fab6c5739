"""What policy is asked, and what it sees: the decisions of a session, each a catalogue Reply."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

from mailroom.codes import Reply
from mailroom.protocol import Event, ServerConnection

if TYPE_CHECKING:
    from mailroom.config import Listener

__all__ = ["Decision", "Policy", "SessionView"]

# None: go ahead as the protocol proposes (and, at the end of a message, store it).
Decision = Reply | None | Awaitable[Reply | None]


class SessionView(Protocol):
    """The parts of a live session that policy may look at."""

    client_ip: str
    client_port: int
    listener: Listener
    conn: ServerConnection


class Policy(Protocol):
    def connect(self, session: SessionView) -> Reply | None:
        """The greeting: None for 220, or a refusal (554 5.7.1, 521 5.3.2, 421)."""
        ...

    def decide(self, event: Event, session: SessionView) -> Decision:
        """A reply for ``event`` other than the protocol's proposal, or None."""
        ...
