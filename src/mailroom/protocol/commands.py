"""Reading the arguments of MAIL, RCPT, BDAT and AUTH into values, or into the catalogue
reply that refuses them. Pure functions; the connection decides when each one applies."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol.parameters import (
    MailParameters,
    ParameterError,
    RcptParameters,
    parse_mail_parameters,
    parse_rcpt_parameters,
)
from mailroom.protocol.syntax import AddressError, Mailbox, ascii_digits, parse_path, split_path

__all__ = [
    "Extensions",
    "Refused",
    "parse_auth",
    "parse_bdat",
    "parse_burl",
    "parse_mail",
    "parse_rcpt",
    "redact_burl",
]


class Refused(Exception):
    """The argument cannot be accepted; ``reply`` says why."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Extensions:
    """The extensions in force for this session (none after HELO)."""

    size: bool = False
    eightbitmime: bool = False
    binarymime: bool = False
    smtputf8: bool = False
    dsn: bool = False
    auth: bool = False
    requiretls: bool = False  # RFC 8689: offered only over TLS
    mt_priority: bool = False  # RFC 6710
    rrvs: bool = False  # RFC 7293


NO_EXTENSIONS = Extensions()

# How much of a client's text a reply repeats: a path is at most 256 octets (RFC 5321
# §4.5.3.1.3), a parameter keyword is short. Reply lines stay within 512 octets (§4.5.3.1.5).
SHOWN_PATH = 256
SHOWN_KEYWORD = 64
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def shown(text: str, limit: int) -> str:
    """``text`` as a reply may repeat it: printable ASCII only (reply text is ASCII, RFC 5321
    §4.2; other characters become "?") and at most ``limit`` characters."""
    text = _UNPRINTABLE.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parameter_reply(error: ParameterError) -> Reply:
    if error.unknown:
        return replies.PARAMETER_UNKNOWN(param=shown(error.name, SHOWN_KEYWORD))
    return replies.PARAMETER_MALFORMED(param=shown(error.name, SHOWN_KEYWORD))


def _split_argument(argument: str, keyword: str, syntax: Reply) -> tuple[str, str]:
    """``FROM:<path> params`` → (``<path>``, ``params``)."""
    if argument[: len(keyword)].upper() != keyword:
        raise Refused(syntax)
    # RFC 5321 has no space after the colon; many clients write one, and Postfix and Exim
    # accept it, so do we.
    rest = argument[len(keyword) :].lstrip(" ")
    try:
        path, params = split_path(rest)
    except AddressError:
        raise Refused(syntax) from None
    if params and not params.startswith(" "):
        raise Refused(syntax)
    return path, params


def parse_mail(
    argument: str, extensions: Extensions, max_size: int
) -> tuple[Mailbox | None, MailParameters]:
    path, params_text = _split_argument(argument, "FROM:", replies.MAIL_SYNTAX())
    try:
        params = parse_mail_parameters(
            params_text,
            size=extensions.size,
            eightbitmime=extensions.eightbitmime,
            binarymime=extensions.binarymime,
            smtputf8=extensions.smtputf8,
            dsn=extensions.dsn,
            auth=extensions.auth,
            requiretls=extensions.requiretls,
            mt_priority=extensions.mt_priority,
        )
    except ParameterError as error:
        raise Refused(_parameter_reply(error)) from None
    if not path.isascii() and not params.smtputf8:
        raise Refused(replies.NON_ASCII_SENDER(address=shown(path, SHOWN_PATH)))
    try:
        sender = parse_path(path, utf8=params.smtputf8, allow_null=True, allow_postmaster=False)
    except AddressError:
        raise Refused(replies.SENDER_SYNTAX(address=shown(path, SHOWN_PATH))) from None
    if max_size and params.size is not None and params.size > max_size:
        raise Refused(replies.MESSAGE_SIZE_EXCEEDS_LIMIT())
    return sender, params


def parse_rcpt(
    argument: str, extensions: Extensions, smtputf8: bool
) -> tuple[Mailbox, RcptParameters]:
    """``smtputf8`` is whether this transaction's MAIL said SMTPUTF8."""
    path, params_text = _split_argument(argument, "TO:", replies.RCPT_SYNTAX())
    try:
        params = parse_rcpt_parameters(
            params_text, dsn=extensions.dsn, smtputf8=smtputf8, rrvs=extensions.rrvs
        )
    except ParameterError as error:
        raise Refused(_parameter_reply(error)) from None
    if not path.isascii() and not smtputf8:
        raise Refused(replies.NON_ASCII_ADDRESS(address=shown(path, SHOWN_PATH)))
    try:
        recipient = parse_path(path, utf8=smtputf8, allow_null=False, allow_postmaster=True)
    except AddressError:
        raise Refused(replies.RECIPIENT_SYNTAX(address=shown(path, SHOWN_PATH))) from None
    assert recipient is not None
    return recipient, params


MAX_CHUNK_DIGITS = 20


def parse_bdat(argument: str) -> tuple[int, bool]:
    """``chunk-size [LAST]`` (RFC 3030 §2) → (size, last)."""
    words = argument.split()
    if not 1 <= len(words) <= 2 or not ascii_digits(words[0]) or len(words[0]) > MAX_CHUNK_DIGITS:
        raise Refused(replies.BDAT_SYNTAX())
    if len(words) == 2 and words[1].upper() != "LAST":
        raise Refused(replies.BDAT_SYNTAX())
    return int(words[0]), len(words) == 2


_URLAUTH_TOKEN = re.compile(r"(;urlauth=[^:;/]*:[^:;/]*:)[0-9A-Fa-f]+", re.IGNORECASE)


def parse_burl(argument: str) -> tuple[str, bool]:
    """``absolute-URI [LAST]`` (RFC 4468 §3) → (URL, last)."""
    words = argument.split()
    if not 1 <= len(words) <= 2 or (len(words) == 2 and words[1].upper() != "LAST"):
        raise Refused(replies.BURL_SYNTAX())
    if ":" not in words[0] or not words[0].isascii() or not words[0].isprintable():
        raise Refused(replies.BURL_SYNTAX())
    return words[0], len(words) == 2


def redact_burl(url: str) -> str:
    """A BURL URL as a transcript may show it: its URLAUTH token lets anyone holding it read
    the message part (RFC 4467 §7), so it is left out."""
    return _URLAUTH_TOKEN.sub(r"\1<redacted>", url)


def decode_sasl(text: str) -> bytes:
    """A client's base64 response; "=" is the empty initial response (RFC 4954 §4)."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(replies.AUTH_BAD_BASE64()) from None


def parse_auth(argument: str) -> tuple[str, str | None]:
    """``mechanism [initial-response]`` → (MECHANISM, initial response text or None)."""
    words = argument.split(" ")
    if not words[0] or len(words) > 2 or (len(words) == 2 and not words[1]):
        raise Refused(replies.AUTH_SYNTAX())
    return words[0].upper(), (words[1] if len(words) == 2 else None)
