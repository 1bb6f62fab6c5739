"""Every setting of ``mailroom serve``, with its default, from flags and a TOML file.

A setting has one name, used as the TOML key (``max_message_size``) and, with dashes, as the
flag (``--max-message-size``). Flags win over the file; the file wins over the defaults. The
data directory may also come from ``MAILROOM_DATA``, between the flag and the file.
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# The plain types a setting is made of live at the bottom (policy and the server use them too);
# they are named here as well, where a reader of the configuration looks for them.
from mailroom.settings_types import ConfigError, Listener, MiB, parse_hostport, parse_size

if TYPE_CHECKING:
    from mailroom.mailconfig import MailServerConfig

__all__ = ["Config", "ConfigError", "Listener", "load_config", "parse_hostport", "parse_size"]

DATA_VARIABLE = "MAILROOM_DATA"  # the data directory, when neither --data nor the file names it


# workers = 0 starts one per CPU up to this many; more can be asked for, up to MAX_WORKERS
# (the queue ids carry a process number of six bits, one of them the supervisor's).
MAX_AUTO_WORKERS = 8
MAX_WORKERS = 62


@dataclass(frozen=True)
class Config:
    hostname: str = field(default_factory=socket.gethostname)
    data: Path = Path("mailroom-data")
    smtp: tuple[Listener, ...] = (Listener("127.0.0.1", 1025),)
    smtps: tuple[Listener, ...] = ()
    # listeners with roles: [[listeners]] address = "HOST:PORT", role = "mx" | "submission"
    # | "submissions" | "catcher" (mailroom.toml only)
    listeners: tuple[Listener, ...] = ()
    # the mail server mode (domains, users, aliases, policy, queue...); None: the catcher
    mail: MailServerConfig | None = None

    # limits
    max_message_size: int = 50 * MiB
    # a message's header section (before its empty line): larger gets 552 5.3.4
    max_header_section: int = MiB
    max_recipients: int = 100
    max_connections: int = 1000
    max_connections_per_ip: int = 100
    max_bad_commands: int = 20
    # NOOP, RSET, VRFY, EXPN, HELP, HELO, EHLO, BDAT 0 since the last message taken; one more: 421
    max_junk_commands: int = 100
    # RCPTs refused for any reason since the last message taken; the next RCPT gets 421
    max_refused_recipients: int = 1000
    # RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for a command or for data.
    timeout: float = 300.0
    tls_handshake_timeout: float = 30.0
    # On SIGTERM, a DATA in flight may finish within this many seconds.
    shutdown_grace: float = 30.0

    # content
    bare_line_endings: Literal["reject", "normalize"] = "reject"
    long_lines: Literal["reject", "accept"] = "reject"

    # store: "maildir" (Maildirs, the queue directory and an SQLite index under data), "none"
    # (accept and discard), or a PostgreSQL URL "postgresql://user:password@host:port/db" that
    # a fleet of nodes shares (docs/scaling.md)
    store: str = "maildir"
    # PostgreSQL store: this node's name in the fleet (in logs, leases and each message's
    # record of who received it); default: the machine's host name
    node: str = ""
    # PostgreSQL store: seconds a session waits for its message's COMMIT before it is told
    # 451 4.3.0 (a database that hangs, a synchronous standby that is gone)
    store_commit_timeout: float = 30.0
    # PostgreSQL store, mail server mode: seconds a node's claim on a queue entry lasts
    # without renewal (renewed every third of it); a dead node's entries are delivered by
    # the others after at most this long
    queue_lease: float = 60.0

    # TLS
    tls: Literal["off", "self-signed", "files"] = "off"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    # RFC 8689: offer REQUIRETLS after STARTTLS (the queue keeps the promise onward)
    requiretls: bool = True
    # the oldest TLS version a listener accepts ("1.2" or "1.3"), and the OpenSSL cipher list
    # for TLS 1.2 (TLS 1.3's suites are OpenSSL's defaults); empty: OpenSSL's defaults
    tls_min_version: str = "1.2"
    tls_ciphers: str = ""
    # seconds between looks at tls_cert/tls_key for a renewed certificate (SIGHUP: at once);
    # 0: only on SIGHUP
    tls_reload_interval: float = 60.0

    # AUTH: "off", "accept-any" (any credentials, username recorded) or a password file
    auth: str = "off"
    require_auth: bool = False
    allow_insecure_auth: bool = False

    # AUTH brute force (mailroom.policy.authguard): a failed AUTH is answered after
    # auth_failure_delay seconds; a client address with max_auth_failures failures within
    # auth_failure_window seconds gets 454 4.7.0 to any AUTH; a session with
    # max_auth_failures_per_session failures gets 421 4.7.0 and is closed. 0 turns one off.
    max_auth_failures: int = 5
    auth_failure_window: float = 600.0
    max_auth_failures_per_session: int = 3
    auth_failure_delay: float = 1.0

    # sessions whose transcripts are kept in memory (for the web UI); 0 keeps none
    transcripts: int = 1000
    # finished transcripts also kept on disk (DATA/transcripts.sqlite, with the Maildir store),
    # so a message's session outlives a restart: at most this many, none older than max_age
    # seconds; 0 stores none
    transcripts_stored: int = 10_000
    transcripts_max_age: float = 7 * 24 * 3600.0

    # the web UI's checks of a message (mailroom.web.checks)
    # SpamAssassin's spamd for the spam check (Mailpit's --spamassassin), "HOST:PORT"
    spamassassin: str | None = None
    # rspamd's HTTP controller for the spam check, e.g. "http://127.0.0.1:11333"
    rspamd: str | None = None
    # the link check fetches loopback and private addresses only with this (Mailpit's flag)
    allow_internal_http_requests: bool = False
    link_check_timeout: float = 10.0  # seconds for each link
    link_check_max_links: int = 100  # links checked in one message
    # fault rules, "STAGE[:MATCH][:OPTION...]:ACTION" (see mailroom.policy.faults)
    faults: tuple[str, ...] = ()

    # the web UI and HTTP API, in the same process as SMTP ("off" in a file or flag: None).
    # The catcher's is on by default; the mail server's only when configured, and then only
    # with credentials (web_auth, web_auth_file, MAILROOM_WEB_AUTH or web_users).
    web: Listener | None = Listener("127.0.0.1", 8025)  # noqa: RUF009 (frozen: shared safely)
    # "user:password": HTTP basic auth for the UI and the API (health probes stay open); also
    # from the environment (MAILROOM_WEB_AUTH) or a file (web_auth_file), kept off the
    # command line where every local user can read it (/proc/PID/cmdline)
    web_auth: str | None = None
    web_auth_file: Path | None = None
    # a password file of web users (lines from `mailroom passwd`): HTTP basic auth against
    # argon2 hashes, each user by name (in the mail server mode, release sends as that name)
    web_users: Path | None = None
    # Host names the web UI answers to while it listens on loopback or asks no credentials,
    # besides localhost, IP addresses and the hostname: a guard against DNS rebinding; "*"
    # answers to any
    web_allowed_hosts: tuple[str, ...] = ()
    # HTTPS on the web listener, with the SMTP listeners' certificate (tls = self-signed or
    # files): off loopback, the web's passwords and every message otherwise cross in clear
    web_tls: bool = False
    # where "release" sends a captured message unless the request names a server
    release_smtp: Listener | None = None
    # terms in one search of the web API (each is a clause of one SQL expression); more: 400
    web_max_search_terms: int = 100
    # HTTP connections (the WebSocket of live updates included) the web holds open at once;
    # more get 503 and are closed. Each is a file descriptor of the process that serves SMTP.
    web_max_connections: int = 256
    # The web parses a message only within these (measured first, without parsing); past
    # them it shows the message's source with a note. 0 means no limit.
    web_max_mime_parts: int = 1000
    web_max_mime_depth: int = 50

    log_level: str = "info"

    # Processes that accept SMTP connections, each with its own event loop (SO_REUSEPORT on
    # the same listeners); a supervisor runs the web UI and the queue runner for them all.
    # 0: one per CPU, at most MAX_AUTO_WORKERS (one on a postgresql:// store, where more than
    # one is refused: a fleet grows by nodes); 1: everything in one process.
    workers: int = 0

    @property
    def worker_count(self) -> int:
        """How many worker processes ``workers`` means on this machine."""
        if self.workers:
            return self.workers
        if self.on_postgres:
            return 1  # a fleet's node is one process: more nodes are the way to more cores
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, MAX_AUTO_WORKERS))

    @property
    def all_listeners(self) -> tuple[Listener, ...]:
        return self.smtp + self.smtps + self.listeners

    def validate(self) -> Config:
        for listener in self.listeners:
            if listener.role not in ("catcher", "mx", "submission", "submissions"):
                raise ConfigError(
                    f"listener {listener}: role is catcher, mx, submission or submissions"
                )
            if listener.role != "catcher" and self.mail is None:
                raise ConfigError(
                    f"listener {listener}: role {listener.role} needs the mail "
                    "server mode (domains = [...])"
                )
            if listener.role == "catcher" and self.mail is not None:
                # The mail server's policy would decide there anyway, but as no role it
                # knows: AUTH (SCRAM) offered before TLS, no SPF, DKIM or DMARC checks.
                raise ConfigError(
                    f"listener {listener}: role catcher is the mail catcher's; a mail "
                    "server's listeners are mx, submission or submissions"
                )
            if (
                listener.role.startswith("submission")
                and self.tls == "off"
                and not self.allow_insecure_auth
            ):
                raise ConfigError(
                    f"listener {listener}: submission needs TLS (tls = "
                    '"self-signed" or tls_cert/tls_key)'
                )
            if listener.implicit_tls and self.tls == "off":
                raise ConfigError(f"listener {listener}: implicit TLS needs a certificate")
        if self.tls == "files" and not (self.tls_cert and self.tls_key):
            raise ConfigError("tls_cert and tls_key are both needed")
        if self.require_tls and self.tls == "off":
            raise ConfigError(
                "require_tls needs TLS: give --tls-cert/--tls-key or --tls self-signed"
            )
        if self.web_tls and self.tls == "off":
            raise ConfigError("web_tls needs TLS: give --tls-cert/--tls-key or --tls self-signed")
        if self.tls_min_version not in ("1.2", "1.3"):
            raise ConfigError("tls_min_version is '1.2' or '1.3'")
        if self.tls_reload_interval < 0:
            raise ConfigError("tls_reload_interval must not be negative (0: only on SIGHUP)")
        if self.require_auth and self.auth == "off":
            raise ConfigError("require_auth needs --auth accept-any or --auth FILE")
        if self.smtps and self.tls == "off":
            raise ConfigError("--smtps needs TLS: give --tls-cert/--tls-key or --tls self-signed")
        for name in (
            "max_recipients",
            "max_connections",
            "max_bad_commands",
            "web_max_search_terms",
            "web_max_connections",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in (
            "max_message_size",
            "max_header_section",
            "max_connections_per_ip",
            "max_junk_commands",
            "max_refused_recipients",
            "max_auth_failures",
            "max_auth_failures_per_session",
            "auth_failure_delay",
            "web_max_mime_parts",
            "web_max_mime_depth",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative (0 means no limit)")
        if self.auth_failure_window <= 0:
            raise ConfigError("auth_failure_window must be positive")
        if self.timeout <= 0 or self.tls_handshake_timeout <= 0 or self.shutdown_grace < 0:
            raise ConfigError("timeouts must be positive")
        if self.bare_line_endings not in ("reject", "normalize"):
            raise ConfigError("bare_line_endings is 'reject' or 'normalize'")
        if self.long_lines not in ("reject", "accept"):
            raise ConfigError("long_lines is 'reject' or 'accept'")
        if self.store not in ("maildir", "none") and not self.store.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ConfigError("store is 'maildir', 'none' or a URL postgresql://USER@HOST/DB")
        if (
            self.mail is not None
            and self.mail.directory_source is not None
            and not self.on_postgres
        ):
            raise ConfigError("[directory] source = 'postgresql' needs a postgresql:// store")
        if self.queue_lease < 3:
            raise ConfigError("queue_lease must be at least 3 seconds")
        if self.store_commit_timeout <= 0:
            raise ConfigError("store_commit_timeout must be positive")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"workers is 0 (one per CPU) to {MAX_WORKERS}")
        if self.workers > 1 and self.on_postgres:
            # The supervisor's split (one runner and web fed by its workers over a channel)
            # is built for a store on local disk; a node on PostgreSQL already shares all of
            # that through the database, and scales by running more nodes.
            raise ConfigError(
                "workers: a node on a postgresql:// store runs one process (workers = 1); "
                "for more cores run more nodes (mailroom serve processes) on the same database"
            )
        if self.transcripts < 0 or self.transcripts_stored < 0 or self.transcripts_max_age < 0:
            raise ConfigError("transcripts, transcripts_stored and _max_age must not be negative")
        if self.link_check_timeout <= 0 or self.link_check_max_links < 1:
            raise ConfigError("link_check_timeout must be positive, link_check_max_links >= 1")
        if self.spamassassin is not None:
            parse_hostport(self.spamassassin)
        if self.rspamd is not None and not self.rspamd.startswith(("http://", "https://")):
            raise ConfigError("rspamd is the URL of its controller, e.g. http://127.0.0.1:11333")
        if self.web_auth is not None:
            user, colon, password = self.web_auth.partition(":")
            if not colon or not user or not password:
                raise ConfigError("web_auth is USER:PASSWORD, both non-empty")
        if self.web_auth is not None and self.web_users is not None:
            raise ConfigError("web_auth and web_users: give one way to log in to the web")
        if self.web_users is not None:
            from mailroom.policy.credentials import CredentialError, PasswordFile

            try:
                users = PasswordFile(self.web_users)
            except CredentialError as exc:
                raise ConfigError(f"web_users: {exc}") from None
            if not len(users):
                raise ConfigError(f"web_users: {self.web_users} names no user")
        if self.mail is not None and self.web is not None and not self.web_credentials:
            raise ConfigError(
                f"web = {self.web.host}:{self.web.port}: a mail server's web UI and API "
                "show every user's mail and can send it on; set web_auth (or web_auth_file, "
                "or MAILROOM_WEB_AUTH) or web_users, or leave web out"
            )
        for host in self.web_allowed_hosts:
            if not host or any(c in host for c in " /:@[]"):
                raise ConfigError(f"web_allowed_hosts: {host!r} is not a host name (or '*')")
        from mailroom.policy.faults import FaultError, parse_rule

        for rule in self.faults:
            try:
                parse_rule(rule)
            except FaultError as exc:
                raise ConfigError(f"fault {rule!r}: {exc}") from None
        return self

    @property
    def on_postgres(self) -> bool:
        """Whether the store is a PostgreSQL database (a node of a fleet)."""
        return self.store.startswith(("postgresql://", "postgres://"))

    @property
    def node_name(self) -> str:
        return self.node or socket.gethostname()

    @property
    def tls_enabled(self) -> bool:
        return self.tls != "off"

    @property
    def web_credentials(self) -> bool:
        """The web asks for credentials (web_auth, or a file of web users)."""
        return self.web_auth is not None or self.web_users is not None


_PATH_FIELDS = {"data", "tls_cert", "tls_key", "web_auth_file", "web_users"}
_SIZE_FIELDS = {"max_message_size", "max_header_section"}


def _coerce(name: str, value: Any) -> Any:
    if name in _PATH_FIELDS:
        return Path(value) if value is not None else None
    if name in _SIZE_FIELDS:
        return parse_size(value)
    if name == "tls_min_version":
        return str(value)
    if name == "faults":
        return tuple([value] if isinstance(value, str) else value)
    if name == "web_allowed_hosts":
        items = [value] if isinstance(value, str) else list(value)
        return tuple(str(item).strip().lower().rstrip(".") for item in items)
    if name in ("web", "release_smtp"):
        if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
            return None
        return value if isinstance(value, Listener) else parse_hostport(str(value))
    if name in ("smtp", "smtps"):
        items = [value] if isinstance(value, str) else list(value)
        return tuple(parse_hostport(item, implicit_tls=name == "smtps") for item in items)
    return value


def _listeners(items: Any) -> tuple[Listener, ...]:
    if not isinstance(items, list):
        raise ConfigError("listeners: an array of tables ([[listeners]] address = ..., role = ...)")
    found = []
    for item in items:
        if not isinstance(item, dict) or "address" not in item:
            raise ConfigError('listeners: each needs an address = "HOST:PORT"')
        role = str(item.get("role", "mx"))
        implicit = bool(item.get("implicit_tls", role == "submissions"))
        listener = parse_hostport(str(item["address"]), implicit_tls=implicit)
        minimum = item.get("min_priority")
        if minimum is not None and (
            not isinstance(minimum, int) or isinstance(minimum, bool) or not -9 <= minimum <= 9
        ):
            raise ConfigError("listeners: min_priority is a priority from -9 to 9 (RFC 6710)")
        unknown = sorted(set(item) - {"address", "role", "implicit_tls", "min_priority"})
        if unknown:
            raise ConfigError(f"listeners: unknown setting {unknown[0]!r}")
        found.append(Listener(listener.host, listener.port, implicit, role, minimum))
    return tuple(found)


WEB_AUTH_ENV = "MAILROOM_WEB_AUTH"


def _web_auth(values: dict[str, Any], *, flag: Any) -> None:
    """``web_auth`` from, in this order: the flag, the environment (MAILROOM_WEB_AUTH), the
    file's ``web_auth``, the file named by ``web_auth_file`` (its first line)."""
    if flag is not None:
        return
    from_env = os.environ.get(WEB_AUTH_ENV)
    if from_env:
        values["web_auth"] = from_env.strip()
        return
    if values.get("web_auth") is not None:
        return
    path = values.get("web_auth_file")
    if path is None:
        return
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"web_auth_file: {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ConfigError(f"web_auth_file: {path}: USER:PASSWORD on its first line")
    values["web_auth"] = lines[0].strip()


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then the overrides (from flags)."""
    from mailroom.mailconfig import MAIL_SECTIONS, MailConfigError, MailServerConfig, locate

    known = {f.name for f in fields(Config)} - {"mail", "listeners"}
    values: dict[str, Any] = {}
    mail_sections: dict[str, Any] = {}
    text = ""
    if path is not None:
        try:
            text = path.read_text("utf-8")
            data = tomllib.loads(text)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        server = data.get("server", data)
        for key, value in server.items():
            name = key.replace("-", "_")
            if name in MAIL_SECTIONS:
                mail_sections[name] = value
                continue
            if name not in known or isinstance(value, dict):
                line = locate(text, (key,))
                raise ConfigError(f"{path}:{line or '?'}: unknown setting {key!r}")
            try:
                values[name] = _coerce(name, value)
            except ConfigError as exc:
                raise ConfigError(f"{path}:{locate(text, (key,)) or '?'}: {exc}") from None
        if "listeners" in mail_sections:
            try:
                values["listeners"] = _listeners(mail_sections.pop("listeners"))
            except ConfigError as exc:
                raise ConfigError(f"{path}:{locate(text, ('listeners',)) or '?'}: {exc}") from None
            values.setdefault("smtp", ())
        if mail_sections:
            hostname = values.get("hostname") or Config().hostname
            try:
                values["mail"] = MailServerConfig.from_toml(mail_sections, hostname=hostname)
            except MailConfigError as exc:
                raise ConfigError(f"{path}:{locate(text, exc.key) or '?'}: {exc}") from None
    if os.environ.get(DATA_VARIABLE):
        values["data"] = Path(os.environ[DATA_VARIABLE])  # over the file, under --data
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
    _web_auth(values, flag=(overrides or {}).get("web_auth"))
    if values.get("mail") is not None and "web" not in values:
        # A mail server's web UI shows every user's mail: off unless asked for.
        values["web"] = None
    if values.get("tls_cert") and "tls" not in values:
        values["tls"] = "files"
    if values.get("mail") is not None:
        # In the mail server mode, plain listeners receive for the local domains and implicit
        # TLS listeners take submissions, unless [[listeners]] say otherwise.
        values["smtp"] = tuple(
            replace(listener, role="mx") if listener.role == "catcher" else listener
            for listener in values.get("smtp", Config.smtp)
        )
        values["smtps"] = tuple(
            replace(listener, role="submissions") if listener.role == "catcher" else listener
            for listener in values.get("smtps", ())
        )
    try:
        return replace(Config(), **values).validate()
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
