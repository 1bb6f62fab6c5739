"""ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2) and what each extension lets them say.

MAIL: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET and ENVID
(RFC 3461), AUTH (RFC 4954 §5), REQUIRETLS (RFC 8689), MT-PRIORITY (RFC 6710). RCPT: NOTIFY and
ORCPT (RFC 3461), RRVS (RFC 7293).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from mailroom.protocol.syntax import ascii_digits

__all__ = [
    "MailParameters",
    "ParameterError",
    "RcptParameters",
    "decode_xtext",
    "parse_mail_parameters",
    "parse_rcpt_parameters",
    "parse_rrvs",
]

# esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); esmtp-value = 1*(%d33-60 / %d62-126),
# plus UTF-8 when SMTPUTF8 is in use (RFC 6531 §3.3).
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+")
MAX_ENVID = 100  # RFC 3461 §4.4
MAX_SIZE_DIGITS = 20  # RFC 1870 §4: size-value ::= 1*20DIGIT

BODY_TYPES = ("7BIT", "8BITMIME", "BINARYMIME")
# RFC 6710 §3: priority-value = %x30-39 / ("-" %x31-39): a whole number from -9 to 9.
_PRIORITY = re.compile(r"0|-?[1-9]")
# RFC 7293 §3.1: rrvs-param = date-time [";" ("C" / "R")], date-time of RFC 3339 §5.6.
_RRVS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))(?:;([CcRr]))?",
    re.ASCII,  # \d is any Unicode digit otherwise
)
NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})


class ParameterError(ValueError):
    """A parameter that is unknown (``unknown=True``) or malformed; ``name`` says which."""

    def __init__(self, name: str, *, unknown: bool) -> None:
        super().__init__(name)
        self.name = name
        self.unknown = unknown


# Frozen, with an __init__ of their own: mypyc compiles that one to native code (and its
# object.__setattr__ calls to plain stores); the one @dataclass writes is interpreted Python,
# a few times slower, and these are made for every MAIL and RCPT.
@dataclass(frozen=True, slots=True, init=False)
class MailParameters:
    size: int | None
    body: str | None  # "7BIT", "8BITMIME" or "BINARYMIME"
    smtputf8: bool
    ret: str | None  # "FULL" or "HDRS"
    envid: str | None  # decoded from xtext
    auth: str | None  # the AUTH= mailbox, decoded from xtext; "<>" when unknown
    requiretls: bool  # RFC 8689: relay only over verified TLS to REQUIRETLS servers
    mt_priority: int | None  # RFC 6710: -9 (lowest) to 9; None: not given (0)

    def __init__(
        self,
        size: int | None = None,
        body: str | None = None,
        smtputf8: bool = False,
        ret: str | None = None,
        envid: str | None = None,
        auth: str | None = None,
        requiretls: bool = False,
        mt_priority: int | None = None,
    ) -> None:
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "smtputf8", smtputf8)
        object.__setattr__(self, "ret", ret)
        object.__setattr__(self, "envid", envid)
        object.__setattr__(self, "auth", auth)
        object.__setattr__(self, "requiretls", requiretls)
        object.__setattr__(self, "mt_priority", mt_priority)


@dataclass(frozen=True, slots=True, init=False)
class RcptParameters:
    notify: tuple[str, ...] | None  # ("NEVER",) or some of SUCCESS, FAILURE, DELAY
    orcpt: tuple[str, str] | None  # (address type, decoded address)
    rrvs: str | None  # RFC 7293: the date-time (and ";C" or ";R") as the client wrote it

    def __init__(
        self,
        notify: tuple[str, ...] | None = None,
        orcpt: tuple[str, str] | None = None,
        rrvs: str | None = None,
    ) -> None:
        object.__setattr__(self, "notify", notify)
        object.__setattr__(self, "orcpt", orcpt)
        object.__setattr__(self, "rrvs", rrvs)


# No parameters, the usual case: one shared value each (they are frozen).
NO_MAIL_PARAMETERS = MailParameters()
NO_RCPT_PARAMETERS = RcptParameters()


def decode_xtext(text: str) -> str:
    """RFC 3461 §4: xtext, where "+" and two upper-case hex digits stand for one octet."""
    if not _XTEXT.fullmatch(text):
        raise ValueError("invalid xtext")
    raw = bytearray()
    index = 0
    while index < len(text):
        if text[index] == "+":
            raw.append(int(text[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.append(ord(text[index]))
            index += 1
    return raw.decode("utf-8", errors="replace")


def _printable_ascii(text: str) -> bool:
    """RFC 3461 §4.2, §4.4: ENVID and an ORCPT address, once decoded, are printable US-ASCII
    ("graphic and white space"): they go on to the next hop and into DSN fields, where a line
    break, a NUL or an 8-bit octet has no place."""
    return all(" " <= char <= "~" or char == "\t" for char in text)


def parse_rrvs(value: str) -> tuple[float, str]:
    """An RRVS value (RFC 7293 §3.1) → (seconds since the epoch, "C" or "R"; "C" when not
    given). Raises ValueError for anything else."""
    match = _RRVS.fullmatch(value)
    if match is None:
        raise ValueError(f"not an RRVS date-time: {value!r}")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    offset = 0
    if match[8]:
        offset = int(match[9]) * 3600 + int(match[10]) * 60
        if match[8] == "-":
            offset = -offset
    try:
        moment = datetime.datetime(
            year, month, day, hour, minute, min(second, 59), tzinfo=datetime.UTC
        )
    except ValueError:
        raise ValueError(f"not an RRVS date-time: {value!r}") from None
    return moment.timestamp() - offset, (match[11] or "C").upper()


def _split(text: str, utf8: bool) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for item in text.split():
        keyword, equals, value = item.partition("=")
        name = keyword.upper()
        if not _KEYWORD.fullmatch(keyword):
            raise ParameterError(keyword or item, unknown=False)
        if equals and not _VALUE.fullmatch(value):
            raise ParameterError(name, unknown=False)
        if not utf8 and not value.isascii():
            raise ParameterError(name, unknown=False)
        if name in found:
            raise ParameterError(name, unknown=False)  # given twice
        found[name] = value if equals else None
    return found


def parse_mail_parameters(
    text: str,
    *,
    size: bool,
    eightbitmime: bool,
    binarymime: bool,
    smtputf8: bool,
    dsn: bool,
    auth: bool,
    requiretls: bool = False,
    mt_priority: bool = False,
) -> MailParameters:
    """Parse MAIL's parameters; the flags say which extensions this session offers."""
    if not text:
        return NO_MAIL_PARAMETERS
    items = _split(text, utf8=smtputf8)
    result: dict[str, object] = {}
    for name, value in items.items():
        if name == "SIZE" and size:
            # (A UTF-8 value is allowed where SMTPUTF8 is offered: "²" is no size.)
            if value is None or not ascii_digits(value) or len(value) > MAX_SIZE_DIGITS:
                raise ParameterError(name, unknown=False)
            result["size"] = int(value)
        elif name == "BODY" and eightbitmime:
            body = (value or "").upper()
            if body not in BODY_TYPES or (body == "BINARYMIME" and not binarymime):
                raise ParameterError(name, unknown=False)
            result["body"] = body
        elif name == "SMTPUTF8" and smtputf8:
            if value is not None:
                raise ParameterError(name, unknown=False)
            result["smtputf8"] = True
        elif name == "RET" and dsn:
            ret = (value or "").upper()
            if ret not in ("FULL", "HDRS"):
                raise ParameterError(name, unknown=False)
            result["ret"] = ret
        elif name == "ENVID" and dsn:
            try:
                envid = decode_xtext(value or "")
            except ValueError:
                raise ParameterError(name, unknown=False) from None
            if not value or len(value) > MAX_ENVID or not _printable_ascii(envid):
                raise ParameterError(name, unknown=False)
            result["envid"] = envid
        elif name == "AUTH" and auth:
            if not value:
                raise ParameterError(name, unknown=False)
            try:
                result["auth"] = value if value == "<>" else decode_xtext(value)
            except ValueError:
                raise ParameterError(name, unknown=False) from None
        elif name == "REQUIRETLS" and requiretls:
            if value is not None:  # RFC 8689 §2: the parameter takes no value
                raise ParameterError(name, unknown=False)
            result["requiretls"] = True
        elif name == "MT-PRIORITY" and mt_priority:
            if value is None or not _PRIORITY.fullmatch(value):
                raise ParameterError(name, unknown=False)
            result["mt_priority"] = int(value)
        else:
            raise ParameterError(name, unknown=True)
    return MailParameters(**result)  # type: ignore[arg-type]


def parse_rcpt_parameters(
    text: str, *, dsn: bool, smtputf8: bool, rrvs: bool = False
) -> RcptParameters:
    if not text:
        return NO_RCPT_PARAMETERS
    items = _split(text, utf8=smtputf8)
    notify: tuple[str, ...] | None = None
    orcpt: tuple[str, str] | None = None
    rrvs_value: str | None = None
    for name, value in items.items():
        if name == "NOTIFY" and dsn:
            words = tuple((value or "").upper().split(","))
            if words == ("NEVER",):
                notify = words
            elif not words or not set(words) <= NOTIFY_VALUES or len(set(words)) != len(words):
                raise ParameterError(name, unknown=False)
            else:
                notify = words
        elif name == "ORCPT" and dsn:
            addr_type, semicolon, encoded = (value or "").partition(";")
            if not semicolon or not _ADDR_TYPE.fullmatch(addr_type) or not encoded:
                raise ParameterError(name, unknown=False)
            try:
                # "utf-8" addresses (RFC 6533) may carry raw UTF-8; xtext covers the rest.
                decoded = encoded if not encoded.isascii() else decode_xtext(encoded)
            except ValueError:
                raise ParameterError(name, unknown=False) from None
            if encoded.isascii() and not _printable_ascii(decoded):
                raise ParameterError(name, unknown=False)
            orcpt = (addr_type, decoded)
        elif name == "RRVS" and rrvs:
            try:
                parse_rrvs(value or "")
            except ValueError:
                raise ParameterError(name, unknown=False) from None
            rrvs_value = value
        else:
            raise ParameterError(name, unknown=True)
    return RcptParameters(notify=notify, orcpt=orcpt, rrvs=rrvs_value)
