"""The asyncio SMTP (and LMTP) client: one connection, driven by the sans-IO
:class:`~mailroom.protocol.client.ClientConnection`.

::

    async with Client("mx.example.test", 587, tls="starttls") as client:
        await client.login("bob", "secret")
        result = await client.send(message)          # an EmailMessage, or bytes with an envelope
        for failed in result.failed:                 # per-recipient replies
            print(failed.address, failed.reply, failed.classification.reason)

Every refusal raises an :class:`~mailroom.client.errors.SMTPReplyError` carrying the parsed
reply; a message some recipients got returns its result, with the others' replies in it.

``Client(host, port, lmtp=True)`` speaks LMTP (RFC 2033) to a mail store such as Dovecot's
LMTP server: LHLO, and after the message one reply per recipient, each in its
``RecipientResult``. ``socket_path`` connects to a unix socket instead of ``host:port``
(Dovecot's ``/var/run/dovecot/lmtp``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Sequence
from email.message import Message
from typing import Literal, TypeVar, cast, overload

from mailroom.client.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    GreetingRefused,
    HelloRefused,
    MessageRefused,
    ProtocolError,
    RefusedBeforeSending,
    SendError,
    ServiceClosing,
    SMTPReplyError,
    StartTLSFailed,
    TLSFailed,
)
from mailroom.client.message import envelope_of, message_bytes
from mailroom.codes import Reply
from mailroom.protocol.client import (
    NEED_DATA,
    AuthCompleted,
    ClientConnection,
    ClientError,
    ClientEvent,
    ClientState,
    CommandCompleted,
    CommandFailed,
    Extensions,
    GreetingReceived,
    HelloCompleted,
    LocalRefusal,
    MailOptions,
    Recipient,
    RemoteProtocolError,
    ServerClosed,
    TLSReady,
    TraceLine,
    TransactionCompleted,
    TransactionInterrupted,
    TransactionResult,
)
from mailroom.protocol.client import ServiceClosing as ServiceClosingEvent
from mailroom.protocol.client_sasl import (
    CLIENT_MECHANISMS,
    PLAINTEXT_MECHANISMS,
    choose_mechanism,
    client_mechanism,
)
from mailroom.protocol.syntax import AddressError, parse_domain

__all__ = ["DEFAULT_TIMEOUT", "Client", "TLSMode", "default_ports", "send_message"]

TLSMode = Literal["none", "starttls", "implicit", "opportunistic"]
DEFAULT_TIMEOUT = 300.0  # seconds to wait for any one reply (RFC 5321 §4.5.3.2: minutes)
# Octets handed to the transport at a time, each piece only once the one before was taken
# (``Client._flush``). A TLS transport encrypts whatever it is given at once and passes it all
# to the socket's transport below, counting none of it as its own: a 20 MB message written in
# one piece showed an empty buffer, and a server that read nothing of it looked like one that
# had taken it all.
WRITE_PIECE = 256 * 1024
E = TypeVar("E", bound=ClientEvent)
F = TypeVar("F", bound=ClientEvent)


def default_ports(tls: TLSMode) -> int:
    """465 for implicit TLS (RFC 8314), 587 for STARTTLS submission, 25 otherwise."""
    return {"implicit": 465, "starttls": 587}.get(tls, 25)


class _Stream(asyncio.Protocol):
    """Bytes from the socket into the sans-IO connection, and a way to wait for them."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.error: BaseException | None = None
        self.lost: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._can_write = asyncio.Event()
        self._can_write.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods without being its subclass.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
        except ClientError as exc:
            self.error = exc
            if self.transport is not None:
                self.transport.abort()
        self._wake()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        self.conn.receive_data(b"")
        self._can_write.set()
        self._wake()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._waiter, timeout)
        finally:
            self._waiter = None

    async def drain(self) -> None:
        await self._can_write.wait()

    @property
    def can_write(self) -> bool:
        return self._can_write.is_set()


def _hello_name(sock: socket.socket | None) -> str:
    """The host name if it is a fully qualified domain name, else the address literal of our
    end of the connection (RFC 5321 §4.1.4), else "localhost"."""
    name = socket.gethostname()
    if "." in name:
        try:
            return parse_domain(name)
        except AddressError:
            pass
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            address = sock.getsockname()[0]
            return f"[IPv6:{address}]" if ":" in address else f"[{address}]"
    return "localhost"


class Client:
    """One SMTP connection. ``tls``: ``"none"``, ``"starttls"`` (required), ``"implicit"``
    (RFC 8314, port 465), or ``"opportunistic"`` (STARTTLS when offered, as MTAs do).
    ``lmtp``: speak LMTP (RFC 2033) instead; ``socket_path``: connect to that unix socket
    rather than ``host:port`` (no TLS there: ``tls`` must be ``"none"``).

    ``timeout`` is the seconds to wait for each reply, and for the server to take any of what
    is sent; ``connect_timeout`` for the connection itself (TCP, and the handshake of implicit
    TLS); ``final_timeout`` for the reply after the message, which says whether it was taken
    (RFC 5321 §4.5.3.2.6 asks 10 minutes there: giving up on it delivers the message twice).
    Both default to ``timeout``.

    ``ssl_context`` defaults to the system's trusted CAs with host name checking. ``trace``
    gets each line of the session (commands, replies, notes), with SASL data masked.
    PLAIN, LOGIN and XOAUTH2 are only used over TLS unless ``allow_insecure_auth``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        tls: TLSMode = "none",
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        local_hostname: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        final_timeout: float | None = None,
        trace: Callable[[TraceLine], None] | None = None,
        allow_insecure_auth: bool = False,
        lmtp: bool = False,
        socket_path: str | None = None,
    ) -> None:
        if tls not in ("none", "starttls", "implicit", "opportunistic"):
            raise ValueError(f"tls is none, starttls, implicit or opportunistic, not {tls!r}")
        if socket_path is not None and tls != "none":
            raise ValueError("a unix socket takes no TLS: tls must be 'none'")
        self.lmtp = lmtp
        self.socket_path = socket_path
        self.host = host
        self.port = port if port is not None else default_ports(tls)
        self.tls_mode: TLSMode = tls
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname or host
        self.local_hostname = local_hostname
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.final_timeout = final_timeout
        self.allow_insecure_auth = allow_insecure_auth
        self._trace = trace
        self._conn: ClientConnection | None = None
        self._stream: _Stream | None = None
        self._interrupted: TransactionResult | None = None
        self.greeting: Reply | None = None
        self.ehlo_reply: Reply | None = None

    # -- state -------------------------------------------------------------------------------

    @property
    def connection(self) -> ClientConnection:
        """The sans-IO machine of this connection (its state, extensions, authentication)."""
        if self._conn is None:
            raise SendError("not connected")
        return self._conn

    def _open(self) -> ClientConnection:
        """The connection, when commands can still be given on it."""
        conn = self.connection
        if self._stream is None or conn.state in (ClientState.CLOSING, ClientState.CLOSED):
            raise ConnectionFailed(f"the connection to {self.host} is closed")
        return conn

    @property
    def extensions(self) -> Extensions:
        return self.connection.extensions

    @property
    def tls_active(self) -> bool:
        return self._conn is not None and self._conn.tls

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS of the connection (version, cipher, the server's certificates), or None
        when it is not encrypted."""
        if self._stream is None or self._stream.transport is None or not self.tls_active:
            return None
        found = self._stream.transport.get_extra_info("ssl_object")
        return cast(ssl.SSLObject, found) if found is not None else None

    @property
    def local_address(self) -> str | None:
        """The address of our end of the connection (TLS reports name it), if known."""
        if self._stream is None or self._stream.transport is None:
            return None
        name = self._stream.transport.get_extra_info("sockname")
        return str(name[0]) if isinstance(name, tuple) and name else None

    @property
    def is_connected(self) -> bool:
        return self._conn is not None and self._conn.state not in (
            ClientState.CLOSED,
            ClientState.CLOSING,
        )

    def _note(self, text: str) -> None:
        if self._trace is not None:
            self._trace(TraceLine("info", text))

    def _context(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        return self.ssl_context

    # -- connecting --------------------------------------------------------------------------

    async def connect(self) -> Reply:
        """Connect, read the greeting, EHLO, and STARTTLS (then EHLO again) as ``tls`` says.
        Returns the final EHLO (or HELO) reply."""
        loop = asyncio.get_running_loop()
        conn = ClientConnection(local_hostname="localhost", lmtp=self.lmtp, trace=self._trace)
        stream = _Stream(conn)
        implicit = self.tls_mode == "implicit"
        where = self.socket_path or f"{self.host}:{self.port}"
        self._note(f"Trying {where}{' (implicit TLS)' if implicit else ''}...")
        try:
            if self.socket_path is not None:
                opening = loop.create_unix_connection(lambda: stream, self.socket_path)
            else:
                opening = loop.create_connection(
                    lambda: stream,
                    self.host,
                    self.port,
                    ssl=self._context() if implicit else None,
                    server_hostname=self.server_hostname if implicit else None,
                )
            connect_timeout = self.timeout if self.connect_timeout is None else self.connect_timeout
            await asyncio.wait_for(opening, connect_timeout)
        except ssl.SSLError as exc:
            raise TLSFailed(f"TLS with {where} failed: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise ConnectionFailed(f"cannot connect to {where}: {reason}") from exc
        self._conn, self._stream = conn, stream
        conn.tls = implicit
        assert stream.transport is not None
        sock = stream.transport.get_extra_info("socket")
        peer = stream.transport.get_extra_info("peername")
        self._note(f"Connected to {peer[0] if isinstance(peer, tuple) else where}.")
        if implicit:
            self._note_tls()
        name = self.local_hostname or _hello_name(sock)
        self.local_hostname = name
        greeting = await self._until(GreetingReceived)
        self.greeting = greeting.reply
        if not greeting.accepted:
            if conn.state is ClientState.CONNECTED:
                await self.quit()
            await self.close()
            raise GreetingRefused("GREETING", greeting.reply)
        reply = await self.ehlo()
        if self.tls_mode in ("starttls", "opportunistic") and not conn.tls:
            if conn.extensions.starttls:
                reply = await self.starttls()
            elif self.tls_mode == "starttls":
                await self.quit()
                raise TLSFailed(f"{self.host} does not offer STARTTLS")
        return reply

    async def ehlo(self) -> Reply:
        conn = self._open()
        conn.ehlo(self.local_hostname or "localhost")
        event = await self._until(HelloCompleted, CommandFailed)
        if isinstance(event, CommandFailed):
            raise HelloRefused(event.command, event.reply)
        self.ehlo_reply = event.reply
        return event.reply

    async def starttls(self) -> Reply:
        """STARTTLS, the handshake, and EHLO again; returns the new EHLO reply."""
        conn = self._open()
        conn.starttls()
        event = await self._until(TLSReady, CommandFailed)
        if isinstance(event, CommandFailed):
            if self.tls_mode == "opportunistic" and event.reply.code != 421:
                self._note("STARTTLS refused; going on without TLS")
                assert self.ehlo_reply is not None
                return self.ehlo_reply
            raise StartTLSFailed("STARTTLS", event.reply)
        stream = self._stream
        assert stream is not None and stream.transport is not None
        loop = asyncio.get_running_loop()
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(
                    stream.transport,
                    stream,
                    self._context(),
                    server_hostname=self.server_hostname,
                ),
                self.timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            await self.close()
            raise TLSFailed(f"TLS handshake with {self.host} failed: {exc}") from exc
        if transport is None:
            raise ConnectionFailed("the connection closed during the TLS handshake")
        stream.transport = transport  # uvloop's is no asyncio.Transport subclass: no isinstance
        conn.tls_started()
        self._note_tls()
        return await self.ehlo()

    def _note_tls(self) -> None:
        assert self._stream is not None and self._stream.transport is not None
        ssl_object = self._stream.transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            name = cipher[0] if cipher else "?"
            self._note(f"TLS started: {ssl_object.version()} {name}")

    # -- AUTH --------------------------------------------------------------------------------

    async def login(
        self,
        username: str,
        password: str,
        *,
        mechanism: str | None = None,
        authzid: str = "",
    ) -> Reply:
        """AUTH with ``mechanism``, or the strongest one both sides speak (SCRAM-SHA-256,
        CRAM-MD5, then PLAIN and LOGIN over TLS)."""
        offered = self._open().extensions.auth_mechanisms
        plaintext_ok = self.tls_active or self.allow_insecure_auth
        if mechanism is None:
            mechanism = choose_mechanism(offered, allow_plaintext=plaintext_ok)
            if mechanism is None:
                if not offered:
                    raise SendError(f"{self.host} does not offer AUTH")
                raise SendError(
                    f"{self.host} offers AUTH {' '.join(offered)}: none this client can use "
                    + ("" if plaintext_ok else "without TLS ")
                    + f"(it speaks {', '.join(CLIENT_MECHANISMS)})"
                )
        return await self._authenticate(mechanism.upper(), username, password, authzid)

    async def login_oauth2(self, username: str, token: str) -> Reply:
        """AUTH XOAUTH2 with an OAuth 2 access token (Gmail, Microsoft 365)."""
        return await self._authenticate("XOAUTH2", username, token, "")

    async def _authenticate(self, name: str, username: str, secret: str, authzid: str) -> Reply:
        conn = self._open()
        if name not in conn.extensions.auth_mechanisms:
            raise SendError(f"{self.host} does not offer AUTH {name}")
        if name in PLAINTEXT_MECHANISMS and not (conn.tls or self.allow_insecure_auth):
            raise SendError(f"AUTH {name} would send the password in the clear; use TLS")
        conn.authenticate(
            client_mechanism(name, username, secret, authzid=authzid), allow_plaintext=True
        )
        event = await self._until(AuthCompleted, CommandFailed)
        if isinstance(event, CommandFailed):
            raise AuthenticationFailed("AUTH", event.reply, event.detail)
        return event.reply

    # -- mail --------------------------------------------------------------------------------

    async def send(
        self,
        message: Message | bytes | str,
        *,
        sender: str | None = None,
        recipients: Sequence[str | Recipient] | None = None,
        options: MailOptions | None = None,
    ) -> TransactionResult:
        """Send one message; call again for the next on the same connection.

        An :class:`~email.message.Message` gives its own envelope (Sender or From; To, Cc,
        Bcc) unless ``sender``/``recipients`` are given, and is sent without its Bcc. Bytes
        need both. Returns the result when at least one recipient got the message (the
        others' replies are in ``result.failed``); raises :class:`MessageRefused` when none
        did, :class:`RefusedBeforeSending` when the server could not take it at all.
        """
        conn = self._open()
        if isinstance(message, Message):
            from_headers, to_headers = envelope_of(message)
            sender = from_headers if sender is None else sender
            recipients = to_headers if recipients is None else recipients
            addresses = [sender, *(r if isinstance(r, str) else r.address for r in recipients)]
            utf8 = conn.extensions.smtputf8 and not all(a.isascii() for a in addresses)
            data = message_bytes(message, utf8=utf8)
        else:
            if sender is None or recipients is None:
                raise ValueError("raw message bytes need a sender and recipients")
            data = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        if not recipients:
            raise ValueError("no recipients")
        try:
            conn.send_mail(sender, list(recipients), data, options)
        except LocalRefusal as exc:
            raise RefusedBeforeSending("MAIL", exc.reply, str(exc)) from exc
        self._interrupted = None
        event = await self._until(TransactionCompleted)
        result = event.result
        if not result.delivered:
            raise MessageRefused(result)
        return result

    async def noop(self) -> Reply:
        return await self._simple(self._open().noop, "NOOP")

    async def rset(self) -> Reply:
        return await self._simple(self._open().rset, "RSET")

    async def _simple(self, command: Callable[[], None], name: str) -> Reply:
        command()
        event = await self._until(CommandCompleted, CommandFailed)
        if isinstance(event, CommandFailed):
            raise SMTPReplyError(name, event.reply)
        return event.reply

    async def quit(self) -> Reply | None:
        """QUIT, read the 221, close. Never raises: at this point a failure changes nothing
        for the mail already sent."""
        conn = self._conn
        reply: Reply | None = None
        if (
            self._stream is not None
            and conn is not None
            and conn.state
            in (
                ClientState.READY,
                ClientState.CONNECTED,
            )
        ):
            try:
                conn.quit()
                event = await self._until(CommandCompleted, CommandFailed)
                assert isinstance(event, CommandCompleted | CommandFailed)
                reply = event.reply
            except SendError:
                pass
        await self.close()
        return reply

    async def close(self) -> None:
        """Close the connection without QUIT."""
        stream = self._stream
        if stream is not None and stream.transport is not None:
            stream.transport.close()
        self._stream = None

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            await self.quit()
        else:
            await self.close()

    # -- driving the machine -----------------------------------------------------------------

    async def _flush(self) -> bool:
        """Send what the protocol has to send; whether there was anything."""
        stream, conn = self._stream, self._conn
        assert stream is not None and conn is not None
        data = conn.data_to_send()
        written = False
        for start in range(0, len(data), WRITE_PIECE):
            transport = stream.transport
            if transport is None or transport.is_closing():
                break
            transport.write(data[start : start + WRITE_PIECE])
            written = True
            await self._drained(stream)
        return written

    async def _drained(self, stream: _Stream) -> None:
        """Wait until the server has taken what was written, for as long as it takes some:
        a slow link may take minutes over a large message, but a server that reads nothing
        for ``timeout`` seconds is given up (it held a delivery for ever before)."""
        transport = stream.transport
        assert transport is not None
        if stream.can_write:
            return  # the usual case, without a timer
        waiting = transport.get_write_buffer_size()
        while True:
            try:
                await asyncio.wait_for(stream.drain(), self.timeout)
                return
            except TimeoutError:
                left = transport.get_write_buffer_size()
                if left >= waiting:
                    await self.close()
                    failed = ConnectionFailed(
                        f"{self.host} took nothing of the message in {self.timeout:g} seconds"
                    )
                    failed.settled = stream.conn.settled_so_far()
                    raise failed from None
                waiting = left

    async def _next_event(self) -> ClientEvent:
        stream, conn = self._stream, self._conn
        if stream is None or conn is None:
            raise ConnectionFailed("not connected")
        # ``timeout`` is for each reply whole (RFC 5321 §4.5.3.2), not for each piece of it:
        # a server sending a byte a minute held a delivery for ever. The clock starts again
        # when a reply is complete or something was sent; the reply after the message has
        # ``final_timeout``.
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        timeout = self.timeout
        replies = conn.replies_read
        while True:
            if stream.error is not None:
                raise ProtocolError(f"{self.host}: {stream.error}") from stream.error
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                await self.close()
                raise ProtocolError(f"{self.host}: {exc}") from exc
            flushed = await self._flush()
            if flushed or conn.replies_read != replies:
                deadline, replies = None, conn.replies_read
            if event is not NEED_DATA:
                assert isinstance(event, ClientEvent)
                return event
            if flushed:
                continue  # replies may have come while it was sending: look before waiting
            now = loop.time()
            if deadline is None:
                timeout = self.timeout
                if conn.awaiting_final and self.final_timeout is not None:
                    timeout = self.final_timeout
                deadline = now + timeout
            try:
                await stream.wait(max(deadline - now, 0.0))
            except TimeoutError:
                await self.close()
                failed = ConnectionFailed(f"{self.host} did not answer within {timeout:g} seconds")
                failed.settled = conn.settled_so_far()
                raise failed from None

    @overload
    async def _until(self, kind: type[E], /) -> E: ...

    @overload
    async def _until(self, kind: type[E], other: type[F], /) -> E | F: ...

    async def _until(self, *kinds: type[ClientEvent]) -> ClientEvent:
        """Events until one of ``kinds``; a 421 or a closed connection on the way raises."""
        while True:
            event = await self._next_event()
            if isinstance(event, kinds):
                return event
            if isinstance(event, TransactionInterrupted):
                self._interrupted = event.result  # ServerClosed follows
                continue
            if isinstance(event, ServiceClosingEvent):
                await self.close()
                raise ServiceClosing("", event.reply)
            if isinstance(event, ServerClosed):
                lost = self._stream.lost if self._stream is not None else None
                await self.close()
                reason = f": {lost}" if lost else ""
                failed = ConnectionFailed(f"{self.host} closed the connection{reason}")
                failed.settled, self._interrupted = self._interrupted, None
                raise failed


async def send_message(
    message: Message | bytes | str,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    tls: TLSMode = "none",
    ssl_context: ssl.SSLContext | None = None,
    username: str | None = None,
    password: str | None = None,
    sender: str | None = None,
    recipients: Sequence[str | Recipient] | None = None,
    options: MailOptions | None = None,
    local_hostname: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    allow_insecure_auth: bool = False,
) -> TransactionResult:
    """Connect, log in if a username is given, send one message, QUIT."""
    client = Client(
        host,
        port,
        tls=tls,
        ssl_context=ssl_context,
        local_hostname=local_hostname,
        timeout=timeout,
        allow_insecure_auth=allow_insecure_auth,
    )
    async with client:
        if username is not None:
            await client.login(username, password or "")
        return await client.send(message, sender=sender, recipients=recipients, options=options)
