"""The durable store: accepted messages go to Maildirs and to the outbound queue, fsync'd
before the 250.

Sessions stream a message into a :class:`MessageWriter` (kept in memory while small, spilled
to a ``tmp/`` file when large). ``commit()`` hands it to one committer thread, which takes every
message waiting at that moment as one batch. For each message it writes one file per
destination (a Maildir per local mailbox, each with its own trace fields; the queue for remote
recipients), makes the whole batch durable at once, moves the files from ``tmp/`` into place,
fsyncs each directory once, and only then resolves the sessions' futures. So the 250 after end
of data always means every file and its directory entry are on disk, and concurrent sessions
share the cost of the syncs (group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailroom.codes import reports
from mailroom.filemodes import private_dir, private_file
from mailroom.queue.entry import QueueEntry, QueueRecipient, QueueSpool
from mailroom.store.durability import BatchSync, fsync_directory
from mailroom.store.envelope import Delivery, Envelope, received_header, trace_header
from mailroom.store.headers import MAX_HEADER_SCAN, summarize_headers
from mailroom.store.index import QUEUED, Index, IndexRow
from mailroom.store.tags import tags_from_header

__all__ = [
    "MaildirStore",
    "MessageWriter",
    "StoreError",
    "disk_full",
    "maildir_filename",
    "message_file",
]

log = logging.getLogger("mailroom.store")

SPILL_THRESHOLD = 1024 * 1024  # bytes kept in memory before a message goes to a tmp file
# Message bytes all sessions together may keep in memory; past it, messages go to their tmp
# files from the next write on (so a thousand slow clients each halfway through a 1 MiB
# message cannot take a gigabyte).
MEMORY_BUDGET = 64 * 1024 * 1024
MAX_BATCH = 512
COPY_CHUNK = 1024 * 1024


class StoreError(Exception):
    """The message could not be stored (disk full, I/O error); nothing of it was kept."""


class MailboxUnavailable(StoreError, OSError):
    """One mailbox cannot take mail (its Maildir cannot be made or written: a file where its
    directory should be, a wrong owner), while the store as a whole is fine: the recipients
    whose mailbox it is are named, and the reply says so (RFC 3463 X.2.0)."""

    def __init__(self, mailbox: str, recipients: tuple[str, ...], why: str) -> None:
        super().__init__(f"mailbox {mailbox}: {why}")
        self.mailbox = mailbox
        self.recipients = recipients
        self.why = why


def _safe_hostname(hostname: str) -> str:
    # Maildir names may not hold "/" or ":" (the info separator).
    return hostname.replace("/", "\\057").replace(":", "\\072")


def maildir_filename(envelope: Envelope, size: int, copy: int = 0) -> str:
    host = _safe_hostname(envelope.hostname)
    unique = envelope.queue_id if not copy else f"{envelope.queue_id}_{copy}"
    return f"{int(envelope.received_at)}.{unique}.{host},S={size}"


def ensure_maildir(path: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        private_dir(path / sub)  # 0700, as every directory of the data directory
    if path.name.startswith("."):
        # A Maildir++ folder (the Junk folder of DMARC quarantine): the marker Dovecot and
        # other Maildir++ readers expect in each folder.
        private_file(path / "maildirfolder")
    return path


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclass(eq=False)
class _Output:
    """One file a message becomes: in a Maildir, or in the queue.

    Its paths are strings, not pathlib objects: they are made for every message in the
    committer, where pathlib's parsing cost a third of the committer's Python time.
    """

    delivery: Delivery
    header: bytes
    tmp_path: str
    final_path: str | None = None
    fd: int | None = None
    entry: QueueEntry | None = None  # for the queue: the state written beside the message

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp_path)


@dataclass(eq=False)
class MessageWriter:
    store: MaildirStore
    envelope: Envelope
    _buffer: bytearray = field(default_factory=bytearray)
    _size: int = 0
    _spill: _Output | None = None  # the first output's file, written as the message streams
    _outputs: list[_Output] = field(default_factory=list)
    _error: OSError | None = None
    _first_bytes: bytes = b""
    _done: bool = False
    _held: int = 0  # of _buffer, counted in store.in_memory (event loop thread only)
    # A spilled message whose header section was replaced (replace_head): the new section,
    # and the length of the old one in the spilled file, where the rest is copied from.
    _new_head: bytes | None = None
    _old_head_length: int = 0

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        if self._error is not None or self._done:
            return
        self._size += len(data)
        if len(self._first_bytes) < MAX_HEADER_SCAN:
            self._first_bytes += data[: MAX_HEADER_SCAN - len(self._first_bytes)]
        store = self.store
        if self._spill is None:
            self._buffer += data
            self._held += len(data)
            store.in_memory += len(data)
            if len(self._buffer) < SPILL_THRESHOLD and store.in_memory <= MEMORY_BUDGET:
                return
            data = b""  # it is in the buffer now
        try:
            if self._spill is None:
                self._spill = self._open(0)
            self._flush_buffer(self._spill, data)
        except OSError as exc:
            self._fail(exc)
        self._release()

    def read(self) -> bytes:
        """The message as received so far (for checks at its end). Reads the spilled file when
        it is large: call it off the event loop then (see :attr:`spilled`)."""
        if self._spill is None:
            return bytes(self._buffer)
        first = self._spill
        with open(first.tmp_path, "rb") as source:
            source.seek(len(first.header))
            return source.read()

    @property
    def spilled(self) -> bool:
        return self._spill is not None

    def replace_head(
        self, head_length: int, new_head: bytes, deliveries: list[Delivery] | None = None
    ) -> None:
        """Before commit: the message's first ``head_length`` octets (its header section)
        become ``new_head`` (header fields added on top, forged ones taken out), and the
        message goes to ``deliveries`` instead (quarantine into a Junk folder)."""
        if self._error is not None or self._done:
            return
        if deliveries is not None:
            self.envelope.deliveries = deliveries
        if self._spill is None:
            self._buffer[:head_length] = new_head
            change = len(new_head) - head_length
            self._held += change
            self.store.in_memory += change
        else:
            self._new_head, self._old_head_length = new_head, head_length
        self._size += len(new_head) - head_length
        self._first_bytes = (new_head + self._first_bytes[head_length:])[:MAX_HEADER_SCAN]

    def _release(self) -> None:
        # The buffer is written out or handed to the committer: no longer held for a session.
        self.store.in_memory -= self._held
        self._held = 0

    def _open(self, index: int) -> _Output:
        output = self.store.output(self, index)
        output.fd = os.open(output.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._outputs.append(output)
        self.store.check_fault()
        _write_all(output.fd, output.header)
        return output

    def _flush_buffer(self, output: _Output, data: bytes = b"") -> None:
        assert output.fd is not None
        if self._buffer:
            self.store.check_fault()
            _write_all(output.fd, self._buffer)
            self._buffer = bytearray()
        if data:
            self.store.check_fault()
            _write_all(output.fd, data)

    def _fail(self, exc: OSError) -> None:
        self._error = exc
        self._buffer = bytearray()
        self._release()
        self._cleanup()

    def _cleanup(self) -> None:
        for output in self._outputs:
            output.discard()
        self._outputs = []
        self._spill = None

    def abort(self) -> None:
        """Forget the message (refused, or the client went away)."""
        self._done = True
        self._buffer = bytearray()
        self._release()
        self._cleanup()

    def commit(self) -> asyncio.Future[str]:
        """Store it for good; the future gives the queue id once every file and directory
        entry is on disk, or raises StoreError."""
        self._done = True
        self._release()
        future: asyncio.Future[str] = self.store.loop.create_future()
        if self._error is not None:
            error = self._error
            future.set_exception(error if isinstance(error, StoreError) else StoreError(str(error)))
            return future
        self.store.submit(self, future)
        return future

    # -- in the committer thread ---------------------------------------------------------

    def _write_outputs(self) -> list[_Output]:
        """Write every destination's file (not yet synced) and return them."""
        deliveries = self.envelope.deliveries
        if self._spill is not None and self._new_head is not None:
            # Large, with a new header section: every file is the trace fields, the new
            # section, and the rest of the spilled file, copied in the kernel.
            source = self._spill
            self._flush_buffer(source)
            source.close()
            moved = source.tmp_path + ".received"
            os.rename(source.tmp_path, moved)
            source.tmp_path = moved
            self._outputs.remove(source)
            try:
                offset = len(source.header) + self._old_head_length
                for index in range(len(deliveries)):
                    output = self._open(index)
                    assert output.fd is not None
                    _write_all(output.fd, self._new_head)
                    self._copy_body(source, output, offset, self._size - len(self._new_head))
            finally:
                source.discard()
        elif self._spill is not None:
            # Large: the first file was written as the message came; copy it to the others.
            first = self._spill
            self._flush_buffer(first)
            for index in range(1, len(deliveries)):
                self._copy_body(first, self._open(index))
        else:
            body = self._buffer
            for index in range(len(deliveries)):
                output = self._open(index)
                assert output.fd is not None
                if body:
                    self.store.check_fault()
                    _write_all(output.fd, body)
        self._buffer = bytearray()
        return self._outputs

    def _copy_body(
        self,
        source: _Output,
        target: _Output,
        offset: int | None = None,
        length: int | None = None,
    ) -> None:
        # A large message with several destinations: copy the body in the kernel.
        assert target.fd is not None
        with open(source.tmp_path, "rb") as src:
            offset = len(source.header) if offset is None else offset
            remaining = self._size if length is None else length
            while remaining > 0:
                self.store.check_fault()
                copied = os.copy_file_range(
                    src.fileno(), target.fd, min(remaining, COPY_CHUNK), offset
                )
                if copied <= 0:
                    raise OSError(errno.EIO, "short copy")
                offset += copied
                remaining -= copied


@dataclass(eq=False)
class _Job:
    writer: MessageWriter
    future: asyncio.Future[str]
    error: BaseException | None = None


class MaildirStore:
    """Maildirs under ``<data>/mail``, the queue under ``<data>/queue``, and the index
    ``<data>/index.sqlite``."""

    wants_envelope = True

    def __init__(
        self,
        data_dir: Path,
        *,
        hostname: str,
        loop: asyncio.AbstractEventLoop,
        index: Index | None = None,
        sync_mode: str = "auto",
    ) -> None:
        self.data_dir = data_dir
        self.mail_dir = data_dir / "mail"
        self.hostname = hostname
        self.loop = loop
        self.index = index if index is not None else Index(data_dir / "index.sqlite")
        self.spool = QueueSpool(data_dir)
        # A message that only went to the queue is listed until its entry goes (delivered or
        # returned): then there is no file to show.
        self.spool.on_removed = self._forget_queued
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailroom-committer", daemon=True)
        self._mailboxes: dict[str, str] = {}  # name -> its Maildir, made on first use
        self._data_prefix = os.path.join(str(data_dir), "")
        self._sync = BatchSync(str(data_dir), sync_mode)
        # Tests and the hostile suite inject storage faults here: a callable that raises
        # OSError (ENOSPC, EIO) as a full disk or a failing device would.
        self.fault: Callable[[], None] | None = None
        # Told (in the event loop) of queue ids newly queued for remote delivery.
        self.on_queued: Callable[[list[str]], None] | None = None
        # Octets in each local mailbox (by mailbox name), for quotas.
        self.usage: dict[str, int] = {}
        self._started = False
        self.in_memory = 0  # message bytes sessions hold in memory (see MEMORY_BUDGET)
        self.latency_total = 0.0  # seconds spent committing, for metrics
        self.committed = 0

    def start(self) -> None:
        private_dir(self.mail_dir)
        self._cleanup_tmp()
        self.spool.ensure().cleanup()
        gone = self.index.queued_ids() - set(self.spool.ids())
        if gone:
            self.index.forget_queued(gone)
        self._measure_usage()
        self._thread.start()
        self._started = True

    def close(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._started = False
        self.index.close()

    def _forget_queued(self, queue_id: str) -> None:
        try:
            self.index.forget_queued([queue_id])
        except Exception:  # the index is rebuildable; the queue must go on
            log.exception("%s: could not drop it from the index", queue_id)

    def check_fault(self) -> None:
        if self.fault is not None:
            self.fault()

    def mailbox_path(self, name: str) -> str:
        path = self._mailboxes.get(name)
        if path is None:
            # The configuration's names are checked at load (policy.directory); this is the
            # last guard: a mailbox is always a directory below mail/.
            if name.startswith("/") or any(p in ("", ".", "..") for p in name.split("/")):
                raise StoreError(f"not a mailbox name: {name!r}")
            path = self._mailboxes[name] = str(ensure_maildir(self.mail_dir / name))
        return path

    def begin(self, envelope: Envelope | None) -> MessageWriter:
        assert envelope is not None  # wants_envelope: the trace fields are made from it
        return MessageWriter(self, envelope)

    def output(self, writer: MessageWriter, index: int) -> _Output:
        """The file for the ``index``-th destination of a message (made in tmp/)."""
        envelope = writer.envelope
        delivery = envelope.deliveries[index]
        unique = f"{envelope.queue_id}.{index}.{os.getpid()}"
        if delivery.kind == "queue":
            return _Output(
                delivery,
                received_header(envelope, delivery.recipients),
                str(self.spool.tmp / f"{unique}.eml"),
            )
        try:
            mailbox = self.mailbox_path(delivery.target)
        except OSError as exc:
            raise MailboxUnavailable(
                delivery.target, delivery.recipients, exc.strerror or str(exc)
            ) from exc
        return _Output(
            delivery,
            trace_header(envelope, recipients=list(delivery.recipients)),
            os.path.join(mailbox, "tmp", unique),
        )

    def submit(self, writer: MessageWriter, future: asyncio.Future[str]) -> None:
        self._queue.put(_Job(writer, future))

    def _cleanup_tmp(self) -> None:
        # Files left in tmp/ by a crash never got a 250: they are not messages.
        for tmp in self.mail_dir.glob("**/tmp/*"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _measure_usage(self) -> None:
        for new_or_cur in self.mail_dir.glob("**/new"):
            mailbox = new_or_cur.parent
            name = str(mailbox.relative_to(self.mail_dir))
            total = 0
            for sub in ("new", "cur"):
                for path in (mailbox / sub).iterdir():
                    _, _, size = path.name.partition(",S=")
                    total += (
                        int(size.split(":")[0].split(",")[0])
                        if size[:1].isdigit()
                        else path.stat().st_size
                    )
            self.usage[name] = total

    # -- the committer thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._queue.get()
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

    def _commit_or_fail(self, batch: list[_Job]) -> None:
        """Commit the batch; on an unexpected error (a bug, not a full disk) fail all of it,
        so every session gets its answer (451) and the committer lives on."""
        try:
            self._commit(batch)
        except Exception as exc:
            log.exception("committing %d messages failed; none was stored", len(batch))
            for job in batch:
                with contextlib.suppress(Exception):
                    self._take_back(job.writer._outputs)
                    job.writer._cleanup()
                if job.error is None:
                    job.error = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                self.loop.call_soon_threadsafe(self._resolve, batch, [])

    def _commit(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        written: list[tuple[_Job, list[_Output]]] = []
        for job in batch:
            try:
                outputs = job.writer._write_outputs()
                for output in outputs:
                    if output.delivery.kind == "queue":
                        output.entry = self._queue_entry(job.writer, output)
                written.append((job, outputs))
            except OSError as exc:
                job.writer._cleanup()
                job.error = (
                    exc if isinstance(exc, StoreError) else StoreError(f"{exc.strerror or exc}")
                )
            except Exception as exc:  # a bug: this message fails (451), the batch goes on
                log.exception("writing message %s failed", job.writer.envelope.queue_id)
                job.writer._cleanup()
                job.error = exc
        try:
            self.check_fault()
            self._sync.sync([o.fd for _, outputs in written for o in outputs if o.fd is not None])
        except OSError as exc:
            # Which file failed is not known: none of the batch is acknowledged, so the
            # clients will send them again.
            for job, _ in written:
                job.writer._cleanup()
                job.error = StoreError(f"sync failed: {exc.strerror or exc}")
            written = []
        directories: set[str] = set()
        stored: list[tuple[_Job, list[_Output]]] = []
        for job, outputs in written:
            try:
                self._place(job.writer, outputs, directories)
                stored.append((job, outputs))
            except OSError as exc:
                self._take_back(outputs)
                job.writer._cleanup()
                job.error = StoreError(f"{exc.strerror or exc}")
        failed_dirs: set[str] = set()
        for directory in directories:
            try:
                fsync_directory(directory)
            except OSError as exc:
                log.error("fsync of %s failed: %s", directory, exc)
                failed_dirs.add(directory)
        rows = []
        queued: list[str] = []
        for job, outputs in stored:
            if any(
                o.final_path is not None and os.path.dirname(o.final_path) in failed_dirs
                for o in outputs
            ):
                # Not known to be durable: take it back, and let the client retry.
                self._take_back(outputs)
                job.error = StoreError("directory fsync failed")
                continue
            for output in outputs:
                if output.delivery.kind == "mailbox":
                    name = output.delivery.target
                    self.usage[name] = (
                        self.usage.get(name, 0) + len(output.header) + job.writer.size
                    )
                elif output.entry is not None:
                    queued.append(output.entry.id)
            rows.append(self._index_row(job.writer, outputs))
        if rows:
            try:
                self.index.insert(rows)
            except Exception:  # the index is rebuildable; the message is safe on disk
                log.exception("index insert failed; run `mailroom reindex`")
        self.latency_total += time.perf_counter() - started
        self.committed += len(rows)
        self.loop.call_soon_threadsafe(self._resolve, batch, queued)

    def _place(self, writer: MessageWriter, outputs: list[_Output], directories: set[str]) -> None:
        """Move a message's synced files from tmp/ into their places."""
        for index, output in enumerate(outputs):
            output.close()
            self.check_fault()
            if output.entry is not None:
                message = self.spool.message_path(output.entry.id)
                os.rename(output.tmp_path, message)
                output.final_path = str(message)
                state = self.spool.tmp / f"{output.entry.id}.json"
                os.rename(state, self.spool.entry_path(output.entry.id))
            else:
                size = len(output.header) + writer.size
                # tmp/ and new/ are siblings in the mailbox's Maildir.
                new = os.path.join(os.path.dirname(os.path.dirname(output.tmp_path)), "new")
                final = os.path.join(new, maildir_filename(writer.envelope, size, index))
                os.rename(output.tmp_path, final)
                output.final_path = final
            directories.add(os.path.dirname(output.final_path))

    def _take_back(self, outputs: list[_Output]) -> None:
        for output in outputs:
            if output.final_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(output.final_path)
                if output.entry is not None:
                    with contextlib.suppress(OSError):
                        self.spool.entry_path(output.entry.id).unlink()
            output.discard()

    def _queue_entry(self, writer: MessageWriter, output: _Output) -> QueueEntry:
        """Write the queue state beside the message (synced with the batch, moved after it)."""
        e = writer.envelope

        decided = dict(output.delivery.notify)

        def recipient(address: str, **state: Any) -> QueueRecipient:
            notify = decided.get(address, e.notify.get(address))
            return QueueRecipient(
                address=address,
                notify=list(notify or []) or None,
                orcpt=list(e.orcpt[address]) if address in e.orcpt else None,
                rrvs=e.rrvs.get(address),
                **state,
            )

        # Those put into local Maildirs by this same commit are there for their report.
        delivered = {
            "state": "delivered",
            "last_reply": "delivered to its mailbox on this server",
            "status": str(reports.DELIVERED_TO_MAILBOX.status),
            "reason": reports.DELIVERED_TO_MAILBOX.reason,
            "last_attempt": e.received_at,
            "final": True,
        }
        entry = QueueEntry(
            id=e.queue_id,
            sender=e.sender,
            recipients=[recipient(address) for address in output.delivery.recipients]
            + [recipient(address, **delivered) for address in output.delivery.delivered],
            created=e.received_at,
            envid=e.envid,
            ret=e.ret,
            body=e.body,
            smtputf8=e.smtputf8,
            auth_user=e.auth_user,
            client_ip=e.client_ip,
            requiretls=e.requiretls,
            mt_priority=e.mt_priority,
        )
        path = self.spool.tmp / f"{entry.id}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, entry.to_json())
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def _relative(self, path: str) -> str:
        """``path`` relative to the data directory (every stored file is below it)."""
        if path.startswith(self._data_prefix):
            return path[len(self._data_prefix) :]
        return os.path.relpath(path, self.data_dir)

    def _index_row(self, writer: MessageWriter, outputs: list[_Output]) -> IndexRow:
        e = writer.envelope
        summary = summarize_headers(writer._first_bytes)
        first = outputs[0]
        assert first.final_path is not None
        mailboxes = [o.delivery.target for o in outputs if o.delivery.kind == "mailbox"]
        return IndexRow(
            id=e.queue_id,
            received=e.received_at,
            mailbox=",".join(mailboxes) if mailboxes else QUEUED,
            path=self._relative(first.final_path),
            sender=e.sender,
            recipients=list(e.recipients),
            from_header=summary.from_,
            to_header=summary.to,
            cc_header=summary.cc,
            subject=summary.subject,
            message_id=summary.message_id,
            tags=tags_from_header(summary.x_tags),
            size=len(first.header) + writer.size,
            client_ip=e.client_ip,
            helo=e.helo,
            auth_user=e.auth_user,
            tls=e.tls,
        )

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


def disk_full() -> None:
    """A fault for tests: behave as a full disk."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def message_file(data_dir: Path, relative: str) -> Path:
    """Where a stored message's file is now. The index names it in new/; a mail reader (mutt,
    Dovecot) that has seen it moves it to cur/ and appends flags after ":" (":2,S")."""
    path = data_dir / relative
    if path.exists() or path.parent.name not in ("new", "cur"):
        return path
    unique = path.name.split(":")[0]
    for sub in ("cur", "new"):
        folder = path.parent.parent / sub
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if entry.name.split(":")[0] == unique:
                    return folder / entry.name
    return path
