"""What the web UI is given: its settings and narrow interfaces to the parts it reads and
changes, handed over by the composition root (:mod:`mailroom.app`).

The web never sees the SMTP server or the configuration as a whole. Each need is one small
interface here, so another implementation can stand behind it: a store other than Maildir
behind ``messages``, or — with several worker processes — transcripts, events and counters
gathered from all of them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mailroom.activity.metrics import Metrics
from mailroom.activity.transcript_archive import SessionFilter
from mailroom.mimeshape import MimeLimits
from mailroom.policy.faults import FaultRule
from mailroom.settings_types import Listener

if TYPE_CHECKING:
    from mailroom.client import TransactionResult
    from mailroom.tls_publish import PublishedTLS
    from mailroom.web.messages import MessageRow
    from mailroom.web.mime import ParsedMessage
    from mailroom.web.search import Query

T = TypeVar("T")

__all__ = [
    "CheckSettings",
    "EventHub",
    "FaultRules",
    "Inject",
    "MessageStore",
    "ReleaseSender",
    "Senders",
    "ServerStatus",
    "SessionArchive",
    "StoreCounters",
    "TranscriptRecord",
    "TranscriptSource",
    "WebContext",
    "WebSettings",
]


@dataclass(frozen=True)
class CheckSettings:
    """The settings of a message's checks (:mod:`mailroom.web.checks`; ``Config``'s of the
    same names)."""

    spamassassin: str | None = None  # spamd's "HOST:PORT" for the spam check
    rspamd: str | None = None  # rspamd's controller URL for the spam check
    allow_internal_http_requests: bool = False  # the link check may fetch private addresses
    link_check_timeout: float = 10.0  # seconds for each link
    link_check_max_links: int = 100  # links checked in one message


@dataclass(frozen=True)
class WebSettings:
    listener: Listener  # where the UI and API listen
    hostname: str  # the server's name: answered on loopback, shown as the UI's label
    # HTTPS: the SMTP listeners' context (a renewed certificate is used for new handshakes)
    tls: ssl.SSLContext | None = None
    auth: str | None = None  # "user:password" for HTTP basic auth
    users: Path | None = None  # or a password file of web users (`mailroom passwd` lines)
    # wrong passwords against ``users`` from one address within the window: then 429
    max_auth_failures: int = 5
    auth_failure_window: float = 600.0
    max_search_terms: int = 100  # terms in one search; more: 400
    max_connections: int = 256  # HTTP connections open at once; more: 503 and closed
    mime_limits: MimeLimits = field(default_factory=MimeLimits)  # past them: shown as source
    allowed_hosts: tuple[str, ...] = ()  # Host names answered on loopback besides the usual
    release_smtp: Listener | None = None  # where "release" sends unless told otherwise
    database: str = ""  # what /api/v1/info names as the database
    checks: CheckSettings = CheckSettings()
    # the local domains' MTA-STS policy, served at /.well-known/mta-sts.txt ([mta_sts])
    mta_sts: PublishedTLS | None = None

    @property
    def credentials(self) -> bool:
        """The web asks for credentials."""
        return self.auth is not None or self.users is not None


class MessageStore(Protocol):
    """The stored messages: :class:`~mailroom.web.messages.Messages` (the Maildir store's
    SQLite index and files) or :class:`~mailroom.web.messages_pg.PgMessages` (a fleet's
    PostgreSQL database). Every method but ``call`` and ``close`` blocks: run it with
    ``await messages.call(messages.method, ...)``, in the reader's own worker thread."""

    enabled: bool
    deleted: int

    async def call(self, function: Callable[..., T], *args: Any) -> T: ...

    def close(self) -> None: ...

    def page(
        self, query: Query | None, start: int, limit: int
    ) -> tuple[dict[str, int], list[MessageRow]]: ...

    def matching_ids(self, query: Query) -> list[str]: ...

    def counts(self) -> tuple[int, int]: ...

    def get_many(self, ids: list[str]) -> list[MessageRow]: ...

    def get(self, message_id: str) -> MessageRow | None: ...

    def raw(self, row: MessageRow) -> bytes: ...

    def open(self, message_id: str) -> tuple[MessageRow, bytes, ParsedMessage] | None: ...

    def delete(self, ids: list[str] | None) -> list[str]: ...

    def set_read(self, ids: list[str] | None, read: bool) -> int: ...

    def database_size(self) -> int: ...

    def all_tags(self) -> list[str]: ...

    def tags_of(self, ids: list[str]) -> dict[str, list[str]]: ...

    def tag_counts(self) -> dict[str, int]: ...

    def set_tags(self, ids: list[str], tags: list[str]) -> list[str]: ...

    def rename_tag(self, old: str, new: str) -> int: ...

    def delete_tag(self, tag: str) -> int: ...


class TranscriptRecord(Protocol):
    """One session's transcript."""

    @property
    def id(self) -> str: ...

    def summary(self) -> dict[str, Any]: ...

    def to_dict(self) -> dict[str, Any]: ...

    def note(self, text: str) -> None:
        """A line of the transcript that is no command or reply."""
        ...


class TranscriptSource(Protocol):
    """The session transcripts kept (:class:`mailroom.activity.TranscriptLog`). The web
    reads them, and records one of its own for a message sent over the API."""

    @property
    def enabled(self) -> bool: ...

    def __len__(self) -> int: ...

    def begin(self, client_ip: str, client_port: int, listener: str) -> TranscriptRecord: ...

    def message(self, transcript: Any, queue_id: str) -> None:
        """``transcript`` (one :meth:`begin` gave) stored the message ``queue_id``."""
        ...

    def end(self, transcript: Any) -> None: ...

    def list(
        self, *, limit: int = ..., offset: int = ..., refused_only: bool = ...
    ) -> Sequence[TranscriptRecord]:
        """Newest first."""
        ...

    def get(self, session_id: str) -> TranscriptRecord | None: ...

    def for_message(self, queue_id: str) -> TranscriptRecord | None: ...


class SessionArchive(Protocol):
    """Finished transcripts kept on disk past a restart
    (:class:`mailroom.activity.TranscriptArchive`), each as its ``to_dict()``. Its calls read
    SQLite: the web makes them in its worker thread."""

    def get(self, session_id: str) -> dict[str, Any] | None: ...

    def for_message(self, queue_id: str) -> dict[str, Any] | None: ...

    def list(self, where: SessionFilter, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """The number of sessions ``where`` matches, and the newest ``limit`` of them (their
        summaries)."""
        ...


class FaultRules(Protocol):
    """The fault rules in force (:class:`mailroom.policy.faults.FaultInjector`)."""

    @property
    def rules(self) -> list[FaultRule]: ...

    def add(self, rule: str | FaultRule) -> FaultRule: ...

    def remove(self, rule_id: int) -> bool: ...

    def clear(self) -> None: ...

    def replace(self, old: Callable[[FaultRule], bool], new: list[FaultRule]) -> None: ...


class EventHub(Protocol):
    """Live events (:class:`mailroom.activity.Hub`): new messages, finished sessions."""

    @property
    def active(self) -> bool: ...

    def subscribe(self, maxsize: int = ...) -> asyncio.Queue[dict[str, Any]]: ...

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None: ...

    def publish(self, kind: str, data: dict[str, Any]) -> None: ...


class ServerStatus(Protocol):
    """What the probes and /metrics ask of the SMTP side."""

    @property
    def accepting(self) -> bool:
        """Listening and not shutting down (``/readyz``)."""
        ...

    @property
    def active_sessions(self) -> int: ...


class StoreCounters(Protocol):
    """The store's commit counters, for /metrics (a store that keeps none gives no object)."""

    @property
    def latency_total(self) -> float:
        """Seconds spent making messages durable."""
        ...

    @property
    def committed(self) -> int: ...


class ReleaseSender(Protocol):
    """Sends a captured message on to an SMTP server (:func:`mailroom.client.send_message`)."""

    def __call__(
        self,
        message: bytes,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        local_hostname: str,
        timeout: float,
    ) -> Awaitable[TransactionResult]: ...


# Stores a message made here as if it had come over SMTP; returns its queue id once durable.
Inject = Callable[[str, list[str], bytes], Awaitable[str]]


class Senders(Protocol):
    """Who may send as which address: the mail server's directory
    (:class:`mailroom.policy.directory.Directory`)."""

    def key(self, address: str) -> str:
        """The address as the directory compares addresses."""
        ...

    def is_local(self, address: str) -> bool: ...

    def addresses_of(self, username: str) -> set[str]:
        """The addresses ``username`` may send as (keys)."""
        ...

    def may_send_as(self, username: str, address: str, owned: set[str] | None = None) -> bool:
        """Whether ``address`` is one of ``username``'s (their sub-addresses too)."""
        ...


@dataclass
class WebContext:
    """Everything the web reads and changes."""

    settings: WebSettings
    messages: MessageStore  # the stored messages (the web closes it when it stops)
    transcripts: TranscriptSource
    faults: FaultRules
    hub: EventHub
    metrics: Metrics
    status: ServerStatus
    release: ReleaseSender
    # POST /api/v1/send: None where mail is only sent with SMTP (the mail server mode)
    inject: Inject | None = None
    # The mail server mode: "release" goes through the server's own routing (local mailboxes,
    # the queue), as the web user's own address, which ``senders`` says; None in the catcher,
    # where it goes to an SMTP server through ``release``.
    submit: Inject | None = None
    senders: Senders | None = None
    store_counters: StoreCounters | None = None
    # finished transcripts on disk (with the Maildir store and transcripts_stored > 0)
    archive: SessionArchive | None = None
