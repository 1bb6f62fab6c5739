"""The message store on PostgreSQL: what a session writes lands in one database the whole fleet
shares, and "250" after end of data means its transaction has committed.

Sessions stream a message into a :class:`PgWriter` (in memory while small, spilled to a file in
``<data>/tmp`` when large, as the Maildir store does). ``commit()`` hands it to one committer
thread per node, which takes every message waiting at that moment as one batch and stores the
batch in one transaction sent in pipeline mode: the index rows, the bodies, further mailbox
copies, queue entries and a NOTIFY for the other nodes' live views go out together with the
COMMIT, one round trip for the batch (group commit, like the Maildir store's one sync for a
batch). Only once PostgreSQL answers the COMMIT are the sessions' futures resolved.

When the database is out of reach the batch fails whole (nothing half-stored: a transaction is
all or nothing) and its sessions get ``451 4.3.0``; the store says it is unavailable, so new
sessions get ``421 4.3.2`` at the greeting, and the committer thread tries to reconnect every
second until the database answers again. A COMMIT whose answer was lost (the connection broke
after it was sent) is checked after reconnecting: messages the database has are acknowledged,
the others refused, so a client resends only what was not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailroom.filemodes import private_dir
from mailroom.postgres.connection import (
    close_quietly,
    connection_options,
    is_unavailable,
    redact,
    require_psycopg,
)
from mailroom.postgres.migrate import SchemaError, check_schema
from mailroom.store.base import StoreError, StoreUnavailable, store_error
from mailroom.store.envelope import Delivery, Envelope, received_header, trace_header
from mailroom.store.headers import MAX_HEADER_SCAN, summarize_headers
from mailroom.store.maildir import queue_entry_for
from mailroom.store.tags import tags_from_header

__all__ = ["EVENTS_CHANNEL", "PgWriter", "PostgresStore"]

log = logging.getLogger("mailroom.store")

SPILL_THRESHOLD = 1024 * 1024  # bytes kept in memory before a message goes to a file
MEMORY_BUDGET = 64 * 1024 * 1024  # message bytes all sessions together keep in memory
CHUNK = 1024 * 1024  # a body is stored in rows of at most this many bytes
MAX_BATCH = 512  # messages in one transaction
RECONNECT_INTERVAL = 1.0  # seconds between attempts to reach a database that is down
PING_INTERVAL = 2.0  # an idle committer checks the database is there this often
USAGE_REFRESH = 30.0  # seconds between reads of the mailboxes' sizes (quotas, fleet-wide)
COMMIT_TIMEOUT = 30.0  # a commit not answered by then gets 451 (a hung database)
EVENTS_CHANNEL = "mailroom_events"
NOTIFY_IDS = 300  # ids in one NOTIFY payload (PostgreSQL takes at most 8000 bytes)

_MESSAGE_COLUMNS = (
    "id, received, mailbox, sender, recipients, from_header, to_header, cc_header, subject, "
    "message_id, size, client_ip, helo, auth_user, tls, node, header"
)
INSERT_MESSAGE = (
    f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %b)"
)
INSERT_BODY = "INSERT INTO message_bodies (id, seq, chunk) VALUES (%s, %s, %b)"
INSERT_COPY = "INSERT INTO message_copies (id, copy, mailbox, header) VALUES (%s, %s, %s, %b)"
INSERT_QUEUE = "INSERT INTO queue_entries (id, header, state, next_attempt) VALUES (%s, %b, %s, %s)"
INSERT_TAG = "INSERT INTO tags (id, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING"


def _text(value: str) -> str:
    # PostgreSQL's text holds no NUL character, and a message's header may (its subject is
    # the client's to write): one such message must not fail the others of its batch.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


@dataclass(eq=False)
class PgWriter:
    """One message being written (the :class:`~mailroom.store.base.OpenMessage` of this
    store, with the email authentication stage's ``read``, ``spilled`` and ``replace_head``)."""

    store: PostgresStore
    envelope: Envelope
    _buffer: bytearray = field(default_factory=bytearray)
    _size: int = 0
    _spill_path: str | None = None
    _spill_fd: int | None = None
    _error: OSError | None = None
    _first_bytes: bytes = b""
    _done: bool = False
    _held: int = 0  # of _buffer, counted in store.in_memory (event loop thread only)
    # replace_head on a spilled message: the new header section, and how long the old one is
    # at the start of the spill file.
    _new_head: bytes | None = None
    _old_head_length: int = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def spilled(self) -> bool:
        return self._spill_path is not None

    @property
    def failure(self) -> StoreError | None:
        return store_error(self._error) if self._error is not None else None

    def write(self, data: bytes) -> None:
        if self._error is not None or self._done:
            return
        self._size += len(data)
        if len(self._first_bytes) < MAX_HEADER_SCAN:
            self._first_bytes += data[: MAX_HEADER_SCAN - len(self._first_bytes)]
        store = self.store
        if self._spill_fd is None:
            self._buffer += data
            self._held += len(data)
            store.in_memory += len(data)
            if len(self._buffer) < SPILL_THRESHOLD and store.in_memory <= MEMORY_BUDGET:
                return
            data = b""
        try:
            if self._spill_fd is None:
                self._spill_path = store.spill_path(self.envelope.queue_id)
                self._spill_fd = os.open(
                    self._spill_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
                )
            _write_all(self._spill_fd, self._buffer)
            self._buffer = bytearray()
            if data:
                _write_all(self._spill_fd, data)
        except OSError as exc:
            self._error = exc
            self._discard_spill()
        self._release()

    def _release(self) -> None:
        self.store.in_memory -= self._held
        self._held = 0

    def read(self) -> bytes:
        """The message as received so far. Reads the spill file when it is large: call it off
        the event loop then (see :attr:`spilled`)."""
        if self._spill_path is None:
            return bytes(self._buffer)
        return b"".join(self.chunks())

    def replace_head(
        self, head_length: int, new_head: bytes, deliveries: list[Delivery] | None = None
    ) -> None:
        """Before commit: the first ``head_length`` octets (the header section) become
        ``new_head``; the message goes to ``deliveries`` instead, if given."""
        if self._error is not None or self._done:
            return
        if deliveries is not None:
            self.envelope.deliveries = deliveries
        if self._spill_path is None:
            self._buffer[:head_length] = new_head
            change = len(new_head) - head_length
            self._held += change
            self.store.in_memory += change
        else:
            self._new_head, self._old_head_length = new_head, head_length
        self._size += len(new_head) - head_length
        self._first_bytes = (new_head + self._first_bytes[head_length:])[:MAX_HEADER_SCAN]

    def abort(self) -> None:
        self._done = True
        self._buffer = bytearray()
        self._release()
        self._discard_spill()

    def commit(self) -> asyncio.Future[str]:
        """Store it; the future gives the queue id once the transaction holding it committed,
        or raises StoreError (StoreUnavailable when the database is out of reach)."""
        self._done = True
        self._release()
        future: asyncio.Future[str] = self.store.loop.create_future()
        failure = self.failure
        if failure is not None:
            future.set_exception(failure)
            self._discard_spill()
            return future
        if self._spill_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._spill_fd)
            self._spill_fd = None
        self.store.submit(self, future)
        return future

    # -- in the committer thread -----------------------------------------------------------

    def chunks(self) -> Iterator[bytes]:
        """The message in pieces of at most CHUNK bytes (read from the spill file if large)."""
        if self._spill_path is None:
            view = memoryview(self._buffer)
            for start in range(0, max(len(view), 1), CHUNK):
                yield bytes(view[start : start + CHUNK])
            return
        with open(self._spill_path, "rb") as source:
            if self._new_head is not None:
                yield self._new_head
                source.seek(self._old_head_length)
            while piece := source.read(CHUNK):
                yield piece

    def _discard_spill(self) -> None:
        if self._spill_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._spill_fd)
            self._spill_fd = None
        if self._spill_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._spill_path)
            self._spill_path = None

    def finished(self) -> None:
        """Stored or refused: let go of the bytes."""
        self._buffer = bytearray()
        self._discard_spill()


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(eq=False)
class _Job:
    writer: PgWriter
    future: asyncio.Future[str]
    error: BaseException | None = None


@dataclass
class _Rows:
    """The rows of one batch, per table."""

    messages: list[tuple[Any, ...]] = field(default_factory=list)
    bodies: list[tuple[Any, ...]] = field(default_factory=list)
    copies: list[tuple[Any, ...]] = field(default_factory=list)
    queue: list[tuple[Any, ...]] = field(default_factory=list)
    tags: list[tuple[Any, ...]] = field(default_factory=list)
    spilled: list[PgWriter] = field(default_factory=list)  # bodies written chunk by chunk
    queued: list[str] = field(default_factory=list)
    usage: list[tuple[str, int]] = field(default_factory=list)


class PostgresStore:
    """Messages, their bodies and the queue's entries in one PostgreSQL database."""

    wants_envelope = True

    def __init__(
        self,
        url: str,
        *,
        data_dir: Path,
        hostname: str,
        node: str,
        loop: asyncio.AbstractEventLoop,
        commit_timeout: float = COMMIT_TIMEOUT,
    ) -> None:
        self.url = url
        self.data_dir = data_dir
        self.tmp_dir = data_dir / "tmp"
        self.hostname = hostname
        self.node = node
        self.loop = loop
        self.commit_timeout = commit_timeout
        self._psycopg = require_psycopg()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailroom-pg-commit", daemon=True)
        self._conn: Any = None
        self._available = False
        self._was_available = False
        self._started = False
        self._last_contact = 0.0
        self._usage_read = 0.0
        # Told (in the event loop) of queue ids newly queued for remote delivery.
        self.on_queued: Callable[[list[str]], None] | None = None
        # Told (in the event loop) when the store becomes reachable or unreachable.
        self.on_availability: Callable[[bool], None] | None = None
        # Octets in each local mailbox (by mailbox name), for quotas: this node's commits at
        # once, the whole fleet's every USAGE_REFRESH seconds.
        self.usage: dict[str, int] = {}
        self.in_memory = 0
        # Counters for /metrics and the benchmarks.
        self.latency_total = 0.0
        self.committed = 0
        self.transactions = 0  # transactions committed
        self.round_trips = 0  # waits for the database's answer
        self.failed_batches = 0

    # -- health ----------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether the database answered last time we asked (the greeting's 421 4.3.2)."""
        return self._available

    def _set_available(self, value: bool) -> None:
        if value == self._available:
            return
        self._available = value
        if value and not self._was_available:
            self._was_available = True
            log.info("database %s reachable", redact(self.url))
        elif value:
            log.warning("database %s reachable: accepting messages again", redact(self.url))
        else:
            log.error("database %s unreachable: refusing messages (451 4.3.0)", redact(self.url))
        if self.on_availability is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.on_availability, value)

    # -- start and stop --------------------------------------------------------------------------

    def start(self) -> None:
        """Check the schema and start the committer. A database that is down at start is no
        error (the node refuses mail until it is back); a schema that does not match is."""
        private_dir(self.tmp_dir)  # 0700, as every directory of the data directory
        for leftover in self.tmp_dir.glob("pg-*"):
            with contextlib.suppress(OSError):
                leftover.unlink()  # spilled by a node that died: never acknowledged
        try:
            self._connect()
        except SchemaError:
            raise
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.error("database %s unreachable at start: %s", redact(self.url), exc)
        self._thread.start()
        self._started = True

    def close(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._started = False
        close_quietly(self._conn)
        self._conn = None

    def _connect(self) -> None:
        psycopg = self._psycopg
        conn = psycopg.connect(
            self.url, autocommit=False, **connection_options(f"mailroom {self.node} store")
        )
        try:
            check_schema(conn, self.url)
            conn.commit()
        except BaseException:
            close_quietly(conn)
            raise
        close_quietly(self._conn)
        self._conn = conn
        self._last_contact = time.monotonic()
        self._refresh_usage()
        self._set_available(True)

    def spill_path(self, queue_id: str) -> str:
        return str(self.tmp_dir / f"pg-{queue_id}.{os.getpid()}")

    # -- sessions' side (the event loop) -------------------------------------------------------

    def has_room(self, size: int) -> bool:
        # The database's disk is another machine's: a write it cannot take is refused at the
        # end of data (451 4.3.0), the transaction rolled back.
        return True

    def begin(self, envelope: Envelope | None) -> PgWriter:
        assert envelope is not None  # wants_envelope: the trace fields are made from it
        return PgWriter(self, envelope)

    def submit(self, writer: PgWriter, future: asyncio.Future[str]) -> None:
        if not self._available:
            # Known down: answer now rather than make the client wait for a timeout.
            writer.finished()
            future.set_exception(StoreUnavailable("the database is unreachable"))
            return
        if self.commit_timeout > 0:
            self.loop.call_later(self.commit_timeout, self._time_out, future)
        self._queue.put(_Job(writer, future))

    @staticmethod
    def _time_out(future: asyncio.Future[str]) -> None:
        # The commit may still complete: the client then sends again, and the message is
        # kept twice rather than lost (RFC 5321 §6.1 accepts duplicates, never loss).
        if not future.done():
            future.set_exception(StoreUnavailable("the database did not answer in time"))

    # -- the committer thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            wait = PING_INTERVAL if self._available else RECONNECT_INTERVAL
            try:
                job = self._queue.get(timeout=wait)
            except queue.Empty:
                self._idle()
                continue
            if job is None:
                return
            batch = [job]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._commit_or_fail(batch)
                    return
                batch.append(more)
            self._commit_or_fail(batch)

    def _idle(self) -> None:
        """Nothing to commit: reconnect if down, else check the database is still there."""
        if not self._available or self._conn is None:
            try:
                self._connect()
            except Exception as exc:
                log.debug("database still unreachable: %s", exc)
            return
        if time.monotonic() - self._last_contact < PING_INTERVAL:
            return
        try:
            self._conn.execute("SELECT 1")
            self._conn.commit()
            self._last_contact = time.monotonic()
            if time.monotonic() - self._usage_read > USAGE_REFRESH:
                self._refresh_usage()
        except Exception as exc:
            self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        log.error("database connection lost: %s", exc)
        close_quietly(self._conn)
        self._conn = None
        self._set_available(False)

    def _commit_or_fail(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        live = [job for job in batch if not job.future.done()]  # timed out ones are gone
        for job in batch:
            if job.future.done():
                job.writer.finished()
        if not live:
            return
        queued: list[str] = []
        try:
            if self._conn is None:
                self._connect()
            queued = self._store(live)
        except Exception as exc:
            if is_unavailable(exc):
                self.failed_batches += 1
                self._lost(exc)
                self._settle_unknown(live)
            elif len(live) > 1:
                # A message the database refused (a bug, or data it cannot hold): store the
                # others one by one, so one bad message fails alone.
                log.warning("a batch of %d failed (%s); committing one by one", len(live), exc)
                self._rollback()
                for job in live:
                    self._commit_or_fail([job])
                return
            else:
                log.exception("storing message %s failed", live[0].writer.envelope.queue_id)
                self._rollback()
                live[0].error = StoreError(f"the database refused the message: {exc}")
        self.latency_total += time.perf_counter() - started
        for job in live:
            job.writer.finished()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self.loop.call_soon_threadsafe(self._resolve, live, queued)

    def _rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception as exc:
                self._lost(exc)

    def _settle_unknown(self, batch: list[_Job]) -> None:
        """The connection broke during the batch: its COMMIT may or may not have happened.
        Reconnect once and ask; what the database has is acknowledged, the rest refused."""
        ids = [job.writer.envelope.queue_id for job in batch]
        found: set[str] = set()
        try:
            self._connect()
            rows = self._conn.execute("SELECT id FROM messages WHERE id = ANY(%s)", (ids,))
            found = {row[0] for row in rows}
            self._conn.commit()
        except Exception as exc:
            log.debug("database still unreachable: %s", exc)
        for job in batch:
            if job.writer.envelope.queue_id not in found:
                job.error = StoreUnavailable("the database is unreachable")
        if found:
            log.warning("%d messages of a broken batch were committed after all", len(found))
            self.committed += len(found)

    def _store(self, batch: list[_Job]) -> list[str]:
        """One transaction for the batch, in pipeline mode: one round trip for what is small,
        one more per chunk of a large body. The ids queued for remote delivery."""
        rows = _Rows()
        for job in batch:
            self._rows(job.writer, rows)
        conn = self._conn
        with conn.transaction():
            if rows.spilled:
                # Large messages' index rows first (the bodies refer to them), then their
                # bodies chunk by chunk, never more than one chunk in memory.
                spilled_ids = {w.envelope.queue_id for w in rows.spilled}
                first = [r for r in rows.messages if r[0] in spilled_ids]
                with conn.cursor() as cursor:
                    cursor.executemany(INSERT_MESSAGE, first)
                    self.round_trips += 1
                    for writer in rows.spilled:
                        for seq, piece in enumerate(writer.chunks()):
                            cursor.execute(INSERT_BODY, (writer.envelope.queue_id, seq, piece))
                            self.round_trips += 1
                rows.messages = [r for r in rows.messages if r[0] not in spilled_ids]
            with conn.pipeline(), conn.cursor() as cursor:
                cursor.executemany(INSERT_MESSAGE, rows.messages)
                cursor.executemany(INSERT_BODY, rows.bodies)
                if rows.copies:
                    cursor.executemany(INSERT_COPY, rows.copies)
                if rows.queue:
                    cursor.executemany(INSERT_QUEUE, rows.queue)
                if rows.tags:
                    cursor.executemany(INSERT_TAG, rows.tags)
                ids = [job.writer.envelope.queue_id for job in batch]
                for start in range(0, len(ids), NOTIFY_IDS):
                    payload = {"node": self.node, "type": "message"}
                    payload["ids"] = ids[start : start + NOTIFY_IDS]  # type: ignore[assignment]
                    cursor.execute(
                        "SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, json.dumps(payload))
                    )
        # The pipeline's results and the COMMIT came back together.
        self.round_trips += 1
        self.transactions += 1
        self.committed += len(batch)
        self._last_contact = time.monotonic()
        for mailbox, size in rows.usage:
            self.usage[mailbox] = self.usage.get(mailbox, 0) + size
        return rows.queued

    def _rows(self, writer: PgWriter, rows: _Rows) -> None:
        e = writer.envelope
        deliveries = e.deliveries
        headers = [
            received_header(e, d.recipients)
            if d.kind == "queue"
            else trace_header(e, recipients=list(d.recipients))
            for d in deliveries
        ]
        summary = summarize_headers(writer._first_bytes)
        mailboxes = [d.target for d in deliveries if d.kind == "mailbox"]
        queue_id = e.queue_id
        rows.messages.append(
            (
                queue_id,
                e.received_at,
                _text(",".join(mailboxes) if mailboxes else "(queue)"),
                _text(e.sender),
                json.dumps(e.recipients),
                _text(summary.from_),
                _text(summary.to),
                _text(summary.cc),
                _text(summary.subject),
                _text(summary.message_id),
                len(headers[0]) + writer.size,
                e.client_ip,
                _text(e.helo),
                _text(e.auth_user) if e.auth_user is not None else None,
                e.tls,
                self.node,
                headers[0],
            )
        )
        if writer.spilled:
            rows.spilled.append(writer)
        else:
            for seq, piece in enumerate(writer.chunks()):
                rows.bodies.append((queue_id, seq, piece))
        for index, delivery in enumerate(deliveries):
            if delivery.kind == "mailbox":
                rows.usage.append((delivery.target, len(headers[index]) + writer.size))
                if index > 0:
                    rows.copies.append((queue_id, index, _text(delivery.target), headers[index]))
            else:
                entry = queue_entry_for(e, delivery)
                rows.queue.append(
                    (queue_id, headers[index], entry.to_json().decode(), entry.next_attempt)
                )
                rows.queued.append(queue_id)
        if summary.x_tags:  # Mailpit's header for tagging a message as it is sent
            rows.tags += [(queue_id, tag) for tag in tags_from_header(summary.x_tags)]

    def _refresh_usage(self) -> None:
        """The octets in each local mailbox, fleet-wide (quotas are checked against it)."""
        if self._conn is None:
            return
        usage: dict[str, int] = {}
        for mailbox, size in self._conn.execute(
            "SELECT mailbox, sum(size) FROM messages WHERE mailbox <> '(queue)' GROUP BY mailbox"
        ):
            for name in mailbox.split(","):
                usage[name] = usage.get(name, 0) + int(size)
        self._conn.commit()
        # In place: the policy holds this dict, and reads it between our changes.
        self.usage.update(usage)
        for gone in set(self.usage) - set(usage):
            self.usage.pop(gone, None)
        self._usage_read = time.monotonic()

    def _resolve(self, batch: list[_Job], queued: list[str]) -> None:
        for job in batch:
            if job.future.done():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.writer.envelope.queue_id)
        if queued and self.on_queued is not None:
            self.on_queued(queued)
