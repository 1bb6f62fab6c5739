"""Queue ids: short, unique in this data directory, sortable by time of arrival.

16 characters of Crockford base32: 48 bits of milliseconds since the epoch, then 32 bits from a
counter that starts at a random value, so ids made in the same millisecond stay ordered.
"""

from __future__ import annotations

import base64
import secrets
import time

__all__ = ["new_queue_id", "queue_id_time"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_counter = secrets.randbits(32)


# RFC 4648 base32 spelled in Crockford's alphabet (no I, L, O, U), which sorts like the number.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())


def new_queue_id(now: float | None = None) -> str:
    global _counter
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    _counter = (_counter + 1) & 0xFFFFFFFF
    raw = ((millis << 32) | _counter).to_bytes(10, "big")
    return base64.b32encode(raw).translate(_TO_CROCKFORD).decode("ascii")


def queue_id_time(queue_id: str) -> float:
    value = 0
    for char in queue_id.upper():
        value = value * 32 + _ALPHABET.index(char)
    return (value >> 32) / 1000
