"""Queue ids: short, unique in this data directory, sortable by time of arrival.

16 characters of Crockford base32: 48 bits of milliseconds since the epoch, then 32 bits from a
counter that starts at a random value, so ids made in the same millisecond stay ordered.

Several processes writing one data directory (``--workers``) each call :func:`set_process`
first: the counter's top 6 bits then hold the process's number, so two processes never make
the same id, whatever their counters.
"""

from __future__ import annotations

import secrets
import time

__all__ = ["MAX_PROCESSES", "new_queue_id", "queue_id_time", "set_process"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_counter = secrets.randbits(32)
_COUNTER_MASK = 0xFFFFFFFF  # the part of the counter that counts
_TAG = 0  # the process's number, above the counted part (set_process)
PROCESS_BITS = 6
MAX_PROCESSES = 1 << PROCESS_BITS


def set_process(number: int) -> None:
    """This process is number ``number`` (0 to 63) of those sharing the data directory."""
    global _counter, _COUNTER_MASK, _TAG
    if not 0 <= number < MAX_PROCESSES:
        raise ValueError(f"process number {number} is not within 0-{MAX_PROCESSES - 1}")
    _COUNTER_MASK = (1 << (32 - PROCESS_BITS)) - 1
    _TAG = number << (32 - PROCESS_BITS)
    _counter = secrets.randbits(32 - PROCESS_BITS)


# Two characters for every 10 bits: 8 table lookups make an id.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = (70, 60, 50, 40, 30, 20, 10, 0)


def new_queue_id(now: float | None = None) -> str:
    global _counter
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    _counter = (_counter + 1) & _COUNTER_MASK
    low = _TAG | _counter
    pairs = _PAIRS
    # The 80 bits (millis << 32) | low, ten at a time, without making that 80-bit integer
    # (long arithmetic on it cost more than the rest): bits 79-40 are millis's 47-8, bits
    # 39-30 its 7-0 beside low's 31-30, bits 29-0 low's.
    return "".join(
        (
            pairs[millis >> 38],
            pairs[(millis >> 28) & 1023],
            pairs[(millis >> 18) & 1023],
            pairs[(millis >> 8) & 1023],
            pairs[((millis & 0xFF) << 2) | (low >> 30)],
            pairs[(low >> 20) & 1023],
            pairs[(low >> 10) & 1023],
            pairs[low & 1023],
        )
    )


def queue_id_time(queue_id: str) -> float:
    value = 0
    for char in queue_id.upper():
        value = value * 32 + _ALPHABET.index(char)
    return (value >> 32) / 1000
