"""The running server: listeners, connection limits, idle timeouts, graceful shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import ssl
import stat
import time
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.config import Config, Listener
from mailroom.filemodes import DIRECTORY_MODE, private_dir, private_tree
from mailroom.logsafe import quoted
from mailroom.policy import AcceptAny, CatcherPolicy, CredentialStore, PasswordFile, Policy
from mailroom.policy.authguard import AuthGuard, AuthLimits
from mailroom.policy.credentials import DirectoryCredentials
from mailroom.policy.faults import FaultInjector, FaultRule
from mailroom.policy.mailserver import MailServerPolicy
from mailroom.protocol import SessionSettings
from mailroom.resolver import Resolver
from mailroom.server.hub import Hub
from mailroom.server.metrics import Metrics
from mailroom.server.roles import session_settings_for
from mailroom.server.session import Session
from mailroom.server.tls import ensure_self_signed, server_context
from mailroom.server.transcript import TranscriptLog
from mailroom.store.envelope import Envelope
from mailroom.store.ids import new_queue_id
from mailroom.store.maildir import MaildirStore
from mailroom.store.null import NullStore

__all__ = ["MailServer"]

log = logging.getLogger("mailroom.server")

SWEEP_INTERVAL = 1.0  # seconds between idle-timeout checks


def load_credentials(config: Config) -> CredentialStore | None:
    if config.mail is not None and config.auth == "off":
        # The mail server mode: the users of the [users] table, for submission listeners.
        return DirectoryCredentials(config.mail.directory, users=config.mail.credentials)
    if config.auth == "off":
        return None
    if config.auth == "accept-any":
        return AcceptAny()
    from pathlib import Path

    return PasswordFile(Path(config.auth))


def _private_data_dir(data: Path) -> None:
    """The data directory 0700 and everything in it private (see mailroom.filemodes); the
    whole tree is put right only when the directory itself was not (an older version, or
    another umask, made it)."""
    if data.is_dir() and stat.S_IMODE(data.stat().st_mode) != DIRECTORY_MODE:
        log.info("making %s and everything in it private (0700 and 0600)", data)
        private_tree(data)
    private_dir(data)


class MailServer:
    def __init__(self, config: Config, *, policy: Policy | None = None) -> None:
        self.config = config
        self.credentials = load_credentials(config)
        self.hub = Hub()
        self.metrics = Metrics()
        self.transcripts = TranscriptLog(config.transcripts, self.hub)
        self.resolver: Resolver | None = None
        if policy is not None:
            inner: Policy = policy
        elif config.mail is not None:
            self.resolver = Resolver(list(config.mail.queue.dns_servers) or None)
            inner = MailServerPolicy(
                config.mail.rules, config.mail.directory, self.credentials, self.resolver
            )
        else:
            inner = CatcherPolicy(self.credentials)
        self.mail_policy = inner if isinstance(inner, MailServerPolicy) else None
        self.auth_guard = AuthGuard(
            inner,
            AuthLimits(
                max_failures=config.max_auth_failures,
                window=config.auth_failure_window,
                max_failures_per_session=config.max_auth_failures_per_session,
                failure_delay=config.auth_failure_delay,
            ),
            hostname=config.hostname,
        )
        inner = self.auth_guard
        # Fault rules sit in front of whatever policy decides; with no rules they cost a check.
        self.faults = FaultInjector(inner, hostname=config.hostname, on_fire=self._fault_fired)
        for rule in config.faults:
            self.faults.add(rule)
        self.policy: Policy = self.faults
        # For a listener not in the configuration (tests make sessions by hand): a catcher's.
        self.session_settings = session_settings_for(Listener("", 0), config, self.credentials)
        # What each listener offers depends on its role (catcher, mx, submission...).
        self._listener_settings = {
            listener: session_settings_for(listener, config, self.credentials)
            for listener in config.all_listeners
        }
        self.ssl_context: ssl.SSLContext | None = None
        self.store: Any = None
        self.sessions: set[Session] = set()
        # Implicit TLS connections still in their handshake (asyncio and uvloop make the
        # session before the handshake and tell it of the connection only after): counted
        # against max_connections too. A handshake that fails drops its session, so entries
        # go by themselves; none outlives the handshake timeout in the count.
        self.handshaking: weakref.WeakKeyDictionary[Session, float] = weakref.WeakKeyDictionary()
        self.per_ip: Counter[str] = Counter()
        self.servers: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        self.web: Any = None  # mailroom.web.WebServer when --web is on
        self.runner: Any = None  # mailroom.delivery.QueueRunner in the mail server mode
        self._stopping = False
        self.stopped = asyncio.Event()

    def _fault_fired(self, session: Any, rule: FaultRule) -> None:
        log.info(
            "fault rule %d fired: client=%s rule=%s",
            rule.id,
            session.client_ip,
            quoted(rule.describe()),
        )
        transcript = getattr(session, "transcript", None)
        if transcript is not None:
            transcript.note(f"fault rule {rule.id} fired: {rule.describe()}")

    # -- start and stop --------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        config = self.config
        _private_data_dir(config.data)
        if config.tls == "self-signed":
            cert, key = ensure_self_signed(config.data / "tls", config.hostname)
            self.ssl_context = server_context(cert, key)
        elif config.tls == "files":
            assert config.tls_cert and config.tls_key
            self.ssl_context = server_context(config.tls_cert, config.tls_key)
        if config.store == "maildir":
            self.store = MaildirStore(config.data, hostname=config.hostname, loop=loop)
        else:
            self.store = NullStore()
        self.store.start()
        if self.mail_policy is not None and isinstance(self.store, MaildirStore):
            self.mail_policy.usage = self.store.usage
        if config.mail is not None and isinstance(self.store, MaildirStore):
            await self._start_runner()
        if config.web is not None:
            # Imported here: the web's dependencies load only when the web is on.
            from mailroom.web import WebServer

            self.web = WebServer(self)
            try:
                await self.web.start()
            except BaseException:
                self.web = None
                self.store.close()
                raise
        for listener in config.all_listeners:
            server = await loop.create_server(
                lambda listener=listener: Session(self, listener),
                host=listener.host,
                port=listener.port,
                ssl=self.ssl_context if listener.implicit_tls else None,
                ssl_handshake_timeout=config.tls_handshake_timeout
                if listener.implicit_tls
                else None,
                reuse_address=True,
                backlog=1024,
            )
            self.servers.append(server)
            # Port 0 picks a free port: say which.
            port = server.sockets[0].getsockname()[1] if server.sockets else listener.port
            log.info("listening on %s", dataclasses.replace(listener, port=port))
        self._sweeper = asyncio.ensure_future(self._sweep())

    def settings_for(self, listener: Listener) -> SessionSettings:
        return self._listener_settings.get(listener) or self.session_settings

    async def _start_runner(self) -> None:
        """The outbound queue's runner: it resumes what is queued on disk, is woken by the
        store for each new entry, and hands its reports (bounces) to :meth:`inject`."""
        from mailroom.delivery import QueueRunner

        assert self.config.mail is not None
        self.runner = QueueRunner(
            self.store.spool,
            self.config.mail.queue,
            hostname=self.config.hostname,
            resolver=getattr(self, "resolver", None),
            deliver_local=self.inject,
        )
        self.store.on_queued = self.runner.wake
        try:
            await self.runner.start()
        except BaseException:
            self.store.close()
            raise

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where the listeners really are (port 0 picks a free one)."""
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

    async def inject(self, sender: str, recipients: list[str], message: bytes) -> str:
        """Store a message made by this server (a bounce, a delay warning) as if it had been
        received: local recipients' copies into their Maildirs, remote ones into the queue.
        Returns the queue id once it is durable."""
        deliveries = self.mail_policy.route(recipients) if self.mail_policy is not None else []
        envelope = Envelope(
            queue_id=new_queue_id(),
            sender=sender,
            recipients=list(recipients),
            client_ip="127.0.0.1",
            helo=self.config.hostname,
            hostname=self.config.hostname,
            deliveries=deliveries,
        )
        writer = self.store.begin(envelope)
        writer.write(message)
        result = writer.commit()
        return result if isinstance(result, str) else await result

    async def stop(self) -> None:
        """Stop accepting, 421 4.3.2 to idle sessions, let messages in flight finish within
        the grace period, then close everything."""
        if self._stopping:
            return
        self._stopping = True
        if self.web is not None:
            await self.web.stop()
        for server in self.servers:
            server.close()
        for session in list(self.sessions):
            session.shutdown()
        deadline = time.monotonic() + self.config.shutdown_grace
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            session.force_close()
        for server in self.servers:
            await server.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.sleep(0)
        if self.runner is not None:
            await self.runner.stop(grace=self.config.shutdown_grace)
        if self.store is not None:
            self.store.close()
        self.stopped.set()

    async def serve_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await self.stop()

    # -- sessions --------------------------------------------------------------------------------

    def admit(self, session: Session) -> Reply | None:
        """A refusal for a connection over the limits, or None (and the session is counted)."""
        config = self.config
        hostname = config.hostname
        refusal = None
        ip = session.client_ip
        if self._stopping:
            refusal = replies.SHUTTING_DOWN(hostname=hostname)
        elif len(self.sessions) + self._handshakes() >= config.max_connections:
            refusal = replies.TOO_MANY_CONNECTIONS(hostname=hostname)
        elif config.max_connections_per_ip and self.per_ip[ip] >= config.max_connections_per_ip:
            refusal = replies.TOO_MANY_CONNECTIONS_FROM_CLIENT(hostname=hostname, client=ip)
        if refusal is not None:
            self.metrics.connection_refused(refusal.code)
            return refusal
        self.metrics.sessions += 1
        self.sessions.add(session)
        self.per_ip[ip] += 1
        return None

    def _handshakes(self) -> int:
        if not self.handshaking:
            return 0
        oldest = time.monotonic() - self.config.tls_handshake_timeout
        return sum(1 for started in list(self.handshaking.values()) if started > oldest)

    def release(self, session: Session) -> None:
        self.sessions.discard(session)
        ip = session.client_ip
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    async def _sweep(self) -> None:
        timeout = self.config.timeout
        while True:
            await asyncio.sleep(min(SWEEP_INTERVAL, timeout / 2))
            limit = time.monotonic() - timeout
            for session in list(self.sessions):
                if session.last_activity < limit and not session.busy:
                    session.idle_timeout()
