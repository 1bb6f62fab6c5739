"""The SMTP server: listeners, connection limits, idle timeouts, graceful shutdown.

It is given everything it works with — its listeners, each with the ``SessionSettings`` of its
sessions (they differ by the listener's role), the policy that
decides, the store messages go to, the TLS context, where transcripts, events and counters go,
and its limits — and builds nothing itself (:mod:`mailroom.app` does). Its sessions see it as
a :class:`~.session.SessionHost`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from mailroom.activity import Hub, MailLog, Metrics, TranscriptLog
from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.policy.base import Policy
from mailroom.policy.credentials import CredentialStore
from mailroom.protocol import SessionSettings
from mailroom.server.counts import ConnectionCounts, LocalCounts
from mailroom.server.session import Session
from mailroom.settings_types import Listener
from mailroom.store.base import MessageSink
from mailroom.submission.burl import BurlFetcher

__all__ = ["SMTPServer", "ServerLimits"]

log = logging.getLogger("mailroom.server")

SWEEP_INTERVAL = 1.0  # seconds between idle-timeout checks
LISTEN_BACKLOG = 1024
# On stopping, seconds sessions told 421 may take to close before they are dropped (the grace
# period proper is for messages in flight).
CLOSING_GRACE = 1.0


@dataclass(frozen=True)
class ServerLimits:
    """The server's limits (the settings of the same names; see :class:`mailroom.config.Config`)."""

    max_connections: int
    max_connections_per_ip: int  # 0: no limit
    timeout: float  # seconds without progress before 421 4.4.2
    tls_handshake_timeout: float
    shutdown_grace: float  # seconds a message in flight may take to finish when stopping


class SMTPServer:
    def __init__(
        self,
        listeners: Sequence[tuple[Listener, SessionSettings]],
        *,
        hostname: str,
        policy: Policy,
        store: MessageSink,
        credentials: CredentialStore | None,
        transcripts: TranscriptLog,
        hub: Hub,
        metrics: Metrics,
        limits: ServerLimits,
        ssl_context: ssl.SSLContext | None = None,
        burl: BurlFetcher | None = None,
        maillog: MailLog | None = None,
        counts: ConnectionCounts | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.listeners = list(listeners)
        # BURL (RFC 4468) on the listeners that offer it: where message parts are fetched.
        self.burl = burl
        self.hostname = hostname
        self.policy = policy
        self.store = store
        self.credentials = credentials
        self.transcripts = transcripts
        self.hub = hub
        self.metrics = metrics
        # The sessions' lines go to the "mailroom.smtp" logger, cheaply (activity/maillog.py).
        self.maillog = (
            maillog if maillog is not None else MailLog(logging.getLogger("mailroom.smtp"))
        )
        self.limits = limits
        self.tls_handshake_timeout = limits.tls_handshake_timeout
        self.ssl_context = ssl_context
        self.sessions: set[Session] = set()
        # Implicit TLS connections still in their handshake (asyncio and uvloop make the
        # session before the handshake and tell it of the connection only after): counted
        # against max_connections too. A handshake that fails drops its session, so entries
        # go by themselves; none outlives the handshake timeout in the count.
        self.handshaking: weakref.WeakKeyDictionary[Session, float] = weakref.WeakKeyDictionary()
        # Connections by client address, and in all: this process's own, or shared by the
        # worker processes (server/counts.py), which then also share the listening ports.
        self.counts: ConnectionCounts = counts if counts is not None else LocalCounts()
        self.reuse_port = reuse_port
        self.servers: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        # Large (spilled) messages read whole at their end for policy (email authentication),
        # one at a time: each may take a few times its size in memory while it is checked.
        self.big_reads = asyncio.Semaphore(1)

    # -- start and stop --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the listeners (port 0 picks a free port: see :attr:`addresses`)."""
        loop = asyncio.get_running_loop()
        self.maillog.configure()
        for listener, settings in self.listeners:
            server = await loop.create_server(
                lambda listener=listener, settings=settings: Session(self, listener, settings),
                host=listener.host,
                port=listener.port,
                ssl=self.ssl_context if listener.implicit_tls else None,
                ssl_handshake_timeout=self.tls_handshake_timeout if listener.implicit_tls else None,
                reuse_address=True,
                reuse_port=self.reuse_port or None,
                backlog=LISTEN_BACKLOG,
            )
            self.servers.append(server)
            port = server.sockets[0].getsockname()[1] if server.sockets else listener.port
            # `mailroom serve` prints the addresses once it listens on all of them.
            log.debug("listening on %s", dataclasses.replace(listener, port=port))
        self._sweeper = asyncio.ensure_future(self._sweep())

    def refuse_new(self) -> None:
        """The first step of stopping: new connections get 421 4.3.2, and the server no longer
        says it is ready."""
        self._stopping = True

    async def stop(self) -> None:
        """Stop accepting, 421 4.3.2 to idle sessions, let messages in flight finish within
        the grace period, then close the rest."""
        self.refuse_new()
        for server in self.servers:
            server.close()
        for session in list(self.sessions):
            session.shutdown()
        # The grace is for messages in flight. Sessions told 421 are closing; over TLS a close
        # waits for the client's close_notify, which a client that reads nothing never sends:
        # they get a moment to finish, then are dropped, not waited for.
        now = time.monotonic()
        deadline = now + self.limits.shutdown_grace
        closing_deadline = now + CLOSING_GRACE
        while self.sessions and time.monotonic() < deadline:
            if time.monotonic() >= closing_deadline and not any(
                session.in_message for session in self.sessions
            ):
                break
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            session.force_close()
        for server in self.servers:
            await server.wait_closed()
        self.maillog.flush()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await asyncio.sleep(0)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where the listeners really are, in the order they were given."""
        found = []
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                found.append((host, port))
        return found

    @property
    def accepting(self) -> bool:
        """Listening and not shutting down (the web's readiness probe)."""
        return bool(self.servers) and not self._stopping

    @property
    def active_sessions(self) -> int:
        return len(self.sessions)

    # -- what sessions ask (SessionHost) ---------------------------------------------------------

    def handshake_started(self, session: Session) -> None:
        self.handshaking[session] = time.monotonic()

    def admit(self, session: Session) -> Reply | None:
        self.handshaking.pop(session, None)
        limits = self.limits
        hostname = self.hostname
        refusal = None
        ip = session.client_ip
        counts = self.counts
        if self._stopping:
            refusal = replies.SHUTTING_DOWN(hostname=hostname)
        elif counts.total(len(self.sessions) + self._handshakes()) >= limits.max_connections:
            refusal = replies.TOO_MANY_CONNECTIONS(hostname=hostname)
        elif limits.max_connections_per_ip and counts.for_ip(ip) >= limits.max_connections_per_ip:
            refusal = replies.TOO_MANY_CONNECTIONS_FROM_CLIENT(hostname=hostname, client=ip)
        if refusal is not None:
            self.metrics.connection_refused(refusal.code)
            return refusal
        self.metrics.sessions += 1
        self.sessions.add(session)
        counts.add(ip)
        counts.published(len(self.sessions) + self._handshakes())
        return None

    def _handshakes(self) -> int:
        if not self.handshaking:
            return 0
        oldest = time.monotonic() - self.tls_handshake_timeout
        return sum(1 for started in list(self.handshaking.values()) if started > oldest)

    def release(self, session: Session) -> None:
        self.sessions.discard(session)
        self.counts.remove(session.client_ip)
        self.counts.published(len(self.sessions) + self._handshakes())

    async def _sweep(self) -> None:
        timeout = self.limits.timeout
        while True:
            await asyncio.sleep(min(SWEEP_INTERVAL, timeout / 2))
            limit = time.monotonic() - timeout
            for session in list(self.sessions):
                if session.last_activity < limit and not session.busy:
                    session.idle_timeout()
