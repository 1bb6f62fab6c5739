"""The envelope side of a message the client sends: recipients with their DSN options, the
options of MAIL, and the encodings of ESMTP parameter values (xtext, RFC 3461 §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailroom.protocol.client_errors import InvalidAddress
from mailroom.protocol.parameters import parse_rrvs
from mailroom.protocol.syntax import AddressError, parse_mailbox

__all__ = ["DEFAULT_CHUNK_SIZE", "MailOptions", "Recipient", "encode_orcpt", "encode_xtext"]

DEFAULT_CHUNK_SIZE = 1024 * 1024
_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


@dataclass(frozen=True, slots=True)
class Recipient:
    """A recipient with its DSN options (RFC 3461 §4.1, §4.2)."""

    address: str
    notify: tuple[str, ...] | None = None  # ("NEVER",) or some of SUCCESS, FAILURE, DELAY
    orcpt: str | None = None  # the original recipient, sent as ORCPT=rfc822;… (or utf-8;…)
    # The address type the original recipient came with (x400, utf-8, …): a relay passes ORCPT
    # on with its type unchanged (RFC 3461 §5.2.1 (d)). None: rfc822, or utf-8 when not ASCII.
    orcpt_type: str | None = None
    # RFC 7293: "deliver only if the mailbox has had one owner since": RRVS=<date-time>[;C|;R]
    rrvs: str | None = None

    def __post_init__(self) -> None:
        if self.rrvs is not None:
            parse_rrvs(self.rrvs)  # ValueError for a malformed one
        if self.notify is not None:
            words = tuple(word.upper() for word in self.notify)
            if words != ("NEVER",) and (
                not words or not set(words) <= _NOTIFY or len(set(words)) != len(words)
            ):
                raise ValueError(f"NOTIFY is NEVER or some of SUCCESS, FAILURE, DELAY: {words}")
            object.__setattr__(self, "notify", words)


@dataclass(frozen=True, slots=True)
class MailOptions:
    """How to send one message. The defaults do the right thing for the server at hand."""

    # None: BODY=8BITMIME when the message has 8-bit octets and the server offers 8BITMIME
    # (sent as is, like Postfix, when it does not). "BINARYMIME" needs CHUNKING and BINARYMIME.
    body: Literal["7BIT", "8BITMIME", "BINARYMIME"] | None = None
    # None: SMTPUTF8 when the sender or a recipient is not ASCII.
    smtputf8: bool | None = None
    ret: Literal["FULL", "HDRS"] | None = None  # DSN: return the full message or its headers
    envid: str | None = None  # DSN: the envelope id returned in reports
    declare_size: bool = True  # send SIZE= when the server offers SIZE
    # None: BDAT when the server offers CHUNKING; False: always DATA; True: BDAT or refuse.
    chunking: bool | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    # RFC 8689: MAIL FROM ... REQUIRETLS; refused before sending when the server (after TLS)
    # does not offer REQUIRETLS.
    requiretls: bool = False
    # RFC 6710: MT-PRIORITY=<-9..9>, sent when the server offers MT-PRIORITY
    mt_priority: int | None = None
    # RFC 4468: the message is at this URL (IMAP URLAUTH): "BURL <url> LAST" instead of DATA
    # or BDAT; the message bytes given are not sent. The server must offer BURL for its scheme.
    burl: str | None = None

    def __post_init__(self) -> None:
        if self.mt_priority is not None and not -9 <= self.mt_priority <= 9:
            raise ValueError("MT-PRIORITY is a whole number from -9 to 9 (RFC 6710)")
        if self.body not in (None, "7BIT", "8BITMIME", "BINARYMIME"):
            raise ValueError(f"BODY is 7BIT, 8BITMIME or BINARYMIME, not {self.body!r}")
        if self.ret not in (None, "FULL", "HDRS"):
            raise ValueError(f"RET is FULL or HDRS, not {self.ret!r}")
        if self.envid is not None and (not self.envid or len(encode_xtext(self.envid)) > 100):
            raise ValueError("ENVID must be 1 to 100 octets of xtext (RFC 3461 §4.4)")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")


def encode_xtext(text: str) -> str:
    """RFC 3461 §4: printable ASCII but "+" and "=" as is, every other octet as ``+XX``."""
    out = []
    for octet in text.encode("utf-8"):
        if 33 <= octet <= 126 and octet not in (0x2B, 0x3D):
            out.append(chr(octet))
        else:
            out.append(f"+{octet:02X}")
    return "".join(out)


def encode_orcpt(address: str, address_type: str | None = None) -> str:
    """``type;address`` as ORCPT carries it (RFC 3461 §4.2, RFC 6533 §3). The type is kept as
    given (a relay passes it on unchanged); without one, rfc822, or utf-8 when not ASCII."""
    kind = (address_type or "").lower()
    if kind not in ("", "rfc822", "utf-8"):
        return f"{address_type};{encode_xtext(address)}"  # x400 and others: xtext
    if kind != "utf-8" and address.isascii():
        return f"{address_type or 'rfc822'};{encode_xtext(address)}"
    # RFC 6533 §3: utf-8-addr-xtext, where only controls, space, "+", "=" and "\" need escaping.
    escaped = "".join(
        f"\\x{{{ord(c):X}}}" if ord(c) <= 32 or c in "+=\\" or ord(c) == 127 else c for c in address
    )
    return f"{address_type if kind == 'utf-8' else 'utf-8'};{escaped}"


def check_address(address: str, *, allow_null: bool) -> None:
    if allow_null and address == "":
        return
    try:
        parse_mailbox(address, utf8=not address.isascii())
    except AddressError as exc:
        raise InvalidAddress(f"{address!r}: {exc}") from None
