"""Queue ids: short, unique in this data directory, sortable by time of arrival.

16 characters of Crockford base32: 48 bits of milliseconds since the epoch, then 32 bits from a
counter that starts at a random value, so ids made in the same millisecond stay ordered.
"""

from __future__ import annotations

import secrets
import time

__all__ = ["new_queue_id", "queue_id_time"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_counter = secrets.randbits(32)


# Two characters for every 10 bits: 8 table lookups make an id.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = (70, 60, 50, 40, 30, 20, 10, 0)


def new_queue_id(now: float | None = None) -> str:
    global _counter
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    _counter = (_counter + 1) & 0xFFFFFFFF
    value = (millis << 32) | _counter
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


def queue_id_time(queue_id: str) -> float:
    value = 0
    for char in queue_id.upper():
        value = value * 32 + _ALPHABET.index(char)
    return (value >> 32) / 1000
