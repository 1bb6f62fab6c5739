"""What policy is asked, and what it sees: the decisions of a session, each a catalogue Reply."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

from mailroom.codes import Reply
from mailroom.protocol import Event, ServerConnection
from mailroom.settings_types import Listener

if TYPE_CHECKING:
    from mailroom.store.envelope import Delivery

__all__ = ["DISCONNECT", "Decision", "Disconnect", "Greeting", "Policy", "SessionView"]


class Disconnect:
    """The decision to drop the connection without a word (fault injection)."""

    _instance: Disconnect | None = None

    def __new__(cls) -> Disconnect:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DISCONNECT"


DISCONNECT = Disconnect()

# None: go ahead as the protocol proposes (and, at the end of a message, store it).
Decision = Reply | Disconnect | None | Awaitable[Reply | Disconnect | None]
# At the greeting: None for 220, or a refusal, or (fault injection) silence or a wait.
Greeting = Reply | Disconnect | None | Awaitable[Reply | Disconnect | None]


class SessionView(Protocol):
    """The parts of a live session that policy may look at."""

    client_ip: str
    client_port: int
    listener: Listener
    conn: ServerConnection
    # Where each accepted recipient goes (set by the mail server policy at RCPT).
    routes: dict[str, Any]
    # Email authentication's checks of this session (mailroom.policy.authentication).
    authentication: Any
    # The first octets of the message being received (its header and the start of its body,
    # up to mailroom.policy.content.HEAD_LIMIT), for decisions at its end that need no more and
    # no wait (hops, floods). read_message() below is the whole message, read when asked (in a
    # thread once it spilled to disk), for the checks that need all of it (DKIM's body hash).
    message_head: bytearray
    # The priority the transaction's message is taken at (MT-PRIORITY, RFC 6710), as policy
    # decided at MAIL; None when the client gave none.
    mt_priority: int | None

    def note(self, text: str) -> None:
        """A line of information in the session's transcript."""
        ...

    async def read_message(self) -> bytes:
        """At the end of a message: the message as received."""
        ...

    def amend_message(
        self, head_length: int, new_head: bytes, deliveries: list[Delivery] | None = None
    ) -> None:
        """At the end of a message, before it is stored: a new header section, and other
        destinations."""
        ...


class Policy(Protocol):
    def connect(self, session: SessionView) -> Greeting:
        """The greeting: None for 220, or a refusal (554 5.7.1, 521 5.3.2, 421)."""
        ...

    def decide(self, event: Event, session: SessionView) -> Decision:
        """A reply for ``event`` other than the protocol's proposal, or None."""
        ...

    def deliveries(self, session: SessionView) -> list[Delivery] | None:
        """Where the message of the session's transaction goes; None: the catcher's mailbox
        for every recipient."""
        ...
