"""Connections counted for the server's limits (``max_connections``, ``max_connections_per_ip``):
in this process (:class:`LocalCounts`), or across the worker processes of ``--workers``
(:class:`SharedCounts`).

Shared, without a lock: each worker writes only its own row of a block of shared memory — its
number of connections, and for each client address two counters of a count-min sketch (the
address hashed two ways into 16,384 buckets each) — and reads every row to decide. A lock
shared by processes would hang them all if a worker were killed while holding it; rows owned
by one writer cannot be left half-locked, and the supervisor zeroes a dead worker's row (its
connections died with it) before it starts another.

What that costs in exactness, both bounded:

- Two workers admitting at the same instant each see the other's count from just before:
  the total may pass ``max_connections`` by at most the number of workers minus one, until
  the next connection is refused.
- A sketch never counts an address low; it may count it high when both of its buckets are
  shared with other busy addresses. With 1,000 connections spread over many addresses, an
  address is refused early only if both its buckets hold addresses near the per-address limit
  themselves (odds in the millionths).
"""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Protocol

__all__ = [
    "BUCKETS",
    "ConnectionCounts",
    "LocalCounts",
    "SharedCounts",
    "clear_row",
    "row_length",
]

BUCKETS = 16384  # per hash, per worker (a power of two)
_MASK = BUCKETS - 1
_SECOND_SEED = 0x9E3779B9  # the second hash: CRC-32 started from another value


def row_length() -> int:
    """A worker's row, in 32-bit counters: its total, then two rows of buckets."""
    return 1 + 2 * BUCKETS


class ConnectionCounts(Protocol):
    """What the server asks when a connection arrives and leaves."""

    def total(self, local: int) -> int:
        """Connections of the whole server, given this process's ``local`` count (which it
        publishes)."""
        ...

    def for_ip(self, ip: str) -> int: ...

    def add(self, ip: str) -> None: ...

    def remove(self, ip: str) -> None: ...

    def published(self, local: int) -> None:
        """This process's count changed (a connection left)."""
        ...


class LocalCounts:
    """One process: exact counts."""

    def __init__(self) -> None:
        self.per_ip: Counter[str] = Counter()

    def total(self, local: int) -> int:
        return local

    def for_ip(self, ip: str) -> int:
        return self.per_ip[ip]

    def add(self, ip: str) -> None:
        self.per_ip[ip] += 1

    def remove(self, ip: str) -> None:
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    def published(self, local: int) -> None:
        pass


class SharedCounts:
    """Worker ``index`` of ``workers``, over ``memory``: ``workers * row_length()`` unsigned
    32-bit counters shared by them all (a ``multiprocessing.RawArray("I", ...)``)."""

    def __init__(self, memory: memoryview, workers: int, index: int) -> None:
        self._all = memory.cast("B").cast("I")
        if len(self._all) < workers * row_length():
            raise ValueError("shared memory too small for the workers")
        self._rows = [w * row_length() for w in range(workers)]
        self._own = self._rows[index]
        self._first = [row + 1 for row in self._rows]
        self._second = [row + 1 + BUCKETS for row in self._rows]

    @staticmethod
    def _buckets(ip: str) -> tuple[int, int]:
        key = ip.encode()
        return zlib.crc32(key) & _MASK, zlib.crc32(key, _SECOND_SEED) & _MASK

    def total(self, local: int) -> int:
        counts = self._all
        counts[self._own] = local
        return sum(counts[row] for row in self._rows)

    def for_ip(self, ip: str) -> int:
        counts = self._all
        first, second = self._buckets(ip)
        return min(
            sum(counts[row + first] for row in self._first),
            sum(counts[row + second] for row in self._second),
        )

    def add(self, ip: str) -> None:
        first, second = self._buckets(ip)
        counts = self._all
        counts[self._own + 1 + first] += 1
        counts[self._own + 1 + BUCKETS + second] += 1

    def remove(self, ip: str) -> None:
        first, second = self._buckets(ip)
        counts = self._all
        one, two = self._own + 1 + first, self._own + 1 + BUCKETS + second
        counts[one] = max(0, counts[one] - 1)
        counts[two] = max(0, counts[two] - 1)

    def published(self, local: int) -> None:
        self._all[self._own] = local


def clear_row(memory: memoryview, index: int) -> None:
    """Zero a worker's row (the supervisor, before it replaces a worker that died)."""
    counts = memory.cast("B").cast("I")
    start = index * row_length()
    counts[start : start + row_length()] = memoryview(bytes(4 * row_length())).cast("I")
