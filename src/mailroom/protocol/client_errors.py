"""What can go wrong on the client side before or besides a reply: the server breaking the
protocol, the caller using the connection out of turn, a message refused before sending."""

from __future__ import annotations

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies

__all__ = [
    "ClientError",
    "ExtensionNotOffered",
    "InvalidAddress",
    "LocalProtocolError",
    "LocalRefusal",
    "MessageTooLarge",
    "RemoteProtocolError",
    "SMTPUTF8NotOffered",
]


class ClientError(Exception):
    """Base of the client side's errors."""


class RemoteProtocolError(ClientError):
    """The server broke the protocol: a malformed reply, a reply nobody asked for, plaintext
    after its 220 to STARTTLS. The connection is unusable; close it."""


class LocalProtocolError(ClientError):
    """The caller used the connection out of turn (MAIL before EHLO, two commands at once)."""


class InvalidAddress(LocalProtocolError, ValueError):
    """An address that cannot be put in MAIL or RCPT (bad syntax, CR or LF)."""


class ExtensionNotOffered(LocalProtocolError):
    """The caller asked for something the server did not offer (STARTTLS, an AUTH mechanism,
    BINARYMIME, CHUNKING)."""

    def __init__(self, keyword: str, message: str = "") -> None:
        super().__init__(message or f"the server does not offer {keyword}")
        self.keyword = keyword


class LocalRefusal(ClientError):
    """The message cannot go to this server, known before sending it. ``reply`` says why in the
    words mailroom's own server would use (from the catalogue), so it can be classified and
    put in a bounce like any reply received."""

    def __init__(self, reply: Reply, message: str) -> None:
        super().__init__(message)
        self.reply = reply


class MessageTooLarge(LocalRefusal):
    """The message is larger than the SIZE the server announced (RFC 1870 §6)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            replies.MESSAGE_SIZE_EXCEEDS_LIMIT(),
            f"message of {size} octets exceeds the server's SIZE limit of {limit} octets",
        )
        self.size = size
        self.limit = limit


class SMTPUTF8NotOffered(LocalRefusal):
    """An address is not ASCII, and the server does not offer SMTPUTF8 (RFC 6531 §3.2)."""

    def __init__(self, address: str) -> None:
        super().__init__(
            replies.NON_ASCII_ADDRESS(address=f"<{address}>"),
            f"<{address}> is not ASCII and the server does not offer SMTPUTF8",
        )
        self.address = address
