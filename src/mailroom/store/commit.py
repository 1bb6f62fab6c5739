"""Group commit: messages committed at about the same moment become durable together, and the
event loop's thread does the work of each message while a thread of its own only waits on the
disk.

A message's way from ``commit()`` to its 250, for the Maildir store (:mod:`.maildir`):

1. **write** (the event loop, at once): its files in ``tmp/`` (the header and the body in one
   ``writev``), its queue entry, closed unsynced. A large message that was spilled to its file
   while it streamed in has its copies made by the sync thread instead (a kernel copy of
   megabytes would stall the loop).
2. **sync data** (the sync thread): every file written since its last pass, in one ``syncfs``
   (or one ``fsync`` each: for a file or two, or where syncfs cannot report errors).
3. **place** (the event loop): each file renamed from ``tmp/`` to ``new/`` (or into the queue),
   its index row made.
4. **sync names** (the sync thread): the directories the renames changed (the same ``syncfs``
   as the next batch's data, under load), then the batch's index rows in one SQL statement.
5. **answer** (the event loop): each session's future gets its queue id, or the error.

Why the thread does so little: every call out of Python (a syscall, an SQLite step) lets the
other thread take the interpreter's lock, and two threads that both want it trade it at each
such call, a futex each way. With the per-message calls in the thread, that was 23 futex calls
a message and most of the committer's time. Here the thread makes a few long calls per pass
(``syncfs``, a directory ``fsync``, one ``INSERT``), whatever the number of messages in it.

Nothing is answered before both syncs: a 250 still means the file and its name are on disk. A
pass that fails to sync fails every message it held (none of them is known to be durable): the
sessions answer 452 4.3.1 and the clients send them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mailroom.store.base import StoreError

if TYPE_CHECKING:
    from mailroom.store.index import IndexRow

__all__ = ["CommitJob", "CommitStages", "GroupCommit"]

log = logging.getLogger("mailroom.store")

MAX_PASS = 512  # messages the sync thread takes in one pass


@dataclass(eq=False, init=False)
class CommitJob:
    """One message on its way from ``commit()`` to its answer."""

    writer: Any  # the store's writer (a MessageWriter for Maildirs)
    future: asyncio.Future[str]
    queue_id: str
    written: bool  # its files are in tmp/ (step 1 done)
    fds: list[int]  # its files, open until placed (step 2)
    directories: set[str]  # where its names went (step 3)
    row: IndexRow | None
    queued: list[str]  # queue entries it made, for the runner
    error: BaseException | None

    def __init__(self, writer: Any, future: asyncio.Future[str], queue_id: str) -> None:
        # Compiled, unlike the one @dataclass would write (see
        # mailroom.protocol.parameters.MailParameters); one a message.
        self.writer = writer
        self.future = future
        self.queue_id = queue_id
        self.written = False
        self.fds = []
        self.directories = set()
        self.row = None
        self.queued = []
        self.error = None


class CommitStages(Protocol):
    """What the store does at each step (the pipeline decides where and when)."""

    def write(self, job: CommitJob) -> None:
        """Step 1: the job's files in tmp/, left open (job.fds) for step 2."""
        ...

    def place(self, job: CommitJob) -> None:
        """Step 3: rename them into place (job.directories), make job.row."""
        ...

    def take_back(self, job: CommitJob) -> None:
        """Undo steps 1 and 3 of a job that failed: nothing of it stays."""
        ...

    def done(self, job: CommitJob) -> None:
        """Step 5, before the answer: counters, quotas."""
        ...


class Syncer(Protocol):
    """How the thread makes files and directories durable (store/durability.py)."""

    def sync(self, fds: list[int], directories: set[str]) -> None: ...


class GroupCommit:
    """The pipeline above, for one store. ``submit`` and the stages run in ``loop``."""

    def __init__(
        self,
        stages: CommitStages,
        syncer: Syncer,
        loop: asyncio.AbstractEventLoop,
        *,
        insert_rows: Callable[[list[IndexRow]], None],
        check_fault: Callable[[], None],
        storage_error: Callable[[OSError, str], Exception],
    ) -> None:
        self.stages = stages
        # What a failed disk operation becomes for the session (452 4.3.1 for a full disk,
        # 451 4.3.0 for another failure); anything else is a bug and stays what it is.
        self.storage_error = storage_error
        self.syncer = syncer
        self.loop = loop
        self.insert_rows = insert_rows
        self.check_fault = check_fault
        self.on_queued: Callable[[list[str]], None] | None = None
        self.latency_total = 0.0  # seconds the sync thread spent, for metrics
        self.committed = 0
        self._written: list[CommitJob] = []  # step 1 done this loop turn
        self._work: queue.SimpleQueue[tuple[str, list[CommitJob]] | None] = queue.SimpleQueue()
        self._sync_thread = threading.Thread(
            target=self._run, name="mailroom-committer", daemon=True
        )

    def start(self) -> None:
        self._sync_thread.start()

    def close(self, timeout: float = 30) -> None:
        """Hand over what this loop turn wrote, and stop the thread once it has synced it.
        Jobs still waiting for the loop (steps 3 and 5) are not answered: their sessions are
        gone (the server stops first), and their files stay in tmp/ (removed at the next
        start), since their 250 was never sent."""
        self._dispatch()
        self._work.put(None)
        self._sync_thread.join(timeout)

    # -- in the event loop ---------------------------------------------------------------------

    def submit(self, writer: Any, future: asyncio.Future[str], queue_id: str, *, now: bool) -> None:
        """Start a message on its way. ``now``: write its files here (step 1) rather than in
        the sync thread (a large message's copies)."""
        job = CommitJob(writer, future, queue_id)
        if now:
            try:
                self.stages.write(job)
                job.written = True
            except BaseException as exc:
                self._fail([job], exc)
                return
        self._written.append(job)
        if len(self._written) == 1:
            self.loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        # The end of the loop turn: what it wrote goes to the thread in one hand-over.
        if self._written:
            written, self._written = self._written, []
            self._work.put(("data", written))

    def _placed(self, synced: list[CommitJob]) -> None:
        """Step 3 for jobs whose data is on disk; they go back for step 4."""
        placed = []
        for job in synced:
            if job.future.done():  # cancelled: the loop is going away
                self._take_back(job)
                continue
            try:
                self.check_fault()
                self.stages.place(job)
                placed.append(job)
            except BaseException as exc:
                self._fail([job], exc)
        if placed:
            self._work.put(("names", placed))

    def _answer(self, durable: list[CommitJob], failed: list[CommitJob]) -> None:
        """Step 5."""
        queued: list[str] = []
        for job in failed:
            self._fail([job], job.error or OSError("not stored"))
        for job in durable:
            self.stages.done(job)
            queued += job.queued
            self.committed += 1
            if not job.future.done():
                job.future.set_result(job.queue_id)
        if queued and self.on_queued is not None:
            self.on_queued(queued)

    def _fail(self, jobs: list[CommitJob], exc: BaseException) -> None:
        if isinstance(exc, OSError) and not isinstance(exc, StoreError):
            exc = self.storage_error(exc, "")
        for job in jobs:
            self._take_back(job)
            if not job.future.done():
                job.future.set_exception(exc)

    def _take_back(self, job: CommitJob) -> None:
        with contextlib.suppress(Exception):
            self.stages.take_back(job)

    # -- the sync thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._work.get()
            items = [item]
            while item is not None and sum(len(i[1]) for i in items if i) < MAX_PASS:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
            data = [job for i in items if i is not None and i[0] == "data" for job in i[1]]
            names = [job for i in items if i is not None and i[0] == "names" for job in i[1]]
            try:
                self._pass(data, names)
            except BaseException as exc:  # a bug: fail what the pass held, live on
                log.exception("committing %d messages failed; none was stored", len(data + names))
                for job in data + names:
                    job.error = job.error or exc
                self._call_loop(self._answer, [], data + names)
            if None in items:
                return

    def _pass(self, data: list[CommitJob], names: list[CommitJob]) -> None:
        started = time.perf_counter()
        failed: list[CommitJob] = []
        for job in data:
            if not job.written:  # a large message: its copies are made here
                try:
                    self.stages.write(job)
                    job.written = True
                except BaseException as exc:
                    job.error = exc
        failed += [job for job in data if job.error is not None]
        data = [job for job in data if job.error is None]
        try:
            self.check_fault()
            self._sync(data, names)
        except OSError as exc:
            # Which file failed is not known: none of the pass is acknowledged.
            error = self.storage_error(exc, "sync failed: ")
            for job in data + names:
                job.error = error
            self._call_loop(self._answer, [], failed + data + names)
            return
        durable = []
        rows = [job.row for job in names if job.row is not None]
        if rows:
            try:
                self.insert_rows(rows)
            except Exception:  # the index is rebuildable; the messages are safe on disk
                log.exception("index insert failed; run `mailroom reindex`")
        durable = names
        self.latency_total += time.perf_counter() - started
        self._call_loop(self._answer_and_place, durable, failed, data)

    def _answer_and_place(
        self, durable: list[CommitJob], failed: list[CommitJob], synced: list[CommitJob]
    ) -> None:
        self._answer(durable, failed)
        if synced:
            self._placed(synced)

    def _sync(self, data: list[CommitJob], names: list[CommitJob]) -> None:
        fds = [fd for job in data for fd in job.fds]
        directories = {d for job in names for d in job.directories}
        if fds or directories:
            self.syncer.sync(fds, directories)

    def _call_loop(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self.loop.call_soon_threadsafe(callback, *args)
