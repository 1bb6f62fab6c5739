"""The queue runner: delivers what the store queued for remote recipients, retries what was
deferred, bounces what failed, and tells senders (RFC 3464 DSNs).

Shape (Postfix's qmgr and smtp in one asyncio component):

- Entries are scheduled by ``next_attempt`` (a heap). A due entry gets a *round*: its pending
  recipients are grouped by domain, and each group becomes a job for its
  :class:`~mailroom.delivery.routing.Destination`.
- A destination runs up to ``max_per_destination`` workers, each with one connection it reuses
  for the next job of that destination; all workers together hold at most ``max_connections``
  connections. An idle worker lingers briefly for more work, then says QUIT.
- After the reply to the end of data, the recipients' new state is saved (fsync'd) before
  anything else happens: after a crash, a message is sent again only if the remote end had not
  answered the end of data.
- When the round is over, :func:`~mailroom.delivery.schedule.settle` decides: expire what is
  too old, report what the sender asked to hear about (via ``deliver_local``), set the next
  attempt, or remove the entry once every recipient is final and reported.

Transport security: each MX host is connected to as the outbound TLS policy plans it
(:mod:`mailroom.delivery.tlspolicy`: DANE, MTA-STS, the levels of ``[outbound_tls]``, and what
the message asks: REQUIRETLS, ``TLS-Required: No``); each session's TLS outcome is counted for
the daily TLS reports (:mod:`mailroom.delivery.tlsrpt`).

Control from outside (``mailroom queue retry|delete``) comes through files in
``<data>/queue/control/`` that the runner polls every second; ``<data>/queue.lock``
(flock) tells the command whether a runner is alive. See :mod:`mailroom.delivery.control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from mailroom.authentication.outbound import Outbound
from mailroom.client import (
    ConnectionFailed,
    MailOptions,
    MessageRefused,
    Recipient,
    SendError,
    ServiceClosing,
    TransactionResult,
)
from mailroom.codes import reports
from mailroom.delivery import control
from mailroom.delivery.connections import Session, open_session
from mailroom.delivery.downgrade import CannotConvert, fit_for_next_hop, refused_recipients
from mailroom.delivery.dsn import DSNOptions, build_dsn
from mailroom.delivery.outcome import Outcome, apply, from_error, from_reply, reported
from mailroom.delivery.routing import Destination, destination_for, plan
from mailroom.delivery.schedule import domain_of, settle, wants
from mailroom.delivery.tlspolicy import Requirement, requirement_of
from mailroom.delivery.transport_security import TransportSecurity, transport_security
from mailroom.header_section import header_length
from mailroom.logsafe import quoted
from mailroom.protocol.client_errors import ExtensionNotOffered, InvalidAddress, MessageTooLarge
from mailroom.queue.entry import QueueEntry, QueueRecipient, QueueStore
from mailroom.queue.settings import QueueSettings
from mailroom.resolver import Resolver

__all__ = ["DeliverLocal", "QueueRunner"]

log = logging.getLogger("mailroom.delivery")

MAX_RECIPIENTS_PER_TRANSACTION = 100  # RFC 5321 §4.5.3.1.8: servers take at least 100
MAX_ROUNDS = 1000  # entries being delivered at once; the rest wait their turn
LINGER = 2.0  # seconds an idle connection waits for the next message to its destination
CONTROL_INTERVAL = 1.0  # seconds between looks at queue/control for `mailroom queue` requests
MAX_HEADER = 64 * 1024  # octets of a queued message read for its TLS-Required field


class DeliverLocal(Protocol):
    """How the runner hands a report to the server: store it in the sender's mailbox if the
    sender's domain is local, else queue it for remote delivery with the null sender. Returns
    the queue id once the message is durable."""

    def __call__(self, *, sender: str, recipients: list[str], message: bytes) -> Awaitable[str]: ...


@dataclass(eq=False)
class _Job:
    entry: QueueEntry
    domain: str
    recipients: list[QueueRecipient]
    done: asyncio.Future[None]
    settled: set[int] = field(default_factory=set)  # id() of recipients given an outcome


class _Jobs:
    """The jobs waiting for one destination's workers, higher MT-PRIORITY first (RFC 6710),
    then in the order they came."""

    def __init__(self) -> None:
        self._queue: asyncio.PriorityQueue[tuple[int, int, _Job]] = asyncio.PriorityQueue()
        self._order = itertools.count()

    def put_nowait(self, job: _Job) -> None:
        self._queue.put_nowait((-(job.entry.mt_priority or 0), next(self._order), job))

    def get_nowait(self) -> _Job:
        return self._queue.get_nowait()[2]

    async def get(self) -> _Job:
        return (await self._queue.get())[2]

    def qsize(self) -> int:
        return self._queue.qsize()

    def empty(self) -> bool:
        return self._queue.empty()


@dataclass(eq=False)
class _Destination:
    key: Destination
    jobs: _Jobs = field(default_factory=_Jobs)
    workers: int = 0
    idle: int = 0


def _now() -> float:
    return time.time()


T = TypeVar("T")


async def _wait(awaitable: Awaitable[T], timeout: float) -> T | None:
    """The awaitable's result, or None after ``timeout`` seconds (it is then cancelled).

    Unlike ``asyncio.wait_for`` before Python 3.12, a cancellation of the caller is never lost
    when it comes just as the awaitable finishes: loops that wait this way can be stopped.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
    return task.result() if done else None


class QueueRunner:
    def __init__(
        self,
        spool: QueueStore,
        settings: QueueSettings,
        *,
        hostname: str,
        deliver_local: DeliverLocal,
        resolver: Resolver | None = None,
        mx_port: int | None = None,
        return_limit: int | None = None,
        clock: Callable[[], float] = _now,
        linger: float = LINGER,
        own_addresses: Callable[[], Iterable[tuple[str, int]]] = lambda: (),
        control_interval: float = CONTROL_INTERVAL,
        outbound: Outbound | None = None,
        transport: TransportSecurity | None = None,
    ) -> None:
        self.spool = spool
        self.settings = settings
        self.hostname = hostname
        self.helo = settings.helo_name or hostname
        self.deliver_local = deliver_local
        self.resolver = resolver or Resolver(list(settings.dns_servers) or None)
        # The port MX hosts are reached on: 25, unless a test or a lab says otherwise.
        self.mx_port = mx_port if mx_port is not None else settings.mx_port
        limit = return_limit if return_limit is not None else settings.bounce_size_limit
        self.dsn_options = DSNOptions(hostname, limit, settings.max_age)
        self.clock = clock
        # Forwards leave with an SRS sender and an ARC seal (mailroom.authentication.outbound).
        self.outbound = outbound
        self.linger = linger
        # Where this server listens (for MX records that point back at it: a routing loop).
        self.own_addresses = own_addresses
        self.control_interval = control_interval
        self.entries: dict[str, QueueEntry] = {}
        # (when due, minus its priority, arrival, id): among entries due at once, higher
        # MT-PRIORITY first (RFC 6710 §5), then first come.
        self._heap: list[tuple[float, int, int, str]] = []
        self._seq = itertools.count()
        self._rounds: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # retry requested while a round was running
        self._deleted: set[str] = set()
        self._destinations: dict[str, _Destination] = {}
        self._slots = asyncio.Semaphore(max(1, settings.max_connections))
        self._save_locks: dict[str, asyncio.Lock] = {}
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._scheduler: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._lock: control.RunnerLock | None = None
        self._stopping = False
        self.idle = asyncio.Event()  # set whenever no round is running and none is due
        if transport is None:
            transport = transport_security(
                settings.tls,
                self.resolver,
                spool.root,
                hostname=hostname,
                deliver_local=deliver_local,
                clock=clock,
            )
        self.tls_policy = transport.policy
        self.tls_recorder = transport.recorder
        self.tls_reporter = transport.reporter
        # Counters for logs, metrics and tests.
        self.delivered = 0
        self.bounced = 0
        self.deferred = 0
        self.reports = 0

    # -- start and stop ------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the queue (its lock), load every entry on disk, and begin: restarting the
        server resumes the queue where it was."""
        self.spool.ensure()
        self.tls_policy.verifying_context()  # a ca_file that cannot be read fails the start
        self._lock = await control.RunnerLock.acquire(self.spool.root)
        entries = await asyncio.to_thread(lambda: list(self.spool.entries()))
        for entry in entries:
            self._add(entry)
        if entries:
            log.info("queue: %d entries resumed", len(entries))
        await self._poll_control()
        self._scheduler = asyncio.ensure_future(self._schedule())
        self._poller = asyncio.ensure_future(self._poll())
        if self.tls_reporter is not None:
            await self.tls_reporter.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Start no more rounds; let those running finish within ``grace`` seconds, then
        cancel them (their recipients stay pending: the state saved after each reply to the
        end of data is the truth), close connections and give up the queue."""
        self._stopping = True
        for task in (self._scheduler, self._poller):
            if task is not None:
                task.cancel()
        rounds = list(self._rounds.values())
        if rounds:
            _, running = await asyncio.wait(rounds, timeout=grace)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        loops = [t for t in (self._scheduler, self._poller) if t is not None]
        if loops:
            await asyncio.wait(loops, timeout=5)
        if self.tls_reporter is not None:
            await self.tls_reporter.stop()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- what the server and the command tell us -----------------------------------------------

    def wake(self, ids: Iterable[str]) -> None:
        """New entries were queued (the store's ``on_queued``): load and schedule them."""
        for queue_id in ids:
            if queue_id in self.entries or queue_id in self._deleted:
                continue
            entry = self.spool.load(queue_id)
            if entry is not None:
                self._add(entry)
        self._wakeup.set()

    def retry_now(self, ids: Iterable[str] | None = None) -> list[str]:
        """Make entries due now (all when ``ids`` is None); the ids that were found."""
        found = []
        targets = self.spool.ids() if ids is None else list(ids)
        for queue_id in targets:
            entry = self.entries.get(queue_id)
            if entry is None and queue_id not in self._deleted:
                # On disk but not known yet (queued by another process, or not yet woken).
                entry = self.spool.load(queue_id)
                if entry is not None:
                    self.entries[queue_id] = entry
            if entry is None:
                continue
            found.append(queue_id)
            if queue_id in self._rounds:
                self._again.add(queue_id)
            else:
                entry.next_attempt = 0.0
                self._push(entry)
        self._wakeup.set()
        return found

    async def delete(self, ids: Iterable[str]) -> list[str]:
        """Remove entries without a report (``mailroom queue delete``); a delivery in flight
        finishes its transaction, but nothing more is done for it."""
        removed = []
        for queue_id in ids:
            if queue_id not in self.entries and not self.spool.has(queue_id):
                continue
            self._deleted.add(queue_id)
            self.entries.pop(queue_id, None)
            lock = self._save_locks.get(queue_id)
            if lock is not None:
                async with lock:
                    await asyncio.to_thread(self.spool.remove, queue_id)
            else:
                await asyncio.to_thread(self.spool.remove, queue_id)
            log.info("%s: removed by request", queue_id)
            removed.append(queue_id)
        return removed

    def forget(self, ids: Iterable[str]) -> None:
        """Stop working on entries another node now holds (a fleet's lease this node lost):
        no new transaction begins for them, and their state is no longer saved from here."""
        for queue_id in ids:
            self._deleted.add(queue_id)
            self.entries.pop(queue_id, None)

    def readmit(self, queue_id: str) -> bool:
        """Whether a forgotten entry may be taken on again (no round of it still runs)."""
        if queue_id in self._rounds:
            return False
        self._deleted.discard(queue_id)
        return True

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no round runs and nothing is due now (tests, the command's progress)."""
        try:
            await asyncio.wait_for(self._until_idle(), timeout)
        except TimeoutError:
            return False
        return True

    async def _until_idle(self) -> None:
        while True:
            self.idle.clear()
            if not self._rounds and not self._due_now():
                return
            await self.idle.wait()

    def _due_now(self) -> bool:
        now = self.clock()
        rounds = self._rounds
        return any(e.next_attempt <= now and e.id not in rounds for e in self.entries.values())

    # -- scheduling ------------------------------------------------------------------------------

    def _add(self, entry: QueueEntry) -> None:
        self.entries[entry.id] = entry
        self._push(entry)

    def _push(self, entry: QueueEntry) -> None:
        priority = -(entry.mt_priority or 0)
        heapq.heappush(self._heap, (entry.next_attempt, priority, next(self._seq), entry.id))

    async def _schedule(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            now = self.clock()
            while self._heap and len(self._rounds) < MAX_ROUNDS:
                when, _, _, queue_id = self._heap[0]
                entry = self.entries.get(queue_id)
                if entry is None or entry.next_attempt != when or queue_id in self._rounds:
                    heapq.heappop(self._heap)  # stale: removed, rescheduled or running
                    continue
                if when > now:
                    break
                heapq.heappop(self._heap)
                self._rounds[queue_id] = asyncio.ensure_future(self._round(entry))
            if not self._rounds:
                self.idle.set()
            delay = 60.0
            if self._heap and len(self._rounds) < MAX_ROUNDS:
                delay = min(delay, max(0.0, self._heap[0][0] - now))
            await _wait(self._wakeup.wait(), delay)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.control_interval)
            try:
                await self._poll_control()
            except Exception:
                log.exception("queue control requests")

    async def _poll_control(self) -> None:
        for request in await asyncio.to_thread(control.pending_requests, self.spool.root):
            if request.action == "retry":
                found = self.retry_now(request.ids)
                log.info("queue: retry requested for %d entries", len(found))
            elif request.action == "delete":
                await self.delete(request.ids or [])
            request.done()

    # -- a round ---------------------------------------------------------------------------------

    async def _round(self, entry: QueueEntry) -> None:
        try:
            pending = entry.pending
            if pending:
                groups: dict[str, list[QueueRecipient]] = {}
                for recipient in pending:
                    groups.setdefault(domain_of(recipient.address), []).append(recipient)
                requirement = await self._requirement(entry)
                await asyncio.gather(
                    *(
                        self._deliver(entry, domain, rcpts, requirement)
                        for domain, rcpts in groups.items()
                    )
                )
                entry.attempts += 1
            if entry.id not in self._deleted:
                await self._settle(entry)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: delivery round failed", entry.id)
            entry.next_attempt = self.clock() + self.settings.retry_after(max(entry.attempts, 1))
            with contextlib.suppress(Exception):
                await self._save(entry)
        finally:
            self._rounds.pop(entry.id, None)
            if entry.id in self.entries:
                if entry.id in self._again:
                    self._again.discard(entry.id)
                    entry.next_attempt = 0.0
                self._push(entry)
            self._wakeup.set()
            if not self._rounds:
                self.idle.set()

    async def _requirement(self, entry: QueueEntry) -> Requirement:
        """What the message asks of the next hop's TLS (RFC 8689): REQUIRETLS, or its
        ``TLS-Required: No`` header field."""
        if entry.requiretls:
            return "requiretls"

        # Read on the loop, not in a thread, when it is a spool file's head: the rounds a
        # scheduling pass starts then put their jobs in their destinations' queues in the same
        # turn of the loop, before any worker takes one, so the first job taken is the highest
        # MT-PRIORITY waiting (RFC 6710), not the one whose thread happened to finish first. One
        # read of at most MAX_HEADER octets, usually in the page cache, is a small cost for
        # that. A fleet's queue (PostgreSQL) is a round trip: a worker thread does it, and the
        # order among a pass's jobs is then the order the reads finish.
        try:
            if self.spool.head_on_loop:
                head = self.spool.read_head(entry.id, MAX_HEADER)
            else:
                head = await asyncio.to_thread(self.spool.read_head, entry.id, MAX_HEADER)
        except OSError:
            return "normal"
        return requirement_of(False, head[: header_length(head)])

    async def _deliver(
        self,
        entry: QueueEntry,
        domain: str,
        rcpts: list[QueueRecipient],
        requirement: Requirement = "normal",
    ) -> None:
        key = destination_for(domain, self.settings, requirement)
        destination = self._destinations.get(key.key)
        if destination is None:
            destination = self._destinations[key.key] = _Destination(key)
        job = _Job(entry, domain, rcpts, asyncio.get_running_loop().create_future())
        destination.jobs.put_nowait(job)
        waiting = destination.jobs.qsize()
        if waiting > destination.idle and destination.workers < self.settings.max_per_destination:
            destination.workers += 1
            self._spawn(self._worker(destination))
        await job.done

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- workers: one connection each ------------------------------------------------------------

    async def _worker(self, destination: _Destination) -> None:
        session: Session | None = None
        try:
            async with self._slots:
                while True:
                    try:
                        job = destination.jobs.get_nowait()
                    except asyncio.QueueEmpty:
                        # An idle connection is kept a moment for the next message, unless
                        # every connection slot is taken (others may be waiting for one).
                        if session is None or not session.usable or self._slots.locked():
                            break
                        destination.idle += 1
                        try:
                            got = await _wait(destination.jobs.get(), self.linger)
                        finally:
                            destination.idle -= 1
                        if got is None:
                            break
                        job = got
                    try:
                        session = await self._run_job(destination, job, session)
                    except asyncio.CancelledError:
                        if not job.done.done():
                            job.done.cancel()
                        raise
                    except Exception as exc:
                        log.exception("%s: delivery to %s failed", job.entry.id, job.domain)
                        await self._fail_rest(job, from_error(exc), None)
                        session = None
                    finally:
                        if not job.done.done():
                            job.done.set_result(None)
        finally:
            destination.workers -= 1
            if session is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.close(), 10)
            if destination.workers == 0 and destination.jobs.empty():
                self._destinations.pop(destination.key.key, None)

    async def _run_job(
        self, destination: _Destination, job: _Job, session: Session | None
    ) -> Session | None:
        """Deliver one job; the session to reuse for the next, or None."""
        if job.entry.id in self._deleted:
            return session
        reused = session is not None and session.usable
        if not reused:
            session, failure = await self._connect(destination.key, job.domain)
            if session is None:
                await self._fail_rest(job, failure, None)
                # The same answer for everything waiting for this destination now: like
                # Postfix, a destination that failed is not tried once more per message.
                while not destination.jobs.empty():
                    other = destination.jobs.get_nowait()
                    if other.entry.id not in self._deleted:
                        await self._fail_rest(other, failure, None)
                    if not other.done.done():
                        other.done.set_result(None)
                return None
        assert session is not None
        try:
            await self._transact(session, job)
        except (ConnectionFailed, ServiceClosing) as exc:
            await session.client.close()
            if reused and not job.settled:
                # The server closed the idle connection we kept: nothing was sent yet.
                log.debug(
                    "%s: reused connection lost (%s); reconnecting", job.entry.id, quoted(exc)
                )
                return await self._run_job(destination, job, None)
            await self._fail_rest(job, from_error(exc, session.remote_mta), session)
            return None
        except SendError as exc:
            if isinstance(exc.__cause__, MessageTooLarge):
                # Known before anything was sent (RFC 1870 §6): mailroom's own finding, not a
                # reply of that server (the report said "smtp; 552 5.3.4 ..." as if it had
                # answered), and the connection stays good for the next message.
                too_big = exc.__cause__
                text = (
                    f"message size {too_big.size} exceeds the size limit {too_big.limit} "
                    f"that {session.remote_mta} announced"
                )
                outcome = reported(reports.TOO_BIG_FOR_NEXT_HOP, text, session.remote_mta)
                await self._fail_rest(job, outcome, session)
                return session if session.usable else None
            await session.client.close()
            await self._fail_rest(job, from_error(exc, session.remote_mta), session)
            return None
        except InvalidAddress as exc:
            # Known before sending: nothing went out, and the connection is still good.
            await self._fail_rest(
                job, reported(reports.BAD_ADDRESS, f"bad address: {exc}"), session
            )
        except ExtensionNotOffered as exc:
            # BINARYMIME for a server without it: mailroom does not convert bodies.
            text = f"{session.remote_mta} cannot take this message: {exc}"
            await self._fail_rest(job, reported(reports.CONVERSION_NOT_SUPPORTED, text), session)
        return session if session.usable else None

    async def _connect(self, key: Destination, domain: str) -> tuple[Session | None, Outcome]:
        route = await plan(
            key,
            domain,
            self.resolver,
            mx_port=self.mx_port,
            hostname=self.hostname,
            own_addresses=self.own_addresses(),
        )
        if route.failure is not None:
            return None, route.failure
        return await open_session(
            key, route, self.settings, self.helo, security=self.tls_policy, domain=domain
        )

    async def _transact(self, session: Session, job: _Job) -> None:
        entry = job.entry
        message = await asyncio.to_thread(self.spool.read_message, entry.id)
        sender = entry.sender
        if self.outbound is not None:
            if session.client.lmtp:
                sender = self.outbound.original(entry.sender)
            else:
                sender = self.outbound.sender(entry.sender)
        remaining = [r for r in job.recipients if not r.done]
        extensions = session.client.extensions
        if not extensions.rrvs:
            remaining = await self._without_rrvs(job, remaining, session)
        refused = set(
            refused_recipients(
                [r.address for r in remaining], smtputf8=entry.smtputf8, extensions=extensions
            )
        )
        if refused:
            text = f"{session.remote_mta} does not offer SMTPUTF8 and the address is not ASCII"
            outcome = reported(reports.NON_ASCII_ADDRESS_NEXT_HOP, text, session.remote_mta)
            refused_now = [r for r in remaining if r.address in refused]
            await self._settle_some(job, refused_now, outcome, session)
            remaining = [r for r in remaining if r.address not in refused]
        if not remaining:
            return
        # First the message is made to fit the hop (delivery/downgrade.py); then what signs it
        # (our DKIM signatures made again if it was converted, an ARC seal for a forward) signs
        # conversion.message: the octets that leave, so the next hop can verify them.
        try:  # a thread: converting a large message takes a while
            conversion = await asyncio.to_thread(
                fit_for_next_hop,
                message,
                sender=entry.sender,
                body=entry.body,
                smtputf8=entry.smtputf8,
                extensions=extensions,
            )
        except CannotConvert as cannot:
            outcome = reported(cannot.report, cannot.text, session.remote_mta)
            await self._settle_some(job, remaining, outcome, session)
            return
        message = conversion.message
        if self.outbound is not None:
            if conversion.converted:
                message = await self.outbound.resign(message)
            if not session.client.lmtp:
                message = await self.outbound.message(message, entry.sender)
        body: Literal["7BIT", "8BITMIME", "BINARYMIME"] | None = conversion.body  # type: ignore[assignment]
        options = MailOptions(
            body=body,
            smtputf8=conversion.smtputf8,
            ret="HDRS"
            if (entry.ret or "").upper() == "HDRS"
            else ("FULL" if (entry.ret or "").upper() == "FULL" else None),
            envid=entry.envid or None,
            # RFC 8689: the promise goes on with the message (to a next hop checked to keep it).
            requiretls=entry.requiretls
            and session.client.tls_active
            and session.client.extensions.requiretls,
            mt_priority=entry.mt_priority,
        )
        while remaining:
            batch = remaining[:MAX_RECIPIENTS_PER_TRANSACTION]
            remaining = remaining[MAX_RECIPIENTS_PER_TRANSACTION:]
            by_address = {r.address: r for r in batch}
            rcpts = [
                Recipient(
                    r.address,
                    notify=tuple(r.notify) if r.notify else None,
                    orcpt=r.orcpt[1] if r.orcpt else None,
                    orcpt_type=r.orcpt[0] if r.orcpt else None,
                    rrvs=r.rrvs,
                )
                for r in batch
            ]
            try:
                result = await session.client.send(
                    message, sender=sender, recipients=rcpts, options=options
                )
            except MessageRefused as refused:
                result = refused.result
            except ConnectionFailed as lost:
                if lost.settled is not None and lost.settled.recipients:
                    # What the server answered before it went (LMTP answers recipient by
                    # recipient) is settled and saved: those are not sent again.
                    self._record(job, by_address, lost.settled, session, [])
                    await self._save(entry)
                raise
            session.transactions += 1
            self._record(job, by_address, result, session, remaining, "; ".join(conversion.lost))
            # Saved now, before anything else: this is the crash-safety line.
            await self._save(entry)

    async def _settle_some(
        self, job: _Job, recipients: list[QueueRecipient], outcome: Outcome, session: Session
    ) -> None:
        """Give these recipients of the job ``outcome`` (found before anything was sent)."""
        now = self.clock()
        for recipient in recipients:
            apply(recipient, outcome, now)
            job.settled.add(id(recipient))
            self._log(job.entry, recipient, outcome, session)
        if recipients:
            await self._save(job.entry)

    async def _without_rrvs(
        self, job: _Job, recipients: list[QueueRecipient], session: Session
    ) -> list[QueueRecipient]:
        """The next hop does not offer RRVS (RFC 7293 §5): a recipient whose sender asked
        ";R" cannot have the test made and is returned with 5.7.19; ";C" goes on without it."""
        strict = [r for r in recipients if r.rrvs and r.rrvs.upper().endswith(";R")]
        text = f"{session.remote_mta} does not offer RRVS, and the sender asked for the test"
        outcome = reported(reports.RRVS_NOT_PASSED_ON, text, session.remote_mta)
        await self._settle_some(job, strict, outcome, session)
        return [r for r in recipients if r not in strict]

    def _record(
        self,
        job: _Job,
        by_address: dict[str, QueueRecipient],
        result: TransactionResult,
        session: Session,
        remaining: list[QueueRecipient],
        loss: str = "",
    ) -> None:
        """Each recipient's outcome from the reply that settled it (in LMTP, its own reply
        after the message)."""
        now = self.clock()
        for item in result.recipients:
            recipient = by_address[item.address]
            if self._too_many(item.reply.code, item.command, result):
                remaining.append(recipient)  # RFC 5321 §4.5.3.1.10: the rest go next
                continue
            outcome = from_reply(item.reply, item.command, session.remote_mta)
            apply(recipient, outcome, now)
            recipient.tls = str(session.tls) if session.tls is not None else "none"
            if outcome.action == "delivered":
                # An LMTP server is the mailbox store (RFC 2033): the message is delivered,
                # and the success report, if asked for, is ours to send. Over SMTP, a server
                # that speaks DSN took NOTIFY on: any success report is its own.
                recipient.final = session.client.lmtp
                passed_on = session.dsn and not recipient.final
                recipient.notified = passed_on or not wants(recipient, "SUCCESS")
                if loss:
                    # RFC 3463 X.6.4: the sender hears of a lossy conversion, whatever NOTIFY
                    # asked for success, unless it asked to hear nothing (NEVER).
                    recipient.status = str(reports.CONVERTED_WITH_LOSS.status)
                    recipient.conversion_loss = loss
                    recipient.notified = "NEVER" in [n.upper() for n in recipient.notify or []]
            job.settled.add(id(recipient))
            self._log(job.entry, recipient, outcome, session)

    @staticmethod
    def _too_many(code: int, command: str, result: TransactionResult) -> bool:
        return code == 452 and command == "RCPT" and bool(result.delivered)

    async def _fail_rest(self, job: _Job, outcome: Outcome, session: Session | None) -> None:
        """Give every recipient of the job without an outcome yet this one."""
        now = self.clock()
        changed = False
        for recipient in job.recipients:
            if id(recipient) in job.settled or recipient.done:
                continue
            apply(recipient, outcome, now)
            if session is not None:
                recipient.tls = str(session.tls) if session.tls is not None else "none"
            job.settled.add(id(recipient))
            changed = True
            self._log(job.entry, recipient, outcome, session)
        if changed and job.entry.id not in self._deleted:
            await self._save(job.entry)

    def _log(
        self,
        entry: QueueEntry,
        recipient: QueueRecipient,
        outcome: Outcome,
        session: Session | None,
    ) -> None:
        status = {"delivered": "sent", "retry": "deferred", "bounce": "bounced"}[outcome.action]
        if outcome.action == "delivered":
            self.delivered += 1
        elif outcome.action == "bounce":
            self.bounced += 1
        else:
            self.deferred += 1
        relay = session.relay_name if session is not None else "none"
        tls = ""
        if session is not None:
            tls = f", tls={quoted(session.tls.log_text) if session.tls is not None else 'none'}"
        delay = self.clock() - entry.created
        log.info(
            "%s: to=<%s>, relay=%s%s, delay=%.1f, dsn=%s, status=%s (%s)",
            entry.id,
            quoted(recipient.address),
            quoted(relay),
            tls,
            delay,
            quoted(outcome.status),
            status,
            quoted(outcome.diagnostic.replace("\n", " / ")),
        )

    # -- after a round ---------------------------------------------------------------------------

    async def _settle(self, entry: QueueEntry) -> None:
        now = self.clock()
        result = settle(entry, self.settings, now)
        for recipient in result.expired:
            self.bounced += 1
            log.info(
                "%s: to=<%s>, status=expired, returned to sender (%s)",
                entry.id,
                quoted(recipient.address),
                quoted((recipient.last_reply or "").replace("\n", " / ")),
            )
        reported = True
        if result.report is not None:
            reported = await self._report(entry, result.report)
            if reported:
                for recipient, action in result.report.recipients:
                    if action == "delayed":
                        recipient.delay_warned = True
                    else:
                        recipient.notified = True
        if reported:
            for recipient in entry.recipients:
                if recipient.done and not recipient.notified:
                    if recipient.state == "bounced" and not entry.sender:
                        log.info(
                            "%s: to=<%s>: a bounce that failed is not bounced; dropped",
                            entry.id,
                            quoted(recipient.address),
                        )
                    recipient.notified = True
        if result.done and reported:
            self.entries.pop(entry.id, None)
            lock = self._save_locks.setdefault(entry.id, asyncio.Lock())
            async with lock:
                await asyncio.to_thread(self.spool.remove, entry.id)
            self._save_locks.pop(entry.id, None)
            log.info("%s: removed", entry.id)
            return
        if result.next_attempt is not None:
            entry.next_attempt = result.next_attempt
        else:  # all final, but the report could not be handed on: try that again later
            entry.next_attempt = now + self.settings.retry_after(max(entry.attempts, 1))
        await self._save(entry)

    async def _report(self, entry: QueueEntry, report: Any) -> bool:
        """Hand a DSN to the server for the sender; False if that failed (tried again later)."""
        try:
            message = await asyncio.to_thread(self.spool.read_message, entry.id)
        except OSError:
            message = b""
        if entry.requiretls:
            # RFC 8689 §5: a REQUIRETLS message comes back as its header only (RET=HDRS), so
            # the report may travel without REQUIRETLS.
            entry = dataclasses.replace(entry, ret="HDRS")
        original = self.outbound.original(entry.sender) if self.outbound else entry.sender
        if original != entry.sender:
            # An SRS sender made when the message was taken: the report goes to the address
            # it stands for, as a bounce to it from another server would.
            entry = dataclasses.replace(entry, sender=original)
        dsn = build_dsn(entry, report, message, self.dsn_options, now=self.clock())
        try:
            queue_id = await self.deliver_local(sender="", recipients=[entry.sender], message=dsn)
        except Exception:
            log.exception(
                "%s: the report to <%s> could not be stored", entry.id, quoted(entry.sender)
            )
            return False
        self.reports += 1
        actions = ",".join(sorted(report.actions))
        log.info("%s: sender delivery status notification (%s): %s", entry.id, actions, queue_id)
        return True

    # -- saving ----------------------------------------------------------------------------------

    async def _save(self, entry: QueueEntry) -> None:
        """Durably save the entry's state; saves of one entry happen in order, and a save once
        asked for completes even if the caller is cancelled, the wait for an earlier save of
        the same entry included: a worker that stop() cancels just after a reply to the end of
        data, while another job of the entry was saving, must not leave that reply unsaved (the
        message would go again after the restart)."""
        if entry.id in self._deleted:
            return
        task = asyncio.ensure_future(self._save_in_turn(entry))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            raise

    async def _save_in_turn(self, entry: QueueEntry) -> None:
        lock = self._save_locks.setdefault(entry.id, asyncio.Lock())
        async with lock:
            if entry.id in self._deleted:
                return
            snapshot = QueueEntry.from_json(entry.to_json())
            await asyncio.to_thread(self.spool.save, snapshot)
