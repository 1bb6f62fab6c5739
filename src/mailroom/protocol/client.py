"""The client side of SMTP as a pure state machine: it makes command bytes and eats reply bytes.
No sockets, no asyncio, no clock; the asyncio client (:mod:`mailroom.client`) and the outbound
queue drive it.

How to drive it (the shape of h2: commands queue bytes, replies make events)::

    conn = ClientConnection(local_hostname="client.example.test")
    while True:
        conn.receive_data(await read())         # b"" when the server closed
        while (event := conn.next_event()) is not NEED_DATA:
            handle(event)                       # GreetingReceived, HelloCompleted, ...
        write(conn.data_to_send())

and in ``handle`` call the next command: ``ehlo()``, ``starttls()`` (then ``tls_started()``
after the handshake), ``authenticate()``, ``send_mail()``, ``noop()``, ``rset()``, ``quit()``.
A command may only be given when :attr:`ClientConnection.state` is ``READY`` (``ehlo`` also in
``CONNECTED``), one at a time; a mail transaction is one command however many round trips it
takes, and ends with one :class:`TransactionCompleted`.

What it does on its own, as RFC 5321 and its extensions ask:

- EHLO refused with 5xx: HELO instead (§3.2); extensions are parsed from the EHLO reply.
- MAIL, every RCPT and DATA are sent in one write when the server offers PIPELINING
  (RFC 2920); one at a time otherwise. A 354 after every RCPT was refused gets a lone ``.``.
- The message goes with BDAT (RFC 3030) when CHUNKING is offered, else with DATA, dot-stuffed;
  either way with CRLF line endings only (see :mod:`mailroom.protocol.client_body`).
- SIZE (RFC 1870): a message larger than the server's limit is refused here, before MAIL.
- BODY=8BITMIME when the message has 8-bit octets and the server takes them; SMTPUTF8 when an
  address is not ASCII (refused here when the server does not offer it); DSN's RET, ENVID,
  NOTIFY and ORCPT when the server offers DSN (left out otherwise, RFC 3461 §4).
- RSET after a transaction that MAIL opened but no message closed, so the next one starts clean.
- 421 at any point: the server is closing; the transaction ends with that reply.
- SASL: challenges answered by a :class:`~mailroom.protocol.client_sasl.ClientMechanism`;
  a challenge it cannot answer is cancelled with ``*``; for SCRAM a 235 is only believed after
  the server's signature was checked.
- The server closing in the middle of a transaction: :class:`TransactionInterrupted` with the
  recipients whose fate is already known, then :class:`ServerClosed`.

LMTP (RFC 2033), with ``ClientConnection(lmtp=True)``: ``ehlo()`` says LHLO, and a refused LHLO
fails (there is no HELO in LMTP, §4.1). After the end of data — and after BDAT LAST when
CHUNKING is used — the server answers once for each recipient whose RCPT it accepted, in the
order of those RCPTs, and each reply settles its recipient alone (§4.2): one may be delivered,
the next deferred, the third refused. (A BDAT LAST after an earlier chunk was refused gets one
reply: the message is refused as a whole, as RFC 3030 §2 has it.)
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from mailroom.codes import Reply, ReplyError
from mailroom.codes.reply import split_reply_lines
from mailroom.protocol.client_body import canonical_message, dot_stuff, has_8bit, split_chunks
from mailroom.protocol.client_envelope import (
    MailOptions,
    Recipient,
    check_address,
    encode_orcpt,
    encode_xtext,
)
from mailroom.protocol.client_errors import (
    ClientError,
    ExtensionNotOffered,
    InvalidAddress,
    LocalProtocolError,
    LocalRefusal,
    MessageTooLarge,
    RemoteProtocolError,
    SMTPUTF8NotOffered,
)
from mailroom.protocol.client_events import (
    AuthCompleted,
    ClientEvent,
    CommandCompleted,
    CommandFailed,
    GreetingReceived,
    HelloCompleted,
    RecipientResult,
    ServerClosed,
    ServiceClosing,
    TLSReady,
    TraceLine,
    TransactionCompleted,
    TransactionInterrupted,
    TransactionResult,
)
from mailroom.protocol.client_sasl import (
    PLAINTEXT_MECHANISMS,
    ClientMechanism,
    SASLError,
    XOAuth2,
)
from mailroom.protocol.client_transaction import PendingTransaction
from mailroom.protocol.extensions import Extensions
from mailroom.protocol.sentinels import NEED_DATA, Sentinel
from mailroom.protocol.syntax import AddressError, parse_domain

__all__ = [
    "NEED_DATA",
    "AuthCompleted",
    "ClientConnection",
    "ClientError",
    "ClientEvent",
    "ClientState",
    "CommandCompleted",
    "CommandFailed",
    "ExtensionNotOffered",
    "Extensions",
    "GreetingReceived",
    "HelloCompleted",
    "InvalidAddress",
    "LocalProtocolError",
    "LocalRefusal",
    "MailOptions",
    "MessageTooLarge",
    "Recipient",
    "RecipientResult",
    "RemoteProtocolError",
    "SMTPUTF8NotOffered",
    "ServerClosed",
    "ServiceClosing",
    "TLSReady",
    "TraceLine",
    "TransactionCompleted",
    "TransactionInterrupted",
    "TransactionResult",
    "iter_events",
]

MAX_REPLY_LINE = 64 * 1024  # RFC 5321 says 512; be lenient, but not unbounded
MAX_REPLY_LINES = 1000
# Octets of one reply, all its lines: a next hop's reply is kept (the queue's last reply, a
# delivery report's diagnostic), so a server answering 1,000 lines of 64 KiB must not make
# one of 64 MB. A reply with 128 lines of RFC 5321's 512 octets fits.
MAX_REPLY_SIZE = 64 * 1024


class ClientState(enum.Enum):
    GREETING = "greeting"  # waiting for the server's first reply
    CONNECTED = "connected"  # greeted (or TLS just started): EHLO (LHLO) is next
    READY = "ready"  # EHLO (LHLO) done, nothing outstanding: any command may be given
    BUSY = "busy"  # a command (or a whole transaction) waits for replies
    TLS_HANDSHAKE = "tls-handshake"  # STARTTLS accepted: handshake, then tls_started()
    CLOSING = "closing"  # QUIT sent or 421 received: the server will close
    CLOSED = "closed"


def _check_hello_name(name: str) -> str:
    try:
        parse_domain(name, utf8=False)
    except AddressError:
        raise ValueError(f"EHLO name must be a domain or an address literal: {name!r}") from None
    return name


@dataclass
class _Expected:
    """A reply the client waits for, and what to do with it."""

    command: str
    handle: Callable[[Reply], None]
    final: bool = False  # the reply says whether the message was taken (see awaiting_final)


class ClientConnection:
    """One SMTP (or, with ``lmtp``, LMTP) session seen from the client. See the module
    docstring for how to drive it."""

    def __init__(
        self,
        *,
        local_hostname: str,
        tls: bool = False,
        lmtp: bool = False,
        trace: Callable[[TraceLine], None] | None = None,
    ) -> None:
        _check_hello_name(local_hostname)
        self.local_hostname = local_hostname
        self.tls = tls
        self.lmtp = lmtp
        self.state = ClientState.GREETING
        self.extensions = Extensions()
        self.esmtp = False
        self.authenticated: str | None = None  # the mechanism, once AUTH succeeded
        self.greeting: Reply | None = None
        self._trace = trace
        self._in = bytearray()
        # The reply being read, as far as it has come: its complete lines, where the next one
        # starts in ``_in``, how far ``_in`` was searched for its end, and the octets so far.
        # Each octet is searched once: searching the buffer from its start each time data came
        # took time with the square of a long reply (60 MB in 16 KiB pieces: 145 s).
        self._reply_lines: list[bytes] = []
        self._line_start = 0
        self._searched = 0
        self._reply_size = 0
        self.replies_read = 0  # complete replies read: progress, for a caller's timeout
        self._out = bytearray()
        self._events: deque[ClientEvent] = deque()
        self._expected: deque[_Expected] = deque([_Expected("GREETING", self._on_greeting)])
        self._eof = False
        self._closed_reported = False
        self._txn: PendingTransaction | None = None
        self._burl: str | None = None  # the URL of the transaction being sent with BURL
        self._mechanism: ClientMechanism | None = None

    # -- bytes in, events out, bytes out ---------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the server; ``b""`` means it closed the connection."""
        if self.state is ClientState.TLS_HANDSHAKE and data:
            # RFC 3207 §4.2 and the lesson of CVE-2011-0411: nothing may come in the clear
            # between the 220 to STARTTLS and the handshake.
            raise RemoteProtocolError("the server sent plaintext after its 220 to STARTTLS")
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("receive_data after the end of the connection")
        self._in += data

    def next_event(self) -> ClientEvent | Sentinel:
        """The next event, or ``NEED_DATA`` when more bytes from the server are needed.
        Raises :class:`RemoteProtocolError` when the server breaks the protocol."""
        while not self._events:
            reply = self._next_reply()
            if reply is None:
                if self._eof and not self._closed_reported:
                    self._closed_reported = True
                    expected = self.state is ClientState.CLOSING
                    self.state = ClientState.CLOSED
                    self._expected.clear()
                    known = self.settled_so_far()
                    self._txn = None
                    if known is not None:
                        self._events.append(TransactionInterrupted(known))
                    self._events.append(ServerClosed(expected))
                    continue
                return NEED_DATA
            self.replies_read += 1
            self._trace_line("server", str(reply), reply)
            self._dispatch(reply)
        return self._events.popleft()

    def settled_so_far(self) -> TransactionResult | None:
        """The open transaction's recipients whose fate the server has told so far (refused at
        MAIL or RCPT; in LMTP, answered after the message), for a caller that stops waiting
        for the rest; None when no transaction is open or MAIL is unanswered."""
        txn = self._txn
        if txn is None or txn.mail_reply is None:
            return None
        return txn.result(txn.settled())

    @property
    def awaiting_final(self) -> bool:
        """Whether the next reply is one that says if the message was taken: after the end of
        data, BDAT LAST or BURL LAST (in LMTP, each recipient's). RFC 5321 §4.5.3.2.6 gives it
        10 minutes, longer than any other, because the server is delivering the message by
        then: a client that gives up on it sends the message again later, and it arrives
        twice. A driver with a clock picks its timeout by this."""
        return bool(self._expected) and self._expected[0].final

    def data_to_send(self) -> bytes:
        """The bytes to write to the server now (possibly empty)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- commands ----------------------------------------------------------------------------

    def ehlo(self, hostname: str | None = None) -> None:
        """EHLO; HELO follows by itself if EHLO is refused with 5xx. In LMTP, LHLO (and
        nothing follows a refusal). Ends in :class:`HelloCompleted` or :class:`CommandFailed`."""
        self._require(ClientState.CONNECTED, ClientState.READY)
        name = _check_hello_name(hostname or self.local_hostname)
        verb = "LHLO" if self.lmtp else "EHLO"
        self._command(f"{verb} {name}", verb, lambda reply: self._on_ehlo(reply, name))

    def helo(self, hostname: str | None = None) -> None:
        self._require(ClientState.CONNECTED, ClientState.READY)
        if self.lmtp:
            raise LocalProtocolError("LMTP has no HELO; use ehlo(), which says LHLO")
        name = _check_hello_name(hostname or self.local_hostname)
        self._command(f"HELO {name}", "HELO", self._on_helo)

    def starttls(self) -> None:
        """STARTTLS (RFC 3207). Ends in :class:`TLSReady` or :class:`CommandFailed`."""
        self._require(ClientState.READY)
        if self.tls:
            raise LocalProtocolError("TLS is already active")
        if not self.extensions.starttls:
            raise ExtensionNotOffered("STARTTLS")
        self._command("STARTTLS", "STARTTLS", self._on_starttls)

    def tls_started(self) -> None:
        """The TLS handshake after :class:`TLSReady` succeeded: EHLO again (RFC 3207 §4.2)."""
        self._require(ClientState.TLS_HANDSHAKE)
        self.tls = True
        self.extensions = Extensions()
        self.esmtp = False
        self.state = ClientState.CONNECTED

    def authenticate(self, mechanism: ClientMechanism, *, allow_plaintext: bool = False) -> None:
        """AUTH with ``mechanism`` (RFC 4954). Ends in :class:`AuthCompleted` or
        :class:`CommandFailed`. PLAIN, LOGIN and XOAUTH2 are refused without TLS unless
        ``allow_plaintext``, since they would show the secret to anyone on the path."""
        self._require(ClientState.READY)
        if self.authenticated:
            raise LocalProtocolError("already authenticated")
        if mechanism.name not in self.extensions.auth_mechanisms:
            raise ExtensionNotOffered("AUTH", f"the server does not offer AUTH {mechanism.name}")
        if mechanism.name in PLAINTEXT_MECHANISMS and not self.tls and not allow_plaintext:
            raise LocalProtocolError(
                f"AUTH {mechanism.name} would send the secret in the clear; use TLS "
                "(or allow_plaintext=True)"
            )
        self._mechanism = mechanism
        initial = mechanism.initial_response()
        line = f"AUTH {mechanism.name}"
        if initial is not None:
            # RFC 4954 §4: an empty initial response is sent as "=".
            encoded = base64.b64encode(initial).decode("ascii") or "="
            self._write(f"{line} {encoded}\r\n".encode("ascii"))
            self._trace_line("client", f"{line} ********")
        else:
            self._write(f"{line}\r\n".encode("ascii"))
            self._trace_line("client", line)
        self._expect("AUTH", self._on_auth)
        self.state = ClientState.BUSY

    def send_mail(
        self,
        sender: str,
        recipients: Sequence[str | Recipient],
        message: bytes,
        options: MailOptions | None = None,
    ) -> None:
        """One mail transaction: MAIL, RCPT for each recipient, then the message. Ends in one
        :class:`TransactionCompleted`, whatever the server says.

        ``sender`` is the bare address (``""`` for the null reverse-path of a bounce);
        ``message`` the RFC 5322 message, with any line endings. Raises before anything is
        sent: :class:`MessageTooLarge`, :class:`SMTPUTF8NotOffered` (both with a ``reply``),
        :class:`InvalidAddress`, :class:`ExtensionNotOffered`.
        """
        self._require(ClientState.READY)
        options = options or MailOptions()
        rcpts = tuple(r if isinstance(r, Recipient) else Recipient(r) for r in recipients)
        if not rcpts:
            raise LocalProtocolError("a message needs at least one recipient")
        check_address(sender, allow_null=True)
        for rcpt in rcpts:
            check_address(rcpt.address, allow_null=False)
        ext = self.extensions

        utf8 = options.smtputf8
        if utf8 is None:
            utf8 = not sender.isascii() or not all(r.address.isascii() for r in rcpts)
        if utf8 and not ext.smtputf8:
            culprit = next(
                (a for a in (sender, *(r.address for r in rcpts)) if not a.isascii()), sender
            )
            raise SMTPUTF8NotOffered(culprit)

        if options.burl is not None:
            scheme = options.burl.partition(":")[0].lower()
            if scheme not in (ext.burl or ()):
                raise ExtensionNotOffered("BURL", f"the server does not offer BURL {scheme}")
            if "\r" in options.burl or "\n" in options.burl or " " in options.burl:
                raise InvalidAddress(f"not a URL for BURL: {options.burl!r}")
            message = b""
        body = options.body
        if body == "BINARYMIME":
            if not (ext.chunking and ext.binarymime):
                raise ExtensionNotOffered("BINARYMIME", "BINARYMIME needs CHUNKING and BINARYMIME")
            payload = bytes(message)
        else:
            payload = canonical_message(message)
        if body == "8BITMIME" and not ext.eightbitmime:
            raise ExtensionNotOffered("8BITMIME")
        if body is None and ext.eightbitmime and has_8bit(payload):
            body = "8BITMIME"
        if options.chunking is True and not ext.chunking:
            raise ExtensionNotOffered("CHUNKING")
        use_bdat = body == "BINARYMIME" or (options.chunking is not False and ext.chunking)

        limit = ext.size
        if limit and len(payload) > limit:
            raise MessageTooLarge(len(payload), limit)

        params: list[str] = []
        if ext.size is not None and options.declare_size and options.burl is None:
            params.append(f"SIZE={len(payload)}")
        if body is not None and (ext.eightbitmime or body == "BINARYMIME"):
            params.append(f"BODY={body}")
        if utf8:
            params.append("SMTPUTF8")
        if options.requiretls:
            if not (self.tls and ext.requiretls):
                raise ExtensionNotOffered("REQUIRETLS", "REQUIRETLS needs TLS and the keyword")
            params.append("REQUIRETLS")
        if ext.dsn:
            if options.ret:
                params.append(f"RET={options.ret}")
            if options.envid:
                params.append(f"ENVID={encode_xtext(options.envid)}")
        if options.mt_priority is not None and ext.mt_priority is not None:
            params.append(f"MT-PRIORITY={options.mt_priority}")
        mail_command = " ".join([f"MAIL FROM:<{sender}>", *params])
        rcpt_commands = []
        for rcpt in rcpts:
            words = [f"RCPT TO:<{rcpt.address}>"]
            if ext.dsn and rcpt.notify:
                words.append("NOTIFY=" + ",".join(rcpt.notify))
            if ext.dsn and rcpt.orcpt:
                words.append("ORCPT=" + encode_orcpt(rcpt.orcpt, rcpt.orcpt_type))
            if ext.rrvs and rcpt.rrvs:
                words.append(f"RRVS={rcpt.rrvs}")
            rcpt_commands.append(" ".join(words))

        txn = PendingTransaction(
            sender=sender,
            recipients=rcpts,
            payload=payload,
            method="BURL" if options.burl is not None else "BDAT" if use_bdat else "DATA",
            pipelined=ext.pipelining,
            chunk_size=options.chunk_size,
            mail_command=mail_command,
            rcpt_commands=rcpt_commands,
            lmtp=self.lmtp,
        )
        self._txn = txn
        self.state = ClientState.BUSY
        self._command(mail_command, "MAIL", self._on_mail)
        self._burl = options.burl
        if txn.pipelined:
            for command in rcpt_commands:
                self._command(command, "RCPT", self._on_rcpt)
            if not use_bdat and txn.method != "BURL":
                # RFC 2920 §3.1: DATA may end a pipelined group.
                self._command("DATA", "DATA", self._on_data)

    def noop(self) -> None:
        self._require(ClientState.READY)
        self._command("NOOP", "NOOP", lambda reply: self._on_simple("NOOP", reply))

    def rset(self) -> None:
        self._require(ClientState.READY)
        self._command("RSET", "RSET", lambda reply: self._on_simple("RSET", reply))

    def quit(self) -> None:
        """QUIT (after a 554 greeting it is the only way on). Ends in :class:`CommandCompleted`,
        then :class:`ServerClosed` when the server has closed."""
        self._require(ClientState.CONNECTED, ClientState.READY)
        self._command("QUIT", "QUIT", self._on_quit)
        self.state = ClientState.CLOSING

    # -- helpers -----------------------------------------------------------------------------

    def _require(self, *states: ClientState) -> None:
        if self.state not in states:
            allowed = " or ".join(s.value for s in states)
            raise LocalProtocolError(f"state is {self.state.value}, this needs {allowed}")

    def _write(self, data: bytes) -> None:
        self._out += data

    def _expect(
        self, command: str, handle: Callable[[Reply], None], *, final: bool = False
    ) -> None:
        self._expected.append(_Expected(command, handle, final))

    def _command(
        self, line: str, command: str, handle: Callable[[Reply], None], *, final: bool = False
    ) -> None:
        if "\r" in line or "\n" in line:
            raise LocalProtocolError(f"CR or LF in a command: {line!r}")
        self._write(line.encode("utf-8") + b"\r\n")
        self._trace_line("client", line)
        self._expect(command, handle, final=final)
        if self.state is not ClientState.CLOSING:
            self.state = ClientState.BUSY

    def _trace_line(
        self, direction: Literal["client", "data", "server"], text: str, reply: Reply | None = None
    ) -> None:
        if self._trace is not None:
            self._trace(TraceLine(direction, text, reply))

    def _emit(self, event: ClientEvent) -> None:
        self._events.append(event)

    def _idle(self) -> None:
        if self.state is ClientState.BUSY:
            self.state = ClientState.READY

    # -- reading replies ---------------------------------------------------------------------

    def _next_reply(self) -> Reply | None:
        """Cut one complete reply off the input buffer, or None when it is not all here."""
        lines = self._reply_lines
        start = self._line_start
        while True:
            end = self._in.find(b"\n", self._searched)
            if end < 0:
                self._searched = len(self._in)
                if len(self._in) - start > MAX_REPLY_LINE:
                    raise RemoteProtocolError("reply line too long")
                return None
            line = bytes(self._in[start:end]).rstrip(b"\r")
            if len(line) > MAX_REPLY_LINE:
                raise RemoteProtocolError("reply line too long")
            lines.append(line)
            self._reply_size += len(line) + 2
            start = self._line_start = self._searched = end + 1
            if len(lines) > MAX_REPLY_LINES:
                raise RemoteProtocolError("reply has too many lines")
            if self._reply_size > MAX_REPLY_SIZE:
                raise RemoteProtocolError(f"reply longer than {MAX_REPLY_SIZE} octets")
            if line[3:4] != b"-":
                break
        del self._in[:start]
        self._reply_lines = []
        self._line_start = self._searched = self._reply_size = 0
        return _parse_reply(b"\r\n".join(lines))

    def _dispatch(self, reply: Reply) -> None:
        if not self._expected:
            if self.state is ClientState.CLOSING:
                return  # after a 421 the server may still answer what was pipelined
            if reply.code == 421:
                self.state = ClientState.CLOSING
                self._emit(ServiceClosing(reply))
                return
            raise RemoteProtocolError(f"reply to no command: {str(reply)[:200]!r}")
        expected = self._expected.popleft()
        if reply.code == 421 and expected.command not in ("QUIT", "GREETING"):
            self._on_closing(expected.command, reply)
            return
        expected.handle(reply)

    def _on_closing(self, command: str, reply: Reply) -> None:
        """421 to a command: it failed, and the server closes the connection (§3.8)."""
        self._expected.clear()
        self.state = ClientState.CLOSING
        if self._txn is not None:
            txn = self._txn
            if txn.mail_reply is None:
                txn.mail_reply = reply
            if txn.final is None:
                txn.final = reply
            self._finish(closing=reply)
        else:
            self._mechanism = None
            self._emit(CommandFailed(command, reply))

    # -- greeting, hello, STARTTLS, AUTH, simple commands -----------------------------------

    def _on_greeting(self, reply: Reply) -> None:
        self.greeting = reply
        if reply.code == 220:
            self.state = ClientState.CONNECTED
        elif reply.code == 421:
            self.state = ClientState.CLOSING
        elif reply.code >= 400:
            # 554 (RFC 5321 §3.1), or another refusal from a sloppier server: only QUIT
            # makes sense now.
            self.state = ClientState.CONNECTED
        else:
            raise RemoteProtocolError(f"greeting must be 220, 421 or 554: {str(reply)[:200]!r}")
        self._emit(GreetingReceived(reply))

    def _on_ehlo(self, reply: Reply, name: str) -> None:
        if reply.code == 250:
            self.extensions = Extensions.parse(reply)
            self.esmtp = True
            self.state = ClientState.READY
            self._emit(HelloCompleted(reply, self.extensions, esmtp=True))
        elif self.lmtp:
            self._hello_failed("LHLO", reply)  # RFC 2033 §4.1: no HELO to fall back on
        elif reply.code >= 500:
            # RFC 5321 §3.2: a server that does not know EHLO answers 500/502; HELO instead.
            self._command(f"HELO {name}", "HELO", self._on_helo)
        else:
            self._hello_failed("EHLO", reply)

    def _on_helo(self, reply: Reply) -> None:
        if reply.code == 250:
            self.extensions = Extensions()
            self.esmtp = False
            self.state = ClientState.READY
            self._emit(HelloCompleted(reply, self.extensions, esmtp=False))
        else:
            self._hello_failed("HELO", reply)

    def _hello_failed(self, command: str, reply: Reply) -> None:
        self.state = ClientState.CONNECTED
        self._emit(CommandFailed(command, reply))

    def _on_starttls(self, reply: Reply) -> None:
        if reply.code == 220:
            if self._in:
                raise RemoteProtocolError("the server sent more after its 220 to STARTTLS")
            self.state = ClientState.TLS_HANDSHAKE
            self._emit(TLSReady(reply))
        else:
            self._idle()
            self._emit(CommandFailed("STARTTLS", reply))

    def _on_auth(self, reply: Reply) -> None:
        mechanism = self._mechanism
        assert mechanism is not None
        if reply.code == 334:
            text = reply.lines[0].strip()
            try:
                challenge = base64.b64decode(text, validate=True)
            except binascii.Error:
                challenge = None
            try:
                if challenge is None:
                    raise SASLError(f"the challenge is not base64: {text[:80]!r}")
                answer = mechanism.respond(challenge)
            except SASLError as exc:
                # RFC 4954 §4: "*" cancels; the server answers 501, which ends the exchange.
                detail = str(exc)
                self._write(b"*\r\n")
                self._trace_line("client", "*")
                self._expect("AUTH", lambda r: self._auth_failed(r, detail))
                return
            self._write(base64.b64encode(answer) + b"\r\n")
            self._trace_line("client", "********" if answer else "")
            self._expect("AUTH", self._on_auth)
        elif reply.code == 235:
            if not mechanism.server_verified:
                # A 235 before SCRAM's server signature: the server never proved it knows the
                # password, so this may not be the server we meant to talk to.
                self._auth_failed(reply, "the server did not prove it knows the password")
                return
            self._mechanism = None
            self.authenticated = mechanism.name
            self._idle()
            self._emit(AuthCompleted(reply, mechanism.name))
        else:
            self._auth_failed(reply, "")

    def _auth_failed(self, reply: Reply, detail: str) -> None:
        mechanism = self._mechanism
        self._mechanism = None
        if not detail and isinstance(mechanism, XOAuth2) and mechanism.error:
            detail = mechanism.error
        self._idle()
        self._emit(CommandFailed("AUTH", reply, detail))

    def _on_simple(self, command: str, reply: Reply) -> None:
        self._idle()
        if reply.code < 400:
            self._emit(CommandCompleted(command, reply))
        else:
            self._emit(CommandFailed(command, reply))

    def _on_quit(self, reply: Reply) -> None:
        self.state = ClientState.CLOSING
        if reply.code < 400:
            self._emit(CommandCompleted("QUIT", reply))
        else:
            self._emit(CommandFailed("QUIT", reply))

    # -- the mail transaction ----------------------------------------------------------------

    def _on_mail(self, reply: Reply) -> None:
        txn = self._current()
        txn.mail_reply = reply
        if txn.pipelined:
            return  # RCPT replies (and DATA's) follow
        if not txn.mail_ok:
            self._finish()
            return
        self._command(txn.rcpt_commands[0], "RCPT", self._on_rcpt)

    def _on_rcpt(self, reply: Reply) -> None:
        txn = self._current()
        txn.rcpt_replies.append(reply)
        done = len(txn.rcpt_replies) == len(txn.recipients)
        if not txn.pipelined and not done:
            self._command(txn.rcpt_commands[len(txn.rcpt_replies)], "RCPT", self._on_rcpt)
            return
        if done and (not txn.pipelined or txn.method in ("BDAT", "BURL")):
            self._after_recipients()

    def _after_recipients(self) -> None:
        txn = self._current()
        if not txn.any_accepted:
            self._reset_and_finish() if txn.mail_ok else self._finish()
        elif txn.method == "BDAT":
            self._send_chunks()
        elif txn.method == "BURL":
            assert self._burl is not None
            # RFC 4468 §3: the server fetches the message; its reply is the end-of-data reply.
            self._command(
                f"BURL {self._burl} LAST", "BURL", lambda r: self._on_chunk(r, True), final=True
            )
        else:
            self._command("DATA", "DATA", self._on_data)

    def _on_data(self, reply: Reply) -> None:
        txn = self._current()
        if reply.code == 354:
            if txn.any_accepted:
                data = dot_stuff(txn.payload)
                self._write(data)
                self._trace_line("data", f"<message: {len(txn.payload)} octets>")
                self._trace_line("client", ".")
                self._expect("END_OF_DATA", self._on_end_of_data, final=True)
            else:
                # RFC 2920 §3.1: every RCPT was refused but DATA got 354: send an empty message.
                self._write(b".\r\n")
                self._trace_line("client", ".")
                self._expect("END_OF_DATA", lambda r: self._finish(), final=True)
            return
        if reply.code < 400:
            raise RemoteProtocolError(f"DATA must get 354 or an error: {str(reply)[:200]!r}")
        if txn.any_accepted:
            txn.final = reply
        self._reset_and_finish() if txn.mail_ok else self._finish()

    def _on_end_of_data(self, reply: Reply) -> None:
        txn = self._current()
        if txn.lmtp:
            self._on_lmtp_reply(reply)
            return
        txn.final = reply
        self._finish()

    def _on_lmtp_reply(self, reply: Reply) -> None:
        # RFC 2033 §4.2: one reply per recipient whose RCPT succeeded, in their order. The
        # next is expected only once this one is in: nothing else is outstanding meanwhile.
        txn = self._current()
        txn.data_replies.append(reply)
        if len(txn.data_replies) < txn.accepted:
            self._expect("END_OF_DATA", self._on_lmtp_reply, final=True)
        else:
            self._finish()

    def _send_chunks(self) -> None:
        txn = self._current()
        chunks = split_chunks(txn.payload, txn.chunk_size)
        if txn.pipelined:
            for index, chunk in enumerate(chunks):
                self._send_chunk(chunk, last=index == len(chunks) - 1)
        else:
            self._send_chunk_lockstep(chunks, 0)

    def _send_chunk(self, chunk: bytes, *, last: bool) -> None:
        line = f"BDAT {len(chunk)}{' LAST' if last else ''}"
        self._write(line.encode("ascii") + b"\r\n" + chunk)
        self._trace_line("client", line)
        self._trace_line("data", f"<chunk: {len(chunk)} octets>")
        self._expect("BDAT", lambda reply: self._on_chunk(reply, last), final=last)

    def _send_chunk_lockstep(self, chunks: list[bytes], index: int) -> None:
        last = index == len(chunks) - 1
        line = f"BDAT {len(chunks[index])}{' LAST' if last else ''}"
        self._write(line.encode("ascii") + b"\r\n" + chunks[index])
        self._trace_line("client", line)
        self._trace_line("data", f"<chunk: {len(chunks[index])} octets>")

        def handle(reply: Reply) -> None:
            if last:
                self._on_chunk(reply, True)
            elif reply.code >= 300:
                self._on_chunk(reply, False)
                self._reset_and_finish()  # RFC 3030 §2: the message ends with this chunk
            else:
                self._send_chunk_lockstep(chunks, index + 1)

        self._expect("BDAT", handle, final=last)

    def _on_chunk(self, reply: Reply, last: bool) -> None:
        txn = self._current()
        if last and txn.lmtp and not txn.chunk_failed:
            self._on_lmtp_reply(reply)  # the first of the per-recipient replies to BDAT LAST
            return
        if reply.code >= 300 and not txn.chunk_failed:
            # RFC 3030 §2: a refused chunk ends the message; the rest are answered and dropped.
            txn.chunk_failed = True
            txn.final = reply
        if not last:
            return
        if txn.chunk_failed:
            self._reset_and_finish()
        else:
            txn.final = reply
            self._finish()

    def _reset_and_finish(self) -> None:
        # MAIL opened a transaction that no message closed: RSET, so the next starts clean.
        # Its reply is not part of the result.
        self._command("RSET", "RSET", lambda reply: self._finish())

    def _current(self) -> PendingTransaction:
        if self._txn is None:
            raise RemoteProtocolError("a transaction reply without a transaction")
        return self._txn

    def _finish(self, closing: Reply | None = None) -> None:
        txn = self._current()
        self._txn = None
        assert txn.mail_reply is not None
        results = txn.settled(closing or txn.mail_reply)
        assert len(results) == len(txn.recipients)
        self._idle()
        self._emit(TransactionCompleted(txn.result(results)))


def _parse_reply(data: bytes) -> Reply:
    """Reply.parse, lenient where foreign servers are sloppy but the meaning is clear: an
    enhanced code whose class disagrees with the basic code is kept as text."""
    try:
        return Reply.parse(data)
    except ReplyError as exc:
        try:
            lines = split_reply_lines(data)
        except ReplyError:
            raise RemoteProtocolError(f"malformed reply: {exc}: {data[:200]!r}") from None
        texts = [f"{line.status} {line.text}" if line.status else line.text for line in lines]
        return Reply(lines[0].code, None, texts)


def iter_events(conn: ClientConnection) -> Iterable[ClientEvent]:
    """Every event available now (until ``NEED_DATA``)."""
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return
        assert isinstance(event, ClientEvent)
        yield event
