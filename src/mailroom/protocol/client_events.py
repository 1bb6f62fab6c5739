"""What the client side of a connection tells its caller, and what a mail transaction came to.

Events are small frozen values returned by ``ClientConnection.next_event``; the outcome of a
transaction is a :class:`TransactionResult` with one :class:`RecipientResult` per recipient,
each holding the parsed :class:`~mailroom.codes.Reply` that settled it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailroom.codes import Classification, Reply, classify
from mailroom.protocol.extensions import Extensions

__all__ = [
    "AuthCompleted",
    "ClientEvent",
    "CommandCompleted",
    "CommandFailed",
    "GreetingReceived",
    "HelloCompleted",
    "RecipientResult",
    "ServerClosed",
    "ServiceClosing",
    "TLSReady",
    "TraceLine",
    "TransactionCompleted",
    "TransactionInterrupted",
    "TransactionResult",
]


class ClientEvent:
    """Base of the client-side events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class GreetingReceived(ClientEvent):
    """The server's first reply: 220 to go on; 554 (say QUIT) or 421 (it closes) to stop."""

    reply: Reply

    @property
    def accepted(self) -> bool:
        return self.reply.code == 220


@dataclass(frozen=True, slots=True)
class HelloCompleted(ClientEvent):
    """EHLO (or, after EHLO was refused with 5xx, HELO) succeeded."""

    reply: Reply
    extensions: Extensions
    esmtp: bool  # False after the HELO fallback: no extensions at all


@dataclass(frozen=True, slots=True)
class TLSReady(ClientEvent):
    """220 to STARTTLS: do the TLS handshake now, then call ``tls_started()`` and EHLO again."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class AuthCompleted(ClientEvent):
    """235: authenticated (and, for SCRAM, the server proved it knows the password)."""

    reply: Reply
    mechanism: str


@dataclass(frozen=True, slots=True)
class CommandCompleted(ClientEvent):
    """A positive reply to a simple command (NOOP, RSET, QUIT)."""

    command: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class CommandFailed(ClientEvent):
    """A command outside a mail transaction got a 4xx or 5xx reply. ``detail`` says more when
    the client itself gave up (a SASL exchange it cancelled)."""

    command: str
    reply: Reply
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ServiceClosing(ClientEvent):
    """A 421 that answered no command: the server is closing the connection."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class ServerClosed(ClientEvent):
    """The server closed the connection. ``expected`` after QUIT or a 421, not otherwise."""

    expected: bool


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """The fate of one recipient.

    ``reply`` is the reply that settled it: the RCPT reply when RCPT was refused, the MAIL reply
    when MAIL was, otherwise the reply to the message (end of data, the last BDAT, a refused
    DATA; in LMTP this recipient's own reply after the message). ``rcpt_reply`` is what RCPT
    itself got (None if it was never answered).
    """

    address: str
    reply: Reply
    rcpt_reply: Reply | None
    command: Literal["MAIL", "RCPT", "DATA"]  # the command whose reply settled it

    @property
    def delivered(self) -> bool:
        return self.reply.code < 300

    @property
    def classification(self) -> Classification:
        """What the reply means for this recipient: deliver, retry or bounce, and why."""
        return classify(self.reply, command=self.command)

    @property
    def is_transient(self) -> bool:
        return self.reply.is_transient

    @property
    def is_permanent(self) -> bool:
        return self.reply.is_permanent


@dataclass(frozen=True, slots=True)
class TransactionResult:
    """One MAIL transaction: the replies to MAIL, to each RCPT, and to the message."""

    sender: str
    mail_reply: Reply
    recipients: tuple[RecipientResult, ...]
    data_reply: Reply | None  # None when the message was never sent (no recipient accepted)
    method: Literal["DATA", "BDAT", "BURL"]
    size: int  # octets of the message as sent (before dot-stuffing)
    # LMTP: the replies after the message, one per accepted recipient in order (RFC 2033
    # §4.2); data_reply is then the last of them. Empty in SMTP.
    data_replies: tuple[Reply, ...] = ()

    @property
    def delivered(self) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.recipients if r.delivered)

    @property
    def failed(self) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.recipients if not r.delivered)

    @property
    def all_delivered(self) -> bool:
        return bool(self.recipients) and not self.failed

    def __getitem__(self, address: str) -> RecipientResult:
        for result in self.recipients:
            if result.address == address:
                return result
        raise KeyError(address)


@dataclass(frozen=True, slots=True)
class TraceLine:
    """One line of the session as a person would read it: a command sent (SASL data masked),
    a summary of message data sent, a reply received, or (from a driver) a note such as
    "connected" or "TLS started"."""

    direction: Literal["client", "data", "server", "info"]
    text: str
    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class TransactionCompleted(ClientEvent):
    result: TransactionResult


@dataclass(frozen=True, slots=True)
class TransactionInterrupted(ClientEvent):
    """The server closed the connection in the middle of a transaction (:class:`ServerClosed`
    follows). ``result`` holds only the recipients whose fate was already known: refused at
    MAIL or RCPT, or (LMTP) answered after the message before the connection went."""

    result: TransactionResult
