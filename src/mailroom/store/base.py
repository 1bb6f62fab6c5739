"""What a store is to the rest of mailroom, whatever keeps the messages.

A session streams a message into an :class:`OpenMessage` it got from a :class:`MessageSink`
and commits it at the end of data: "250" only once the commit says the message is durable.
The composition root (:mod:`mailroom.app`) picks the back end from the configuration and
starts and closes it as a :class:`Store`. Today's back ends: :class:`~.maildir.MaildirStore`
(Maildirs, the queue directory and an SQLite index) and :class:`~.null.NullStore` (discards).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mailroom.store.envelope import Delivery, Envelope

__all__ = ["MessageSink", "OpenMessage", "Store"]


class OpenMessage(Protocol):
    """One message being written."""

    def write(self, data: bytes) -> None:
        """More of the message, as the client sent it (dot-unstuffed)."""
        ...

    def abort(self) -> None:
        """Forget it: nothing of it is kept."""
        ...

    # Policy may read the message at its end and change its header section before it is
    # committed (email authentication: Authentication-Results, quarantine, a DKIM signature).

    @property
    def spilled(self) -> bool:
        """Large enough to be on disk already: :meth:`read` then reads a file (off the loop)."""
        ...

    def read(self) -> bytes:
        """The message as written so far."""
        ...

    def replace_head(
        self, head_length: int, new_head: bytes, deliveries: list[Delivery] | None = None
    ) -> None:
        """Before commit: the first ``head_length`` octets (the header section) become
        ``new_head``, and the message goes to ``deliveries`` instead, if given."""
        ...

    def commit(self) -> str | Awaitable[str]:
        """Make it durable; its queue id, at once or once the disk has it. May raise
        :class:`~.maildir.StoreError` (a full disk)."""
        ...


class MessageSink(Protocol):
    """Where a session's messages go."""

    # Whether begin() needs the envelope (a store that keeps nothing does not: sessions then
    # skip building it and pass None).
    wants_envelope: bool

    def begin(self, envelope: Envelope | None) -> OpenMessage: ...


class Store(MessageSink, Protocol):
    """A back end the composition root starts and closes."""

    def start(self) -> None: ...

    def close(self) -> None: ...
