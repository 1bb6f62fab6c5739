"""DKIM signatures for mail this server sends for its own domains, and ARC seals for mail it
forwards.

Signing (RFC 6376 §5, with dkimpy): relaxed/relaxed canonicalization; one signature per key of
the From domain (an RSA-2048 and an ed25519 key give two, RFC 8463 §3's "side by side"); the
header fields of :data:`SIGNED_HEADERS` each as many times as they occur, and From, To and
Subject once more (:data:`OVERSIGNED`), so none can be added later without breaking the
signature. The signatures are header fields to put on top of the message.

Sealing (RFC 8617 §5.1, with dkimpy's ``ARC``): the ARC set (ARC-Seal,
ARC-Message-Signature, ARC-Authentication-Results) a forwarder adds, from the
Authentication-Results field this server wrote when the message came in; dkimpy seals with
rsa-sha256 only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dkim

from mailroom.authentication.dkimpy_reading import dkimpy_object, read_message
from mailroom.authentication.keys import DKIMKey

__all__ = ["OVERSIGNED", "SIGNED_HEADERS", "arc_seal", "headers_to_sign", "sign"]

log = logging.getLogger("mailroom.authentication")

# RFC 6376 §5.4.1's list, less what is often changed on the way (none of the trace fields).
SIGNED_HEADERS = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "sender",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
OVERSIGNED = ("from", "to", "subject")
_QUIET = logging.getLogger("mailroom.authentication.dkimpy")


def headers_to_sign(headers: Sequence[Sequence[bytes]]) -> list[bytes]:
    """h=: each signed field as often as it occurs, the oversigned ones once more."""
    names = [name.lower() for name, _ in headers]
    chosen: list[bytes] = []
    for field in SIGNED_HEADERS:
        count = names.count(field.encode())
        if field in OVERSIGNED:
            count += 1
        chosen += [field.encode()] * count
    return chosen


def sign(message: bytes, keys: Sequence[DKIMKey]) -> bytes:
    """DKIM-Signature header fields (CRLF-terminated) for ``message`` with each key."""
    headers, body = read_message(message)
    include = headers_to_sign(headers)
    out = bytearray()
    for key in keys:
        signer = dkim.DKIM(
            None, logger=_QUIET, signature_algorithm=key.signature_algorithm, linesep=b"\r\n"
        )
        signer.headers, signer.body = [list(field) for field in headers], body
        signature = signer.sign(
            key.selector.encode(),
            key.domain.encode(),
            key.private,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )
        out += signature
    return bytes(out)


def arc_seal(message: bytes, key: DKIMKey, authserv_id: str) -> bytes:
    """The next ARC set's header fields for ``message`` (sealed by ``key``, an RSA key), or
    nothing when the message has no Authentication-Results from ``authserv_id`` to carry."""
    if key.algorithm != "rsa":
        raise ValueError("dkimpy seals ARC with rsa-sha256 only")
    sealer = dkimpy_object(dkim.ARC, message, _QUIET, linesep=b"\r\n")
    fields = sealer.sign(
        key.selector.encode(),
        key.domain.encode(),
        key.private,
        authserv_id.encode(),
        include_headers=sealer.default_sign_headers(),  # as dkim.arc_sign chooses them
    )
    return b"".join(fields)
