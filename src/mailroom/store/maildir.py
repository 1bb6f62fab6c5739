"""The durable store: accepted messages go to Maildirs and to the outbound queue, fsync'd
before the 250.

Sessions stream a message into a :class:`MessageWriter` (kept in memory while small, spilled
to a ``tmp/`` file when large). ``commit()`` starts it on the way of :mod:`.commit`: one file
per destination (a Maildir per local mailbox, each with its own trace fields; the queue for
remote recipients) written in ``tmp/``, made durable together with every other message
committed meanwhile, moved into place, the directories made durable, and only then the
session's future resolved. So the 250 after end of data always means every file and its
directory entry are on disk, and concurrent sessions share the cost of the syncs (group
commit). This module says what happens to the files; :mod:`.commit` when and in which thread.

Several processes (``--workers``) may share the Maildirs, the queue and the index: file names
hold the queue id (unique per process, :mod:`.ids`) and the ``tmp/`` names the process id, and
the index is written with SQLite's own locking.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailroom.codes import reports
from mailroom.filemodes import private_dir, private_file
from mailroom.queue.entry import QueueEntry, QueueRecipient, QueueSpool
from mailroom.store.base import StoreError, store_error
from mailroom.store.commit import CommitJob, GroupCommit
from mailroom.store.durability import BatchSync
from mailroom.store.envelope import Delivery, Envelope, received_header, trace_header
from mailroom.store.headers import MAX_HEADER_SCAN, summarize_headers
from mailroom.store.index import QUEUED, Index, IndexRow
from mailroom.store.tags import tags_from_header

__all__ = [
    "MaildirStore",
    "MessageWriter",
    "StoreError",
    "discard_tmp_of",
    "disk_full",
    "maildir_filename",
    "message_file",
    "queue_entry_for",
]

log = logging.getLogger("mailroom.store")

SPILL_THRESHOLD = 1024 * 1024  # bytes kept in memory before a message goes to a tmp file
# Message bytes all sessions together may keep in memory; past it, messages go to their tmp
# files from the next write on (so a thousand slow clients each halfway through a 1 MiB
# message cannot take a gigabyte).
MEMORY_BUDGET = 64 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
MAX_DIRECTORY_FDS = 256  # new/ directories kept open (mailboxes written to recently)
# What open(O_TMPFILE) fails with where the filesystem has no unnamed files.
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT})


class MailboxUnavailable(StoreError, OSError):
    """One mailbox cannot take mail (its Maildir cannot be made or written: a file where its
    directory should be, a wrong owner), while the store as a whole is fine: the recipients
    whose mailbox it is are named, and the reply says so (RFC 3463 X.2.0)."""

    def __init__(self, mailbox: str, recipients: tuple[str, ...], why: str) -> None:
        super().__init__(f"mailbox {mailbox}: {why}")
        self.mailbox = mailbox
        self.recipients = recipients
        self.why = why


@functools.lru_cache(maxsize=16)
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


def _write_all(fd: int, *parts: bytes | bytearray) -> None:
    """Write the parts in order, in one system call where the kernel takes them whole."""
    views = [memoryview(part) for part in parts if part]
    while views:
        written = os.writev(fd, views) if len(views) > 1 else os.write(fd, views[0])
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


@dataclass(eq=False)
class _Output:
    """One file a message becomes: in a Maildir, or in the queue.

    Its paths are strings, not pathlib objects: they are made for every message in the
    committer, where pathlib's parsing cost a third of the committer's Python time.
    """

    delivery: Delivery
    header: bytes
    tmp_path: str
    final_dir: str  # where it goes: the mailbox's new/, or the queue
    final_path: str | None = None
    fd: int | None = None
    entry: QueueEntry | None = None  # for the queue: the state written beside the message
    entry_tmp: str | None = None  # where that state is written, until it is placed
    entry_fd: int | None = None
    unnamed: bool = False  # made with O_TMPFILE: no name until it is linked into place

    def close(self) -> None:
        for fd in (self.fd, self.entry_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd = self.entry_fd = None

    def discard(self) -> None:
        self.close()
        for path in (self.tmp_path, self.entry_tmp):
            if path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)


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

    @property
    def failure(self) -> StoreError | None:
        error = self._error
        if error is None or isinstance(error, StoreError):
            return error
        return store_error(error)

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

    def _open(self, index: int, body: bytes | bytearray = b"") -> _Output:
        """The ``index``-th destination's file, its trace fields and ``body`` written.

        A message written whole at commit goes into a file without a name (O_TMPFILE, in the
        same tmp/), linked into new/ once synced: one directory entry made, instead of one
        made in tmp/, then removed and made again in new/ by the rename. A crash leaves no
        file behind at all. Where the filesystem cannot (or for a file written as the message
        streams in), a named file in tmp/, renamed into place."""
        store = self.store
        output = store.output(self, index)
        if body and store.unnamed_files and output.delivery.kind == "mailbox":
            try:
                output.fd = os.open(
                    os.path.dirname(output.tmp_path), os.O_TMPFILE | os.O_WRONLY, 0o600
                )
                output.unnamed = True
            except OSError as exc:
                if exc.errno not in _NO_TMPFILE:
                    raise
                store.unnamed_files = False  # this filesystem cannot: named files from now on
        if output.fd is None:
            output.fd = os.open(output.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._outputs.append(output)
        self.store.check_fault()
        _write_all(output.fd, output.header, body)
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
        failure = self.failure
        if failure is not None:
            future.set_exception(failure)
            return future
        self.store.submit(self, future)
        return future

    # -- committing (store/commit.py: in the event loop, or its thread for a spilled one) ------

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
            for index in range(len(deliveries)):
                self._open(index, self._buffer)
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


class MaildirStore:
    """Maildirs under ``<data>/mail``, the queue under ``<data>/queue``, and the index
    ``<data>/index.sqlite``. Messages go from ``commit()`` to disk by group commit
    (:mod:`.commit`); this class says what each step does to the files."""

    wants_envelope = True

    def __init__(
        self,
        data_dir: Path,
        *,
        hostname: str,
        loop: asyncio.AbstractEventLoop,
        index: Index | None = None,
        sync_mode: str = "auto",
        sole: bool = True,
    ) -> None:
        """``sole``: no other process writes this data directory now, so what is left in
        ``tmp/`` at start is a crash's and goes (a worker of several leaves that to its
        supervisor, which starts before them: the others' files there are in flight)."""
        self.data_dir = data_dir
        self.sole = sole
        self.mail_dir = data_dir / "mail"
        self.hostname = hostname
        self.loop = loop
        self.index = index if index is not None else Index(data_dir / "index.sqlite")
        self.spool = QueueSpool(data_dir)
        # A message that only went to the queue is listed until its entry goes (delivered or
        # returned): then there is no file to show.
        self.spool.on_removed = self._forget_queued
        self._mailboxes: dict[str, str] = {}  # name -> its Maildir, made on first use
        self._data_prefix = os.path.join(str(data_dir), "")
        self._queue_tmp = str(self.spool.tmp)
        self._queue_active = str(self.spool.active)
        self._pid = os.getpid()  # in tmp/ names: unique per process (workers share Maildirs)
        # Small messages go into unnamed files (O_TMPFILE, Linux) linked into new/; set false
        # at the first filesystem that refuses them.
        self.unnamed_files = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
        self._dir_fds: dict[str, int] = {}  # new/ directories, to link unnamed files into
        self._sync = BatchSync(str(data_dir), sync_mode)
        self.committer = GroupCommit(
            self,
            self._sync,
            loop,
            insert_rows=self.index.insert,
            check_fault=self.check_fault,
            storage_error=store_error,
        )
        self.committer.on_queued = self._queued
        # Tests and the hostile suite inject storage faults here: a callable that raises
        # OSError (ENOSPC, EIO) as a full disk or a failing device would.
        self.fault: Callable[[], None] | None = None
        # Told (in the event loop) of queue ids newly queued for remote delivery.
        self.on_queued: Callable[[list[str]], None] | None = None
        # Octets in each local mailbox (by mailbox name), for quotas.
        self.usage: dict[str, int] = {}
        self._started = False
        self.in_memory = 0  # message bytes sessions hold in memory (see MEMORY_BUDGET)

    @property
    def latency_total(self) -> float:
        """Seconds the committer spent making messages durable, for metrics."""
        return self.committer.latency_total

    @property
    def committed(self) -> int:
        return self.committer.committed

    def start(self) -> None:
        private_dir(self.mail_dir)
        self.spool.ensure()
        self._sync.writes_in(self._queue_tmp)
        self._sync.writes_in(self._queue_active)
        if self.sole:
            self._cleanup_tmp()
            self.spool.cleanup()
            gone = self.index.queued_ids() - set(self.spool.ids())
            if gone:
                self.index.forget_queued(gone)
        self._measure_usage()
        self.committer.start()
        self._started = True

    def close(self) -> None:
        if self._started:
            self.committer.close()
            self._started = False
        self._sync.close()
        self._close_directory_fds()
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
            path = str(ensure_maildir(self.mail_dir / name))
            self._sync.writes_in(path + "/tmp")  # new/ is on the same filesystem as tmp/
            self._mailboxes[name] = path
        return path

    def has_room(self, size: int) -> bool:
        """Whether the data directory's file system has room for a message of ``size``
        octets, with half as much again to spare (the index, a copy per mailbox, the queue),
        as Postfix asks of a SIZE= at MAIL. An error reading it says yes: the end of data
        still refuses what cannot be written (452 4.3.1)."""
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError:
            return True
        return free >= size + size // 2

    def begin(self, envelope: Envelope | None) -> MessageWriter:
        assert envelope is not None  # wants_envelope: the trace fields are made from it
        return MessageWriter(self, envelope)

    def output(self, writer: MessageWriter, index: int) -> _Output:
        """The file for the ``index``-th destination of a message (made in tmp/)."""
        envelope = writer.envelope
        delivery = envelope.deliveries[index]
        unique = f"{envelope.queue_id}.{index}.{self._pid}"
        if delivery.kind == "queue":
            return _Output(
                delivery,
                received_header(envelope, delivery.recipients),
                f"{self._queue_tmp}/{unique}.eml",
                self._queue_active,
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
            f"{mailbox}/tmp/{unique}",
            f"{mailbox}/new",
        )

    def submit(self, writer: MessageWriter, future: asyncio.Future[str]) -> None:
        # A message in memory is written now, in the event loop; a spilled one has its
        # copies made by the committer's thread (see store/commit.py).
        now = writer._spill is None
        self.committer.submit(writer, future, writer.envelope.queue_id, now=now)

    def _queued(self, ids: list[str]) -> None:
        if self.on_queued is not None:
            self.on_queued(ids)

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

    # -- the steps of a commit (CommitStages, store/commit.py) ---------------------------------

    def write(self, job: CommitJob) -> None:
        """Step 1: every destination's file in tmp/, and the queue entry beside a queued one;
        left open for the sync."""
        writer: MessageWriter = job.writer
        try:
            outputs = writer._write_outputs()
            for output in outputs:
                if output.delivery.kind == "queue":
                    output.entry = self._queue_entry(writer, output)
        except OSError as exc:
            writer._cleanup()
            if isinstance(exc, StoreError):  # MailboxUnavailable names its mailbox: as it is
                raise
            raise store_error(exc) from exc
        except Exception:
            log.exception("writing message %s failed", job.queue_id)
            writer._cleanup()
            raise
        job.fds = [o.fd for o in outputs if o.fd is not None] + [
            o.entry_fd for o in outputs if o.entry_fd is not None
        ]

    def place(self, job: CommitJob) -> None:
        """Step 3: the synced files from tmp/ into their places, and the index row."""
        writer: MessageWriter = job.writer
        outputs = writer._outputs
        try:
            for index, output in enumerate(outputs):
                if output.entry is not None:
                    output.close()
                    message = f"{output.final_dir}/{output.entry.id}.eml"
                    os.rename(output.tmp_path, message)
                    output.final_path = message
                    assert output.entry_tmp is not None
                    os.rename(output.entry_tmp, f"{output.final_dir}/{output.entry.id}.json")
                    output.entry_tmp = None
                    job.queued.append(output.entry.id)
                else:
                    size = len(output.header) + writer.size
                    name = maildir_filename(writer.envelope, size, index)
                    final = f"{output.final_dir}/{name}"
                    if output.unnamed:
                        # Its first name, made from its descriptor: linkat(2) following
                        # /proc/self/fd (os.link takes that road only given a directory fd).
                        assert output.fd is not None
                        os.link(
                            f"/proc/self/fd/{output.fd}",
                            name,
                            dst_dir_fd=self._directory_fd(output.final_dir),
                            follow_symlinks=True,
                        )
                    else:
                        os.rename(output.tmp_path, final)
                    output.final_path = final
                output.close()
                job.directories.add(output.final_dir)
        except OSError as exc:
            raise store_error(exc) from exc
        job.row = self._index_row(writer, outputs)

    def _directory_fd(self, path: str) -> int:
        """A descriptor of the directory ``path``, kept (a few hundred at most)."""
        fd = self._dir_fds.get(path)
        if fd is None:
            if len(self._dir_fds) >= MAX_DIRECTORY_FDS:
                self._close_directory_fds()
            fd = self._dir_fds[path] = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        return fd

    def _close_directory_fds(self) -> None:
        for fd in self._dir_fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._dir_fds.clear()

    def take_back(self, job: CommitJob) -> None:
        """Nothing of a failed message stays: its files, placed or not, and its queue entry."""
        writer: MessageWriter = job.writer
        for output in writer._outputs:
            if output.final_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(output.final_path)
                if output.entry is not None:
                    with contextlib.suppress(OSError):
                        self.spool.entry_path(output.entry.id).unlink()
        writer._cleanup()

    def done(self, job: CommitJob) -> None:
        """Step 5: the message is durable; count it in its mailboxes' usage (quotas)."""
        writer: MessageWriter = job.writer
        for output in writer._outputs:
            if output.delivery.kind == "mailbox":
                name = output.delivery.target
                self.usage[name] = self.usage.get(name, 0) + len(output.header) + writer.size

    def _queue_entry(self, writer: MessageWriter, output: _Output) -> QueueEntry:
        """Write the queue state beside the message (synced with the batch, moved after it)."""
        entry = queue_entry_for(writer.envelope, output.delivery)
        path = f"{self._queue_tmp}/{entry.id}.{self._pid}.json"  # the pid: see discard_tmp_of
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        output.entry_tmp, output.entry_fd = path, fd
        self.check_fault()
        _write_all(fd, entry.to_json())
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


def discard_tmp_of(data_dir: Path, pid: int) -> int:
    """Remove what process ``pid`` (a worker that died) left in the Maildirs' and the queue's
    ``tmp/``: never durable, never answered with a 250. Returns how many files went."""
    removed = 0
    for pattern in (
        f"mail/**/tmp/*.{pid}",
        f"mail/**/tmp/*.{pid}.received",
        f"queue/tmp/*.{pid}.eml",
        f"queue/tmp/*.{pid}.json",
    ):
        for path in data_dir.glob(pattern):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def queue_entry_for(e: Envelope, delivery: Delivery) -> QueueEntry:
    """The queue entry of a message's queue delivery: its remote recipients pending, and those
    put into local mailboxes by the same commit as delivered (for their success report)."""
    decided = dict(delivery.notify)

    def recipient(address: str, **state: Any) -> QueueRecipient:
        notify = decided.get(address, e.notify.get(address))
        return QueueRecipient(
            address=address,
            notify=list(notify or []) or None,
            orcpt=list(e.orcpt[address]) if address in e.orcpt else None,
            rrvs=e.rrvs.get(address),
            **state,
        )

    delivered = {
        "state": "delivered",
        "last_reply": "delivered to its mailbox on this server",
        "status": str(reports.DELIVERED_TO_MAILBOX.status),
        "reason": reports.DELIVERED_TO_MAILBOX.reason,
        "last_attempt": e.received_at,
        "final": True,
    }
    return QueueEntry(
        id=e.queue_id,
        sender=e.sender if delivery.sender is None else delivery.sender,
        recipients=[recipient(address) for address in delivery.recipients]
        + [recipient(address, **delivered) for address in delivery.delivered],
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
