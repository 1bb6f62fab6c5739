"""One SMTP connection: an asyncio protocol that drives a sans-IO ``ServerConnection``.

Bytes in go to the protocol; each event it yields goes to policy; each reply goes back to the
protocol, and the bytes it returns are written once per batch (one write for a pipelined
group). Only two things wait: policy that must (credentials, DNS) and the store's commit at the
end of a message. While waiting, input queues in the protocol's buffer, and reading pauses if
it grows.

A session asks the server around it only what :class:`SessionHost` names: admission, and the
parts it hands events, messages and records to.

This module is compiled with mypyc in the build users get (setup.py's COMPILED): the per-message
path between ``data_received`` and ``transport.write`` runs as C. So its annotations are checked
at run time (a value of another type than annotated raises TypeError), a class attribute may
not stand for a method (``note = _note`` fails when the module loads), and tests cannot patch
its methods. ``make test-compiled`` runs the server and interop suites on that build.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol, cast

from mailroom.activity.transcript import Transcript
from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.logsafe import quoted
from mailroom.policy.base import DISCONNECT, Disconnect
from mailroom.policy.content import HEAD_LIMIT
from mailroom.protocol import (
    NEED_DATA,
    PAUSED,
    AuthSecretNeeded,
    BurlFetch,
    ChunkReceived,
    ConnectionClosed,
    DataCommand,
    Event,
    MailFrom,
    MessageComplete,
    MessageData,
    MessageRefused,
    ServerConnection,
    StartTLS,
    State,
)
from mailroom.store import Envelope, StorageFull, StoreError, StoreUnavailable
from mailroom.store.ids import new_queue_id
from mailroom.store.maildir import MailboxUnavailable

if TYPE_CHECKING:
    from mailroom.activity import Hub, MailLog, Metrics, TranscriptLog
    from mailroom.policy.base import Policy
    from mailroom.policy.credentials import CredentialStore
    from mailroom.protocol import SessionSettings
    from mailroom.settings_types import Listener
    from mailroom.store.base import MessageSink, OpenMessage
    from mailroom.submission.burl import BurlFetcher

__all__ = ["Session", "SessionHost"]


class _StoreCommit:
    """A message's commit, in flight in the store: answered by a callback (_commit_done)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[str]) -> None:
        self.future = future


class SessionHost(Protocol):
    """What a session needs from the server it runs in (:class:`~.smtp.SMTPServer`)."""

    hostname: str  # in the greeting, the 421s and the Received field
    policy: Policy
    store: MessageSink
    credentials: CredentialStore | None  # for SCRAM's stored secrets
    transcripts: TranscriptLog
    hub: Hub
    metrics: Metrics
    maillog: MailLog  # the one line per transaction (and per refusal)
    ssl_context: ssl.SSLContext | None  # for STARTTLS
    tls_handshake_timeout: float
    big_reads: asyncio.Semaphore  # large messages policy reads at their end, one at a time
    burl: BurlFetcher | None  # BURL (RFC 4468): fetches message parts from the IMAP server

    def handshake_started(self, session: Session) -> None:
        """An implicit-TLS session waits for its handshake (counted against the limits)."""
        ...

    def admit(self, session: Session) -> Reply | None:
        """A refusal for a connection over the limits, or None (and the session is counted)."""
        ...

    def release(self, session: Session) -> None:
        """An admitted session ended."""
        ...


def _proposal(event: Event) -> Reply:
    """The reply the protocol proposed with the event (every event policy may leave alone
    carries one)."""
    reply: Reply = event.reply  # type: ignore[attr-defined]
    return reply


log = logging.getLogger("mailroom.smtp")

# Pause reading when this much input waits unprocessed (only while the session waits for
# policy, the store or the AUTH tarpit: otherwise input is consumed as it comes). Small, since
# every waiting session may hold it: a client pipelines a few commands, not megabytes.
MAX_BUFFERED = 64 * 1024
# The idle timeout runs from the last progress, not the last octet: a command answered, or in
# message data a line ended or this many octets arrived. A client that dribbles a byte every
# few seconds (slowloris) makes none and is timed out like an idle one.
PROGRESS_OCTETS = 1024
# A session that closes while its client may still be sending reads and drops that input for
# up to this long after its last reply (a lingering close, see Session._linger).
LINGER_SECONDS = 2.0
# Replies to these stages may be 451 (RFC 5321 §4.3.2); elsewhere an internal error closes.
_TRANSACTION_STAGES = frozenset({"MAIL", "RCPT", "END_OF_DATA", "BDAT"})
_MESSAGE_ENDS = (MessageComplete, MessageRefused)
# Events whose transcript line is not the command line the protocol read last.
_NOT_COMMAND_LINES = frozenset({MessageComplete, MessageRefused, ChunkReceived, ConnectionClosed})


class Session(asyncio.Protocol):
    def __init__(self, server: SessionHost, listener: Listener, settings: SessionSettings) -> None:
        self.server = server
        self.listener = listener
        self.client_ip = ""
        self.client_port = 0
        self.transport: asyncio.Transport | None = None
        self.conn = ServerConnection(settings, tls=listener.implicit_tls)
        if listener.implicit_tls:
            server.handshake_started(self)
        self.last_activity = 0.0  # the last progress (see PROGRESS_OCTETS)
        self._octets_since_progress = 0
        self.busy = False  # waiting for policy or the store
        self.shutting_down = False
        self._writer: OpenMessage | None = None
        # The store failed while the message streamed in: read the rest, answer 451 4.3.0.
        self._message_failed = False
        self._queue_id: str | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._closing = False
        self._input_ended = False  # the client closed its side (EOF read)
        self._lingering: asyncio.TimerHandle | None = None
        self._counted = False
        # Decrypted input that arrives while the TLS handshake completes, before start_tls
        # returns: a client may send EHLO in the same flight as its Finished message.
        self._tls_early: bytearray | None = None
        # The one task a session may have running (a wait for policy, the store or TLS);
        # held here so it is not garbage-collected mid-flight.
        self._task: asyncio.Future[Any] | None = None
        # Where each accepted recipient's mail goes, as policy decided at RCPT (mail server
        # mode); cleared with each new transaction.
        self.routes: dict[str, Any] = {}
        # The message's first HEAD_LIMIT octets, for policy at its end (hops, floods).
        self.message_head = bytearray()
        self._message_octets = 0  # of the message so far (BDAT chunks and BURL parts)
        # The priority policy took the transaction's message at (MT-PRIORITY), set at MAIL.
        self.mt_priority: int | None = None
        self.transcript: Transcript | None = None
        self.auth_failures = 0  # failed AUTHs in this session (mailroom.policy.authguard)
        # Email authentication's state for this session (mailroom.policy.authentication):
        # the checks under way (iprev from the greeting, SPF from MAIL FROM); closed with it.
        self.authentication: Any = None

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client_ip, self.client_port = str(peer[0]), int(peer[1])
        self.last_activity = time.monotonic()
        server = self.server
        refusal = server.admit(self)
        if refusal is not None:
            server.maillog.info(
                f"refused connection: client={self.client_ip} reply={quoted(str(refusal))}"
            )
            self.transport.write(refusal.format())
            self._close()
            return
        self._counted = True
        self.conn.client_address = self.client_ip
        if server.transcripts.enabled:
            self.transcript = server.transcripts.begin(
                self.client_ip, self.client_port, str(self.listener)
            )
            self.transcript.tls = self.conn.tls_active
            self.transcript.conn = self.conn
        try:
            decision = server.policy.connect(self)
        except Exception:
            log.exception("internal error in the greeting of %s", self.client_ip)
            decision = replies.LOCAL_ERROR_CLOSING(hostname=server.hostname)
        if decision is not None and not isinstance(decision, Reply | Disconnect):
            # A greeting that waits (a fault rule's delay): nothing is read meanwhile.
            self.busy = True
            self._task = asyncio.ensure_future(self._greet_later(decision))
            return
        self._greet(decision)

    def _greet(self, decision: Reply | Disconnect | None) -> None:
        if decision is DISCONNECT:
            self._note("fault: disconnected at the greeting")
            self._close()
            return
        greeting = decision or replies.GREETING(hostname=self.server.hostname)
        assert isinstance(greeting, Reply)
        if greeting.code >= 400:
            self.server.metrics.refused("CONNECT", greeting.code)
        wire = self.conn.greet(greeting)
        if self.transcript is not None:
            self.transcript.reply(wire)
        if self.transport is not None:
            self.transport.write(wire)
        if self.conn.closed:
            self._close()

    async def _greet_later(self, decision: Awaitable[Reply | Disconnect | None]) -> None:
        try:
            result = await decision
        except Exception:
            log.exception("internal error in the greeting of %s", self.client_ip)
            result = replies.LOCAL_ERROR_CLOSING(hostname=self.server.hostname)
        if self._closing:
            return
        self.busy = False
        self._greet(result)
        if not self._closing:
            self._process()

    def _note(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript.note(text)

    def note(self, text: str) -> None:
        """For policy: a line of information in the session's transcript."""
        self._note(text)

    # -- the message at its end, for policy (email authentication) ---------------------------

    async def read_message(self) -> bytes:
        """The message of the transaction, as received: read by policy at its end. A large
        (spilled) message is read in a thread, one at a time."""
        writer = self._writer or self._message_writer()
        if not writer.spilled:
            return writer.read()
        async with self.server.big_reads:
            return await asyncio.to_thread(writer.read)

    def amend_message(
        self, head_length: int, new_head: bytes, deliveries: list[Any] | None = None
    ) -> None:
        """Policy's changes to the message before it is stored: a new header section (fields
        added on top, forged ones removed), and other destinations (quarantine)."""
        writer = self._writer or self._message_writer()
        writer.replace_head(head_length, new_head, deliveries)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if self._closing:
            return
        if conn.state is State.DATA or conn.state is State.BDAT:
            self._octets_since_progress += len(data)
            if self._octets_since_progress >= PROGRESS_OCTETS or 0x0A in data:
                self._octets_since_progress = 0
                self.last_activity = time.monotonic()
        if self._tls_early is not None:
            self._tls_early += data
            return
        conn.receive_data(data)
        if not self.busy:
            self._process()
        elif conn.buffered > MAX_BUFFERED and not self._reading_paused:
            self._pause_reading()

    def eof_received(self) -> bool | None:
        if self._closing:
            return None
        # A client that ended its input with QUIT (``printf ... | nc -N``) still reads: the
        # transport stays open for the replies to what it sent whole, and the session closes
        # it after the 221. Any other end of input is a client gone: what was not answered is
        # dropped (a message taken then would be delivered twice when it tries again). TLS
        # transports cannot stay half-open (asyncio ignores it): they close either way.
        keep_open = self.conn.quit_pending() and not self._over_tls()
        self._input_ended = True
        self.conn.receive_data(b"")
        if not self.busy:
            self._process()
        return keep_open and not self._closing

    def _over_tls(self) -> bool:
        transport = self.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
        if self.authentication is not None:
            self.authentication.close()
        task = self._task
        if task is not None and not task.done():
            # Nobody is left to answer: a password check still queued is skipped (a client
            # that floods AUTH and hangs up leaves no work behind); a commit in flight
            # completes all the same in the store's thread.
            task.cancel()
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        if self.transcript is not None and self.transcript.ended is None:
            self.server.transcripts.end(self.transcript)
        if self._counted:
            self._counted = False
            self.server.release(self)

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its commands too.
        self._writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if not self.busy:
            self._resume_reading()
            self._process()

    # -- the loop --------------------------------------------------------------------------------

    def _process(self) -> None:
        conn = self.conn
        out: list[bytes] = []
        try:
            while not self._closing and not self._writing_paused:
                next_event = conn.next_event()
                if next_event is NEED_DATA or next_event is PAUSED:
                    break
                event: Event = next_event  # type: ignore[assignment]
                kind = type(event)
                if kind is MessageData:
                    head = self.message_head
                    data = event.data  # type: ignore[attr-defined]
                    self._message_octets += len(data)
                    if len(head) < HEAD_LIMIT:
                        head += data[: HEAD_LIMIT - len(head)]
                    if not self._message_failed:
                        try:
                            writer = self._writer or self._message_writer()
                            writer.write(data)
                        except Exception:
                            self._store_failed()
                    continue
                if kind is AuthSecretNeeded:
                    credentials = self.server.credentials
                    name = event.username  # type: ignore[attr-defined]
                    if credentials is not None and credentials.transition_needed(name):
                        conn.send_auth_secret(None, refusal=replies.AUTH_PASSWORD_TRANSITION())
                    else:
                        conn.send_auth_secret(
                            credentials.scram_secret(name) if credentials else None
                        )
                    continue
                if self.transcript is not None:
                    if kind in _NOT_COMMAND_LINES:
                        self._record_command(event, kind)
                    else:
                        self.transcript.command(conn.last_line_raw)
                reply = self._decide(event)
                if type(reply) is Reply:  # the usual case: an answer now
                    self._send(event, reply, out)
                    continue
                if isinstance(reply, Disconnect):
                    self._note("fault: disconnected")
                    self._flush(out)
                    self._close()
                    return
                if reply is None:  # the client went away
                    self._flush(out)
                    self._close()
                    return
                if isinstance(reply, _StoreCommit):  # the usual wait: the store's, by a callback
                    self._flush(out)
                    self.busy = True
                    future = reply.future
                    self._task = future
                    future.add_done_callback(functools.partial(self._commit_done, event))
                    return
                if not isinstance(reply, Reply | Disconnect):
                    self._flush(out)
                    self.busy = True
                    self._task = asyncio.ensure_future(self._finish(event, reply))
                    return
                self._send(event, reply, out)
        except Exception:
            log.exception("internal error in session with %s", self.client_ip)
            self._internal_error(out)
            return
        self._flush(out)
        if conn.closed:
            self._close()
        elif self._reading_paused and conn.buffered < MAX_BUFFERED // 2:
            self._resume_reading()

    async def _finish(self, event: Event, pending: Awaitable[Reply | Disconnect]) -> None:
        out: list[bytes] = []
        try:
            reply = await pending
            if self._closing:
                return
            if reply is DISCONNECT:
                self._note("fault: disconnected")
                self._close()
                return
            assert isinstance(reply, Reply)
            self._send(event, reply, out)
        except Exception:
            log.exception("internal error in session with %s", self.client_ip)
            self.busy = False
            self._internal_error(out)
            return
        self._go_on(out)

    def _commit_done(self, event: Event, future: asyncio.Future[str]) -> None:
        """The store's answer to a message's commit. A callback, not a task: a task per
        message (its coroutines, its scheduling, the registry of every task) cost more than
        the rest of the message's way through the session."""
        if future.cancelled() or self._closing:
            return
        out: list[bytes] = []
        try:
            try:
                queue_id = future.result()
            except StoreError as exc:
                reply = self._not_stored(exc)
            else:
                reply = self._accepted(event, queue_id)  # type: ignore[arg-type]
            self._send(event, reply, out)
        except Exception:
            log.exception("internal error in session with %s", self.client_ip)
            self.busy = False
            self._internal_error(out)
            return
        self._go_on(out)

    def _go_on(self, out: list[bytes]) -> None:
        # A wait is over and its reply in ``out``: send it, and read on.
        self.busy = False
        self._flush(out)
        if self.conn.closed:
            self._close()
        elif self.conn.state is not State.TLS_PENDING:
            self._resume_reading()
            self._process()

    def _decide(
        self, event: Event
    ) -> Reply | Disconnect | _StoreCommit | Awaitable[Reply | Disconnect] | None:
        """The reply for ``event``: now, later (an awaitable, or the store's commit), or None
        when the session ends."""
        kind = type(event)
        if kind is ConnectionClosed:
            self._abort_message()
            return None
        if kind is MessageRefused:
            self._abort_message()
            return event.reply  # type: ignore[attr-defined,no-any-return]
        if kind is MessageComplete and self._message_failed:
            self._abort_message()
            return replies.LOCAL_ERROR()
        if kind is BurlFetch:
            return self._burl(event)  # type: ignore[arg-type]
        if kind is ChunkReceived and self._message_failed:
            self._abort_message()
            return replies.LOCAL_ERROR()
        if kind is ChunkReceived and self._writer is not None:
            failure = self._writer.failure
            if failure is not None:
                # The disk failed while the chunk streamed in: refused now (RFC 3030 §2, the
                # transaction ends), not after every chunk still to come was sent.
                self._abort_message()
                return self._not_stored(failure)
        if kind is DataCommand or kind is MailFrom:
            self._abort_message()
            self.message_head.clear()
            self._message_octets = 0
            if kind is MailFrom:
                self.routes.clear()
                self.mt_priority = None
                size = event.parameters.size  # type: ignore[attr-defined]
                if size is not None and not self.server.store.has_room(size):
                    # RFC 1870 §6.1: no room for it now, perhaps later; the client keeps it.
                    return replies.SIZE_NOT_NOW()
        decision = self.server.policy.decide(event, self)
        if decision is DISCONNECT:
            return DISCONNECT
        if kind is MessageComplete:
            return self._complete(event, decision)  # type: ignore[arg-type]
        if decision is None:
            return _proposal(event)
        if type(decision) is Reply:
            return decision
        return self._proposal_unless(event, decision)  # type: ignore[arg-type]

    async def _proposal_unless(
        self, event: Event, decision: Awaitable[Reply | Disconnect | None]
    ) -> Reply | Disconnect:
        reply = await decision
        return _proposal(event) if reply is None else reply

    def _record_command(self, event: Event, kind: type) -> None:
        assert self.transcript is not None
        if kind is MessageComplete or kind is MessageRefused:
            self.transcript.command(f"<message data: {event.size} octets>")  # type: ignore[attr-defined]
        elif kind is ChunkReceived:
            self.transcript.command(f"<chunk: {event.size} octets>")  # type: ignore[attr-defined]
        elif kind is ConnectionClosed:
            self.transcript.note("client closed the connection")
        else:
            self.transcript.command(self.conn.last_line_raw)

    def _send(self, event: Event, reply: Reply, out: list[bytes]) -> None:
        conn = self.conn
        self.last_activity = time.monotonic()
        code = reply.code
        ends_message = type(event) in _MESSAGE_ENDS
        if code >= 400 and ends_message:
            self._log_refused_message(event, reply)  # before send() ends the transaction
        wire = conn.send(reply)
        out.append(wire)
        transcript = self.transcript
        if transcript is not None:
            transcript.reply(wire)
        if code < 400 and not self.shutting_down and code != 220:
            return
        if code >= 400:
            self.server.metrics.refused(event.stage, reply.code)
            if not ends_message:
                maillog = self.server.maillog
                if maillog.enabled:
                    stage, text = quoted(event.stage), quoted(str(reply).replace("\n", " / "))
                    maillog.info(f"refused: client={self.client_ip} stage={stage} reply={text}")
            elif self.shutting_down:
                self._goodbye(out)
        elif self.shutting_down and ends_message:
            self._goodbye(out)
        elif reply.code == 220 and type(event) is StartTLS:
            self._flush(out)
            self._start_tls()

    def _goodbye(self, out: list[bytes]) -> None:
        # Shutting down: the message in flight got its reply; now the session ends.
        out.append(replies.SHUTTING_DOWN(hostname=self.server.hostname).format())
        self._flush(out)
        self._close()

    def _flush(self, out: list[bytes]) -> None:
        # The replies of one batch in one write (a pipelined group gets one segment); the
        # usual batch is one reply, written as it is, without a copy.
        if out:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    # -- messages --------------------------------------------------------------------------------

    def _envelope(self) -> Envelope:
        conn = self.conn
        transaction = conn.transaction
        assert transaction is not None
        self._queue_id = new_queue_id()
        mail = transaction.parameters
        notify: dict[str, tuple[str, ...]] = {}
        orcpt: dict[str, tuple[str, str]] = {}
        tls_version = tls_cipher = None
        tls_bits = None
        ssl_object = (
            self.transport.get_extra_info("ssl_object") if self.transport is not None else None
        )
        if ssl_object is not None:
            tls_version = ssl_object.version()
            cipher = ssl_object.cipher()
            if cipher:
                tls_cipher, tls_bits = cipher[0], cipher[2]
        for recipient, params in transaction.recipients:
            if params.notify is not None:
                notify[str(recipient)] = params.notify
            if params.orcpt is not None:
                orcpt[str(recipient)] = params.orcpt
        rrvs = {str(r): params.rrvs for r, params in transaction.recipients if params.rrvs}
        return Envelope(
            queue_id=self._queue_id,
            sender=str(transaction.sender) if transaction.sender else "",
            recipients=[str(r) for r, _ in transaction.recipients],
            client_ip=self.client_ip,
            helo=conn.hello_domain or "",
            esmtp=conn.esmtp,
            tls=conn.tls_active,
            auth_user=conn.authenticated,
            smtputf8=mail.smtputf8,
            hostname=self.server.hostname,
            deliveries=self.server.policy.deliveries(self) or [],
            envid=mail.envid,
            ret=mail.ret,
            body=mail.body,
            notify=notify,
            orcpt=orcpt,
            requiretls=mail.requiretls,
            tls_version=tls_version,
            tls_cipher=tls_cipher,
            tls_bits=tls_bits,
            mt_priority=self.mt_priority if self.mt_priority is not None else mail.mt_priority,
            rrvs=rrvs,
        )

    def _message_writer(self) -> OpenMessage:
        if self._writer is None:
            store = self.server.store
            self._writer = store.begin(self._envelope() if store.wants_envelope else None)
        return self._writer

    def _store_failed(self) -> None:
        # Not the client's fault: keep the session, drop the message, say 451 at its end.
        log.exception("internal error storing a message from %s", self.client_ip)
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
        self._message_failed = True

    def _abort_message(self) -> None:
        self._message_failed = False
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def _complete(
        self, event: MessageComplete, decision: object
    ) -> Reply | _StoreCommit | Awaitable[Reply]:
        if isinstance(decision, Reply):
            if decision.code >= 400:
                self._abort_message()
                return decision
        elif decision is not None:
            return self._complete_later(event, decision)  # type: ignore[arg-type]
        writer = self._message_writer()
        self._writer = None
        result = writer.commit()
        if isinstance(result, str):
            return self._accepted(event, result)
        if isinstance(result, asyncio.Future):
            return _StoreCommit(result)
        return self._committed(event, result)

    async def _burl(self, event: BurlFetch) -> Reply:
        """BURL (RFC 4468): fetch the part from the IMAP server and add it to the message; at
        the LAST one, the message ends as at the end of data."""
        fetcher = self.server.burl
        if fetcher is None:
            return replies.NOT_IMPLEMENTED()
        limit = self.conn.settings.max_message_size
        room = limit - self._message_octets if limit else 0
        result = await fetcher.fetch(
            event.url, user=self.conn.authenticated or "", limit=max(room, 1) if limit else 0
        )
        if self._closing:
            return replies.LOCAL_ERROR()
        if isinstance(result, Reply):
            self._abort_message()
            return result
        try:
            writer = self._writer or self._message_writer()
            writer.write(result)
        except Exception:
            self._store_failed()
        self._message_octets += len(result)
        head = self.message_head
        if len(head) < HEAD_LIMIT:
            head += result[: HEAD_LIMIT - len(head)]
        if not event.last:
            return replies.BURL_OK(size=len(result))
        if self._message_failed:
            self._abort_message()
            return replies.LOCAL_ERROR()
        complete = MessageComplete(self._message_octets, "BURL")
        decision = self.server.policy.decide(complete, self)
        if decision is DISCONNECT:
            self._abort_message()
            return replies.LOCAL_ERROR()
        return await self._reply_to(complete, self._complete(complete, decision))

    async def _complete_later(
        self, event: MessageComplete, decision: Awaitable[Reply | None]
    ) -> Reply:
        reply = await decision
        if reply is not None and reply.code >= 400:
            self._abort_message()
            return reply
        return await self._reply_to(event, self._complete(event, None))

    async def _reply_to(
        self, event: MessageComplete, outcome: Reply | _StoreCommit | Awaitable[Reply]
    ) -> Reply:
        """What :meth:`_complete` gave, once it is known (for the paths that wait anyway)."""
        if isinstance(outcome, Reply):
            return outcome
        if isinstance(outcome, _StoreCommit):
            return await self._committed(event, outcome.future)
        return await outcome

    async def _committed(self, event: MessageComplete, pending: Awaitable[str]) -> Reply:
        try:
            queue_id = await pending
        except StoreError as exc:
            return self._not_stored(exc)
        return self._accepted(event, queue_id)

    def _not_stored(self, exc: StoreError) -> Reply:
        log.error("not stored: client=%s error=%s", self.client_ip, exc)
        if isinstance(exc, StoreUnavailable):  # a database out of reach: try again later
            return replies.STORE_UNAVAILABLE()
        if isinstance(exc, MailboxUnavailable):
            return replies.MAILBOX_UNAVAILABLE(
                addresses=", ".join(f"<{r}>" for r in exc.recipients), why=exc.why
            )
        if isinstance(exc, StorageFull):
            return replies.STORAGE_FULL()
        return replies.STORE_WRITE_FAILED()  # an I/O error: a local error, not a full disk

    def _log_transaction(self, queue_id: str, event: Event, reply: str) -> None:
        # The transaction's one log line: its queue id (NOQUEUE when refused), the envelope,
        # the size and the reply. Not even formatted when it would not be written.
        transaction = self.conn.transaction
        maillog = self.server.maillog
        if transaction is None or not maillog.enabled:
            return
        # Addresses and reply texts come from the client: escaped (mailroom.logsafe), so a line
        # of the log is always one line.
        sender = quoted(transaction.sender or "")
        recipients = quoted(",".join([f"<{r}>" for r, _ in transaction.recipients]))
        maillog.info(
            f"{queue_id}: client={self.client_ip} from=<{sender}> to={recipients} "
            f"size={event.size} via={event.via} reply={quoted(reply)}"  # type: ignore[attr-defined]
        )

    def _log_refused_message(self, event: Event, reply: Reply) -> None:
        self._log_transaction("NOQUEUE", event, str(reply).replace("\n", " / "))

    def _accepted(self, event: MessageComplete, queue_id: str) -> Reply:
        self._log_transaction(queue_id, event, "250")
        server = self.server
        metrics = server.metrics
        metrics.messages_accepted += 1
        metrics.message_bytes += event.size
        if self.transcript is not None:
            server.transcripts.message(self.transcript, queue_id)
        if server.hub.active:
            server.hub.publish(
                "message",
                {
                    "id": queue_id,
                    "session": self.transcript.id if self.transcript is not None else None,
                },
            )
        return replies.MESSAGE_ACCEPTED(queue_id=queue_id)

    # -- TLS, errors, closing ------------------------------------------------------------------

    def _start_tls(self) -> None:
        self.busy = True
        self._task = asyncio.ensure_future(self._handshake())

    async def _handshake(self) -> None:
        loop = asyncio.get_running_loop()
        transport = self.transport
        assert transport is not None
        assert self.server.ssl_context is not None
        # From here on the transport feeds the TLS layer, which hands this protocol only
        # decrypted data: keep it for the protocol until it knows TLS is up. (Plaintext sent
        # after STARTTLS, CVE-2011-0411, arrived before this and was dropped.)
        self._tls_early = bytearray()
        try:
            new_transport = await loop.start_tls(
                transport,
                self,
                self.server.ssl_context,
                server_side=True,
                ssl_handshake_timeout=self.server.tls_handshake_timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as exc:
            log.info("TLS handshake failed: client=%s error=%s", self.client_ip, quoted(exc))
            self._tls_early = None
            self._close()
            return
        early, self._tls_early = self._tls_early, None
        if new_transport is None:
            self._close()
            return
        self.transport = new_transport
        self.conn.tls_started()
        if self.transcript is not None:
            self.transcript.tls = True
            cipher = new_transport.get_extra_info("cipher") or ("?", "?", 0)
            self.transcript.note(f"TLS started: {cipher[1]} {cipher[0]}")
        if early:
            self.conn.receive_data(bytes(early))
        self.busy = False
        self.last_activity = time.monotonic()
        self._process()

    def _internal_error(self, out: list[bytes]) -> None:
        conn = self.conn
        event = conn.awaiting
        self._abort_message()
        try:
            if event is not None and event.stage in _TRANSACTION_STAGES:
                out.append(conn.send(replies.LOCAL_ERROR()))
                self._flush(out)
                self._process()
                return
        except Exception:
            log.exception("could not answer after an internal error")
        out.append(replies.LOCAL_ERROR_CLOSING(hostname=self.server.hostname).format())
        self._flush(out)
        self._close()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self._writing_paused:
            self._reading_paused = False
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.resume_reading()

    def _close(self) -> None:
        if self._closing and self.transport is not None and self.transport.is_closing():
            return
        self._closing = True
        self._abort_message()
        transport = self.transport
        if transport is not None and not self._linger(transport):
            transport.close()

    def _linger(self, transport: asyncio.Transport) -> bool:
        """Close the way HTTP servers do (a lingering close), where the client may still be
        sending: input not yet read when the socket closes makes the kernel answer with a
        reset, and a client's TCP stack may then throw away replies it has not read, the 421
        that says why among them. So the last replies go out with a FIN, what the client
        still sends is read and dropped (data_received ignores a closing session's input),
        and the transport closes at the client's own end of input (eof_received) or after
        LINGER_SECONDS. Only plain TCP can half-close (TLS transports close at once), and a
        client that already ended its input sends nothing more."""
        if self._lingering is not None:
            return True  # closing already
        if self._input_ended or transport.is_closing() or self._over_tls():
            return False  # (a failed STARTTLS handshake has closed its transport already)
        try:
            if not transport.can_write_eof():
                return False
            transport.write_eof()
        except (RuntimeError, OSError):
            return False  # the transport went meanwhile: close() is all that is left
        if self._reading_paused:
            self._reading_paused = False
            with contextlib.suppress(RuntimeError, AttributeError):
                transport.resume_reading()
        loop = asyncio.get_running_loop()
        self._lingering = loop.call_later(LINGER_SECONDS, self._end_linger)
        return True

    def _end_linger(self) -> None:
        self._lingering = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport.abort()  # the replies never drained: the client does not read
        else:
            transport.close()

    # -- asked by the server -------------------------------------------------------------------

    @property
    def in_message(self) -> bool:
        """Reading a message, or waiting on its behalf; with BDAT, from the first chunk on."""
        conn = self.conn
        if conn.state in (State.DATA, State.BDAT) or self.busy:
            return True
        transaction = conn.transaction
        return transaction is not None and transaction.chunks > 0

    def idle_timeout(self) -> None:
        """No input for longer than the timeout: 421 4.4.2 and close."""
        log.info("timeout: client=%s", self.client_ip)
        if self._closing:
            # Closed, but its last replies never drained: the client stopped reading.
            self._abort()
            return
        self._say_and_close(replies.IDLE_TIMEOUT(hostname=self.server.hostname))

    def shutdown(self) -> None:
        """The server stops: idle sessions get 421 4.3.2 now; a message in flight may finish."""
        self.shutting_down = True
        if not self.in_message:
            self._say_and_close(replies.SHUTTING_DOWN(hostname=self.server.hostname))

    def force_close(self) -> None:
        if self._closing:
            # Told already, and its close still waits on the client (its TLS close_notify,
            # or replies it does not read): the server is going, drop the connection.
            self._abort()
            return
        self._say_and_close(replies.SHUTTING_DOWN(hostname=self.server.hostname))

    def _say_and_close(self, reply: Reply) -> None:
        if self._closing:
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(reply.format())
            if transport.get_write_buffer_size():
                # The client does not read (its replies pile up): closing would wait for
                # them to drain, forever. Drop the connection instead.
                self._abort()
                return
        self._close()

    def _abort(self) -> None:
        self._closing = True
        self._abort_message()
        if self.transport is not None:
            self.transport.abort()
