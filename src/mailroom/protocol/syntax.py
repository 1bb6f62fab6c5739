"""The address syntax of RFC 5321 §4.1.2 and §4.1.3, with the RFC 6531 (SMTPUTF8) extensions.

Pure functions from text to values; every failure raises :class:`AddressError` with a short
reason that the caller turns into a catalogue reply.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "AddressError",
    "Mailbox",
    "a_label",
    "ascii_digits",
    "parse_domain",
    "parse_mailbox",
    "parse_path",
    "split_path",
]

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3, including the angle brackets


class AddressError(ValueError):
    """Text that is not a valid path, mailbox or domain."""


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is RFC 5234's 1*DIGIT (%x30-39): a number written in a protocol field.
    ``str.isdigit`` alone is true of "²" (which ``int`` refuses) and of "١٢" (which ``int``
    reads as 12), and a field read as UTF-8 may hold either."""
    return text.isascii() and text.isdigit()


def a_label(domain: str) -> str:
    """A domain's ASCII spelling, its A-labels (RFC 5890, by Python's IDNA codec), or the name
    as it is when it is ASCII already or has none."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


@dataclass(frozen=True, slots=True, init=False)
class Mailbox:
    """A mailbox as the client wrote it: ``local_part`` keeps its quotes if it had them.

    ``domain`` is a domain name or an address literal in brackets; it is empty only for the
    special recipient ``<postmaster>`` (RFC 5321 §4.1.1.3).
    """

    local_part: str
    domain: str

    def __init__(self, local_part: str, domain: str) -> None:
        # Its own __init__, compiled (see MailParameters): two of these a message.
        object.__setattr__(self, "local_part", local_part)
        object.__setattr__(self, "domain", domain)

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain}" if self.domain else self.local_part

    @property
    def is_postmaster(self) -> bool:
        return not self.domain and self.local_part.lower() == "postmaster"

    @property
    def is_ascii(self) -> bool:
        return self.local_part.isascii() and self.domain.isascii()

    @property
    def is_address_literal(self) -> bool:
        return self.domain.startswith("[")

    @property
    def bracketed(self) -> str:
        return f"<{self}>"


_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_UTF8 = r"\u0080-\U0010ffff"
_LET_DIG = "A-Za-z0-9"


def _compile(utf8: bool) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    extra = _UTF8 if utf8 else ""
    atom = f"[{_ATEXT}{extra}]+"
    dot_string = f"{atom}(?:\\.{atom})*"
    # qtextSMTP is %d32-33 / %d35-91 / %d93-126; quoted-pairSMTP is "\" %d32-126.
    quoted = f'"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e{extra}]|\\\\[\\x20-\\x7e])*"'
    let_dig = f"[{_LET_DIG}{extra}]"
    sub_domain = f"{let_dig}(?:[{_LET_DIG}{extra}\\-]*{let_dig})?"
    domain = f"{sub_domain}(?:\\.{sub_domain})*"
    local = re.compile(f"(?:{dot_string}|{quoted})")
    return local, re.compile(domain), re.compile(f"({dot_string}|{quoted})@(.+)", re.DOTALL)


_ASCII = _compile(utf8=False)
_UNICODE = _compile(utf8=True)
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+")


def _octets(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def parse_domain(text: str, *, utf8: bool = False) -> str:
    """A domain name (RFC 5321 ``Domain``) or an address literal; returns it unchanged."""
    if text.startswith("[") and text.endswith("]"):
        _check_address_literal(text[1:-1])
        return text
    _, domain, _ = _UNICODE if utf8 else _ASCII
    if not domain.fullmatch(text):
        raise AddressError("invalid domain")
    if _octets(text) > MAX_DOMAIN:
        raise AddressError("domain longer than 255 octets")
    if any(_octets(label) > 63 for label in text.split(".")):
        raise AddressError("domain label longer than 63 octets")
    return text


def _check_address_literal(body: str) -> None:
    if not body.isascii():
        # RFC 6531 extends no part of an address literal; and str.isdigit and int take "١"
        # for 1, so "[١.٢.٣.٤]" would pass below as 1.2.3.4.
        raise AddressError("non-ASCII address literal")
    if body[:5].lower() == "ipv6:":
        if "%" in body:
            # ipaddress reads a scope id ("fe80::1%eth0", RFC 4007), anything up to the "]",
            # spaces included; RFC 5321's IPv6-addr has none.
            raise AddressError("invalid IPv6 address literal")
        try:
            ipaddress.IPv6Address(body[5:])
        except ValueError:
            raise AddressError("invalid IPv6 address literal") from None
        return
    if body[:1].isdigit():
        try:
            # ipaddress refuses leading zeros, which RFC 5321's Snum (1*3DIGIT) allows; normalise.
            parts = body.split(".")
            if len(parts) != 4 or not all(p.isdigit() and 1 <= len(p) <= 3 for p in parts):
                raise ValueError
            ipaddress.IPv4Address(".".join(str(int(p)) for p in parts))
        except ValueError:
            raise AddressError("invalid IPv4 address literal") from None
        return
    if not _GENERAL_LITERAL.fullmatch(body):
        raise AddressError("invalid address literal")


def parse_mailbox(text: str, *, utf8: bool = False) -> Mailbox:
    """``Local-part "@" ( Domain / address-literal )``."""
    _, _, mailbox = _UNICODE if utf8 else _ASCII
    match = mailbox.fullmatch(text)
    if match is None:
        raise AddressError("invalid mailbox")
    local_part, domain = match[1], match[2]
    if _octets(local_part) > MAX_LOCAL_PART:
        raise AddressError("local part longer than 64 octets")
    return Mailbox(local_part, parse_domain(domain, utf8=utf8))


def split_path(text: str) -> tuple[str, str]:
    """Split ``<path> params`` into the path with its brackets and the rest.

    The closing bracket is found with quoted local parts in mind (``<"a>b"@x>``).
    """
    if not text.startswith("<"):
        raise AddressError("path must be in angle brackets")
    if '"' not in text:  # the common case: no quoted local part, the first ">" closes
        end = text.find(">")
        if end < 0:
            raise AddressError("path has no closing angle bracket")
        return text[: end + 1], text[end + 1 :]
    quoted = escaped = False
    for index in range(1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return text[: index + 1], text[index + 1 :]
    raise AddressError("path has no closing angle bracket")


def parse_path(
    path: str, *, utf8: bool = False, allow_null: bool, allow_postmaster: bool
) -> Mailbox | None:
    """``<mailbox>``, with an ignored source route (RFC 5321 §4.1.2, Appendix C); ``<>`` gives
    None where allowed (reverse-path); ``<postmaster>`` where allowed (RCPT)."""
    return _parse_path(path, utf8, allow_null, allow_postmaster)


# Senders and recipients repeat (a list server, a load test, the same few correspondents):
# a small cache of valid paths saves the regular expressions most of the time. Invalid paths
# raise, and exceptions are not cached.
@lru_cache(maxsize=4096)
def _parse_path(path: str, utf8: bool, allow_null: bool, allow_postmaster: bool) -> Mailbox | None:
    if _octets(path) > MAX_PATH:
        raise AddressError("path longer than 256 octets")
    inner = path[1:-1]
    if not inner:
        if allow_null:
            return None
        raise AddressError("null path not allowed here")
    if allow_postmaster and inner.lower() == "postmaster":
        return Mailbox(inner, "")
    if inner.startswith("@"):
        # A source route, "@one,@two:user@host": accepted and ignored (RFC 5321 §3.3, App. C).
        route, colon, rest = inner.partition(":")
        if not colon:
            raise AddressError("source route without ':'")
        for hop in route.split(","):
            if not hop.startswith("@"):
                raise AddressError("invalid source route")
            parse_domain(hop[1:], utf8=utf8)
        inner = rest
    return parse_mailbox(inner, utf8=utf8)
