"""The durable store: one Maildir file per accepted message, fsync'd before the 250.

Sessions stream a message into a :class:`MessageWriter` (kept in memory while small, spilled
to the Maildir's ``tmp/`` when large). ``commit()`` hands it to one committer thread, which
takes every message waiting at that moment as one batch: it writes and fsyncs each file, moves
the batch from ``tmp/`` to ``new/``, fsyncs each directory once, and only then resolves the
sessions' futures. So the 250 after end of data always means file and directory entry are on
disk, and concurrent sessions share the cost of the directory fsync (group commit).
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

from mailroom.store.durability import BatchSync, fsync_directory
from mailroom.store.envelope import Envelope, trace_header
from mailroom.store.headers import MAX_HEADER_SCAN, summarize_headers
from mailroom.store.index import Index, IndexRow

__all__ = ["MaildirStore", "MessageWriter", "StoreError", "maildir_filename"]

log = logging.getLogger("mailroom.store")

SPILL_THRESHOLD = 1024 * 1024  # bytes kept in memory before a message goes to its tmp file
MAX_BATCH = 512


class StoreError(Exception):
    """The message could not be stored (disk full, I/O error); nothing of it was kept."""


def _safe_hostname(hostname: str) -> str:
    # Maildir names may not hold "/" or ":" (the info separator).
    return hostname.replace("/", "\\057").replace(":", "\\072")


def maildir_filename(envelope: Envelope, size: int) -> str:
    host = _safe_hostname(envelope.hostname)
    return f"{int(envelope.received_at)}.{envelope.queue_id}.{host},S={size}"


def ensure_maildir(path: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


@dataclass(eq=False)
class MessageWriter:
    store: MaildirStore
    envelope: Envelope
    mailbox_name: str
    mailbox: Path
    header: bytes
    _buffer: bytearray = field(default_factory=bytearray)
    _size: int = 0
    _fd: int | None = None
    _tmp_path: Path | None = None
    _error: OSError | None = None
    _first_bytes: bytes = b""
    _done: bool = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        if self._error is not None or self._done:
            return
        self._size += len(data)
        if len(self._first_bytes) < MAX_HEADER_SCAN:
            self._first_bytes += data[: MAX_HEADER_SCAN - len(self._first_bytes)]
        if self._fd is None:
            self._buffer += data
            if len(self._buffer) < SPILL_THRESHOLD:
                return
            data = b""  # it is in the buffer now
        try:
            if self._fd is None:
                self._open()
            self._write_buffer(data)
        except OSError as exc:
            self._fail(exc)

    def _open(self) -> None:
        self._tmp_path = self.mailbox / "tmp" / f"{self.envelope.queue_id}.{os.getpid()}"
        self._fd = os.open(self._tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.store.check_fault()
        _write_all(self._fd, self.header)

    def _write_buffer(self, data: bytes = b"") -> None:
        assert self._fd is not None
        if self._buffer:
            self.store.check_fault()
            _write_all(self._fd, self._buffer)
            self._buffer = bytearray()
        if data:
            self.store.check_fault()
            _write_all(self._fd, data)

    def _fail(self, exc: OSError) -> None:
        self._error = exc
        self._buffer = bytearray()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._tmp_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp_path)
            self._tmp_path = None

    def abort(self) -> None:
        """Forget the message (refused, or the client went away)."""
        self._done = True
        self._buffer = bytearray()
        self._cleanup()

    def commit(self) -> asyncio.Future[str]:
        """Store it for good; the future gives the queue id once file and directory entry are
        fsync'd, or raises StoreError."""
        self._done = True
        future: asyncio.Future[str] = self.store.loop.create_future()
        if self._error is not None:
            future.set_exception(StoreError(str(self._error)))
            return future
        self.store.submit(self, future)
        return future

    # -- in the committer thread ---------------------------------------------------------

    def _write_rest(self) -> int:
        """Write what is still in memory; returns the open file, not yet synced."""
        if self._fd is None:
            self._open()
        self._write_buffer()
        assert self._fd is not None
        return self._fd

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _final_path(self) -> Path:
        return self.mailbox / "new" / maildir_filename(self.envelope, len(self.header) + self._size)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclass(eq=False)
class _Job:
    writer: MessageWriter
    future: asyncio.Future[str]
    error: BaseException | None = None


class MaildirStore:
    """Maildirs under ``<data>/mail`` and the index ``<data>/index.sqlite``."""

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
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mailroom-committer", daemon=True)
        self._mailboxes: dict[str, Path] = {}
        self._sync = BatchSync(str(data_dir), sync_mode)
        # Tests and the hostile suite inject storage faults here: a callable that raises
        # OSError (ENOSPC, EIO) as a full disk or a failing device would.
        self.fault: Callable[[], None] | None = None
        self._started = False
        self.latency_total = 0.0  # seconds spent committing, for metrics
        self.committed = 0

    def start(self) -> None:
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self._cleanup_tmp()
        self._thread.start()
        self._started = True

    def close(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._started = False
        self.index.close()

    def check_fault(self) -> None:
        if self.fault is not None:
            self.fault()

    def mailbox_path(self, name: str) -> Path:
        path = self._mailboxes.get(name)
        if path is None:
            path = ensure_maildir(self.mail_dir / name)
            self._mailboxes[name] = path
        return path

    def begin(self, envelope: Envelope, mailbox: str = "catchall") -> MessageWriter:
        return MessageWriter(
            self, envelope, mailbox, self.mailbox_path(mailbox), trace_header(envelope)
        )

    def submit(self, writer: MessageWriter, future: asyncio.Future[str]) -> None:
        self._queue.put(_Job(writer, future))

    def _cleanup_tmp(self) -> None:
        # Files left in tmp/ by a crash never got a 250: they are not messages.
        for tmp in self.mail_dir.glob("**/tmp/*"):
            with contextlib.suppress(OSError):
                tmp.unlink()

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
                    self._commit(batch)
                    return
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        written: list[_Job] = []
        for job in batch:
            try:
                job.writer._write_rest()
                written.append(job)
            except OSError as exc:
                job.writer._cleanup()
                job.error = StoreError(f"{exc.strerror or exc}")
        try:
            self.check_fault()
            self._sync.sync([job.writer._fd for job in written if job.writer._fd is not None])
        except OSError as exc:
            # Which file failed is not known: none of the batch is acknowledged, so the
            # clients will send them again.
            for job in written:
                job.writer._cleanup()
                job.error = StoreError(f"sync failed: {exc.strerror or exc}")
            written = []
        directories: set[Path] = set()
        stored: list[tuple[_Job, Path]] = []
        for job in written:
            writer = job.writer
            final_path = writer._final_path()
            try:
                writer._close_file()
                assert writer._tmp_path is not None
                self.check_fault()
                os.rename(writer._tmp_path, final_path)
                writer._tmp_path = None
                directories.add(final_path.parent)
                stored.append((job, final_path))
            except OSError as exc:
                writer._cleanup()
                job.error = StoreError(f"{exc.strerror or exc}")
        failed_dirs: set[Path] = set()
        for directory in directories:
            try:
                fsync_directory(str(directory))
            except OSError as exc:
                log.error("fsync of %s failed: %s", directory, exc)
                failed_dirs.add(directory)
        rows = []
        for job, final_path in stored:
            if final_path.parent in failed_dirs:
                # Not known to be durable: take it back, and let the client retry.
                with contextlib.suppress(OSError):
                    final_path.unlink()
                job.error = StoreError("directory fsync failed")
                continue
            rows.append(self._index_row(job.writer, final_path))
        if rows:
            try:
                self.index.insert(rows)
            except Exception:  # the index is rebuildable; the message is safe on disk
                log.exception("index insert failed; run `mailroom reindex`")
        self.latency_total += time.perf_counter() - started
        self.committed += len(rows)
        self.loop.call_soon_threadsafe(_resolve, batch)

    def _index_row(self, writer: MessageWriter, path: Path) -> IndexRow:
        e = writer.envelope
        summary = summarize_headers(writer._first_bytes)
        return IndexRow(
            id=e.queue_id,
            received=e.received_at,
            mailbox=writer.mailbox_name,
            path=str(path.relative_to(self.data_dir)),
            sender=e.sender,
            recipients=list(e.recipients),
            from_header=summary.from_,
            to_header=summary.to,
            cc_header=summary.cc,
            subject=summary.subject,
            message_id=summary.message_id,
            size=len(writer.header) + writer.size,
            client_ip=e.client_ip,
            helo=e.helo,
            auth_user=e.auth_user,
            tls=e.tls,
        )


def _resolve(batch: list[_Job]) -> None:
    for job in batch:
        if job.future.done():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.writer.envelope.queue_id)


def disk_full() -> None:
    """A fault for tests: behave as a full disk."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
