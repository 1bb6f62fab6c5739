"""AUTH failures by client address over a sliding window (:mod:`mailroom.policy.authguard`).

Kept interpreted in the compiled build: a worker's count (``mailroom.workers``) subclasses
it, and it is asked only at AUTH.
"""

from __future__ import annotations

from collections import deque

__all__ = ["AuthFailures"]

_PRUNE_ABOVE = 1024  # addresses tracked before old ones are swept out


class AuthFailures:
    """Recent AUTH failures by client address, over a sliding window, and the checks in
    flight for each address (no clock of its own: every call says what time it is)."""

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}
        self._pruned = 0.0

    def __len__(self) -> int:
        return len(self._seen)

    def recent(self, address: str, now: float) -> int:
        """Failures of ``address`` within the window."""
        times = self._seen.get(address)
        if times is None:
            return 0
        self._expire(times, now)
        if not times:
            del self._seen[address]
            return 0
        return len(times)

    def blocked(self, address: str, now: float) -> bool:
        """The address failed ``max_failures`` times within the window."""
        if not self.max_failures:
            return False
        return self.recent(address, now) >= self.max_failures

    def in_flight(self, address: str) -> int:
        return self._in_flight.get(address, 0)

    def may_begin(self, address: str, now: float) -> bool:
        """Whether one more check may start now: the failures in the window and the checks
        in flight (each may yet fail) stay within the limit."""
        if not self.max_failures:
            return True
        return self.recent(address, now) + self.in_flight(address) < self.max_failures

    def begin(self, address: str) -> None:
        """A check of ``address`` starts: it counts against the limit until :meth:`end`."""
        self._in_flight[address] = self._in_flight.get(address, 0) + 1

    def end(self, address: str, *, failed: bool, now: float) -> None:
        """The check ends: a failure is recorded before the check stops counting, so the
        count never dips between the two."""
        if failed:
            self.record(address, now)
        left = self._in_flight.get(address, 0) - 1
        if left > 0:
            self._in_flight[address] = left
        else:
            self._in_flight.pop(address, None)

    def record(self, address: str, now: float) -> None:
        if not self.max_failures:
            return
        times = self._seen.get(address)
        if times is None:
            # Only the last max_failures matter: the deque never holds more.
            times = self._seen[address] = deque(maxlen=self.max_failures)
        times.append(now)
        if len(self._seen) > _PRUNE_ABOVE and now - self._pruned > self.window / 10:
            self.prune(now)

    def prune(self, now: float) -> None:
        """Forget addresses whose failures all aged out (memory stays bounded)."""
        self._pruned = now
        for address in list(self._seen):
            times = self._seen[address]
            self._expire(times, now)
            if not times:
                del self._seen[address]

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()
