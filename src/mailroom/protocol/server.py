"""The server side of one SMTP connection, as a pure state machine (no sockets, no clock).

Use::

    conn = ServerConnection(settings, client_address="192.0.2.1")
    out = conn.greet(catalogue.GREETING(hostname=...))      # send `out`
    conn.receive_data(bytes_from_socket)                     # b"" at EOF
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED: break
        if event.needs_reply:
            out += conn.send(policy_reply_for(event))        # often event.reply

Each command yields one event and waits for one reply; nothing more is read until it comes,
so replies go out in the order of the commands (RFC 2920). The caller writes the bytes that
``send`` returns, in batches if it likes.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.codes.template import ReplyTemplate
from mailroom.protocol.commands import (
    NO_EXTENSIONS,
    Extensions,
    Refused,
    decode_sasl,
    parse_auth,
    parse_bdat,
    parse_burl,
    parse_mail,
    parse_rcpt,
    redact_burl,
)
from mailroom.protocol.data import ChunkReader, DotReader, MessageStream
from mailroom.protocol.events import (
    AuthChallenge,
    Authenticate,
    AuthSecretNeeded,
    BurlFetch,
    ChunkReceived,
    CommandRejected,
    ConnectionClosed,
    DataCommand,
    Event,
    Expand,
    Hello,
    Help,
    MailFrom,
    MessageComplete,
    MessageData,
    MessageRefused,
    Noop,
    Quit,
    RcptTo,
    Reset,
    StartTLS,
    Verify,
)
from mailroom.protocol.parameters import MailParameters, RcptParameters
from mailroom.protocol.sasl import (
    PLAINTEXT_MECHANISMS,
    Challenge,
    Failed,
    Finished,
    NeedSecret,
    ScramSecret,
    ServerMechanism,
    Step,
    new_mechanism,
)
from mailroom.protocol.sentinels import NEED_DATA, PAUSED, Sentinel
from mailroom.protocol.settings import SessionSettings
from mailroom.protocol.states import (
    AUTH_EXEMPT,
    HTTP_METHODS,
    NOT_IMPLEMENTED,
    SEQUENCE,
    TLS_EXEMPT,
    State,
)
from mailroom.protocol.syntax import MAX_DOMAIN, AddressError, Mailbox, parse_domain
from mailroom.protocol.usage import ProtocolUsageError

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "ProtocolUsageError",
    "ServerConnection",
    "Transaction",
    "printable_line",
]


@dataclass(slots=True, init=False)
class Transaction:
    """The mail transaction in progress (RFC 5321 §3.3)."""

    sender: Mailbox | None
    parameters: MailParameters
    recipients: list[tuple[Mailbox, RcptParameters]]
    refused_recipients: int
    chunks: int  # BDAT chunks accepted so far
    data_refused: bool  # a DATA command of this transaction was refused

    def __init__(
        self,
        sender: Mailbox | None,
        parameters: MailParameters,
        recipients: list[tuple[Mailbox, RcptParameters]] | None = None,
        refused_recipients: int = 0,
        chunks: int = 0,
        data_refused: bool = False,
    ) -> None:
        # Compiled, unlike the one @dataclass would write (see parameters.MailParameters).
        self.sender = sender
        self.parameters = parameters
        self.recipients = [] if recipients is None else recipients
        self.refused_recipients = refused_recipients
        self.chunks = chunks
        self.data_refused = data_refused


def _completed(reply: Reply) -> bool:
    """Whether ``reply`` completes what its command asked (a 2yz, RFC 5321 §4.2.1). Policy
    may answer with any reply, a fault rule imitating a broken server a 354 to MAIL among
    them: the session then goes on as such a server's would, the command not done."""
    return 200 <= reply.code < 300


# Allowance over max_command_line that extensions grant to MAIL and RCPT lines:
# SIZE (RFC 1870 §3: 26), DSN (RFC 3461 §5: 100 for MAIL, 500 for RCPT), AUTH= (RFC 4954 §5:
# 500), and some room for BODY= and SMTPUTF8.
_MAIL_ALLOWANCE = 26 + 100 + 500 + 32 + 16  # and MT-PRIORITY=-9 (RFC 6710)
_RCPT_ALLOWANCE = 500 + 40  # and RRVS=<date-time>;R (RFC 7293)


class ServerConnection:
    def __init__(
        self, settings: SessionSettings, *, client_address: str = "", tls: bool = False
    ) -> None:
        self.settings = settings
        self.client_address = client_address
        self.tls_active = tls
        self.state = State.GREETING
        self.hello_domain: str | None = None
        self.esmtp = False
        self.authenticated: str | None = None  # the username, once AUTH succeeded
        self.transaction: Transaction | None = None
        # The last command line read: kept raw, made printable only when asked for.
        self._last: bytes | str = ""
        self._buffer = bytearray()
        self._eof = False
        self._waiting: Event | None = None  # the event whose reply we wait for
        self._queued: Event | None = None  # an event ready before next_event asked for it
        self._bad_commands = 0
        self._junk_commands = 0  # commands that move no mail since the last message (_JUNK)
        self._refused_recipients = 0  # RCPTs refused since the last message taken
        self._discarding_line = False  # the rest of an overlong line is being dropped
        self._long_line_head = b""  # the first octets of the last overlong line
        self._skip = 0  # octets of a refused BDAT chunk still to drop
        self._skip_reply: Reply | None = None
        self._reader: DotReader | ChunkReader | None = None
        self._stream: MessageStream | None = None
        self._bdat_failed = False  # a chunk was refused: later BDATs get 503 until RSET/MAIL
        self._mechanism: ServerMechanism | None = None
        self._mechanism_name = ""
        self._closed_reported = False
        self._enhanced = settings.enhanced_status_codes
        self._extensions: Extensions | None = None
        # Line limits by verb: extensions grant MAIL and RCPT more room; AUTH has its own.
        self._line_limits = {
            "MAIL": settings.max_command_line + _MAIL_ALLOWANCE,
            "RCPT": settings.max_command_line + _RCPT_ALLOWANCE,
        }
        if settings.auth_mechanisms:
            self._line_limits["AUTH"] = settings.max_auth_line
        self._max_read = max(
            settings.max_auth_line if settings.auth_mechanisms else 0,
            settings.max_command_line + _MAIL_ALLOWANCE,
        )

    # -- what the caller reads ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def last_line(self) -> str:
        """The last command line read, printable and with AUTH secrets redacted: for
        transcripts and logs, never parsed again."""
        last = self._last
        if isinstance(last, bytes):
            last = self._last = printable_line(last)
        return last

    @property
    def last_line_raw(self) -> bytes | str:
        """The last command line as read (bytes), or its redacted text (str) where it held
        secrets; ``printable_line`` makes the bytes what ``last_line`` shows. Transcripts keep
        this and format it only when someone looks."""
        return self._last

    @property
    def awaiting(self) -> Event | None:
        """The event whose reply the connection waits for, if any."""
        return self._waiting

    @property
    def buffered(self) -> int:
        """Octets received and not yet processed (a server pauses reading when this grows)."""
        return len(self._buffer)

    @property
    def extensions(self) -> Extensions:
        """The extensions in force: none before EHLO or after HELO. Made once per hello (and
        again after STARTTLS), since MAIL and RCPT ask for them on every command."""
        if not self.esmtp:
            return NO_EXTENSIONS
        extensions = self._extensions
        if extensions is None:
            s = self.settings
            extensions = self._extensions = Extensions(
                size=s.size,
                eightbitmime=s.eightbitmime,
                binarymime=s.binarymime and s.chunking and s.eightbitmime,
                smtputf8=s.smtputf8,
                dsn=s.dsn,
                auth=bool(self.offered_mechanisms()),
                requiretls=s.requiretls and self.tls_active,
                mt_priority=bool(s.mt_priority),
                rrvs=s.rrvs,
            )
        return extensions

    def offered_mechanisms(self) -> tuple[str, ...]:
        s = self.settings
        if s.require_tls and not self.tls_active:
            return ()  # AUTH before STARTTLS gets 530 5.7.0: do not offer it
        if self.tls_active or s.auth_plaintext_without_tls:
            return s.auth_mechanisms
        return tuple(m for m in s.auth_mechanisms if m not in PLAINTEXT_MECHANISMS)

    def quit_pending(self) -> bool:
        """Whether the input not yet read ends with a QUIT line: at the client's end of input,
        a client that half-closed after a whole session (``printf ... | nc -N``), which still
        reads its replies, rather than one that went away (which sends no QUIT before the
        reply to its last message: taking that message would deliver it twice when it tries
        again)."""
        buffer = self._buffer
        for ending in (b"QUIT\r\n", b"QUIT\n"):
            size = len(ending)
            if (
                len(buffer) >= size
                and bytes(buffer[-size:]).upper() == ending
                and (len(buffer) == size or buffer[-size - 1] == 0x0A)
            ):
                return True
        return False

    def ehlo_keywords(self) -> list[str]:
        s = self.settings
        keywords = []
        if s.pipelining:
            keywords.append("PIPELINING")
        if s.size:
            keywords.append(f"SIZE {s.max_message_size}" if s.max_message_size else "SIZE")
        if s.tls_available and not self.tls_active:
            keywords.append("STARTTLS")
        mechanisms = self.offered_mechanisms()
        if mechanisms:
            keywords.append("AUTH " + " ".join(mechanisms))
        if s.enhanced_status_codes:
            keywords.append("ENHANCEDSTATUSCODES")
        if s.eightbitmime:
            keywords.append("8BITMIME")
        if s.dsn:
            keywords.append("DSN")
        if s.smtputf8:
            keywords.append("SMTPUTF8")
        if s.chunking:
            keywords.append("CHUNKING")
            if s.binarymime and s.eightbitmime:
                keywords.append("BINARYMIME")
        if s.requiretls and self.tls_active:
            keywords.append("REQUIRETLS")  # RFC 8689 §2: never offered in the clear
        if s.mt_priority:
            keywords.append(f"MT-PRIORITY {s.mt_priority}")
        if s.rrvs:
            keywords.append("RRVS")
        if s.burl:
            keywords.append("BURL " + " ".join(s.burl))
        return keywords

    # -- the caller's side -------------------------------------------------------------------

    def greet(self, reply: Reply) -> bytes:
        """Send the opening reply: 220 to serve, 554/521 to refuse, 421 to close at once."""
        if self.state is not State.GREETING:
            raise ProtocolUsageError("the greeting is sent once, first")
        if reply.code == 220:
            self.state = State.NEED_HELLO
        elif reply.code == 421:
            self.state = State.CLOSED
        else:
            self.state = State.NO_SERVICE
            # RFC 7504 §3: after a 521 greeting, every command but QUIT gets 521 again (or the
            # connection is closed); 503 is RFC 5321 §3.1's answer after a 554 greeting.
            self._no_service_reply = reply if reply.code == 521 else None
        # RFC 2034 §3: the greeting carries no enhanced code, but a refusal may.
        return reply.format(enhanced=self._enhanced and reply.code != 220)

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means the client closed its side.

        Bytes that arrive between an accepted STARTTLS and ``tls_started`` are plaintext the
        client had no business sending (CVE-2011-0411): they are dropped, as is anything after
        the connection closed."""
        if not data:
            self._eof = True
        elif not self._eof and self.state not in (State.TLS_PENDING, State.CLOSED):
            self._buffer += data

    def next_event(self) -> Event | Sentinel:
        if self._waiting is not None or self.state in _WAITING_FOR_CALLER:
            return PAUSED
        if self._queued is not None:
            queued, self._queued = self._queued, None
            return self._deliver(queued)
        if self.state is State.CLOSED:
            return self._closed_event() or PAUSED
        event: Event | None
        if self._skip:
            event = self._skip_refused_chunk()
        elif self.state is State.DATA or self.state is State.BDAT:
            event = self._read_message()
        elif self.state is State.AUTH:
            if self._mechanism is None:  # waiting for send_auth_secret
                return PAUSED
            event = self._read_auth_response()
        else:
            event = self._read_command()
        if event is None:
            if self._eof:
                self._abandon()
                return self._closed_event() or PAUSED
            return NEED_DATA
        return self._deliver(event)

    def send(self, reply: Reply) -> bytes:
        """The reply to the event ``next_event`` returned last; returns the bytes to write."""
        event = self._waiting
        if event is None:
            raise ProtocolUsageError("no event is waiting for a reply")
        self._waiting = None
        self._advance(event, reply)
        if reply.code < 400:
            self._bad_commands = 0
        elif event.stage == "RCPT":
            # Counted apart (max_refused_recipients), except for the 5xx: a long list that
            # is greylisted is no error of the client's, a run of unknown mailboxes may be.
            self._refused_recipients += 1
            if reply.code >= 500:
                self._bad_commands += 1
        else:
            # A 4xx refuses as surely as a 5xx: a client looping on a MAIL answered 451 (an
            # SPF temperror, each a round of DNS lookups) is cut off like one looping on 501.
            self._bad_commands += 1
        if reply.code == 421:
            self._abandon()
            self.state = State.CLOSED
        return reply.format(enhanced=self._enhanced)

    def close(self, reply: Reply) -> bytes:
        """Close the session from the server's side, unasked: 421 on idle timeout (4.4.2), on
        shutdown (4.3.2) or after a failed TLS handshake (RFC 5321 §3.8). Whatever was waiting
        is void; returns the reply's bytes (with this session's enhanced-code choice), or
        nothing if the session is closed already."""
        if reply.code != 421:
            raise ProtocolUsageError("a server closes a session with a 421 reply")
        if self.state is State.CLOSED:
            return b""  # closed already (QUIT, 421, EOF): nothing more is said
        self._waiting = None
        self._queued = None
        self._abandon()
        self.state = State.CLOSED
        return reply.format(enhanced=self._enhanced)

    def tls_started(self) -> None:
        """The TLS handshake after STARTTLS succeeded: start over (RFC 3207 §4.2)."""
        if self.state is not State.TLS_PENDING:
            raise ProtocolUsageError("tls_started without an accepted STARTTLS")
        self.tls_active = True
        self._extensions = None
        self._buffer.clear()
        self._discarding_line = False
        self._reset_session()
        self.state = State.NEED_HELLO

    def send_auth_secret(self, secret: ScramSecret | None, *, refusal: Reply | None = None) -> None:
        """Answer an AuthSecretNeeded event: the user's SCRAM secret, or None if unknown; or
        ``refusal``, which ends the exchange at once (432 4.7.12: the user has no secret for
        this mechanism yet, RFC 4954 §6)."""
        mechanism = self._mechanism_waiting_for_secret
        if mechanism is None:
            raise ProtocolUsageError("no SASL exchange is waiting for a secret")
        self._mechanism_waiting_for_secret = None
        self._mechanism = mechanism
        if refusal is not None:
            self._queued = CommandRejected("AUTH", refusal)
            return
        self._queued = self._sasl_step(mechanism.provide_secret(secret))

    _mechanism_waiting_for_secret: ServerMechanism | None = None
    _no_service_reply: Reply | None = None

    # -- delivering events and moving on -------------------------------------------------------

    def _deliver(self, event: Event) -> Event:
        if event.needs_reply:
            self._waiting = event
        return event

    def _closed_event(self) -> Event | None:
        if self._closed_reported:
            return None
        self._closed_reported = True
        self.state = State.CLOSED
        return ConnectionClosed()

    def _abandon(self) -> None:
        self._reader = None
        self._stream = None
        self._mechanism = None
        self._buffer.clear()

    def _advance(self, event: Event, reply: Reply) -> None:
        """Move on as the reply to ``event`` says (the state table's transitions)."""
        step = _ADVANCE.get(type(event))
        if step is not None:
            step(self, event, reply)

    def _after_hello(self, event: Hello, reply: Reply) -> None:
        if _completed(reply):
            self._reset_transaction()
            self.hello_domain = event.domain
            self.esmtp = event.verb == "EHLO"
            self.state = State.READY

    def _after_mail(self, event: MailFrom, reply: Reply) -> None:
        if _completed(reply):
            self._bdat_failed = False
            self.transaction = Transaction(event.sender, event.parameters)
            self.state = State.MAIL

    def _after_rcpt(self, event: RcptTo, reply: Reply) -> None:
        assert self.transaction is not None
        if _completed(reply):
            self.transaction.recipients.append((event.recipient, event.parameters))
            self.state = State.RCPT
        else:
            self.transaction.refused_recipients += 1

    def _after_data(self, event: DataCommand, reply: Reply) -> None:
        if reply.code == 354:
            self._start_message(dot_stuffed=True)
            self.state = State.DATA
        elif self.transaction is not None:
            self.transaction.data_refused = True

    def _after_chunk(self, event: ChunkReceived, reply: Reply) -> None:
        if _completed(reply) and self.transaction is not None:
            self.transaction.chunks += 1
            self.state = State.RCPT
        else:
            self._end_transaction(failed_chunk=True)

    def _after_burl(self, event: BurlFetch, reply: Reply) -> None:
        if not _completed(reply):
            # RFC 4468 §3 (as BDAT, RFC 3030 §2): a refused BURL ends the message.
            self._end_transaction(failed_chunk=True)
        elif event.last:
            self._end_transaction(failed_chunk=False)
        elif self.transaction is not None:
            self.transaction.chunks += 1
            self.state = State.RCPT

    def _after_message(self, event: MessageComplete | MessageRefused, reply: Reply) -> None:
        if _completed(reply) and type(event) is MessageComplete:
            self._junk_commands = 0  # a message taken: the client is sending mail
            self._refused_recipients = 0
        self._end_transaction(failed_chunk=not _completed(reply) and event.via == "BDAT")

    def _after_reset(self, event: Reset, reply: Reply) -> None:
        if _completed(reply):
            self._reset_transaction()
            self.state = State.READY if self.hello_domain is not None else State.NEED_HELLO

    def _after_quit(self, event: Quit, reply: Reply) -> None:
        if reply.code == 221:
            self._abandon()
            self.state = State.CLOSED

    def _after_starttls(self, event: StartTLS, reply: Reply) -> None:
        if reply.code == 220:
            # CVE-2011-0411: whatever came after STARTTLS in the clear is never executed.
            self._buffer.clear()
            self.state = State.TLS_PENDING

    def _after_challenge(self, event: AuthChallenge, reply: Reply) -> None:
        if reply.code != 334:
            self._end_auth()

    def _after_authenticate(self, event: Authenticate, reply: Reply) -> None:
        if reply.code == 235:
            self.authenticated = event.credentials.username
        self._end_auth()

    def _after_rejected(self, event: CommandRejected, reply: Reply) -> None:
        if self.state is State.AUTH:
            self._end_auth()
        elif event.command == "RCPT" and self.transaction is not None:
            # Refused for syntax or a limit is refused all the same: DATA then gets
            # "no valid recipients" (RFC 5321 §3.3), as after a policy refusal.
            self.transaction.refused_recipients += 1

    def _end_auth(self) -> None:
        self._mechanism = None
        self._mechanism_waiting_for_secret = None
        if self.state is State.AUTH:
            self.state = State.READY

    def _reset_transaction(self) -> None:
        self.transaction = None
        self._reader = None
        self._stream = None  # BDAT chunks of an abandoned message are not carried over
        self._bdat_failed = False

    def _end_transaction(self, *, failed_chunk: bool) -> None:
        self.transaction = None
        self._reader = None
        self._stream = None
        self._bdat_failed = failed_chunk
        self.state = State.READY

    def _reset_session(self) -> None:
        self._reset_transaction()
        self.hello_domain = None
        self.esmtp = False
        self.authenticated = None
        self._bad_commands = 0

    # -- reading commands ----------------------------------------------------------------------

    def _take_line(self, limit: int) -> bytes | Sentinel | None:
        """The next line with its line ending (LF or CRLF), None if it is not complete, or
        _TOO_LONG for a line over ``limit`` octets (whose rest is dropped as it arrives)."""
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) > limit:
                # Drop it as it comes, so an endless line cannot fill memory.
                if not self._discarding_line:
                    self._long_line_head = bytes(buffer[:_HEAD])
                self._discarding_line = True
                buffer.clear()
            return None
        line = bytes(buffer[: end + 1])
        del buffer[: end + 1]
        if self._discarding_line:
            self._discarding_line = False
            return _TOO_LONG
        if len(line) > limit:
            self._long_line_head = line[:_HEAD]
            return _TOO_LONG
        return line

    def _read_command(self) -> Event | None:
        buffer = self._buffer
        if not buffer:
            return None
        end = buffer.find(b"\n")
        line: bytes | Sentinel | None
        if 0 <= end < self._max_read and not self._discarding_line:
            # The usual case, without the detours of _take_line: a whole line, not too long.
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]
        else:
            line = self._take_line(self._max_read)
            if line is None:
                return None
        self._last = (
            line
            if isinstance(line, bytes)
            else f"{printable_line(self._long_line_head)}... (too long)"
        )
        s = self.settings
        if self._bad_commands >= s.max_bad_commands:
            # Whatever the line is, even one too long to read or after a refusing greeting.
            return CommandRejected("", replies.TOO_MANY_ERRORS(hostname=s.hostname))
        if self.state is State.NO_SERVICE:
            return self._no_service(line)
        if not isinstance(line, bytes):
            if s.auth_mechanisms and self._long_line_head.upper().startswith(b"AUTH "):
                return CommandRejected("AUTH", replies.AUTH_LINE_TOO_LONG())
            return CommandRejected("", replies.LINE_TOO_LONG(limit=s.max_command_line))
        length = len(line)
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        # Integers, not b"\r": a bytes operand makes ``in`` raise and clear a TypeError first.
        if 0x0D in line or 0 in line:
            return CommandRejected("", replies.BAD_CHARACTERS())
        try:
            text = line.decode("ascii") if line.isascii() else line.decode("utf-8")
        except UnicodeDecodeError:
            return CommandRejected("", replies.BAD_CHARACTERS())
        word, _, argument = text.partition(" ")
        argument = argument.strip(" ")
        # Verbs are ASCII: str.upper would make "MAIL" of "maıl" and "STARTTLS" of "ſtarttls".
        verb = word.upper() if word.isascii() else word
        if verb == "AUTH" and " " in argument:
            self._last = f"{word} {argument.split()[0]} <redacted>"
        return self._command(verb, argument, length)

    def _no_service(self, line: bytes | Sentinel) -> Event:
        if isinstance(line, bytes) and line.strip().upper() == b"QUIT":
            return Quit(replies.BYE())
        return CommandRejected("", self._no_service_reply or replies.NO_SERVICE_COMMAND())

    def _command(self, verb: str, argument: str, length: int) -> Event | None:
        s = self.settings
        sequence = SEQUENCE.get(verb) if verb != "BURL" or s.burl else None
        if length > self._line_limits.get(verb, s.max_command_line):
            reply = (
                replies.AUTH_LINE_TOO_LONG()
                if verb == "AUTH"
                else replies.LINE_TOO_LONG(limit=s.max_command_line)
            )
            return CommandRejected(verb, reply)
        if sequence is None:
            if verb in HTTP_METHODS:
                return CommandRejected(verb, replies.HTTP_REQUEST(hostname=s.hostname))
            if verb == "LHLO":
                return CommandRejected(verb, replies.LMTP_HELLO_ON_SMTP())
            if verb in NOT_IMPLEMENTED:
                return CommandRejected(verb, replies.NOT_IMPLEMENTED())
            return CommandRejected(verb, replies.UNKNOWN_COMMAND())
        if verb in _JUNK and s.max_junk_commands:
            # A command that moves no mail: past the limit since the last message taken, the
            # session ends (a flood of NOOPs, or of EHLO and RSET, would otherwise hold the
            # server's attention for as long as the client likes).
            if self._junk_commands >= s.max_junk_commands:
                return CommandRejected(verb, replies.TOO_MANY_ERRORS(hostname=s.hostname))
            self._junk_commands += 1
        if s.require_tls and not self.tls_active and verb not in TLS_EXEMPT:
            return self._refuse_maybe_chunk(verb, argument, replies.TLS_REQUIRED())
        if s.require_auth and self.authenticated is None and verb not in AUTH_EXEMPT:
            return self._refuse_maybe_chunk(verb, argument, replies.AUTH_REQUIRED())
        handler = _HANDLERS[verb]
        return handler(self, argument, sequence.get(self.state))

    def _refuse_maybe_chunk(self, verb: str, argument: str, reply: Reply) -> Event | None:
        # A refused BDAT still sends its chunk: read it, then refuse (RFC 3030 §2).
        if verb == "BDAT":
            try:
                size, _ = parse_bdat(argument)
            except Refused:
                return CommandRejected(verb, reply)
            return self._skip_chunk(size, reply)
        return CommandRejected(verb, reply)

    # -- one method per command ------------------------------------------------------------------

    def _hello(self, verb: str, argument: str) -> Event:
        domain = argument.split(" ", 1)[0]
        if not domain:
            return CommandRejected(verb, replies.HELLO_SYNTAX(verb=verb))
        try:
            parse_domain(domain, utf8=False)
        except AddressError:
            # Many real clients say EHLO with a bare or odd host name (Windows names with "_");
            # RFC 5321 §4.1.4 says a server must not refuse on that ground. Only what cannot be
            # any name at all is refused.
            # Nor what is longer than any domain: it would only be echoed back.
            if not domain.isascii() or not domain.isprintable() or len(domain) > MAX_DOMAIN:
                return CommandRejected(verb, replies.HELLO_SYNTAX(verb=verb))
        hostname = self.settings.hostname
        if verb == "EHLO":
            # Not yet in force: the keywords describe the session as it will be after the reply.
            reply = replies.EHLO_OK(*self.ehlo_keywords(), hostname=hostname, client=domain)
        else:
            reply = replies.HELO_OK(hostname=hostname, client=domain)
        return Hello(verb, domain, reply)

    def _ehlo(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        return self._hello("EHLO", argument)

    def _helo(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        return self._hello("HELO", argument)

    def _mail(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        if refusal is not None:
            return CommandRejected("MAIL", refusal())
        try:
            sender, params = parse_mail(argument, self.extensions, self.settings.max_message_size)
        except Refused as refused:
            return CommandRejected("MAIL", refused.reply)
        return MailFrom(sender, params, replies.SENDER_OK())

    def _rcpt(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        s = self.settings
        if s.max_refused_recipients and self._refused_recipients >= s.max_refused_recipients:
            # A client that goes on sending RCPTs whatever the answer (past the recipient
            # limit, to addresses that do not exist, or greylisted) is answered one refusal at
            # a time, and each may cost a lookup, for as long as it lasts: it is cut off.
            return CommandRejected("RCPT", replies.TOO_MANY_ERRORS(hostname=s.hostname))
        if refusal is not None:
            return CommandRejected("RCPT", refusal())
        transaction = self.transaction
        assert transaction is not None
        try:
            recipient, params = parse_rcpt(
                argument, self.extensions, transaction.parameters.smtputf8
            )
        except Refused as refused:
            return CommandRejected("RCPT", refused.reply)
        if len(transaction.recipients) >= s.max_recipients:
            return CommandRejected("RCPT", replies.TOO_MANY_RECIPIENTS())
        return RcptTo(recipient, params, replies.RECIPIENT_OK())

    def _no_recipients(self) -> Reply:
        t = self.transaction
        if t is not None and not t.recipients and t.refused_recipients:
            return replies.NO_VALID_RECIPIENTS()
        return replies.NEED_RCPT()

    def _data(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        if argument:
            return CommandRejected("DATA", replies.NO_ARGUMENTS_ALLOWED(verb="DATA"))
        if refusal is not None:
            return CommandRejected("DATA", self._no_recipients())
        transaction = self.transaction
        assert transaction is not None
        if transaction.chunks:
            return CommandRejected("DATA", replies.DATA_AFTER_BDAT())
        if transaction.parameters.body == "BINARYMIME":
            return CommandRejected("DATA", replies.DATA_NOT_WITH_BINARYMIME())
        return DataCommand(replies.START_MAIL_INPUT())

    def _bdat(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        s = self.settings
        try:
            size, last = parse_bdat(argument)
        except Refused as refused:
            reply = refused.reply if s.chunking else replies.NOT_IMPLEMENTED()
            return CommandRejected("BDAT", reply)
        if size == 0 and not last and s.max_junk_commands:
            # An empty chunk that does not end the message moves no mail: a NOOP by another
            # name, counted with them (else answered 250 for as long as the client likes).
            if self._junk_commands >= s.max_junk_commands:
                return CommandRejected("BDAT", replies.TOO_MANY_ERRORS(hostname=s.hostname))
            self._junk_commands += 1
        if not s.chunking:
            # Not offered, but a chunk that can be measured is dropped all the same: its
            # octets are message content and must never be read as commands.
            return self._skip_chunk(size, replies.NOT_IMPLEMENTED())
        if not self.esmtp:
            return self._skip_chunk(size, replies.EHLO_FIRST())
        if refusal is not None:
            if self._bdat_failed:
                reply = replies.BDAT_AFTER_FAILED_CHUNK()
            else:
                reply = self._no_recipients()
            return self._skip_chunk(size, reply)
        transaction = self.transaction
        assert transaction is not None
        if transaction.data_refused:
            return self._skip_chunk(size, replies.BDAT_AFTER_DATA())
        if self._stream is None:
            self._start_message(dot_stuffed=False)
        assert self._stream is not None
        self._reader = ChunkReader(size, last, self._stream)
        self.state = State.BDAT
        return self._read_message()

    def _burl(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        try:
            url, last = parse_burl(argument)
        except Refused as refused:
            return CommandRejected("BURL", refused.reply)
        self._last = f"BURL {redact_burl(url)}{' LAST' if last else ''}"
        if not self.esmtp:
            return CommandRejected("BURL", replies.EHLO_FIRST())
        if refusal is not None:
            if self._bdat_failed:
                return CommandRejected("BURL", replies.BDAT_AFTER_FAILED_CHUNK())
            return CommandRejected("BURL", self._no_recipients())
        transaction = self.transaction
        assert transaction is not None
        if transaction.data_refused:
            return CommandRejected("BURL", replies.BDAT_AFTER_DATA())
        return BurlFetch(url, last)

    def _rset(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        if argument:
            return CommandRejected("RSET", replies.NO_ARGUMENTS_ALLOWED(verb="RSET"))
        return Reset(replies.RESET_OK())

    def _noop(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        return Noop(replies.NOOP_OK())

    def _quit(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        if argument:
            return CommandRejected("QUIT", replies.NO_ARGUMENTS_ALLOWED(verb="QUIT"))
        return Quit(replies.BYE())

    def _help(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        return Help(argument, replies.HELP_OK(commands=" ".join(self.help_commands())))

    def help_commands(self) -> list[str]:
        """The verbs HELP lists: those of RFC 5321 and of the extensions this session offers
        now (no STARTTLS once TLS is on, no AUTH where no mechanism is offered)."""
        s = self.settings
        verbs = ["HELO", "EHLO", "MAIL", "RCPT", "DATA"]
        if s.chunking:
            verbs.append("BDAT")
        verbs += ["RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP"]
        if s.tls_available and not self.tls_active:
            verbs.append("STARTTLS")
        if self.offered_mechanisms():
            verbs.append("AUTH")
        if s.burl:
            verbs.append("BURL")
        return verbs

    def _vrfy(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        if not argument:
            return CommandRejected(
                "VRFY", replies.ARGUMENT_REQUIRED(verb="VRFY", argument="user-or-mailbox")
            )
        return Verify(argument, replies.CANNOT_VERIFY())

    def _expn(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        if not argument:
            return CommandRejected(
                "EXPN", replies.ARGUMENT_REQUIRED(verb="EXPN", argument="mailing-list")
            )
        return Expand(argument, replies.CANNOT_EXPAND())

    def _starttls(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        if argument:
            return CommandRejected("STARTTLS", replies.NO_ARGUMENTS_ALLOWED(verb="STARTTLS"))
        if self.tls_active:
            return CommandRejected("STARTTLS", replies.TLS_ALREADY_ACTIVE())
        if not self.settings.tls_available:
            return CommandRejected("STARTTLS", replies.TLS_NOT_AVAILABLE())
        if refusal is not None:
            return CommandRejected("STARTTLS", refusal())
        if self.hello_domain is not None and not self.esmtp:
            return CommandRejected("STARTTLS", replies.EHLO_FIRST())
        return StartTLS(replies.READY_TO_START_TLS())

    def _auth(self, argument: str, refusal: ReplyTemplate | None) -> Event | None:
        if not self.settings.auth_mechanisms:
            return CommandRejected("AUTH", replies.AUTH_NOT_ENABLED())
        if refusal is not None:
            return CommandRejected("AUTH", refusal())
        if not self.esmtp:
            return CommandRejected("AUTH", replies.EHLO_FIRST())
        if self.authenticated is not None:
            return CommandRejected("AUTH", replies.AUTH_ALREADY_DONE())
        try:
            name, initial_text = parse_auth(argument)
        except Refused as refused:
            return CommandRejected("AUTH", refused.reply)
        if name not in self.settings.auth_mechanisms:
            return CommandRejected("AUTH", replies.AUTH_MECHANISM_UNKNOWN())
        if name not in self.offered_mechanisms():
            return CommandRejected("AUTH", replies.AUTH_ENCRYPTION_REQUIRED())
        mechanism = new_mechanism(name, hostname=self.settings.hostname, nonce=self.settings.nonce)
        initial = None
        if initial_text is not None:
            try:
                initial = decode_sasl(initial_text)
            except Refused as refused:
                return CommandRejected("AUTH", refused.reply)
        self._mechanism = mechanism
        self._mechanism_name = name
        self.state = State.AUTH
        return self._sasl_step(mechanism.start(initial))

    # -- SASL ----------------------------------------------------------------------------------

    def _read_auth_response(self) -> Event | None:
        line = self._take_line(self.settings.max_auth_line)
        if line is None:
            return None
        # A SASL response holds secrets: transcripts show only that one came.
        self._last = "*" if isinstance(line, bytes) and line.strip() == b"*" else "<redacted>"
        if not isinstance(line, bytes):
            return CommandRejected("AUTH", replies.AUTH_LINE_TOO_LONG())
        assert self._mechanism is not None
        response = line.strip()
        if response == b"*":
            return CommandRejected("AUTH", replies.AUTH_CANCELLED())
        try:
            data = decode_sasl(response.decode("ascii"))
        except (Refused, UnicodeDecodeError):
            return CommandRejected("AUTH", replies.AUTH_BAD_BASE64())
        return self._sasl_step(self._mechanism.respond(data))

    def _sasl_step(self, step: Step) -> Event:
        name = self._mechanism_name
        if isinstance(step, Challenge):
            text = base64.b64encode(step.data).decode("ascii")
            return AuthChallenge(name, replies.AUTH_CHALLENGE(challenge=text))
        if isinstance(step, NeedSecret):
            self._mechanism_waiting_for_secret = self._mechanism
            self._mechanism = None
            return AuthSecretNeeded(name, step.username)
        if isinstance(step, Finished):
            return Authenticate(name, step.credentials)
        assert isinstance(step, Failed)
        return CommandRejected("AUTH", step.reply)

    # -- message data --------------------------------------------------------------------------

    def _start_message(self, *, dot_stuffed: bool) -> None:
        s = self.settings
        transaction = self.transaction
        binary = transaction is not None and transaction.parameters.body == "BINARYMIME"
        self._stream = MessageStream(
            max_size=s.max_message_size,
            max_line=s.max_text_line,
            check_lines=not binary,
            check_length=s.long_lines == "reject",
            normalize=s.bare_line_endings == "normalize",
            max_header=s.max_header_section,
        )
        if dot_stuffed:
            self._reader = DotReader(self._stream)

    def _read_message(self) -> Event | None:
        reader = self._reader
        assert reader is not None and self._stream is not None
        if not self._buffer and not (isinstance(reader, ChunkReader) and reader.remaining == 0):
            return None
        result = reader.read(self._buffer)
        if result.consumed:
            del self._buffer[: result.consumed]
        if not result.done:
            return MessageData(result.data) if result.data else None
        if result.data:
            # Hand out the last piece first; the end comes with the next call.
            self._queued = self._message_end(reader)
            return MessageData(result.data)
        return self._message_end(reader)

    def _message_end(self, reader: DotReader | ChunkReader) -> Event:
        stream = self._stream
        assert stream is not None
        via = "DATA" if isinstance(reader, DotReader) else "BDAT"
        self._reader = None
        last = isinstance(reader, DotReader) or reader.last
        refusal = self._content_refusal(stream)
        if refusal is not None and (last or stream.over_limit):
            return MessageRefused(stream.size, via, refusal)
        if not last:
            assert isinstance(reader, ChunkReader)
            return ChunkReceived(reader.size, replies.CHUNK_OK(size=reader.size))
        return MessageComplete(stream.size, via)

    def _content_refusal(self, stream: MessageStream) -> Reply | None:
        if stream.over_limit:
            return replies.MESSAGE_TOO_BIG()
        if stream.bare_line_ending and self.settings.bare_line_endings == "reject":
            return replies.BARE_LINE_ENDING()
        if stream.nul:
            return replies.NUL_IN_MESSAGE()
        if stream.line_too_long:
            return replies.TEXT_LINE_TOO_LONG(limit=self.settings.max_text_line)
        # Last: a header too big is often one line too long, which says more.
        if stream.header_too_big:
            return replies.HEADER_TOO_BIG(limit=self.settings.max_header_section)
        return None

    def _skip_chunk(self, size: int, reply: Reply) -> Event | None:
        self._skip = size
        self._skip_reply = reply
        return self._skip_refused_chunk()

    def _skip_refused_chunk(self) -> Event | None:
        take = min(self._skip, len(self._buffer))
        del self._buffer[:take]
        self._skip -= take
        if self._skip:
            return None
        reply, self._skip_reply = self._skip_reply, None
        assert reply is not None
        return CommandRejected("BDAT", reply)


_TOO_LONG: Final = Sentinel("TOO_LONG")
_WAITING_FOR_CALLER = frozenset({State.GREETING, State.TLS_PENDING})
_TRANSCRIPT_LIMIT = 512


def printable_line(line: bytes) -> str:
    """A command line as a transcript shows it: line ending gone, controls escaped."""
    text = line.rstrip(b"\r\n").decode("utf-8", errors="backslashreplace")
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) > _TRANSCRIPT_LIMIT:
        text = f"{text[:_TRANSCRIPT_LIMIT]}... ({len(line)} octets)"
    return text


_HEAD = 8  # octets of an overlong line kept to tell its verb

_ADVANCE: dict[type[Event], Callable[[ServerConnection, Any, Reply], None]] = {
    Hello: ServerConnection._after_hello,
    MailFrom: ServerConnection._after_mail,
    RcptTo: ServerConnection._after_rcpt,
    DataCommand: ServerConnection._after_data,
    ChunkReceived: ServerConnection._after_chunk,
    BurlFetch: ServerConnection._after_burl,
    MessageComplete: ServerConnection._after_message,
    MessageRefused: ServerConnection._after_message,
    Reset: ServerConnection._after_reset,
    Quit: ServerConnection._after_quit,
    StartTLS: ServerConnection._after_starttls,
    AuthChallenge: ServerConnection._after_challenge,
    Authenticate: ServerConnection._after_authenticate,
    CommandRejected: ServerConnection._after_rejected,
}

# Commands that move no mail, what max_junk_commands counts: Postfix's junk commands (NOOP,
# RSET, VRFY) with EXPN and HELP, and sendmail's counted HELO and EHLO.
_JUNK: Final = frozenset({"NOOP", "RSET", "VRFY", "EXPN", "HELP", "HELO", "EHLO"})

_HANDLERS = {
    "EHLO": ServerConnection._ehlo,
    "HELO": ServerConnection._helo,
    "MAIL": ServerConnection._mail,
    "RCPT": ServerConnection._rcpt,
    "DATA": ServerConnection._data,
    "BDAT": ServerConnection._bdat,
    "BURL": ServerConnection._burl,
    "RSET": ServerConnection._rset,
    "NOOP": ServerConnection._noop,
    "QUIT": ServerConnection._quit,
    "HELP": ServerConnection._help,
    "VRFY": ServerConnection._vrfy,
    "EXPN": ServerConnection._expn,
    "STARTTLS": ServerConnection._starttls,
    "AUTH": ServerConnection._auth,
}
