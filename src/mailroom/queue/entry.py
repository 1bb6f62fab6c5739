"""One queued message on disk: ``<data>/queue/active/<id>.eml`` (the message as it will be
sent, with our Received field) and ``<id>.json`` (envelope and per-recipient state).

The store writes both into ``queue/tmp``, makes them durable with the rest of its batch, and
moves them into ``active/`` — the JSON last, so an entry without its JSON is not an entry. Every
later change of state is written to a new JSON file, fsync'd and renamed over the old one, so
a crash leaves the old state or the new, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mailroom.filemodes import private_dir

__all__ = ["QueueEntry", "QueueRecipient", "QueueSpool", "QueueStore"]

log = logging.getLogger("mailroom.delivery")


@dataclass
class QueueRecipient:
    address: str
    notify: list[str] | None = None  # RFC 3461 NOTIFY: NEVER or some of SUCCESS FAILURE DELAY
    orcpt: list[str] | None = None  # RFC 3461 ORCPT: [address type, address]
    state: str = "pending"  # pending, delivered, bounced
    attempts: int = 0
    last_reply: str | None = None  # the remote's reply, verbatim, or our own words
    remote_mta: str | None = None
    status: str | None = None  # enhanced status of the outcome (DSN Status field)
    reason: str | None = None  # classification (Sisimai reason name)
    reason_why: str | None = None  # the evidence for it: "words 'mailbox full'", …
    delay_warned: bool = False
    last_attempt: float = 0.0  # when it was last tried (DSN Last-Attempt-Date)
    # The report its final state calls for was handed on, or none is due: a failure for a
    # sender that asked for none, a success passed to a server that speaks DSN itself. A
    # delivered recipient that is not yet notified owes a success report, since the sender
    # asked for one (RFC 3461 §6.2.2): "relayed" if it went to a server without DSN,
    # "delivered" if it went into its mailbox (``final``: a local Maildir, or an LMTP server,
    # RFC 2033).
    notified: bool = False
    final: bool = False
    # The TLS of the session that settled it: "TLSv1.3 TLS_AES_256_GCM_SHA384 verified=dane"
    # (dane, mta-sts, pkix or none), "none" for plain text; None before any attempt.
    tls: str | None = None
    rrvs: str | None = None  # RFC 7293: the RRVS= value to pass on to the next hop
    # What converting the message for its next hop lost (the 2.6.4 warning tells the sender)
    conversion_loss: str | None = None

    @property
    def done(self) -> bool:
        return self.state != "pending"


@dataclass
class QueueEntry:
    id: str
    sender: str  # "" for the null reverse-path (bounces are never bounced)
    recipients: list[QueueRecipient]
    created: float = field(default_factory=time.time)
    next_attempt: float = 0.0
    attempts: int = 0
    envid: str | None = None
    ret: str | None = None  # FULL or HDRS
    body: str | None = None  # 7BIT, 8BITMIME, BINARYMIME
    smtputf8: bool = False
    auth_user: str | None = None
    client_ip: str = ""
    # RFC 8689: MAIL FROM ... REQUIRETLS: relayed only to a next hop whose TLS is verified
    # (DANE, or MTA-STS) and which offers REQUIRETLS itself; else returned with 5.7.30.
    requiretls: bool = False
    mt_priority: int | None = None  # RFC 6710: higher goes first; passed on to the next hop

    @property
    def pending(self) -> list[QueueRecipient]:
        return [r for r in self.recipients if not r.done]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> QueueEntry:
        raw: dict[str, Any] = json.loads(data)
        raw["recipients"] = [QueueRecipient(**r) for r in raw["recipients"]]
        return cls(**raw)


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class QueueStore(Protocol):
    """Where the runner finds its entries and records their state: the queue's directory
    (:class:`QueueSpool`), or a fleet's PostgreSQL database, where a node holds a lease on each
    entry it works on (:class:`mailroom.postgres.queue.PgQueue`). The blocking methods
    (``entries``, ``save``, ``remove``, ``read_message``) are run in a worker thread."""

    root: Path  # a directory of this node's (the runner's lock, ``mailroom queue`` requests)
    # read_head is a small local file read, cheap enough to do on the event loop itself (the
    # runner then queues a pass's jobs in MT-PRIORITY order before any worker takes one)
    head_on_loop: bool

    def ensure(self) -> QueueStore: ...

    def ids(self) -> list[str]: ...

    def has(self, queue_id: str) -> bool: ...

    def load(self, queue_id: str) -> QueueEntry | None: ...

    def entries(self) -> Iterator[QueueEntry]: ...

    def save(self, entry: QueueEntry) -> None:
        """Durably record the entry's state (each recipient's outcome, the next attempt)."""
        ...

    def remove(self, queue_id: str) -> None: ...

    def read_message(self, queue_id: str) -> bytes:
        """The message as it is sent (our Received field first)."""
        ...

    def read_head(self, queue_id: str, size: int) -> bytes:
        """At most the first ``size`` octets of it (for its header fields)."""
        ...


class QueueSpool:
    """The queue's directories and the few operations on them."""

    head_on_loop = True  # read_head reads at most a few kilobytes, usually in the page cache

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "queue"
        self.tmp = self.root / "tmp"
        self.active = self.root / "active"
        # Told of each entry removed (delivered, returned or deleted), in the thread that
        # removed it: the store forgets what it indexed of it.
        self.on_removed: Callable[[str], None] | None = None

    def ensure(self) -> QueueSpool:
        private_dir(self.tmp)
        private_dir(self.active)
        return self

    def message_path(self, queue_id: str) -> Path:
        return self.active / f"{queue_id}.eml"

    def entry_path(self, queue_id: str) -> Path:
        return self.active / f"{queue_id}.json"

    def has(self, queue_id: str) -> bool:
        return self.entry_path(queue_id).exists()

    def read_message(self, queue_id: str) -> bytes:
        return self.message_path(queue_id).read_bytes()

    def read_head(self, queue_id: str, size: int) -> bytes:
        with self.message_path(queue_id).open("rb") as file:
            return file.read(size)

    def ids(self) -> list[str]:
        if not self.active.exists():
            return []
        return sorted(p.stem for p in self.active.glob("*.json"))

    def load(self, queue_id: str) -> QueueEntry | None:
        """The entry, or None when there is none, or none that can be read: a JSON file that is
        not an entry (damaged on disk, edited by hand) is logged and left where it is for its
        operator, neither delivered nor removed, and does not stop the rest of the queue."""
        path = self.entry_path(queue_id)
        try:
            return QueueEntry.from_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            why = f"{type(exc).__name__}: {exc}"
            log.error("%s: not a queue entry, left as it is (%s)", path, why)
            return None

    def entries(self) -> Iterator[QueueEntry]:
        for queue_id in self.ids():
            entry = self.load(queue_id)
            if entry is not None:
                yield entry

    def save(self, entry: QueueEntry) -> None:
        """Durably replace the entry's state (write, fsync, rename, fsync the directory)."""
        tmp = self.tmp / f"{entry.id}.json.{os.getpid()}"
        try:
            _write_file(tmp, entry.to_json())
            os.replace(tmp, self.entry_path(entry.id))
        except BaseException:
            # The old state stands (a full disk, a failing write); the new one's half goes.
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(self.active)

    def remove(self, queue_id: str) -> None:
        # The JSON goes first: without it the message file is no longer an entry.
        for path in (self.entry_path(queue_id), self.message_path(queue_id)):
            path.unlink(missing_ok=True)
        _fsync_dir(self.active)
        if self.on_removed is not None:
            self.on_removed(queue_id)

    def cleanup(self) -> None:
        """At start: half-written entries in tmp/, and message files without their JSON."""
        for path in self.tmp.glob("*"):
            path.unlink(missing_ok=True)
        for message in self.active.glob("*.eml"):
            if not self.entry_path(message.stem).exists():
                message.unlink(missing_ok=True)
