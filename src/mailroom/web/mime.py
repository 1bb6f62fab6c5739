"""A stored message as the web shows it: parts numbered as IMAP numbers them (``1``, ``1.2``),
the text and HTML bodies, attachments and inline parts, headers, a snippet, and the HTML made
safe to show (inline ``cid:`` images become ``data:`` URIs, so the viewer needs no network).

Field names follow Mailpit's API (``PartID``, ``FileName``, ``ContentType``…) so its clients
read mailroom unchanged.

A message past the web's limits (``web_max_mime_parts``, ``web_max_mime_depth``: measured
first by :mod:`mailroom.mimeshape`, without parsing) is not parsed beyond its header: it is
shown as its source, with a note that says why (``ParsedMessage.note``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any

from mailroom.header_section import address_list, decode_encoded_words, split_message
from mailroom.mimeshape import MimeLimits, measure
from mailroom.web.htmlparse import BoundedHTMLParser

__all__ = [
    "MimeLimits",
    "ParsedMessage",
    "addresses",
    "decode_header_value",
    "parse_message",
    "strip_trace",
]

SNIPPET_LENGTH = 250
# Characters of a message's source shown as its text when it is past the limits (the whole
# source is always at /raw).
SOURCE_TEXT_LIMIT = 1024 * 1024
MAX_INLINE_DATA = 4 * 1024 * 1024  # bytes of cid: images made into data: URIs per message
# The standard library's structured header parser (policy.default) takes time with the square
# of some values a stranger writes: a Content-Type of 64 KB of ";" took 191 s, of 1,400
# parameters 8 s; 64 KB of '"a" ' in a To 4 s, 32 KB of "\\" 2.7 s (it sums its defect
# lists again at every level); and nested comments ("((((…") raise RecursionError. The web
# reads at most the first MAX_PARSED_HEADER characters of a field's value (about 250
# addresses), and of its parameters (a run of ";" counts as one) the first MAX_PARAMETERS;
# the source stays whole at /raw and /headers.
MAX_PARSED_HEADER = 8 * 1024
MAX_PARAMETERS = 100
_SEMICOLONS = re.compile(r";[\s;]*;")


def _tamed(value: str) -> str:
    """``value`` as the structured parser may read it: unchanged unless it is very long or
    has very many parameters."""
    value = value[:MAX_PARSED_HEADER]
    if value.count(";") > MAX_PARAMETERS:
        value = _SEMICOLONS.sub(";", value)
        value = ";".join(value.split(";", MAX_PARAMETERS + 1)[: MAX_PARAMETERS + 1])
    return value


class _WebPolicy(policy.EmailPolicy):
    """policy.default, with each field's value from the source tamed before the structured
    parser reads it (a header object set by code is passed on as it is)."""

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if not hasattr(value, "name"):
            value = _tamed(value)
        return super().header_fetch_parse(name, value)


_PARSER = BytesParser(policy=_WebPolicy())
_CID = re.compile(r"""cid:([^"'\s)>]+)""", re.IGNORECASE)
# A media type as HTTP writes one (RFC 9110 §8.3.1: type "/" subtype, each a token): what a
# part's Content-Type must be for the web to name it in a response's header and a data: URI.
_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
_SURROGATE = re.compile("[\udc80-\udcff]")


def _undo_surrogates(text: str) -> str:
    """The email package reads 8-bit header bytes (SMTPUTF8 mail, RFC 6532) as surrogate
    escapes, which no JSON encoder writes: they were UTF-8 (or, failing that, a byte each)."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def decode_header_value(value: str) -> str:
    """A header value unfolded, its encoded words (RFC 2047) decoded; raw UTF-8 (RFC 6532)
    read as such."""
    return decode_encoded_words(_undo_surrogates(" ".join(str(value).split())))


def addresses(value: str | None) -> list[dict[str, str]]:
    """``[{"Name": ..., "Address": ...}]`` of an address header, as Mailpit gives them."""
    if not value:
        return []
    try:
        pairs = address_list([value[:MAX_PARSED_HEADER]])  # "((((…": read without recursion
    except (TypeError, ValueError, IndexError):
        return []
    return [{"Name": name, "Address": address} for name, address in pairs if address]


@dataclass
class Part:
    part_id: str
    part: Message
    content_type: str
    filename: str
    content_id: str
    disposition: str | None
    _summary: dict[str, Any] | None = None

    def payload(self) -> bytes:
        if self.part.get_content_maintype() == "message" and self.part.is_multipart():
            inner = self.part.get_payload(0)
            assert isinstance(inner, Message)
            return inner.as_bytes()
        data = self.part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""

    def text(self) -> str:
        data = self.payload()
        charset = self.part.get_content_charset() or "utf-8"
        try:
            text = data.decode(charset, errors="replace")
        except LookupError:
            text = data.decode("utf-8", errors="replace")
        # On the wire every line ends in CRLF; shown and searched, a line ends in LF.
        return text.replace("\r\n", "\n")

    def summary(self) -> dict[str, Any]:
        """Mailpit's ``Attachment`` (checksums over the decoded payload; made once)."""
        if self._summary is not None:
            return self._summary
        data = self.payload()
        self._summary = {
            "PartID": self.part_id,
            "FileName": self.filename,
            "ContentType": self.content_type,
            "ContentID": self.content_id,
            "Size": len(data),
            "Checksums": {
                "MD5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                "SHA1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
                "SHA256": hashlib.sha256(data).hexdigest(),
            },
        }
        return self._summary


def _leaves(message: Message) -> Iterator[tuple[str, Message, bool]]:
    """Every leaf part with its IMAP part number, and whether it is in a multipart/related
    (where a part with a Content-ID is a resource of the HTML, whatever its disposition)."""

    def visit(part: Message, prefix: str, related: bool) -> Iterator[tuple[str, Message, bool]]:
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            children = part.get_payload()
            assert isinstance(children, list)
            inside = part.get_content_subtype() == "related"
            for number, child in enumerate(children, 1):
                yield from visit(child, f"{prefix}.{number}" if prefix else str(number), inside)
        else:
            yield prefix or "1", part, related

    yield from visit(message, "", False)


def _describe(part_id: str, part: Message) -> Part:
    try:
        filename = part.get_filename() or ""
    except (TypeError, ValueError, LookupError):
        filename = ""
    content_id = decode_header_value(part.get("Content-ID", "") or "").strip().strip("<>")
    try:
        disposition = part.get_content_disposition()
    except (TypeError, ValueError):
        disposition = None
    content_type = part.get_content_type()
    if not _MEDIA_TYPE.fullmatch(content_type):
        # "a/b\x7f", "image/pngé", 'image/x"onload="...': a control character made aiohttp
        # drop the connection unanswered, a quote would end a data: URI's attribute. RFC 2045
        # §5.2: a Content-Type that is not valid is taken as text/plain.
        content_type = "text/plain"
    return Part(part_id, part, content_type, filename, content_id, disposition)


@dataclass
class ParsedMessage:
    message: Message
    text: str = ""
    html: str = ""
    attachments: list[Part] = field(default_factory=list)
    inline: list[Part] = field(default_factory=list)
    parts: dict[str, Part] = field(default_factory=dict)
    # Why the message is shown as its source (past the web's limits), or None.
    note: str | None = None

    def header(self, name: str) -> str:
        try:
            value = self.message.get(name)
        except (TypeError, ValueError, IndexError, RecursionError):
            value = None
        if value is None:
            raw = _raw_header(self.message, name)
            return decode_header_value(raw) if raw is not None else ""
        return decode_header_value(str(value))

    def headers(self) -> dict[str, list[str]]:
        """Every header field by name (first spelling seen), values in order, decoded."""
        out: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for name, value in self.message.raw_items():
            key = names.setdefault(name.lower(), name)
            out.setdefault(key, []).append(decode_header_value(str(value)))
        return dict(sorted(out.items()))

    def snippet(self) -> str:
        if self.note is not None:
            return self.note[:SNIPPET_LENGTH]
        return collapsed_prefix(self.text or html_to_text(self.html), SNIPPET_LENGTH)

    def date(self) -> str | None:
        """The Date field as ISO 8601, or None when missing or unreadable."""
        value = self.header("Date")
        if not value:
            return None
        try:
            return parsedate_to_datetime(value).isoformat()
        except (TypeError, ValueError, IndexError):
            return None

    def safe_html(self) -> str:
        """The HTML body with ``cid:`` references to inline parts made into ``data:`` URIs,
        so it renders under a policy that allows no network at all."""
        by_cid = {p.content_id: p for p in self.inline + self.attachments if p.content_id}
        budget = [MAX_INLINE_DATA]

        def replace(match: re.Match[str]) -> str:
            part = by_cid.get(match[1])
            if part is None:
                return match[0]
            data = part.payload()
            if len(data) > budget[0]:
                return match[0]
            budget[0] -= len(data)
            encoded = base64.b64encode(data).decode("ascii")
            return f"data:{part.content_type};base64,{encoded}"

        return _CID.sub(replace, self.html)


def _raw_header(message: Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return str(value)
    return None


def parse_message(raw: bytes, limits: MimeLimits | None = None) -> ParsedMessage:
    """The message's parts, bodies and header; only its header and source when it is past
    ``limits`` (measured before anything is parsed)."""
    shape = measure(raw, limits or MimeLimits())
    if shape.too_complex is not None:
        why = (
            f"{shape.too_complex}, the most the web shows (the web_max_mime_{shape.limit} setting)"
        )
        return _as_source(raw, why)
    message = _read(raw)
    parsed = ParsedMessage(message)
    texts: list[str] = []
    for part_id, leaf, related in _leaves(message):
        part = _describe(part_id, leaf)
        parsed.parts[part_id] = part
        kind = part.content_type
        body_candidate = part.disposition != "attachment" and not part.filename
        if related and part.content_id and not kind.startswith("text/"):
            parsed.inline.append(part)
        elif part.disposition == "attachment":
            parsed.attachments.append(part)
        elif kind == "text/plain" and body_candidate:
            texts.append(part.text())
        elif kind == "text/html" and body_candidate and not parsed.html:
            parsed.html = part.text()
        elif part.content_id or part.disposition == "inline":
            parsed.inline.append(part)
        else:
            parsed.attachments.append(part)
    parsed.text = "\n".join(texts)
    return parsed


def _read(raw: bytes) -> Message:
    """The message as the email package reads it, in less time when it is one part.

    The package's parser goes through a body line by line even when it keeps it whole (a
    part that is neither multipart nor message/*): for a search's first look at thousands
    of small messages, most of the time. Such a message is read here as its header alone,
    with its body, as the parser would keep it, set as the payload. Whenever the header does
    not read as one cleanly (the parser would have ended it elsewhere), or announces parts,
    the parser reads the whole message."""
    head, body = split_message(raw)
    if not body:
        return _PARSER.parsebytes(raw)
    message = _PARSER.parsebytes(head, headersonly=True)
    if message.get_payload() or message.get_content_maintype() in ("multipart", "message"):
        return _PARSER.parsebytes(raw)
    message.set_payload(body.decode("ascii", "surrogateescape"))
    return message


def collapsed_prefix(text: str, length: int) -> str:
    """The first ``length`` characters of ``text`` with its ends stripped and each run of
    white space inside made one space (``" ".join(text.split())[:length]``), reading only as
    much of a long text as they take: a whole text's runs replaced took a tenth of the time of
    a search's first look at small messages."""
    size = 4 * length + 64
    while True:
        words = text[:size].split()
        joined = " ".join(words)
        if size >= len(text):
            return joined[:length]
        # The last word may go on past the piece; the words before it are whole.
        if words and len(joined) - len(words[-1]) >= length:
            return joined[:length]
        size *= 4


def _as_source(raw: bytes, reason: str) -> ParsedMessage:
    """A message past the limits: its header parsed (for the subject and addresses), its
    source as its text, no parts."""
    note = f"This message is shown as its source: {reason}."
    header = _PARSER.parsebytes(_header_block(raw), headersonly=True)
    text = raw[:SOURCE_TEXT_LIMIT].decode("utf-8", errors="replace").replace("\r\n", "\n")
    if len(raw) > SOURCE_TEXT_LIMIT:
        text += f"\n... ({len(raw) - SOURCE_TEXT_LIMIT} octets more: see the raw source)\n"
    return ParsedMessage(header, text=text, note=note)


def _header_block(raw: bytes) -> bytes:
    """The header of a message, up to and with the empty line that ends it."""
    _, body = split_message(raw)
    return raw[: len(raw) - len(body)]


def strip_trace(raw: bytes) -> bytes:
    """The message without the fields mailroom added at delivery (Return-Path and
    Delivered-To at the top), as it should travel on when released. Received stays: it is
    a true trace of the hop."""
    lines = raw.split(b"\n")
    start = 0
    while start < len(lines):
        line = lines[start]
        lower = line[:14].lower()
        if lower.startswith(b"return-path:") or lower.startswith(b"delivered-to:"):
            start += 1
            while start < len(lines) and lines[start][:1] in (b" ", b"\t"):
                start += 1
            continue
        break
    return b"\n".join(lines[start:])


class _TextOf(BoundedHTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in ("br", "p", "div", "tr", "li", "h1", "h2", "h3"):
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.out.append(data)


class _ReadableTextOf(_TextOf):
    """The text of an HTML body as a reader would take it in: a line for each block, and a
    link's address after its words ("Reset your password ( https://... )", as the
    html2text that Mailpit's MIME library uses writes it), so a test that looks for a link
    in a message's Text finds it in an HTML-only message too."""

    _BLOCKS = frozenset(
        {"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"}
    )

    def __init__(self) -> None:
        super().__init__()
        self._links: list[tuple[str | None, int]] = []  # each open <a>: its href, where it began

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.out.append("\n")
        elif tag == "a":
            href = dict(attrs).get("href")
            self._links.append((href.strip() if href else None, len(self.out)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            words = "".join(self.out[start:]).strip()
            if href and not href.lower().startswith(("javascript:", "#")) and href != words:
                self.out.append(f" ( {href} )")
        elif tag in self._BLOCKS:
            self.out.append("\n")


def _text_by(parser: _TextOf, markup: str) -> str | None:
    """The text ``parser`` makes of ``markup``; None when the markup defeats the parser."""
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError):
        return None
    return "".join(parser.out)


def readable_text(markup: str) -> str:
    """:class:`_ReadableTextOf`'s text of ``markup``: blank runs made one space, at most one
    empty line between blocks."""
    if not markup:
        return ""
    text = _text_by(_ReadableTextOf(), markup)
    if text is None:
        text = html_to_text(markup)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    if not markup:
        return ""
    text = _text_by(_TextOf(), markup)
    if text is None:
        # A tag ends at the next "<" too: "[^>]*" would scan from every "<" of a long run of
        # them to the end of the markup, a time growing with the square of the run.
        return html.unescape(re.sub(r"<[^<>]*>", " ", markup))
    return text
