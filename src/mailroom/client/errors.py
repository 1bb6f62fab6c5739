"""Why sending failed. Every failure the server answered carries its parsed
:class:`~mailroom.codes.Reply` (basic code, enhanced code, ``is_transient``/``is_permanent``)
and its :class:`~mailroom.codes.Classification`; failures without a reply (no connection, a
TLS error, a server that broke the protocol) say whether trying again later makes sense."""

from __future__ import annotations

from mailroom.codes import Classification, Reply, classify
from mailroom.protocol.client_events import TransactionResult

__all__ = [
    "AuthenticationFailed",
    "ConnectionFailed",
    "GreetingRefused",
    "HelloRefused",
    "MessageRefused",
    "ProtocolError",
    "RefusedBeforeSending",
    "SMTPReplyError",
    "SendError",
    "ServiceClosing",
    "StartTLSFailed",
    "TLSFailed",
]

# The command a failure answered, as classify() names the stage.
_STAGE = {
    "GREETING": "CONNECT",
    "EHLO": "HELO",
    "HELO": "HELO",
    "LHLO": "HELO",
    "STARTTLS": "HELO",
    "END_OF_DATA": "DATA",
    "BDAT": "DATA",
}


class SendError(Exception):
    """Base of every failure of :mod:`mailroom.client`."""

    transient = True  # for failures without a reply: is trying again later sensible?
    reply: Reply | None = None

    @property
    def is_transient(self) -> bool:
        return self.reply.is_transient if self.reply is not None else self.transient

    @property
    def is_permanent(self) -> bool:
        return not self.is_transient

    @property
    def classification(self) -> Classification | None:
        return None


class SMTPReplyError(SendError):
    """The server answered ``command`` with a 4xx or 5xx ``reply``."""

    def __init__(self, command: str, reply: Reply, detail: str = "") -> None:
        self.command = command
        self.reply = reply
        self.detail = detail
        text = f"{command} refused: {reply}".replace("\n", " / ")
        super().__init__(f"{text} ({detail})" if detail else text)

    @property
    def code(self) -> int:
        assert self.reply is not None
        return self.reply.code

    @property
    def classification(self) -> Classification:
        assert self.reply is not None
        return classify(self.reply, command=_STAGE.get(self.command, self.command))


class GreetingRefused(SMTPReplyError):
    """The server's greeting was 554 or 421: it takes no mail from us now."""


class HelloRefused(SMTPReplyError):
    """EHLO and HELO were both refused."""


class StartTLSFailed(SMTPReplyError):
    """STARTTLS was refused (the connection goes on in the clear only if the caller allows)."""


class AuthenticationFailed(SMTPReplyError):
    """AUTH failed; ``detail`` says more when the client gave up itself (a SCRAM server that
    could not prove it knows the password, a challenge it could not answer)."""


class ServiceClosing(SMTPReplyError):
    """A 421 between commands: the server is closing the connection."""


class MessageRefused(SMTPReplyError):
    """No recipient got the message. ``result`` has the reply for each one; ``reply`` is the
    one that decided (MAIL's, the message's, or the first recipient's)."""

    def __init__(self, result: TransactionResult) -> None:
        first = result.recipients[0]
        super().__init__(first.command, first.reply)
        self.result = result


class RefusedBeforeSending(SMTPReplyError):
    """mailroom refused the message itself, knowing the server would: larger than its SIZE,
    or a non-ASCII address for a server without SMTPUTF8. ``reply`` is the refusal in the words
    of mailroom's catalogue, so it classifies like a reply from the server."""


class ConnectionFailed(SendError):
    """Could not connect, or the connection was lost or timed out. Worth trying later.

    Lost in the middle of a message, ``settled`` holds the recipients whose fate the server
    had already told (refused at RCPT; in LMTP, answered one by one after the message)."""

    settled: TransactionResult | None = None


class TLSFailed(ConnectionFailed):
    """The TLS handshake failed (certificate not trusted, no common protocol, …), or STARTTLS
    was required and not offered. Trying again as is will not help."""

    transient = False


class ProtocolError(SendError):
    """The server broke the SMTP protocol (a malformed reply, a reply to nothing)."""
