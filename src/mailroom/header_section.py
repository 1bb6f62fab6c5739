"""A message's header section (RFC 5322 §2.1): where it ends, its fields, and the text of a
field's encoded words. One reading for every part that looks at a header (authentication,
policy, delivery, the store's index, the web UI), so that they agree on where a header ends
and none of them reads a stranger's header in time that grows with its square.

A header section ends at the first empty line, whatever the line ends (CRLF as on the wire,
LF as in a file, or the two mixed); a message that starts with an empty line has none.
"""

from __future__ import annotations

import email.header
import email.utils
import re
from collections.abc import Iterable, Iterator

__all__ = [
    "MAX_DECODED",
    "MAX_SEARCH",
    "address_list",
    "decode_address_field",
    "decode_encoded_words",
    "header_fields",
    "header_length",
    "split_message",
]

# Octets of header section looked through for the empty line: past this, a message is all
# header, no body. The same as the SMTP server's default max_header_section, which refuses a
# longer header section, so every message it took is read right.
MAX_SEARCH = 1 << 20
# Characters of a value whose encoded words are decoded. The standard library joins adjacent
# encoded words one by one, a time with the square of their number (64,000 of them: 9 s);
# past this many characters they are kept as written.
MAX_DECODED = 16 * 1024
_EMPTY_LINE = re.compile(rb"\r?\n\r?\n")
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')  # RFC 5322 §3.2.3: a name with one is quoted
# What looks like an addr-spec, for a value the standard library cannot read. A run starts
# only where the one before it ends (the look-behind), so a long run without "@" is passed
# over once, not from each of its characters.
_ADDRESS_CHARACTER = r"[^\s<>()\[\]\",;:@\\]"
_LOOKS_LIKE_ADDRESS = re.compile(
    rf"(?<!{_ADDRESS_CHARACTER}){_ADDRESS_CHARACTER}++@{_ADDRESS_CHARACTER}++"
)


def header_length(message: bytes | bytearray) -> int:
    """The length of the header section: up to and including the last field's line end,
    before the empty line (the whole message when there is no empty line)."""
    head = bytes(message[: MAX_SEARCH + 4])  # and the line ends after a header that long
    if head.startswith((b"\r\n", b"\n")):
        return 0
    match = _EMPTY_LINE.search(head)
    if match is None:
        return len(message)
    return match.start() + (2 if head[match.start() : match.start() + 2] == b"\r\n" else 1)


def split_message(message: bytes) -> tuple[bytes, bytes]:
    """The header section (with its last line end, without the empty line) and the body."""
    length = header_length(message)
    if length >= len(message):
        return message, b""
    empty_line = 2 if message[length : length + 2] == b"\r\n" else 1
    return message[:length], message[length + empty_line :]


def header_fields(head: bytes) -> Iterator[bytes]:
    """Each header field of a header section, folded lines and line ends included."""
    # A field's lines are joined once at its end: adding each to the field as it came took
    # time with the square of a long fold (320,000 folded lines: 11 s, on the event loop).
    current: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        if current:
            yield b"".join(current)
        current = [line]
    if current:
        yield b"".join(current)


def decode_encoded_words(text: str) -> str:
    """``text`` with its encoded words (RFC 2047) decoded, those of the first ``MAX_DECODED``
    characters; it is returned as it is when they cannot be (an unknown charset)."""
    if "=?" not in text:
        return text
    head, rest = text[:MAX_DECODED], text[MAX_DECODED:]
    try:
        # The pieces are joined as they come: email.header.make_header puts a space between
        # a word and the text it touches ("=?utf-8?b?...?=." read "доставлено ."), where
        # the sender wrote none.
        pieces = email.header.decode_header(head)
        decoded = "".join(_piece(part, charset) for part, charset in pieces)
    except (LookupError, ValueError):
        return text
    return decoded + rest


def _piece(part: bytes | str, charset: str | None) -> str:
    if isinstance(part, str):
        return part
    if charset is None:
        # Text between encoded words: decode_header gives it back as "raw-unicode-escape"
        # octets, so a header written in UTF-8 (RFC 6532) keeps its letters.
        try:
            return part.decode("raw-unicode-escape")
        except UnicodeDecodeError:
            return part.decode("latin-1")
    # Octets not of their charset: what can be read, the rest replaced.
    return part.decode(charset, errors="replace")


def address_list(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name, address) of each address in address-list field values, as
    ``email.utils.getaddresses`` reads them, without its one failure: it recurses once per
    nested comment ("((((") or group (":::"), so a few hundred of them raise RecursionError.
    Such a value is read for what looks like an address in it instead, every one of them (a
    From that hides its domain in a nest must not come out with no domain for DMARC)."""
    values = list(values)
    try:
        return email.utils.getaddresses(values)
    except RecursionError:
        return [("", found) for value in values for found in _LOOKS_LIKE_ADDRESS.findall(value)]


def decode_address_field(value: str) -> str:
    """An address field's value (From, To, Cc) with the encoded words (RFC 2047) of its display
    names decoded, each name written back as a quoted string.

    RFC 2047 §6.2: a field is parsed first and its words decoded after; what they hold is text,
    never syntax. Decoded first, ``=?utf-8?q?Bank_=3Cceo=40bank.test=3E?= <x@evil.test>``
    read as the address ceo@bank.test. Quoted, the name reads back as a name. A value without
    encoded words, or longer than ``MAX_DECODED``, is kept as written; a name without
    specials (RFC 5322 §3.2.3) needs no quotes."""
    if "=?" not in value or len(value) > MAX_DECODED:
        return value
    mailboxes = []
    for name, address in address_list([value]):
        text = decode_encoded_words(name)
        if text and _SPECIALS.search(text):
            escaped = text.replace("\\", "\\\\").replace('"', '\\"')
            mailboxes.append(f'"{escaped}" <{address}>')
        elif text:
            mailboxes.append(f"{text} <{address}>")  # "Renée <r@x.test>", as before
        elif address:
            mailboxes.append(address)
    return ", ".join(mailboxes)
