"""A message read for dkimpy as dkimpy reads it, in time that grows with its length.

dkimpy (``dkim.rfc822_parse``) adds each folded line of a field to the field's value one at a
time, and bytes joined that way take time with the square of the field: a header section of
320,000 folded lines (1.3 MB) took 6.7 s, the interpreter lock held all along. Every dkimpy
object mailroom makes (to verify a DKIM signature or an ARC chain, to sign, to seal) is given
the message read here instead: the same ``(headers, body)`` dkimpy's reader makes, each
field's lines joined once.
"""

from __future__ import annotations

import logging
import re
from typing import TypeVar

import dkim

__all__ = ["dkimpy_object", "read_message"]

_LINE_END = re.compile(rb"\r?\n")
_FIELD_NAME = re.compile(rb"([\x21-\x7e]+?):")  # dkimpy's own: up to the first colon
_Signer = TypeVar("_Signer", bound=dkim.DomainSigner)


def read_message(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """``dkim.rfc822_parse(message)``: ``[name, value]`` of each header field (the value with
    its folded lines, each ending in CRLF) and the body with its line ends made CRLF.

    Raises ``dkim.MessageFormatError`` where dkimpy would: a line of the header section that is
    neither a field, a fold nor an mbox "From " line (and a fold before any field)."""
    lines = _LINE_END.split(message)
    fields: list[tuple[bytes, list[bytes]]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            break  # the empty line: the rest is the body
        if line[0] in (0x09, 0x20):
            if not fields:
                raise dkim.MessageFormatError("a folded line before any header field")
            fields[-1][1].append(line + b"\r\n")
            continue
        match = _FIELD_NAME.match(line)
        if match is not None:
            fields.append((match.group(1), [line[match.end() :] + b"\r\n"]))
        elif not line.startswith(b"From "):
            raise dkim.MessageFormatError(f"Unexpected characters in RFC822 header: {line!r}")
    headers = [[name, b"".join(pieces)] for name, pieces in fields]
    return headers, b"\r\n".join(lines[index:])


def dkimpy_object(
    kind: type[_Signer], message: bytes, logger: logging.Logger, **options: object
) -> _Signer:
    """A ``dkim.DKIM`` or ``dkim.ARC`` for ``message``, read by :func:`read_message`."""
    signer: _Signer = kind(None, logger=logger, **options)
    signer.headers, signer.body = read_message(message)
    return signer
