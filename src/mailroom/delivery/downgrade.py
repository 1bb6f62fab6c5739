"""Making a queued message fit the next hop: what it can carry decides what is sent.

- **8BITMIME** (RFC 6152): to a hop without it, every MIME part with 8-bit octets is re-encoded
  (text as quoted-printable, the rest as base64, RFC 2045 §6), the containers that held it are
  marked 7bit, and a message/rfc822 part is converted inside (RFC 2046 §5.2.1 allows it no
  other encoding). A message without MIME becomes text/plain (UTF-8 when it decodes as such).
  Header fields with raw 8-bit octets become RFC 2047 encoded words.
- **BINARYMIME** (RFC 3030): to a hop without it (or without CHUNKING), binary parts become
  base64; binary content outside MIME parts cannot be: 5.6.3.
- **SMTPUTF8** (RFC 6531 §3.2, RFC 6533): to a hop without it, a non-ASCII sender returns the
  message (5.6.7), a non-ASCII recipient is returned alone (5.6.7), UTF-8 header fields return it
  (5.6.9); a message whose addresses and header are ASCII goes as an ordinary one.

What may not be converted is not: ``Conversion: Prohibited`` (RFC 2156 §3.3.5) returns the
message with 5.6.2; an 8-bit message/partial part (RFC 2046 §5.2.2) with 5.6.1; a
multipart/signed part (RFC 1847) would need a new signature, which no relay can make: 5.7.3; a
conversion that loses information (octets in no known charset) is reported to the sender with
2.6.4, or returns the message with 5.6.4 under ``Conversion-With-Loss: Prohibited``; MIME that
cannot be parsed, or whose parts nest more than ``MAX_NESTING`` levels deep: 5.6.5.

Parts that need nothing keep their octets as they were. DKIM signing (issue 15) belongs after
this step, on the octets that leave: see ``QueueRunner._transact``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailroom.codes import reports
from mailroom.codes.reports import ReportStatus
from mailroom.protocol.extensions import Extensions

__all__ = ["MAX_NESTING", "CannotConvert", "Conversion", "fit_for_next_hop", "refused_recipients"]

MAX_LINE = 998  # octets of a line without CRLF (RFC 5322 §2.1.1)
# Levels of multipart and message/rfc822 parts converted, as Postfix's mime_nesting_limit: the
# converter goes down one call per level (3,000 levels raised RecursionError, and the runner
# tried the message again for days) and reads each level's body again.
MAX_NESTING = 100
_8BIT = re.compile(rb"[\x80-\xff]")
_BINARY = re.compile(rb"\x00|\r(?!\n)|(?<!\r)\n")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


class CannotConvert(Exception):
    """The message cannot go to this hop: ``report`` says why (5.6.2, 5.6.3, 5.6.4, 5.6.5,
    5.6.9, 5.7.3)."""

    def __init__(self, report: ReportStatus, text: str) -> None:
        super().__init__(text)
        self.report = report
        self.text = text


@dataclass
class Conversion:
    """What goes to the next hop: the octets, BODY= and SMTPUTF8 to declare, and what a
    conversion lost (reported to the sender with 2.6.4)."""

    message: bytes
    body: str | None
    smtputf8: bool
    converted: bool = False
    lost: list[str] = field(default_factory=list)


def refused_recipients(
    recipients: list[str], *, smtputf8: bool, extensions: Extensions
) -> list[str]:
    """Recipients the hop cannot take at all: non-ASCII addresses without SMTPUTF8."""
    if extensions.smtputf8:
        return []
    return [r for r in recipients if not r.isascii()]


def fit_for_next_hop(
    message: bytes,
    *,
    sender: str,
    body: str | None,
    smtputf8: bool,
    extensions: Extensions,
) -> Conversion:
    """The message as this hop can take it, or :class:`CannotConvert`."""
    header, _ = _split(message)
    if smtputf8 and not extensions.smtputf8:
        if not sender.isascii():
            raise CannotConvert(
                reports.NON_ASCII_ADDRESS_NEXT_HOP,
                f"the sender <{sender}> is not ASCII and the next hop does not offer SMTPUTF8",
            )
        if _8BIT.search(header):
            raise CannotConvert(
                reports.UTF8_HEADER_NEXT_HOP,
                "the message has UTF-8 header fields and the next hop does not offer SMTPUTF8",
            )
        smtputf8 = False
    binary = body == "BINARYMIME"
    binary_ok = extensions.binarymime and extensions.chunking
    eightbit_ok = extensions.eightbitmime
    if binary and binary_ok:
        return Conversion(message, "BINARYMIME", smtputf8)
    needs = (binary and not binary_ok) or (not eightbit_ok and _8BIT.search(message) is not None)
    if not needs:
        # Nothing to convert. A message declared BODY=8BITMIME whose octets are all 7-bit (many
        # clients declare it for every message) goes to a hop without 8BITMIME as what it is,
        # 7-bit, without BODY= (RFC 6152 §3): declaring it there was refused by the client, and
        # the message returned with 5.6.3.
        declared = body if body != "BINARYMIME" else None
        if declared == "8BITMIME" and not eightbit_ok:
            declared = None
        return Conversion(message, declared, smtputf8)
    fields = _fields(header)
    if binary and not binary_ok and "mime-version" not in fields and "content-type" not in fields:
        raise CannotConvert(
            reports.CONVERSION_NOT_SUPPORTED,
            "the message was sent as BINARYMIME without MIME parts, and the next hop does not "
            "offer BINARYMIME: its binary content has no part to re-encode",
        )
    if fields.get("conversion", "").strip().lower() == "prohibited":
        raise CannotConvert(
            reports.CONVERSION_PROHIBITED,
            "the next hop needs the message converted "
            + ("from binary" if binary else "to 7 bits")
            + ", and its Conversion: Prohibited field forbids it",
        )
    lost: list[str] = []
    converter = _Converter(seven_bit=not eightbit_ok, lost=lost)
    converted = converter.entity(message, top=True)
    if lost and fields.get("conversion-with-loss", "").strip().lower() == "prohibited":
        raise CannotConvert(
            reports.CONVERSION_LOSSY_PROHIBITED,
            "the conversion the next hop needs would lose information ("
            + "; ".join(lost)
            + "), and the message's Conversion-With-Loss: Prohibited field forbids it",
        )
    remaining_8bit = _8BIT.search(converted) is not None
    declared = "8BITMIME" if remaining_8bit and eightbit_ok else None
    return Conversion(converted, declared, smtputf8, converted=True, lost=lost)


# -- MIME, octet by octet -----------------------------------------------------------------------


def _split(entity: bytes) -> tuple[bytes, bytes]:
    """Header section (with its last line's CRLF) and body."""
    if entity.startswith((b"\r\n", b"\n")):
        return b"", entity[2:] if entity.startswith(b"\r\n") else entity[1:]  # no header at all
    match = _HEADER_END.search(entity)
    if match is None:
        return entity, b""
    newline = entity.find(b"\n", match.start())
    return entity[: newline + 1], entity[match.end() :]


def _fields(header: bytes) -> dict[str, str]:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(header + b"\r\n")
    return {name.lower(): str(value) for name, value in parsed.items()}


def _parsed(header: bytes) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(header + b"\r\n")


def _replace_field(header: bytes, name: str, value: str) -> bytes:
    """The header with field ``name`` set to ``value`` (its folded lines replaced, or the field
    added at the end)."""
    lines = header.split(b"\r\n") if b"\r\n" in header else header.split(b"\n")
    out: list[bytes] = []
    skipping = False
    replaced = False
    key = name.lower().encode("ascii") + b":"
    for line in lines:
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = False
        if line.lower().replace(b" ", b"").startswith(key):
            if not replaced:
                out.append(f"{name}: {value}".encode("ascii"))
                replaced = True
            skipping = True
            continue
        out.append(line)
    while out and out[-1] == b"":
        out.pop()
    if not replaced:
        out.append(f"{name}: {value}".encode("ascii"))
    return b"\r\n".join(out) + b"\r\n"


class _Converter:
    def __init__(self, *, seven_bit: bool, lost: list[str]) -> None:
        self.seven_bit = seven_bit  # 8-bit octets must go too (the hop lacks 8BITMIME)
        self.lost = lost

    def entity(self, entity: bytes, *, top: bool = False, level: int = 0) -> bytes:
        if level > MAX_NESTING:
            raise CannotConvert(
                reports.CONVERSION_FAILED,
                f"the message's MIME parts nest more than {MAX_NESTING} levels deep: it "
                "cannot be converted for the next hop",
            )
        header, body = _split(entity)
        parsed = _parsed(header)
        if top and parsed.get("mime-version") is None and parsed.get("content-type") is None:
            header, body = self._not_mime(header, body)
            parsed = _parsed(header)
        if self.seven_bit and _8BIT.search(header):
            header = self._header(header)
        kind = parsed.get_content_type()
        encoding = str(parsed.get("content-transfer-encoding", "7bit")).strip().lower()
        if parsed.get_content_maintype() == "multipart":
            return self._multipart(header, body, parsed, kind, encoding, level)
        if kind == "message/partial":
            if (self.seven_bit and _8BIT.search(body)) or _BINARY.search(body):
                raise CannotConvert(
                    reports.MEDIA_NOT_SUPPORTED,
                    "a message/partial part holds 8-bit data the next hop cannot take, and a "
                    "fragment cannot be re-encoded apart from its whole (RFC 2046 §5.2.2)",
                )
            return header + b"\r\n" + body
        if kind in ("message/rfc822", "message/global"):
            inner = self.entity(body, level=level + 1)
            if inner == body:
                return header + b"\r\n" + body
            still_8bit = _8BIT.search(inner) is not None
            header = _replace_field(
                header, "Content-Transfer-Encoding", "8bit" if still_8bit else "7bit"
            )
            return header + b"\r\n" + inner
        return self._leaf(header, body, parsed, encoding)

    def _not_mime(self, header: bytes, body: bytes) -> tuple[bytes, bytes]:
        """A message without MIME (RFC 5322 text) that must change: it becomes text/plain."""
        if not _8BIT.search(body) and not _BINARY.search(body):
            return header, body
        try:
            body.decode("utf-8")
            charset = "utf-8"
        except UnicodeDecodeError:
            charset = "unknown-8bit"
            self.lost.append("the body's 8-bit text is in no declared charset (unknown-8bit)")
        header = _replace_field(header, "MIME-Version", "1.0")
        header = _replace_field(header, "Content-Type", f"text/plain; charset={charset}")
        return header, body

    def _header(self, header: bytes) -> bytes:
        """Raw 8-bit octets in header fields (no SMTPUTF8): RFC 2047 encoded words."""
        out = []
        for line in re.split(rb"(\r?\n)", header):
            if not _8BIT.search(line):
                out.append(line)
                continue
            name, colon, value = line.partition(b":")
            if not colon or line[:1] in (b" ", b"\t"):
                name, colon, value = b"", b"", line
            words = re.split(rb"([ \t]+)", value)
            encoded = b"".join(self._word(w) if _8BIT.search(w) else w for w in words)
            out.append(name + colon + encoded)
        return b"".join(out)

    def _word(self, word: bytes) -> bytes:
        if b"@" in word or b"<" in word:
            raise CannotConvert(
                reports.CONVERSION_FAILED,
                "an address in the header holds 8-bit octets and the message was not sent "
                "with SMTPUTF8: it cannot be encoded",
            )
        try:
            word.decode("utf-8")
            charset = "utf-8"
        except UnicodeDecodeError:
            charset = "unknown-8bit"
            self.lost.append("header text in no declared charset (unknown-8bit)")
        chunks = []
        piece = b""
        for char in _characters(word, charset):
            if len(piece) + len(char) > 40:
                chunks.append(piece)
                piece = b""
            piece += char
        chunks.append(piece)
        return b" ".join(
            b"=?" + charset.encode() + b"?b?" + base64.b64encode(c) + b"?=" for c in chunks
        )

    def _multipart(
        self, header: bytes, body: bytes, parsed: Message, kind: str, encoding: str, level: int
    ) -> bytes:
        boundary = parsed.get_boundary()
        if not boundary:
            raise CannotConvert(reports.CONVERSION_FAILED, f"a {kind} part has no boundary")
        delimiter = b"--" + boundary.encode("ascii", "replace")
        pieces = re.split(rb"(?m)^" + re.escape(delimiter) + rb"(--)?[ \t]*\r?$\n?", body)
        # re.split with one group: [preamble, None|'--', part, None|'--', part, ...]
        if len(pieces) < 3 or not any(p == b"--" for p in pieces[1::2]):
            raise CannotConvert(
                reports.CONVERSION_FAILED,
                f"a {kind} part's boundary {boundary!r} never closes: the MIME is broken",
            )
        preamble = pieces[0]
        parts = []
        epilogue = b""
        for index in range(1, len(pieces), 2):
            closing = pieces[index] == b"--"
            content = pieces[index + 1]
            if closing:
                epilogue = content
                break
            parts.append(content)
        converted = []
        for part in parts:
            # The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
            core, tail = (part[:-2], b"\r\n") if part.endswith(b"\r\n") else (part, b"")
            new = self.entity(core, level=level + 1)
            if new != core and kind == "multipart/signed":
                raise CannotConvert(
                    reports.SIGNED_CANNOT_BE_CONVERTED,
                    "a multipart/signed part needs converting for the next hop, and converting "
                    "it would break its signature (RFC 1847)",
                )
            converted.append(new + tail)
        if converted == parts:
            return header + b"\r\n" + body
        out = bytearray(preamble)
        for part in converted:
            out += delimiter + b"\r\n" + part
        out += delimiter + b"--\r\n" + epilogue
        if encoding in ("8bit", "binary"):
            still_8bit = _8BIT.search(bytes(out)) is not None
            header = _replace_field(
                header, "Content-Transfer-Encoding", "8bit" if still_8bit else "7bit"
            )
        return header + b"\r\n" + bytes(out)

    def _leaf(self, header: bytes, body: bytes, parsed: Message, encoding: str) -> bytes:
        binary = encoding == "binary" or _BINARY.search(body) is not None
        eight = _8BIT.search(body) is not None
        long_lines = any(len(line) > MAX_LINE for line in body.split(b"\r\n"))
        if encoding in ("quoted-printable", "base64") or not (
            binary or long_lines or (eight and self.seven_bit)
        ):
            return header + b"\r\n" + body
        if parsed.get_content_maintype() == "text" and not binary:
            encoded = binascii.b2a_qp(body, istext=True)
            name = "quoted-printable"
        else:
            encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
            name = "base64"
        header = _replace_field(header, "Content-Transfer-Encoding", name)
        return header + b"\r\n" + encoded


def _characters(word: bytes, charset: str) -> list[bytes]:
    """``word`` cut into characters (UTF-8 sequences kept whole), for encoded words that never
    split one."""
    if charset != "utf-8":
        return [word[i : i + 1] for i in range(len(word))]
    return [c.encode("utf-8") for c in word.decode("utf-8")]
