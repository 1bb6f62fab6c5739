"""``mailroom serve`` on every core: a supervisor and ``--workers N`` worker processes.

The workers (:mod:`mailroom.workers`) accept SMTP connections on the same listeners, each with
its own event loop, sessions and store writer: the kernel spreads connections among their
listening sockets (SO_REUSEPORT). The supervisor runs what must be one for the whole server —
the web UI and API, the outbound queue's runner, a store for what it makes itself (bounces,
messages sent over the API) — and holds the things the workers share:

- **the ports**: it binds each listener first (so port 0 becomes one port for all) and keeps
  that socket bound but not listening, so the port stays reserved while workers come and go;
- **the connection limits**: a block of shared memory each worker counts its connections in
  (:mod:`mailroom.server.counts`), zeroed for a worker that died;
- **AUTH failures**: workers report them; it counts them by address over the window for all
  of them and tells every worker when an address is blocked;
- **what the web shows**: workers' counters (each second), live events (while someone
  listens), their queued ids for the runner; fault rules the web changes go to every worker.

The Maildirs, the queue directory and the SQLite index are shared on disk: file names carry a
queue id unique per process and the process id, and SQLite's locking orders the writers of the
index and of the transcript archive. A node on PostgreSQL (a fleet's) runs one process:
``workers`` > 1 is refused there (config.py), since the database already shares what the
supervisor would, and more cores are used by running more nodes.

SIGHUP goes on to every worker (each reloads the listeners' certificate). SIGTERM (or SIGINT)
stops the listeners of every worker and lets each finish its messages in
flight within ``shutdown_grace``, then stops the web, the runner and the store. A worker that
dies is started again (its connections died with it). If the supervisor is killed, the kernel
kills its workers (PR_SET_PDEATHSIG): kill -9 takes down the whole server, as with one process,
and what got a 250 is on disk all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections import Counter
from typing import Any

from mailroom.activity import Metrics
from mailroom.app import Mailroom, listener_tls
from mailroom.config import Config
from mailroom.policy.authguard import AuthFailures
from mailroom.policy.faults import FaultRule
from mailroom.server.counts import clear_row, row_length
from mailroom.settings_types import Listener
from mailroom.store.ids import set_process
from mailroom.store.maildir import discard_tmp_of
from mailroom.workers import Channel, worker_main

__all__ = ["Supervisor"]

log = logging.getLogger("mailroom.server")

READY_TIMEOUT = 60.0  # seconds a worker may take to start listening
RESTART_DELAY = 1.0  # before a worker that died is started again; doubled while it keeps dying
MAX_RESTART_DELAY = 30.0
STOP_MARGIN = 10.0  # seconds past shutdown_grace before a worker that does not stop is killed


@dataclasses.dataclass(eq=False)
class _Worker:
    index: int
    process: Any  # multiprocessing's Process
    channel: Channel | None = None
    connecting: asyncio.Task[None] | None = None
    ready: asyncio.Future[None] | None = None
    started: float = 0.0
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)


class Supervisor:
    """The whole server with ``workers`` worker processes (two or more)."""

    def __init__(self, config: Config, *, workers: int, use_uvloop: bool = True) -> None:
        self.config = config
        self.count = workers
        self.use_uvloop = use_uvloop
        self._context = multiprocessing.get_context("spawn")
        self._memory = self._context.RawArray("I", workers * row_length())
        self._reserved: list[socket.socket] = []  # the ports, bound, not listening
        self.listeners: list[Listener] = []  # with their real ports, in configuration order
        self.front = Mailroom(config, smtp=False)  # the web, the runner, a store
        self.front.status = self
        self.front.store_counters = self
        self.metrics = self.front.metrics  # what the web reads: the workers' added up
        self.front.faults.on_change = self._faults_changed
        self.front.hub.on_change = self._listened
        self.auth = AuthFailures(config.max_auth_failures, config.auth_failure_window)
        self._workers: list[_Worker] = []
        self._retired: list[dict[str, Any]] = []  # the last counters of workers that died
        self._restart_delay = [RESTART_DELAY] * workers
        self._rules: list[FaultRule] | None = None  # as the web last set them
        self._stopping = False
        self.stopped = asyncio.Event()

    # -- start and stop --------------------------------------------------------------------------

    async def start(self) -> None:
        """Reserve the ports, start the web, the runner and the store, then the workers;
        returns once every worker listens."""
        set_process(0)  # the workers are 1 and up: queue ids never meet
        config = self._reserve_ports()
        listener_tls(config)  # a self-signed certificate is made once, here, not by each worker
        self.config = config
        try:
            await self.front.start()
            self._workers = [self._spawn(index) for index in range(self.count)]
            ready = [w.ready for w in self._workers if w.ready is not None]
            await asyncio.wait_for(asyncio.gather(*ready), READY_TIMEOUT)
        except BaseException:
            await self.stop()
            raise

    def _reserve_ports(self) -> Config:
        config = self.config
        resolved: dict[Listener, Listener] = {}
        for listener in config.all_listeners:
            family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((listener.host, listener.port))
            self._reserved.append(sock)
            resolved[listener] = dataclasses.replace(listener, port=sock.getsockname()[1])
        self.listeners = [resolved[listener] for listener in config.all_listeners]
        return dataclasses.replace(
            config,
            smtp=tuple(resolved[listener] for listener in config.smtp),
            smtps=tuple(resolved[listener] for listener in config.smtps),
            listeners=tuple(resolved[listener] for listener in config.listeners),
        )

    def _spawn(self, index: int) -> _Worker:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        process = self._context.Process(
            target=worker_main,
            args=(self.config, index, self.count, self._memory, theirs, self.use_uvloop),
            name=f"mailroom-worker-{index + 1}",
        )
        process.start()
        theirs.close()
        worker = _Worker(index, process, ready=loop.create_future(), started=time.monotonic())
        worker.connecting = loop.create_task(self._connect(worker, ours))
        loop.add_reader(process.sentinel, self._exited, worker)
        return worker

    async def _connect(self, worker: _Worker, sock: socket.socket) -> None:
        worker.channel = await Channel.over(
            sock, lambda message: self._received(worker, message), lambda: None
        )
        if self.front.hub.active:
            worker.channel.send(("listened", True))
        if self._rules is not None:  # a worker started after the web changed them
            worker.channel.send(("faults", self._rules))

    async def stop(self) -> None:
        """Every worker drains (SIGTERM), then the web, the runner and the store stop."""
        if self._stopping:
            return
        self._stopping = True
        for worker in self._workers:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_grace + STOP_MARGIN
        for worker in self._workers:
            while worker.process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if worker.process.is_alive():
                log.error("worker %d did not stop in time; killing it", worker.index + 1)
                worker.process.kill()
            worker.process.join(timeout=5)
        await self.front.stop()
        for sock in self._reserved:
            sock.close()
        self.stopped.set()

    async def serve_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_tls)
        await stop.wait()
        log.info("shutting down %d workers", self.count)
        await self.stop()

    def reload_tls(self) -> None:
        """SIGHUP: every worker reloads the listeners' certificate, and so does the
        supervisor (for the MTA-STS policy site)."""
        self.front.reload_tls()
        for worker in self._workers:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(worker.process.pid, signal.SIGHUP)

    # -- workers coming and going ------------------------------------------------------------

    def _exited(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(worker.process.sentinel)
        worker.process.join(timeout=1)
        if worker.channel is not None:
            worker.channel.close()
        if worker.stats:
            self._retired.append(worker.stats)
            worker.stats = {}
        clear_row(memoryview(self._memory), worker.index)  # its connections died with it
        if worker.process.exitcode != 0:  # what it was writing was never answered: it goes
            discard_tmp_of(self.config.data, worker.process.pid)
        if worker.ready is not None and not worker.ready.done():
            worker.ready.set_exception(
                RuntimeError(f"worker {worker.index + 1} exited ({worker.process.exitcode})")
            )
        if self._stopping:
            return
        delay = self._restart_delay[worker.index]
        log.error(
            "worker %d exited (status %s); starting another in %.0f s",
            worker.index + 1,
            worker.process.exitcode,
            delay,
        )
        if time.monotonic() - worker.started < 10:  # keeps dying: wait longer each time
            self._restart_delay[worker.index] = min(delay * 2, MAX_RESTART_DELAY)
        else:
            self._restart_delay[worker.index] = RESTART_DELAY
        loop.call_later(delay, self._replace, worker)

    def _replace(self, worker: _Worker) -> None:
        if self._stopping:
            return
        self._workers[worker.index] = self._spawn(worker.index)

    # -- what workers say ------------------------------------------------------------------------

    def _received(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            if worker.ready is not None and not worker.ready.done():
                worker.ready.set_result(None)
        elif kind == "stats":
            worker.stats = message[2]
            self._add_up()
        elif kind == "event":
            self.front.hub.publish(message[1], message[2])
        elif kind == "queued":
            if self.front.runner is not None:
                self.front.runner.wake(message[1])
        elif kind == "auth_failure":
            self._auth_failure(message[1], message[2])

    def _auth_failure(self, address: str, at: float) -> None:
        auth = self.auth
        auth.record(address, at)
        now = time.monotonic()
        if auth.blocked(address, now):
            # Blocked until the oldest failure that counts ages out of the window.
            until = auth._seen[address][0] + auth.window  # at most max_failures kept
            self._broadcast(("auth_blocked", address, until))

    def _broadcast(self, message: tuple[Any, ...]) -> None:
        for worker in self._workers:
            if worker.channel is not None:
                worker.channel.send(message)

    def _faults_changed(self, rules: list[FaultRule]) -> None:
        self._rules = rules
        self._broadcast(("faults", rules))

    def _listened(self, active: bool) -> None:
        self._broadcast(("listened", active))

    def _add_up(self) -> None:
        """The web's counters: every worker's, those of workers that died included (a
        counter of /metrics never goes back)."""
        reports = self._retired + [w.stats for w in self._workers if w.stats]
        metrics: Metrics = self.metrics
        metrics.sessions = sum(r["sessions"] for r in reports)
        metrics.messages_accepted = sum(r["messages_accepted"] for r in reports)
        metrics.message_bytes = sum(r["message_bytes"] for r in reports)
        refusals: Counter[tuple[str, int]] = Counter()
        refused: Counter[int] = Counter()
        for report in reports:
            refusals.update(report["refusals"])
            refused.update(report["connections_refused"])
        metrics.refusals = dict(refusals)
        metrics.connections_refused = dict(refused)

    # -- what the web asks (ServerStatus, StoreCounters) -----------------------------------

    @property
    def accepting(self) -> bool:
        return not self._stopping and all(
            w.ready is not None and w.ready.done() and w.process.is_alive() for w in self._workers
        )

    @property
    def active_sessions(self) -> int:
        return sum(w.stats.get("active_sessions", 0) for w in self._workers)

    @property
    def committed(self) -> int:
        own = getattr(self.front.store, "committed", 0)
        return int(own + sum(r.get("committed", 0) for r in self._reports()))

    @property
    def latency_total(self) -> float:
        own = getattr(self.front.store, "latency_total", 0.0)
        return float(own + sum(r.get("latency_total", 0.0) for r in self._reports()))

    def _reports(self) -> list[dict[str, Any]]:
        return self._retired + [w.stats for w in self._workers if w.stats]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(listener.host, listener.port) for listener in self.listeners]

    @property
    def web(self) -> Any:
        return self.front.web

    @property
    def faults(self) -> Any:
        return self.front.faults

    def __repr__(self) -> str:
        return f"<Supervisor of {self.count} workers at {self.addresses}>"
