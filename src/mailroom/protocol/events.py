"""What the server side of a connection tells its caller: small frozen events.

Every event but :class:`MessageData`, :class:`AuthSecretNeeded` and :class:`ConnectionClosed`
waits for exactly one reply, given with ``ServerConnection.send``. Where the protocol already
knows the right reply it proposes it as ``event.reply``; policy may send it or another one.
``reply`` is None where only policy can answer (the end of a message, credentials).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mailroom.codes import Reply
from mailroom.protocol.parameters import MailParameters, RcptParameters
from mailroom.protocol.syntax import Mailbox

__all__ = [
    "AuthChallenge",
    "AuthSecretNeeded",
    "Authenticate",
    "BurlFetch",
    "ChunkReceived",
    "CommandRejected",
    "ConnectionClosed",
    "CramMD5Credentials",
    "Credentials",
    "DataCommand",
    "Event",
    "Expand",
    "Hello",
    "Help",
    "MailFrom",
    "MessageComplete",
    "MessageData",
    "MessageRefused",
    "Noop",
    "PlainCredentials",
    "Quit",
    "RcptTo",
    "Reset",
    "ScramCredentials",
    "StartTLS",
    "Verify",
]


class Event:
    """Base of all events. ``needs_reply`` tells whether the connection waits for a reply."""

    __slots__ = ()
    needs_reply: ClassVar[bool] = True
    # The verb the event answers, for transcripts and fault rules ("MAIL", "RCPT", ...).
    stage: ClassVar[str] = ""


@dataclass(frozen=True, slots=True, init=False)
class Hello(Event):
    stage = "EHLO"
    verb: str  # "EHLO" or "HELO"
    domain: str
    reply: Reply  # the EHLO reply with this session's extensions, or the HELO reply

    def __init__(self, verb: str, domain: str, reply: Reply) -> None:
        object.__setattr__(self, "verb", verb)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class MailFrom(Event):
    stage = "MAIL"
    sender: Mailbox | None  # None is the null reverse-path <>
    parameters: MailParameters
    reply: Reply

    def __init__(self, sender: Mailbox | None, parameters: MailParameters, reply: Reply) -> None:
        object.__setattr__(self, "sender", sender)
        object.__setattr__(self, "parameters", parameters)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class RcptTo(Event):
    stage = "RCPT"
    recipient: Mailbox
    parameters: RcptParameters
    reply: Reply

    def __init__(self, recipient: Mailbox, parameters: RcptParameters, reply: Reply) -> None:
        object.__setattr__(self, "recipient", recipient)
        object.__setattr__(self, "parameters", parameters)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class DataCommand(Event):
    """DATA in the right place; a 354 reply starts the message data."""

    stage = "DATA"
    reply: Reply

    def __init__(self, reply: Reply) -> None:
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class MessageData(Event):
    """A piece of the message as it streams in (dot-unstuffed); needs no reply."""

    needs_reply = False
    stage = "DATA"
    data: bytes

    def __init__(self, data: bytes) -> None:
        object.__setattr__(self, "data", data)


@dataclass(frozen=True, slots=True, init=False)
class ChunkReceived(Event):
    """A BDAT chunk that is not the last has been read in full."""

    stage = "BDAT"
    size: int
    reply: Reply

    def __init__(self, size: int, reply: Reply) -> None:
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class BurlFetch(Event):
    """BURL (RFC 4468): a piece of the message is at ``url`` (an IMAP URL with URLAUTH). The
    caller fetches it, adds it to the message, and answers: 250 2.5.0 when more is to come,
    and as at the end of data when ``last``; a refusal ends the message, as for BDAT."""

    stage = "BURL"
    url: str
    last: bool
    reply: None

    def __init__(self, url: str, last: bool, reply: None = None) -> None:
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "last", last)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class MessageComplete(Event):
    """The end of the message (``<CRLF>.<CRLF>`` or BDAT LAST). Policy answers: 250 only
    once the message is safely stored."""

    stage = "END_OF_DATA"
    size: int
    via: str  # "DATA" or "BDAT"
    reply: None

    def __init__(self, size: int, via: str, reply: None = None) -> None:
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "via", via)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class MessageRefused(Event):
    """The end of a message the protocol itself refuses (over the size limit, bare line
    endings, overlong lines). Whatever was streamed must be discarded."""

    stage = "END_OF_DATA"
    size: int
    via: str
    reply: Reply

    def __init__(self, size: int, via: str, reply: Reply) -> None:
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "via", via)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class Reset(Event):
    stage = "RSET"
    reply: Reply

    def __init__(self, reply: Reply) -> None:
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class Noop(Event):
    stage = "NOOP"
    reply: Reply

    def __init__(self, reply: Reply) -> None:
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class Quit(Event):
    stage = "QUIT"
    reply: Reply

    def __init__(self, reply: Reply) -> None:
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class Help(Event):
    stage = "HELP"
    topic: str
    reply: Reply

    def __init__(self, topic: str, reply: Reply) -> None:
        object.__setattr__(self, "topic", topic)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class Verify(Event):
    stage = "VRFY"
    argument: str
    reply: Reply

    def __init__(self, argument: str, reply: Reply) -> None:
        object.__setattr__(self, "argument", argument)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class Expand(Event):
    stage = "EXPN"
    argument: str
    reply: Reply

    def __init__(self, argument: str, reply: Reply) -> None:
        object.__setattr__(self, "argument", argument)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class StartTLS(Event):
    """STARTTLS in the right place; after a 220 reply the caller runs the TLS handshake and
    then calls ``ServerConnection.tls_started``."""

    stage = "STARTTLS"
    reply: Reply

    def __init__(self, reply: Reply) -> None:
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class AuthChallenge(Event):
    """The SASL exchange goes on: send the proposed 334 challenge."""

    stage = "AUTH"
    mechanism: str
    reply: Reply

    def __init__(self, mechanism: str, reply: Reply) -> None:
        object.__setattr__(self, "mechanism", mechanism)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class AuthSecretNeeded(Event):
    """SCRAM needs the user's stored secret: answer with ``send_auth_secret``, not ``send``."""

    needs_reply = False
    stage = "AUTH"
    mechanism: str
    username: str

    def __init__(self, mechanism: str, username: str) -> None:
        object.__setattr__(self, "mechanism", mechanism)
        object.__setattr__(self, "username", username)


@dataclass(frozen=True, slots=True)
class PlainCredentials:
    """PLAIN and LOGIN: the password as the client sent it."""

    authzid: str
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class CramMD5Credentials:
    """CRAM-MD5: the challenge and the client's digest; ``verify`` checks a password."""

    username: str
    challenge: bytes
    digest: str

    def verify(self, password: str) -> bool:
        import hashlib
        import hmac

        expected = hmac.new(password.encode("utf-8"), self.challenge, hashlib.md5).hexdigest()
        return hmac.compare_digest(expected, self.digest.lower())


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """SCRAM-SHA-256: the protocol has checked the client's proof against the stored secret."""

    authzid: str
    username: str
    verified: bool


Credentials = PlainCredentials | CramMD5Credentials | ScramCredentials


@dataclass(frozen=True, slots=True, init=False)
class Authenticate(Event):
    """A finished SASL exchange. Policy answers 235 2.7.0, or 535 5.7.8, 534 5.7.9, 454 4.7.0,
    432 4.7.12 as the case may be."""

    stage = "AUTH"
    mechanism: str
    credentials: Credentials
    reply: None

    def __init__(self, mechanism: str, credentials: Credentials, reply: None = None) -> None:
        object.__setattr__(self, "mechanism", mechanism)
        object.__setattr__(self, "credentials", credentials)
        object.__setattr__(self, "reply", reply)


@dataclass(frozen=True, slots=True, init=False)
class CommandRejected(Event):
    """A command the protocol refuses by itself (syntax, sequence, limits). ``command`` is the
    verb as far as it could be read."""

    command: str
    reply: Reply

    def __init__(self, command: str, reply: Reply) -> None:
        object.__setattr__(self, "command", command)
        object.__setattr__(self, "reply", reply)

    @property
    def stage(self) -> str:  # type: ignore[override]
        return self.command


@dataclass(frozen=True, slots=True, init=False)
class ConnectionClosed(Event):
    """The client closed the connection (EOF). Anything half-received is void."""

    needs_reply = False
    stage = "CLOSE"

    def __init__(self) -> None:
        pass
