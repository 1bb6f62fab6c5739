"""One worker process of ``mailroom serve --workers N``, and what it shares with its supervisor.

A worker is a :class:`~mailroom.app.Mailroom` that serves SMTP only (:class:`WorkerRole`): its
own event loop, sessions, store writer and committer, on the listeners every worker binds
with SO_REUSEPORT (the kernel spreads connections among them). What must be one for the
whole server goes to the supervisor (:mod:`mailroom.supervisor`) over a :class:`Channel`:

- queue ids it queued, so the one queue runner delivers them;
- live events, while the supervisor's web has someone listening (:class:`ForwardingHub`);
- AUTH failures by address; the supervisor counts them for all workers and says which
  addresses are blocked (:class:`ReportedAuthFailures`);
- its counters every second, for ``/metrics`` and the probes.

The supervisor sends the fault rules when the web changes them, and whether anyone listens
to live events. Connection limits do not use the channel: they are counted in shared memory
(:mod:`mailroom.server.counts`), since every connection asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

from mailroom.activity import Hub
from mailroom.activity.maillog import LOG_FORMAT
from mailroom.app import Mailroom, WorkerRole
from mailroom.config import Config
from mailroom.policy.authguard import AuthFailures
from mailroom.server.counts import SharedCounts

__all__ = ["Channel", "ForwardingHub", "ReportedAuthFailures", "worker_main"]

log = logging.getLogger("mailroom.server")

STATS_INTERVAL = 1.0  # seconds between a worker's reports of its counters
_FRAME = struct.Struct("!I")


class Channel(asyncio.Protocol):
    """Messages (picklable tuples) between a worker and its supervisor over a socketpair.
    What one side sends in a turn of its event loop goes as one frame (a length, then the
    pickled list), so a busy worker's events cost one write per turn, not one each."""

    def __init__(
        self, on_message: Callable[[tuple[Any, ...]], None], on_lost: Callable[[], None]
    ) -> None:
        self.on_message = on_message
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self._out: list[tuple[Any, ...]] = []
        self._in = bytearray()

    @classmethod
    async def over(
        cls,
        sock: socket.socket,
        on_message: Callable[[tuple[Any, ...]], None],
        on_lost: Callable[[], None],
    ) -> Channel:
        channel = cls(on_message, on_lost)
        await asyncio.get_running_loop().create_unix_connection(lambda: channel, sock=sock)
        return channel

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, message: tuple[Any, ...]) -> None:
        self._out.append(message)
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        if not self._out or self.transport is None or self.transport.is_closing():
            return
        data = pickle.dumps(self._out, protocol=pickle.HIGHEST_PROTOCOL)
        self._out = []
        self.transport.write(_FRAME.pack(len(data)) + data)

    def data_received(self, data: bytes) -> None:
        self._in += data
        while len(self._in) >= _FRAME.size:
            (length,) = _FRAME.unpack_from(self._in)
            if len(self._in) < _FRAME.size + length:
                return
            frame = bytes(self._in[_FRAME.size : _FRAME.size + length])
            del self._in[: _FRAME.size + length]
            for message in pickle.loads(frame):
                try:
                    self.on_message(message)
                except Exception:
                    log.exception("could not handle %r from the other process", message[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost()

    def close(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()


class ForwardingHub(Hub):
    """A worker's live events go to the supervisor's hub, and only while it has listeners."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self.channel = channel
        self.listened = False  # the supervisor says so

    @property
    def active(self) -> bool:
        return self.listened

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        if self.listened:
            self.channel.send(("event", kind, data))


class ReportedAuthFailures(AuthFailures):
    """A worker's AUTH failures: counted here (for this worker's answer at once) and reported
    to the supervisor, which counts those of every worker and says which addresses are
    blocked, and until when."""

    def __init__(self, max_failures: int, window: float, channel: Channel) -> None:
        super().__init__(max_failures, window)
        self.channel = channel
        self.blocked_until: dict[str, float] = {}

    def record(self, address: str, now: float) -> None:
        super().record(address, now)
        if self.max_failures:
            self.channel.send(("auth_failure", address, now))

    def blocked(self, address: str, now: float) -> bool:
        until = self.blocked_until.get(address)
        if until is not None:
            if until > now:
                return True
            del self.blocked_until[address]
        return super().blocked(address, now)

    def block(self, address: str, until: float) -> None:
        self.blocked_until[address] = until


def worker_main(
    config: Config,
    index: int,
    workers: int,
    memory: Any,
    sock: socket.socket,
    use_uvloop: bool,
) -> None:
    """A worker process's life (``multiprocessing``'s target): worker ``index`` of
    ``workers``, ``memory`` the shared counters, ``sock`` its end of the channel."""
    _die_with_parent()
    # A group of its own: a terminal's Ctrl-C reaches the supervisor only, which stops the
    # workers in order (SIGTERM), rather than all of them at once.
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.INFO), format=LOG_FORMAT
    )
    if use_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
    try:
        asyncio.run(_serve(config, index, workers, memory, sock))
    except Exception:
        log.exception("worker %d failed", index + 1)
        sys.exit(1)


def _die_with_parent() -> None:
    # A worker must not outlive its supervisor (kill -9 of the server kills it all, as with
    # one process): the kernel sends SIGKILL when the parent goes (Linux's PR_SET_PDEATHSIG).
    if sys.platform != "linux":
        return
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it went before the call
        os._exit(1)


async def _serve(
    config: Config, index: int, workers: int, memory: Any, sock: socket.socket
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    app: Mailroom | None = None
    failures: ReportedAuthFailures | None = None
    hub: ForwardingHub | None = None

    def on_message(message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "listened" and hub is not None:
            hub.listened = bool(message[1])
        elif kind == "faults" and app is not None:
            app.faults.rules = list(message[1])
        elif kind == "auth_blocked" and failures is not None:
            failures.block(message[1], message[2])

    channel = await Channel.over(sock, on_message, stop.set)  # the supervisor went: stop
    hub = ForwardingHub(channel)
    failures = ReportedAuthFailures(config.max_auth_failures, config.auth_failure_window, channel)
    role = WorkerRole(
        number=index + 1,
        counts=SharedCounts(memoryview(memory), workers, index),
        auth_failures=failures,
        hub=hub,
        on_queued=lambda ids: channel.send(("queued", ids)),
    )
    app = Mailroom(config, worker=role)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app.reload_tls)  # the supervisor passes it on
    await app.start()
    channel.send(("ready", index, os.getpid()))
    reporter = asyncio.ensure_future(_report(app, index, channel))
    try:
        await stop.wait()
    finally:
        reporter.cancel()
        await app.stop()
        channel.send(("stats", index, stats(app)))
        channel.close()


async def _report(app: Mailroom, index: int, channel: Channel) -> None:
    while True:
        await asyncio.sleep(STATS_INTERVAL)
        channel.send(("stats", index, stats(app)))


def stats(app: Mailroom) -> dict[str, Any]:
    """A worker's counters, as its supervisor adds them up."""
    metrics = app.metrics
    store = app.store
    return {
        "sessions": metrics.sessions,
        "messages_accepted": metrics.messages_accepted,
        "message_bytes": metrics.message_bytes,
        "refusals": dict(metrics.refusals),
        "connections_refused": dict(metrics.connections_refused),
        "active_sessions": app.smtp.active_sessions if app.smtp is not None else 0,
        "committed": getattr(store, "committed", 0),
        "latency_total": getattr(store, "latency_total", 0.0),
    }
