"""What a store is to the rest of mailroom, whatever keeps the messages.

A session streams a message into an :class:`OpenMessage` it got from a :class:`MessageSink`
and commits it at the end of data: "250" only once the commit says the message is durable.
The composition root (:mod:`mailroom.app`) picks the back end from the configuration and
starts and closes it as a :class:`Store`. The back ends: :class:`~.maildir.MaildirStore`
(Maildirs, the queue directory and an SQLite index), :class:`~.null.NullStore` (discards) and,
for a fleet of nodes, :class:`mailroom.postgres.store.PostgresStore` (one PostgreSQL database).
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mailroom.store.envelope import Delivery, Envelope

__all__ = [
    "MessageSink",
    "OpenMessage",
    "StorageFull",
    "Store",
    "StoreError",
    "StoreHealth",
    "StoreUnavailable",
    "store_error",
]


class StoreError(Exception):
    """The message could not be stored (disk full, I/O error); nothing of it was kept."""


class StorageFull(StoreError):
    """No room for the message: the disk or a quota is full (452 4.3.1); any other failure to
    write it is a local error (451 4.3.0)."""


def store_error(exc: OSError, what: str = "") -> StoreError:
    """The StoreError a failed disk operation becomes, ``what`` before the system's words:
    :class:`StorageFull` when the disk or a quota is full, else a plain StoreError."""
    text = f"{what}{exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(text)
    return StoreError(text)


class StoreUnavailable(StoreError):
    """The store is out of reach (its database is down or unreachable): nothing of the
    message was kept, and the client should try again later (451 4.3.0)."""


class StoreHealth(Protocol):
    """Whether a store can take messages now. A store on another machine (PostgreSQL) says
    False while it is out of reach, so new sessions are refused at the greeting (421 4.3.2)
    and transactions at MAIL (451 4.3.0) instead of after the client sent its message."""

    @property
    def available(self) -> bool: ...


class OpenMessage(Protocol):
    """One message being written."""

    def write(self, data: bytes) -> None:
        """More of the message, as the client sent it (dot-unstuffed)."""
        ...

    def abort(self) -> None:
        """Forget it: nothing of it is kept."""
        ...

    @property
    def failure(self) -> StoreError | None:
        """A write that failed already (a full disk while it streamed in): what its commit
        would raise, known now, so a chunk of it can be refused before the rest is sent."""
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
        :class:`StoreError` (a full disk) or :class:`StoreUnavailable` (a database out of
        reach)."""
        ...


class MessageSink(Protocol):
    """Where a session's messages go."""

    # Whether begin() needs the envelope (a store that keeps nothing does not: sessions then
    # skip building it and pass None).
    wants_envelope: bool

    def begin(self, envelope: Envelope | None) -> OpenMessage: ...

    def has_room(self, size: int) -> bool:
        """Whether a message of ``size`` octets (a client's SIZE=, RFC 1870) fits now: a MAIL
        that does not fit gets 452 4.3.1 before the client sends the message."""
        ...


class Store(MessageSink, Protocol):
    """A back end the composition root starts and closes."""

    def start(self) -> None: ...

    def close(self) -> None: ...
