"""The message as the client puts it on the wire: canonical CRLF line endings, dot-stuffing for
DATA (RFC 5321 §4.5.2), chunks for BDAT (RFC 3030).

Every bare CR and bare LF becomes CRLF before anything else, so no byte sequence of the message
can end DATA early at a server that reads line endings loosely: mailroom never forwards the
``<LF>.<LF>`` or ``<CR>.<CR>`` of an SMTP smuggling attack, it sends ``<CRLF>..<CRLF>``.
BINARYMIME bodies (BDAT only) are sent as they are, since their octets are not lines.
"""

from __future__ import annotations

import re

__all__ = ["canonical_message", "dot_stuff", "has_8bit", "split_chunks"]

_LINE_ENDING = re.compile(rb"\r\n|\r|\n")
_DOT_AT_LINE_START = re.compile(rb"^\.", re.MULTILINE)


def canonical_message(message: bytes) -> bytes:
    """``message`` with every line ending spelled CRLF and a CRLF at the end (when not empty).

    This is the form whose length the SIZE parameter declares (RFC 1870 §4)."""
    data = _LINE_ENDING.sub(b"\r\n", bytes(message))
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def dot_stuff(canonical: bytes) -> bytes:
    """The DATA form of a canonical message: a line starting with "." gets another one, and
    the end of data ``.CRLF`` follows. ``canonical`` must come from :func:`canonical_message`."""
    # In canonical data every "\n" is the end of a CRLF, so "^" after it is a line start.
    return _DOT_AT_LINE_START.sub(b"..", canonical) + b".\r\n"


def split_chunks(data: bytes, chunk_size: int) -> list[bytes]:
    """BDAT chunks of at most ``chunk_size`` octets; an empty message is one empty chunk."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    if not data:
        return [b""]
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]


def has_8bit(data: bytes) -> bool:
    """Whether any octet is outside US-ASCII (so BODY=8BITMIME is due)."""
    return not data.isascii()
