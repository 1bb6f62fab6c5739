"""How many MIME parts a message has and how deeply they nest, read from its bytes before any
parser builds objects of them.

The ``email`` package takes about a second per thousand parts and recurses once per level of
nesting: a 5 MB message of 50,000 parts held the web's worker for half a minute a request, and
1,000 nested multiparts raised RecursionError (a 500 on every endpoint). So the web measures a
message first, in one pass over its lines with no recursion, and parses it only when it is
within ``web_max_mime_parts`` and ``web_max_mime_depth``; past them it shows the message's
source with a note that says why (:func:`mailroom.web.mime.parse_message`). The bounce reader
does the same (:func:`mailroom.bounces.parse`): a report has a few parts, and the web's bounce
panel and ``mailroom bounces`` on a mailbox read what strangers sent.

The measure follows what a MIME parser follows: the header block of each entity, the
boundary of each multipart (RFC 2046 §5.1.1: a delimiter line is ``--boundary``, the close
``--boundary--``, trailing white space allowed), and the header block that starts the body of
a ``message/rfc822`` part. It counts every body part of every multipart (nested ones included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MimeLimits", "Shape", "measure"]

_CONTENT_TYPE = re.compile(rb"(?im)^content-type[ \t]*:[ \t]*([^;\s]+)(.*(?:\r?\n[ \t].*)*)")
_BOUNDARY = re.compile(rb'(?i)boundary[ \t]*=[ \t]*(?:"([^"\r\n]+)"|([^;\s]+))')


@dataclass(frozen=True, slots=True)
class MimeLimits:
    """The limits on the messages that are parsed (0 means no limit): the web's are settings
    (web_max_mime_parts, web_max_mime_depth); the bounce reader keeps these defaults."""

    max_parts: int = 1000
    max_depth: int = 50


@dataclass(frozen=True, slots=True)
class Shape:
    parts: int  # body parts of multiparts counted, up to where the count stopped
    depth: int  # the deepest nesting seen (a single-part message is 0)
    too_complex: str | None = None  # why the message is past the limits, or None
    limit: str = ""  # the limit it is past: "parts" or "depth"


def _entity_type(header: bytes) -> tuple[bytes, bytes | None]:
    """The content type (lower-case) and multipart boundary a header block declares."""
    match = _CONTENT_TYPE.search(header)
    if match is None:
        return b"text/plain", None
    kind = match[1].lower()
    boundary = None
    if kind.startswith(b"multipart/"):
        found = _BOUNDARY.search(match[2])
        if found is not None:
            boundary = found[1] or found[2]
    return kind, boundary


def measure(raw: bytes, limits: MimeLimits) -> Shape:
    """Count the parts and the nesting of ``raw``; stop at the first limit passed."""
    max_parts, max_depth = limits.max_parts, limits.max_depth
    boundaries: list[bytes] = []  # the open multiparts, outermost first
    depth = 0  # the open multiparts and enclosed messages
    levels: list[int] = []  # depth at which each open boundary was opened
    parts = 0
    deepest = 0
    header: list[bytes] | None = []  # the header block being read, or None in a body
    for line in raw.split(b"\n"):
        if header is not None:
            if line.strip(b"\r"):
                header.append(line)
                continue
            kind, boundary = _entity_type(b"\n".join(header))
            header = None
            if boundary is not None:
                boundaries.append(b"--" + boundary)
                depth += 1
                levels.append(depth)
            elif kind in (b"message/rfc822", b"message/global"):
                depth += 1
                header = []  # the enclosed message's own header block follows
            if depth > deepest:
                deepest = depth
                if max_depth and depth > max_depth:
                    return Shape(
                        parts,
                        deepest,
                        f"its parts nest more than {max_depth} levels deep",
                        "depth",
                    )
            continue
        if not boundaries or not line.startswith(b"--"):
            continue
        text = line.rstrip(b" \t\r")
        for index in range(len(boundaries) - 1, -1, -1):
            delimiter = boundaries[index]
            if text == delimiter:
                del boundaries[index + 1 :]
                depth = levels[index]
                del levels[index + 1 :]
                parts += 1
                if max_parts and parts > max_parts:
                    return Shape(
                        parts,
                        deepest,
                        f"it has more than {max_parts} parts",
                        "parts",
                    )
                header = []
                break
            if text == delimiter + b"--":
                del boundaries[index:]
                depth = levels[index] - 1
                del levels[index:]
                break
    return Shape(parts, deepest)
