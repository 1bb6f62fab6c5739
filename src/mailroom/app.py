"""The composition root: the one place that reads a :class:`~mailroom.config.Config` and builds
the parts of a running mailroom, wires them together, and starts and stops them in order.

The parts, in the order they are built:

1. credentials (the password file, or the mail server's users), and a DNS resolver in the
   mail server mode;
2. the policy chain: the policy that decides (the catcher's, or the mail server's) inside
   email authentication (the mail server mode), inside the AUTH brute-force guard, inside the
   fault injector (:func:`build_policy`); with authentication, dkimpy's RSA by OpenSSL
   (:func:`~mailroom.authentication.rsa.use_openssl_rsa_in_dkimpy`), and at start its DKIM
   keys and SRS secret from the data directory;
3. the store, the back end the configuration names (:func:`open_store`);
4. the records: session transcripts, the live-event hub, the counters;
5. the SMTP server, given all of the above (:class:`~mailroom.server.SMTPServer`);
6. the outbound queue's runner (the mail server mode);
7. the web UI, given narrow interfaces to the store's index, the records, the fault rules
   and the server's status (:class:`~mailroom.web.WebServer`).

They start in that order, the listeners last, so nothing is accepted before what stands
behind it runs; they stop the other way: the web, the listeners, the sessions (drained within
``shutdown_grace``), the runner, the store.

``mailroom serve``, the pytest plugin (:mod:`mailroom.testing`) and the tests use
:class:`Mailroom`. Nothing below imports this module (``tests/test_architecture.py`` checks).
``docs/architecture.md`` says where parts still to come plug in.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailroom.activity import Hub, Metrics, TranscriptLog
from mailroom.activity.transcript_archive import TranscriptArchive
from mailroom.config import Config, ConfigError
from mailroom.filemodes import DIRECTORY_MODE, private_dir, private_tree
from mailroom.logsafe import quoted
from mailroom.policy import AcceptAny, CatcherPolicy, CredentialStore, PasswordFile, Policy
from mailroom.policy.authentication import AuthenticationPolicy
from mailroom.policy.authguard import AuthFailures, AuthGuard, AuthLimits
from mailroom.policy.credentials import DirectoryCredentials
from mailroom.policy.faults import FaultInjector, FaultRule
from mailroom.policy.mailserver import MailServerPolicy
from mailroom.policy.storegate import StoreGate
from mailroom.protocol import SessionSettings
from mailroom.resolver import Resolver
from mailroom.roles import session_settings_for
from mailroom.server import ServerLimits, SMTPServer
from mailroom.server.counts import ConnectionCounts
from mailroom.server.tls import ListenerTLS, ensure_self_signed
from mailroom.settings_types import Listener
from mailroom.store.base import Store, StoreHealth
from mailroom.store.envelope import Envelope
from mailroom.store.ids import new_queue_id, set_process
from mailroom.store.maildir import MaildirStore
from mailroom.store.null import NullStore

if TYPE_CHECKING:
    from mailroom.authentication.outbound import Outbound
    from mailroom.delivery import QueueRunner
    from mailroom.delivery.transport_security import TransportSecurity
    from mailroom.policy.base import SessionView
    from mailroom.policy.directory import Directory
    from mailroom.postgres.counters import Counters
    from mailroom.postgres.directory import DirectoryReader
    from mailroom.postgres.faults import SharedFaultRules
    from mailroom.postgres.notify import NotificationListener
    from mailroom.postgres.queue import PgQueue
    from mailroom.submission.burl import BurlFetcher
    from mailroom.web import WebServer
    from mailroom.web.mta_sts import PolicySite

__all__ = [
    "Mailroom",
    "PolicyChain",
    "WorkerRole",
    "build_policy",
    "listener_settings",
    "listener_tls",
    "load_credentials",
    "open_store",
    "server_limits",
]

log = logging.getLogger("mailroom.server")


# -- building the parts ----------------------------------------------------------------------


def load_credentials(config: Config) -> CredentialStore | None:
    """Who may AUTH: the mail server's users, any credentials, a password file, or none."""
    if config.mail is not None and config.auth == "off":
        # The mail server mode: the users of the [users] table, for submission listeners.
        return DirectoryCredentials(config.mail.directory, users=config.mail.credentials)
    if config.auth == "off":
        return None
    if config.auth == "accept-any":
        return AcceptAny()
    return PasswordFile(Path(config.auth))


@dataclass(frozen=True)
class PolicyChain:
    """The policies a session asks, outermost first."""

    faults: FaultInjector  # fault rules, added and removed while running (web, pytest plugin)
    auth_guard: AuthGuard
    decider: Policy  # the innermost: the catcher's, the mail server's, or one given
    mail_policy: MailServerPolicy | None  # the decider, in the mail server mode
    # SPF, DKIM, DMARC, ARC, iprev around the mail server's own policy (not one given)
    authentication: AuthenticationPolicy | None = None

    @property
    def head(self) -> Policy:
        """What sessions are given."""
        return self.faults


def build_policy(
    config: Config,
    credentials: CredentialStore | None,
    resolver: Resolver | None,
    *,
    decider: Policy | None = None,
    store_health: StoreHealth | None = None,
    auth_failures: AuthFailures | None = None,
) -> PolicyChain:
    """The policy chain: the decider, inside email authentication (the mail server's own
    policy: SPF at MAIL, DKIM, ARC and DMARC at the end of data), inside the AUTH brute-force
    guard, inside the fault injector (rules are checked first; with none they cost a check).
    A decider given (tests) is used as it is, without authentication. A store that can be out
    of reach (PostgreSQL) puts its gate between the guard and the fault injector: 421 at the
    greeting, 451 at MAIL."""
    authentication = None
    if decider is None and config.mail is not None:
        decider = MailServerPolicy(config.mail.rules, config.mail.directory, credentials, resolver)
        if resolver is not None:
            authentication = AuthenticationPolicy(
                decider,
                config.mail.authentication,
                lookup=resolver.lookup,
                hostname=config.hostname,
                trusted=decider.may_relay,
                is_local_domain=config.mail.directory.is_local_domain,
                owned_domains=decider.owned_domains,
            )
            decider.bounce_route = authentication.bounce_route
    elif decider is None:
        decider = CatcherPolicy(credentials)
    mail_policy = decider if isinstance(decider, MailServerPolicy) else None
    auth_guard = AuthGuard(
        authentication or decider,
        AuthLimits(
            max_failures=config.max_auth_failures,
            window=config.auth_failure_window,
            max_failures_per_session=config.max_auth_failures_per_session,
            failure_delay=config.auth_failure_delay,
        ),
        hostname=config.hostname,
        failures=auth_failures,
    )
    outer: Policy = auth_guard
    if store_health is not None:
        outer = StoreGate(auth_guard, store_health, hostname=config.hostname)
    faults = FaultInjector(outer, hostname=config.hostname, on_fire=note_fault)
    for rule in config.faults:
        faults.add(rule)
    return PolicyChain(faults, auth_guard, decider, mail_policy, authentication)


def note_fault(session: SessionView, rule: FaultRule) -> None:
    """A fault rule fired: say so in the log and in the session's transcript."""
    log.info(
        "fault rule %d fired: client=%s rule=%s",
        rule.id,
        session.client_ip,
        quoted(rule.describe()),
    )
    transcript = getattr(session, "transcript", None)
    if transcript is not None:
        transcript.note(f"fault rule {rule.id} fired: {rule.describe()}")


def open_store(config: Config, loop: asyncio.AbstractEventLoop, *, sole: bool = True) -> Store:
    """The store back end ``config.store`` names (not started).

    ``maildir``: Maildirs, the queue directory and the SQLite index under ``data``; ``none``:
    accept and discard; ``postgresql://...``: the database a fleet of nodes shares. A back end
    named by a URL is chosen here by its scheme; sessions see only
    :class:`~mailroom.store.base.MessageSink`. ``sole``: no other process writes the same store
    (false for the workers of ``--workers``)."""
    kind = config.store.partition("://")[0] if "://" in config.store else config.store
    if kind == "maildir":
        return MaildirStore(config.data, hostname=config.hostname, loop=loop, sole=sole)
    if kind == "none":
        return NullStore()
    if kind in ("postgresql", "postgres"):
        from mailroom.postgres.store import PostgresStore  # psycopg: only for this back end

        return PostgresStore(
            config.store,
            data_dir=config.data,
            hostname=config.hostname,
            node=config.node_name,
            loop=loop,
            commit_timeout=config.store_commit_timeout,
        )
    raise ConfigError(f"store: no back end {kind!r}")


def listener_tls(config: Config) -> ListenerTLS | None:
    """The listeners' TLS: a self-signed certificate made (once) in ``data/tls``, the
    configured files, or none. One context for every listener, whose certificate
    :meth:`~mailroom.server.tls.ListenerTLS.reload` replaces for the next handshakes."""
    if config.tls == "self-signed":
        cert, key = ensure_self_signed(config.data / "tls", config.hostname)
    elif config.tls == "files":
        assert config.tls_cert and config.tls_key
        cert, key = config.tls_cert, config.tls_key
    else:
        return None
    return ListenerTLS(cert, key, min_version=config.tls_min_version, ciphers=config.tls_ciphers)


def listener_settings(
    config: Config, credentials: CredentialStore | None
) -> list[tuple[Listener, SessionSettings]]:
    """Each listener, in configuration order, with its sessions' protocol settings (they
    depend on its role)."""
    return [
        (listener, session_settings_for(listener, config, credentials))
        for listener in config.all_listeners
    ]


def private_data_dir(data: Path) -> None:
    """The data directory 0700 and everything in it private (see mailroom.filemodes); the
    whole tree is put right only when the directory itself was not (an older version, or
    another umask, made it)."""
    if data.is_dir() and stat.S_IMODE(data.stat().st_mode) != DIRECTORY_MODE:
        log.info("making %s and everything in it private (0700 and 0600)", data)
        private_tree(data)
    private_dir(data)


def burl_fetcher(config: Config) -> BurlFetcher | None:
    """BURL (RFC 4468) on submission listeners, when [burl] names an IMAP server."""
    if config.mail is None or config.mail.burl is None:
        return None
    from mailroom.submission.burl import BurlFetcher

    return BurlFetcher(config.mail.burl)


def server_limits(config: Config) -> ServerLimits:
    return ServerLimits(
        max_connections=config.max_connections,
        max_connections_per_ip=config.max_connections_per_ip,
        timeout=config.timeout,
        tls_handshake_timeout=config.tls_handshake_timeout,
        shutdown_grace=config.shutdown_grace,
    )


class StoreStatus:
    """The store's health for the policy chain, which is built before the store is: available
    until a store that can be out of reach (PostgreSQL) says otherwise."""

    def __init__(self) -> None:
        self.store: object | None = None
        # A directory read from the database: no transaction begins before it was read once
        # (an empty directory would refuse every local recipient as unknown, a 5xx).
        self.directory: object | None = None

    @property
    def available(self) -> bool:
        if self.directory is not None and not getattr(self.directory, "loaded", True):
            return False
        return bool(getattr(self.store, "available", True))


# -- the whole -----------------------------------------------------------------------------


@dataclass
class WorkerRole:
    """A Mailroom that is one of the worker processes of ``--workers``
    (:mod:`mailroom.supervisor`): SMTP only, on listening ports it shares with the others
    (SO_REUSEPORT), its limits counted with theirs, what the supervisor runs for all of them
    (the queue runner, the web's live events) handed over."""

    number: int  # 1 and up; the supervisor is 0 (in queue ids, store/ids.py)
    counts: ConnectionCounts  # connections of every worker (server/counts.py)
    auth_failures: AuthFailures  # failed AUTHs of every worker, by address
    hub: Hub  # live events, forwarded to the supervisor's hub while the web listens
    on_queued: Callable[[list[str]], None]  # queue ids made here, for the runner


class Mailroom:
    """A mailroom built from ``config``: SMTP server, store, policy, queue runner and web UI.

    ``policy`` replaces the decider (the catcher's or the mail server's policy), for tests.
    What needs no event loop is built here; the rest when :meth:`start` runs."""

    def __init__(
        self,
        config: Config,
        *,
        policy: Policy | None = None,
        worker: WorkerRole | None = None,
        smtp: bool = True,
    ) -> None:
        """``worker``: one worker process of several (SMTP only). ``smtp=False``: the
        supervisor's part of several (store, runner, web; no listener)."""
        self.config = config
        self.worker = worker
        self.serves_smtp = smtp
        self.credentials = load_credentials(config)
        self.resolver: Resolver | None = None
        if config.mail is not None:
            self.resolver = Resolver(list(config.mail.queue.dns_servers) or None)
        self.store_status = StoreStatus() if config.on_postgres else None
        chain = build_policy(
            config,
            self.credentials,
            self.resolver,
            decider=policy,
            store_health=self.store_status,
            auth_failures=worker.auth_failures if worker is not None else None,
        )
        self.policy: Policy = chain.head
        self.faults = chain.faults
        self.auth_guard = chain.auth_guard
        self.mail_policy = chain.mail_policy
        self.authentication = chain.authentication
        if self.authentication is not None:
            from mailroom.authentication.rsa import use_openssl_rsa_in_dkimpy

            use_openssl_rsa_in_dkimpy()  # once per process; dkimpy's own RSA if it fails a check
        self.counters: Counters | None = None
        self.directory_reader: DirectoryReader | None = None
        if config.on_postgres:
            self._share_counters()
        self.hub = worker.hub if worker is not None else Hub()
        self.metrics = Metrics()
        # What the web's probes and /metrics read: the SMTP server and the store, unless the
        # supervisor gives what it gathers from its workers.
        self.status: Any = None
        self.store_counters: Any = None
        self.transcripts = TranscriptLog(config.transcripts, self.hub)
        self.store: Store | None = None
        self.smtp: SMTPServer | None = None
        self.runner: QueueRunner | None = None
        self.listener: NotificationListener | None = None
        self.fleet_queue: PgQueue | None = None
        # The fault rules the web changes: the fleet's (in the database) on PostgreSQL.
        self.fault_rules: SharedFaultRules | None = None
        self.web: WebServer | None = None
        # The listeners' certificate, reloaded when its files change and on SIGHUP.
        self.tls: ListenerTLS | None = None
        self._tls_watcher: asyncio.Task[None] | None = None
        self.policy_site: PolicySite | None = None  # [mta_sts] listen: the policy over HTTPS
        self._stopping = False
        self.stopped = asyncio.Event()

    def _share_counters(self) -> None:
        """A fleet's node counts AUTH failures, greylisting and rates in the database, so a
        client meets the same limits whichever node it reaches."""
        from mailroom.postgres.counters import (
            Counters,
            PgAuthFailures,
            PgGreylist,
            PgRateLimiter,
        )

        config = self.config
        counters = self.counters = Counters(config.store, node=config.node_name)
        self.auth_guard.shared = PgAuthFailures(
            counters, config.max_auth_failures, config.auth_failure_window
        )
        self.auth_guard.clock = time.time  # rows carry wall-clock times every node shares
        policy = self.mail_policy
        if policy is not None and config.mail is not None:
            rules = config.mail.rules
            if rules.greylisting:
                policy.greylist = PgGreylist(counters, rules.greylist_delay, rules.greylist_expiry)
            if rules.max_messages_per_minute:
                policy.rates = PgRateLimiter(counters, rules.max_messages_per_minute)

    def _directory_changed(
        self, directory: Directory, credentials: dict[str, tuple[str, str | None]]
    ) -> None:
        if self.mail_policy is not None:
            self.mail_policy.directory = directory
        if isinstance(self.credentials, DirectoryCredentials):
            self.credentials.replace(directory, credentials)

    # -- start and stop ------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the store, the SMTP server, the runner and the web; start them, listeners
        last. If one fails to start, those already started are stopped again."""
        config = self.config
        worker = self.worker
        if worker is not None:
            set_process(worker.number)  # queue ids unique among the processes
        private_data_dir(config.data)
        self.tls = listener_tls(config)
        ssl_context = self.tls.context if self.tls is not None else None
        store = open_store(config, asyncio.get_running_loop(), sole=worker is None)
        if self.authentication is not None:
            self._start_authentication(store)  # before anything runs: its keys may be unreadable
        self.store = store
        await asyncio.to_thread(store.start)  # PostgreSQL: connects and checks the schema
        if self.store_status is not None:
            self.store_status.store = store
        if worker is not None and isinstance(store, MaildirStore):
            store.on_queued = worker.on_queued
        usage = getattr(store, "usage", None)
        if self.mail_policy is not None and usage is not None:
            self.mail_policy.usage = usage  # quotas: octets in each local mailbox
        if config.on_postgres and config.transcripts_stored and config.transcripts:
            # A fleet's transcripts go to its database: any node shows any node's sessions.
            from mailroom.postgres.transcripts import PgTranscriptArchive

            pg_archive = PgTranscriptArchive(
                config.store,
                node=config.node_name,
                max_count=config.transcripts_stored,
                max_age=config.transcripts_max_age,
            )
            pg_archive.start()
            self.transcripts.archive = pg_archive
        if isinstance(store, MaildirStore) and config.transcripts_stored and config.transcripts:
            # Finished transcripts also go to disk, so a message's session outlives a restart.
            archive = TranscriptArchive(
                config.data / "transcripts.sqlite",
                max_count=config.transcripts_stored,
                max_age=config.transcripts_max_age,
            )
            archive.start()
            self.transcripts.archive = archive
        if self.serves_smtp:
            self.smtp = SMTPServer(
                listener_settings(config, self.credentials),
                hostname=config.hostname,
                policy=self.policy,
                store=store,
                credentials=self.credentials,
                transcripts=self.transcripts,
                hub=self.hub,
                metrics=self.metrics,
                limits=server_limits(config),
                ssl_context=ssl_context,
                burl=burl_fetcher(config),
                counts=worker.counts if worker is not None else None,
                reuse_port=worker is not None,
            )
        try:
            if config.on_postgres:
                await self._start_listener()
            if worker is None:  # a worker's supervisor runs these for all of them
                if config.mail is not None and isinstance(store, MaildirStore):
                    await self._start_runner(store)
                elif config.mail is not None and config.on_postgres:
                    await self._start_fleet_runner(store)
                if config.web is not None:
                    await self._start_web(config.web, store)
                await self._start_policy_site()
            if self.smtp is not None:
                await self.smtp.start()
            if self.tls is not None and config.tls == "files" and config.tls_reload_interval > 0:
                self._tls_watcher = asyncio.ensure_future(
                    self.tls.watch(config.tls_reload_interval)
                )
        except BaseException:
            await self.stop()
            raise

    async def _start_listener(self) -> None:
        """A fleet's node hears what the others do through LISTEN/NOTIFY: messages stored and
        deleted anywhere reach its web clients' live views; a change to the directory is read
        at once."""
        from mailroom.postgres.directory import DIRECTORY_CHANNEL, DirectoryReader
        from mailroom.postgres.notify import NotificationListener, hub_forwarder
        from mailroom.postgres.store import EVENTS_CHANNEL

        config = self.config
        listener = self.listener = NotificationListener(config.store, node=config.node_name)
        if config.web is not None:
            listener.on(EVENTS_CHANNEL, hub_forwarder(self.hub, config.node_name))
        from mailroom.postgres.faults import FAULTS_CHANNEL, SharedFaultRules

        shared = self.fault_rules = SharedFaultRules(
            config.store, node=config.node_name, injector=self.faults, hub=self.hub
        )
        listener.on(FAULTS_CHANNEL, shared.changed, resync=shared.reload)
        if config.mail is not None and self.worker is None:
            from mailroom.postgres.queue import QUEUE_CHANNEL

            # `mailroom queue retry|delete` asks the node holding an entry (its runner).
            listener.on(QUEUE_CHANNEL, self._queue_request)
        await shared.reload()
        source = config.mail.directory_source if config.mail is not None else None
        if source is not None and config.mail is not None:
            reader = self.directory_reader = DirectoryReader(
                config.store,
                node=config.node_name,
                queries=(source.domains_query, source.users_query, source.aliases_query),
                cache=source.cache,
                fold_local_part=config.mail.directory.fold_local_part,
                on_change=self._directory_changed,
            )
            if self.store_status is not None:
                self.store_status.directory = reader
            listener.on(DIRECTORY_CHANNEL, reader.changed, resync=reader.changed)
            await reader.start()
        await listener.start()
        if self.counters is not None:
            self.counters.start()

    def _queue_request(self, payload: str) -> None:
        if self.fleet_queue is not None:
            self.fleet_queue.request(payload)

    def _start_authentication(self, store: Store) -> None:
        """DKIM keys and the SRS secret from the data directory; the null store keeps each
        message until its end, for the checks to read."""
        from mailroom.authentication.keys import load_keys
        from mailroom.authentication.srs import SRS, load_secret

        assert self.authentication is not None and self.config.mail is not None
        settings = self.config.mail.authentication
        directory = self.config.mail.directory
        if settings.sign:
            self.authentication.keys = load_keys(self.config.data)
            for domain, keys in self.authentication.keys.items():
                log.info(
                    "DKIM: signing for %s with %s",
                    domain,
                    ", ".join(f"{k.selector} ({k.algorithm})" for k in keys),
                )
        domain = settings.srs_domain or directory.primary_domain or ""
        if settings.srs and domain:
            self.authentication.srs = SRS(load_secret(self.config.data), domain)
        if isinstance(store, NullStore):
            store.keep_messages = True

    def _outbound(self) -> Outbound | None:
        """SRS and ARC sealing for forwards, if email authentication is on."""
        from mailroom.authentication.outbound import Outbound

        if self.authentication is None or self.config.mail is None:
            return None
        return Outbound(
            authserv_id=self.authentication.authserv_id,
            is_local_domain=self.config.mail.directory.is_local_domain,
            srs=self.authentication.srs,
            keys=self.authentication.keys,
            seal=self.config.mail.authentication.arc_seal,
        )

    def _transport_security(self, root: Path) -> TransportSecurity:
        """The queue's outbound TLS policy, TLS session counts and daily TLS reports (kept
        under ``root``, this node's: a fleet's nodes each report their own sessions); report
        mail is DKIM-signed by email authentication's signer (RFC 8460 §3), then stored."""
        from mailroom.delivery.transport_security import transport_security

        assert self.config.mail is not None and self.resolver is not None
        sign = self.authentication.sign_own if self.authentication is not None else None
        return transport_security(
            self.config.mail.queue.tls,
            self.resolver,
            root,
            hostname=self.config.hostname,
            deliver_local=self._store_made,  # signed already: not again by inject
            sign=sign,
        )

    async def _start_runner(self, store: MaildirStore) -> None:
        """The outbound queue's runner: it resumes what is queued on disk, is woken by the
        store for each new entry, and hands its reports (bounces) to :meth:`inject`."""
        from mailroom.delivery import QueueRunner  # the SMTP client and DNS: mail server only

        assert self.config.mail is not None
        self.runner = QueueRunner(
            store.spool,
            self.config.mail.queue,
            hostname=self.config.hostname,
            resolver=self.resolver,
            deliver_local=self.inject,
            outbound=self._outbound(),
            transport=self._transport_security(store.spool.root),
            own_addresses=lambda: self.addresses,  # an MX that points back here is a loop
        )
        store.on_queued = self.runner.wake
        await self.runner.start()
        if self.mail_policy is not None:
            runner = self.runner
            # How full the queue is, for 451 4.4.5 (and priorities while it is busy).
            self.mail_policy.queue_depth = lambda: len(runner.entries)

    async def _start_fleet_runner(self, store: Store) -> None:
        """The runner of a fleet's node: the same runner, over the shared queue, on the
        entries this node holds a lease on (mailroom.postgres.queue)."""
        import os
        import secrets

        from mailroom.delivery import QueueRunner
        from mailroom.postgres.queue import PgQueue

        config = self.config
        assert config.mail is not None
        owner = f"{config.node_name}/{os.getpid()}.{secrets.token_hex(4)}"
        queue = self.fleet_queue = PgQueue(
            config.store, owner=owner, root=config.data / "queue", lease=config.queue_lease
        )
        self.runner = QueueRunner(
            queue,
            config.mail.queue,
            hostname=config.hostname,
            resolver=self.resolver,
            deliver_local=self.inject,
            outbound=self._outbound(),
            transport=self._transport_security(queue.root),
        )
        queue.runner = self.runner
        store.on_queued = queue.claim_soon  # type: ignore[attr-defined]
        await self.runner.start()
        await queue.start()

    async def _start_policy_site(self) -> None:
        """``[mta_sts] listen``: the local domains' MTA-STS policy over HTTPS, with the
        listeners' certificate (it must name mta-sts.DOMAIN for each local domain)."""
        published = self.config.mail.published if self.config.mail is not None else None
        if published is None or published.listen is None or published.mode is None:
            return
        from mailroom.settings_types import parse_hostport
        from mailroom.web.mta_sts import PolicySite

        if self.tls is None:
            raise OSError("[mta_sts] listen needs TLS: a certificate for mta-sts.DOMAIN")
        where = parse_hostport(published.listen)
        site = PolicySite(published, self.tls.context, where.host, where.port)
        await site.start()
        self.policy_site = site

    def reload_tls(self) -> bool:
        """SIGHUP: load the listeners' certificate files again (sessions are not dropped; a
        certificate that does not load is refused and the one in use kept)."""
        if self.tls is None:
            log.info("SIGHUP: no TLS certificate to reload")
            return False
        return self.tls.reload("SIGHUP")

    async def _start_web(self, listener: Listener, store: Store) -> None:
        # Imported here: the web's dependencies (aiohttp) load only when the web is on.
        from mailroom.client import send_message
        from mailroom.mimeshape import MimeLimits
        from mailroom.web import Messages, WebContext, WebServer, WebSettings
        from mailroom.web.context import CheckSettings, MessageStore, StoreCounters

        config = self.config
        status = self.status if self.status is not None else self.smtp
        assert status is not None  # the SMTP server, or the supervisor's report of its workers
        mime_limits = MimeLimits(config.web_max_mime_parts, config.web_max_mime_depth)
        messages: MessageStore
        counters: StoreCounters | None = store if isinstance(store, MaildirStore) else None
        if config.on_postgres:
            from mailroom.postgres.connection import redact
            from mailroom.postgres.store import PostgresStore
            from mailroom.web.messages_pg import PgMessages

            messages = PgMessages(config.store, node=config.node_name, limits=mime_limits)
            database = redact(config.store)
            counters = store if isinstance(store, PostgresStore) else None
        else:
            messages = Messages(config.data, enabled=counters is not None, limits=mime_limits)
            database = str(config.data / "index.sqlite")
        context = WebContext(
            settings=WebSettings(
                listener=listener,
                tls=self.tls.context if config.web_tls and self.tls is not None else None,
                hostname=config.hostname,
                auth=config.web_auth,
                users=config.web_users,
                max_auth_failures=config.max_auth_failures,
                auth_failure_window=config.auth_failure_window,
                max_search_terms=config.web_max_search_terms,
                max_connections=config.web_max_connections,
                mime_limits=mime_limits,
                allowed_hosts=config.web_allowed_hosts,
                release_smtp=config.release_smtp,
                database=database,
                mta_sts=config.mail.published if config.mail is not None else None,
                checks=CheckSettings(
                    spamassassin=config.spamassassin,
                    rspamd=config.rspamd,
                    allow_internal_http_requests=config.allow_internal_http_requests,
                    link_check_timeout=config.link_check_timeout,
                    link_check_max_links=config.link_check_max_links,
                ),
            ),
            messages=messages,
            transcripts=self.transcripts,
            faults=self.fault_rules or self.faults,
            hub=self.hub,
            metrics=self.metrics,
            status=status,
            release=send_message,
            # The catcher captures messages sent over the API; a mail server sends with SMTP.
            inject=self.inject if config.mail is None else None,
            # A mail server's release: through its own routing, as the web user's address.
            submit=self.inject if config.mail is not None else None,
            senders=config.mail.directory if config.mail is not None else None,
            store_counters=self.store_counters if self.store_counters is not None else counters,
            archive=self.transcripts.archive,
        )
        web = WebServer(context)
        await web.start()
        self.web = web

    async def stop(self) -> None:
        """The web, the listeners (421 4.3.2 to idle sessions, messages in flight finish within
        the grace period), the runner, the store."""
        if self._stopping:
            return
        self._stopping = True
        if self.smtp is not None:
            self.smtp.refuse_new()
        if self.web is not None:
            await self.web.stop()
        if self.policy_site is not None:
            await self.policy_site.stop()
        if self.smtp is not None:
            await self.smtp.stop()
        if self._tls_watcher is not None:
            self._tls_watcher.cancel()
        if self.runner is not None:
            await self.runner.stop(grace=self.config.shutdown_grace)
        if self.fleet_queue is not None:
            await self.fleet_queue.stop()  # leases given up: the others take over at once
        if self.listener is not None:
            await self.listener.stop()
        if self.directory_reader is not None:
            await self.directory_reader.stop()
        if self.fault_rules is not None:
            self.fault_rules.close()
        if self.counters is not None:
            await self.counters.stop()
        if self.store is not None:
            self.store.close()
        if self.transcripts.archive is not None:
            self.transcripts.archive.close()
        self.stopped.set()

    async def serve_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_tls)
        await stop.wait()
        log.info("shutting down")
        await self.stop()

    # -- while running -------------------------------------------------------------------------

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where the SMTP listeners really are (port 0 picks a free one), in configuration
        order (``config.all_listeners``)."""
        return self.smtp.addresses if self.smtp is not None else []

    async def inject(self, sender: str, recipients: list[str], message: bytes) -> str:
        """Store a message made here (a bounce, a delay warning, one sent over the web API) as
        if it had been received: local recipients' copies into their Maildirs, remote ones into
        the queue. Returns the queue id once it is durable. With email authentication, DKIM-
        signed first, as its users' mail is."""
        if self.authentication is not None:
            message = await self.authentication.sign_own(message)
        return await self._store_made(sender, recipients, message)

    async def _store_made(self, sender: str, recipients: list[str], message: bytes) -> str:
        """:meth:`inject` without signing (for what is signed already)."""
        assert self.store is not None
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

    def __repr__(self) -> str:
        return f"<Mailroom {self.config.hostname} at {self.addresses}>"
