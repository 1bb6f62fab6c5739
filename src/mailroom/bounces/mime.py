"""Reading the parts of a report with the stdlib ``email`` package, tolerantly: header values
decoded and unfolded, text parts decoded with their charset (undecodable bytes replaced), the
words meant for a person apart from the returned message, and the returned message's header,
wherever the report put it (``message/rfc822``, ``text/rfc822-headers``, ``message/global``,
or pasted into the text after a line such as "------ This is a copy of the message").
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from collections.abc import Iterator
from datetime import UTC
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

from mailroom.header_section import address_list, decode_encoded_words

__all__ = [
    "address_of",
    "header",
    "human_text",
    "iso_time",
    "parse",
    "part_bytes",
    "part_text",
    "returned_headers",
    "walk",
]

_RETURNED_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers")
_HEADERS_TYPES = ("text/rfc822-headers", "message/global-headers")
# Where text formats paste the original message after their own words.
_RETURNED_MARKERS = re.compile(
    r"^[ \t]*(?:-+ ?This is a copy of the message|-+ ?Original message|-+ ?Returned message|"
    r"-+ ?Below this line is a copy of the message|-+ ?The header of the original message|"
    r"Original message headers:|-+ ?Unsent message below|-+ ?Original message follows|"
    r"-+ ?Message headers follow|The original message was:|-+ ?Forwarded message)[^\n]*\n",
    re.IGNORECASE | re.MULTILINE,
)


# An HTML report read as text: its line breaks kept, its tags taken out. A tag ends at the next
# "<" too, as in the web's fallback (mailroom.web.mime): "[^>]+" would scan from each "<" of a
# long run of them to the end of the part, a time growing with the square of the run.
_LINE_BREAK_TAG = re.compile(r"(?i)<br\s*/?>|</p>|</div>")
_TAG = re.compile(r"<[^<>]+>")
# The first RFC 3464 field, where a report's words end.
_FIELDS_START = re.compile(
    r"^(?:reporting-mta|final-recipient|original-envelope-id)[ \t]*:", re.IGNORECASE | re.MULTILINE
)


def parse(raw: bytes) -> Message:
    """The message, parsed without raising on defects (compat32 keeps odd headers as text)."""
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def header(message: Message, name: str) -> str:
    """A header's value: RFC 2047 words decoded, folding and runs of space collapsed."""
    value = message.get(name)
    if value is None:
        return ""
    return " ".join(decode_encoded_words(str(value)).split())


def address_of(value: str) -> str:
    """The bare address in a field value: ``rfc822; <bob@example.test>`` -> bob@example.test."""
    if ";" in value:
        kind, _, rest = value.partition(";")
        if kind.strip().lower() in ("rfc822", "utf-8", "x-unknown", "unknown"):
            value = rest
    value = value.strip()
    pairs = address_list([value])  # parseaddr's reading: the first address
    parsed = pairs[0][1] if pairs else ""
    return (parsed or value.strip("<> ")).strip()


def walk(message: Message) -> Iterator[Message]:
    """Every part, not descending into a returned message."""
    yield message
    if message.get_content_type() in _RETURNED_TYPES:
        return
    payload = message.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from walk(part)


def part_bytes(part: Message) -> bytes:
    """A leaf part's content, transfer-decoded."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    if isinstance(raw, list):
        return b"\n".join(p.as_bytes() for p in raw if isinstance(p, Message))
    return str(raw).encode("utf-8", "surrogateescape")


def part_text(part: Message) -> str:
    charset = part.get_content_charset() or "utf-8"
    data = part_bytes(part)
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def human_text(message: Message) -> str:
    """The words of the report meant for a person: its text parts (or its body, when it is
    not MIME), without the returned message pasted after them."""
    texts: list[str] = []
    for part in walk(message):
        if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), str):
            # A multipart whose boundary is missing from its body: its text is all there is,
            # the words up to the RFC 3464 fields written after them.
            text = part_text(part).replace("\r\n", "\n")
            texts.append(_FIELDS_START.split(text, maxsplit=1)[0])
            continue
        if part.is_multipart():
            continue
        # "Content-Type: text/plain\n   charset=…" (no ";" before the parameter, as one
        # gateway writes it) is text/plain all the same.
        kind = part.get_content_type().split()[0]
        if kind == "text/plain" or (kind == "text/html" and not texts):
            text = part_text(part)
            if kind == "text/html":
                text = _TAG.sub(" ", _LINE_BREAK_TAG.sub("\n", text))
            texts.append(text)
    text = "\n".join(texts).replace("\r\n", "\n")
    marker = _RETURNED_MARKERS.search(text)
    return text[: marker.start()] if marker else text


def returned_headers(message: Message) -> Message | None:
    """The header of the message the report is about, if the report carries it."""
    for part in walk(message):
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            return BytesHeaderParser().parsebytes(part_bytes(part))
        if kind in _HEADERS_TYPES:
            return BytesHeaderParser().parsebytes(part_bytes(part).lstrip())
    body = "\n".join(
        part_text(p) for p in walk(message) if p.get_content_type() == "text/plain"
    ).replace("\r\n", "\n")
    marker = _RETURNED_MARKERS.search(body)
    if marker is None:
        return None
    pasted = body[marker.end() :].lstrip("\n")
    # Indented pastes (qmail, some gateways) are the header with its leading blanks.
    pasted = re.sub(r"(?m)^[ \t]{1,8}(?=[\w-]+:)", "", pasted)
    headers = HeaderParser().parsestr(pasted, headersonly=True)
    return headers if headers.keys() else None


def iso_time(value: str) -> str:
    """An RFC 5322 date as ISO 8601 in UTC ("" when it cannot be read)."""
    if not value:
        return ""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return ""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
