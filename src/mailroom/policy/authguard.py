"""Brute force against AUTH: slow every failure down, then stop listening to the address.

Three named settings, each with a safe default (see ``AuthLimits``):

- a failed AUTH is answered only after ``auth_failure_delay`` seconds (a tarpit: the session
  waits, the event loop does not);
- a client address with ``max_auth_failures`` failures within ``auth_failure_window`` seconds
  gets ``454 4.7.0`` to every further AUTH until the oldest failure ages out, whatever the
  credentials (a right password must not tell a guesser it guessed right);
- a session whose AUTH fails ``max_auth_failures_per_session`` times (454 refusals included)
  gets ``421 4.7.0`` instead of its last refusal, and is closed.

A failure is a 5yz answer to a finished exchange (535 5.7.8, 534 5.7.9): wrong credentials.
Malformed exchanges (bad base64, cancelled, lines too long) are protocol errors and count, as
any bad command does, towards ``max_bad_commands``. A success forgets nothing: otherwise one
known account would reset the count for guessing all the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.policy.base import Decision, Greeting, Policy, SessionView
from mailroom.protocol import AuthChallenge, Authenticate, Event
from mailroom.store.envelope import Delivery

__all__ = ["AuthFailures", "AuthGuard", "AuthLimits"]

_PRUNE_ABOVE = 1024  # addresses tracked before old ones are swept out


@dataclass(frozen=True)
class AuthLimits:
    max_failures: int = 5  # per client address within the window; 0: no limit
    window: float = 600.0  # seconds
    max_failures_per_session: int = 3  # then 421 4.7.0 and close; 0: no limit
    failure_delay: float = 1.0  # seconds before a failed AUTH is answered; 0: at once


class AuthFailures:
    """Recent AUTH failures by client address, over a sliding window (no clock of its own:
    every call says what time it is)."""

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._pruned = 0.0

    def __len__(self) -> int:
        return len(self._seen)

    def blocked(self, address: str, now: float) -> bool:
        if not self.max_failures:
            return False
        times = self._seen.get(address)
        if times is None:
            return False
        self._expire(times, now)
        if not times:
            del self._seen[address]
            return False
        return len(times) >= self.max_failures

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


class AuthGuard:
    """Wraps a policy: AUTH from a blocked address is refused before credentials are looked
    at; a failure is counted, delayed, and may end the session."""

    def __init__(
        self,
        inner: Policy,
        limits: AuthLimits,
        *,
        hostname: str = "localhost",
        clock: Callable[[], float] = time.monotonic,
        failures: AuthFailures | None = None,
    ) -> None:
        self.inner = inner
        self.limits = limits
        self.hostname = hostname
        self.clock = clock
        # Failures by address: this process's, or (worker processes) one that also reports
        # them to the supervisor and hears which addresses are blocked (mailroom.supervisor).
        self.failures = (
            failures if failures is not None else AuthFailures(limits.max_failures, limits.window)
        )

    def connect(self, session: SessionView) -> Greeting:
        return self.inner.connect(session)

    def deliveries(self, session: SessionView) -> list[Delivery] | None:
        return self.inner.deliveries(session)

    def decide(self, event: Event, session: SessionView) -> Decision:
        kind = type(event)
        if kind is not Authenticate and kind is not AuthChallenge:
            return self.inner.decide(event, session)
        if self.failures.blocked(session.client_ip, self.clock()):
            return self._session_failed(session, replies.AUTH_TOO_MANY_FAILURES())
        decision = self.inner.decide(event, session)
        if kind is AuthChallenge:
            return decision
        if isinstance(decision, Reply):
            if decision.code < 500:
                return decision
            return self._failed(session, decision)
        if decision is None or not isinstance(decision, Awaitable):
            return decision
        return self._checked(session, decision)

    async def _checked(self, session: SessionView, decision: Awaitable[Any]) -> Any:
        reply = await decision
        if isinstance(reply, Reply) and reply.code >= 500:
            return await self._failed(session, reply)
        return reply

    async def _failed(self, session: SessionView, reply: Reply) -> Reply:
        self.failures.record(session.client_ip, self.clock())
        if self.limits.failure_delay > 0:
            await asyncio.sleep(self.limits.failure_delay)
        return self._session_failed(session, reply)

    def _session_failed(self, session: SessionView, reply: Reply) -> Reply:
        # Counted on the session itself (``Session.auth_failures``): it goes when the session
        # goes.
        count = getattr(session, "auth_failures", 0) + 1
        setattr(session, "auth_failures", count)  # noqa: B010 (not every SessionView has it)
        limit = self.limits.max_failures_per_session
        if limit and count >= limit:
            return replies.AUTH_TOO_MANY_FAILURES_CLOSING(hostname=self.hostname)
        return reply
