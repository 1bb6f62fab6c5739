"""Reading the few header fields the index keeps (From, To, Cc, Subject, Message-ID, Date,
X-Tags) from a message's header block, quickly and without trusting it to be well formed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mailroom.header_section import decode_address_field, decode_encoded_words, header_length

__all__ = ["HeaderSummary", "summarize_headers", "trace_fields"]

_WANTED = {
    b"from": "from_",
    b"to": "to",
    b"cc": "cc",
    b"subject": "subject",
    b"message-id": "message_id",
    b"date": "date",
    b"x-tags": "x_tags",
}
MAX_HEADER_SCAN = 64 * 1024


@dataclass(slots=True)
class HeaderSummary:
    from_: str = ""
    to: str = ""
    cc: str = ""
    subject: str = ""
    message_id: str = ""
    date: str = ""
    x_tags: str = ""  # Mailpit's header for tagging a message as it is sent


# Fields of addresses: their encoded words are decoded only in display names, never where
# they could be read as an address (the web lists From and To from the index).
_ADDRESS_FIELDS = frozenset({"from_", "to", "cc"})


def _decode(raw: bytes, attr: str) -> str:
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    if attr in _ADDRESS_FIELDS:
        return decode_address_field(text)
    return decode_encoded_words(text)


def _fields(message: bytes) -> Iterator[tuple[bytes, bytes]]:
    head = message[:MAX_HEADER_SCAN]
    head = head[: header_length(head)]
    name = None
    value = bytearray()
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t") and name is not None:
            value += b" " + line.strip()
            continue
        if name is not None:
            yield name, bytes(value)
        key, colon, rest = line.partition(b":")
        if not colon:
            name = None
            continue
        name, value = key.strip().lower(), bytearray(rest.strip())
    if name is not None:
        yield name, bytes(value)


def summarize_headers(message: bytes) -> HeaderSummary:
    summary = HeaderSummary()
    for name, value in _fields(message):
        attr = _WANTED.get(name)
        if attr is not None and not getattr(summary, attr):
            setattr(summary, attr, _decode(value, attr))
    return summary


def trace_fields(message: bytes) -> list[tuple[str, str]]:
    """All header fields, in order, as (lower-case name, unfolded value): for reading our own
    trace fields back when the index is rebuilt. Values are as written (no RFC 2047 decoding,
    no whitespace folding), since they hold addresses."""
    return [
        (name.decode("latin-1"), value.decode("utf-8", errors="replace"))
        for name, value in _fields(message)
    ]
