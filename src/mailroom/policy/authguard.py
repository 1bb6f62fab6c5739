"""Brute force against AUTH: slow every failure down, then stop listening to the address.

Three named settings, each with a safe default (see ``AuthLimits``):

- a failed AUTH is answered only after ``auth_failure_delay`` seconds (a tarpit: the session
  waits, the event loop does not);
- a client address with ``max_auth_failures`` failures within ``auth_failure_window`` seconds
  gets ``454 4.7.0`` to every further AUTH until the oldest failure ages out, whatever the
  credentials (a right password must not tell a guesser it guessed right); an IPv6 client is
  counted by its /64, the least a subscriber is given (RFC 6177), or a guesser would take a
  new address of its own prefix for each try;
- a session whose AUTH fails ``max_auth_failures_per_session`` times (454 refusals included)
  gets ``421 4.7.0`` instead of its last refusal, and is closed.

A check in flight counts against the address's limit as if it had failed: at most
``max_auth_failures`` passwords are ever checked for one address within the window, however
many sessions send AUTH at the same moment (each is counted before its check, not after it).
A session whose check would pass the limit waits for the checks in flight to finish, then is
refused if they failed, or checked in its turn if one of them succeeded.

A failure is a 5yz answer to a finished exchange (535 5.7.8, 534 5.7.9): wrong credentials.
Malformed exchanges (bad base64, cancelled, lines too long) are protocol errors and count, as
any bad command does, towards ``max_bad_commands``. A success forgets nothing: otherwise one
known account would reset the count for guessing all the others.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.policy.authfailures import AuthFailures
from mailroom.policy.base import Decision, Greeting, Policy, SessionView
from mailroom.protocol import AuthChallenge, Authenticate, Event
from mailroom.store.envelope import Delivery

__all__ = ["AuthFailures", "AuthGuard", "AuthLimits", "counted_as"]


@dataclass(frozen=True)
class AuthLimits:
    max_failures: int = 5  # per client address within the window; 0: no limit
    window: float = 600.0  # seconds
    max_failures_per_session: int = 3  # then 421 4.7.0 and close; 0: no limit
    failure_delay: float = 1.0  # seconds before a failed AUTH is answered; 0: at once


class SharedFailures(Protocol):
    """Failures a fleet counts in its database
    (:class:`mailroom.postgres.counters.PgAuthFailures`): every answer is awaited."""

    async def blocked(self, address: str, now: float) -> bool: ...

    async def record(self, address: str, now: float) -> None: ...


class AuthGuard:
    """Wraps a policy: AUTH from a blocked address is refused before credentials are looked
    at; a check counts against its address from the moment it starts; a failure is counted,
    delayed, and may end the session."""

    def __init__(
        self,
        inner: Policy,
        limits: AuthLimits,
        *,
        hostname: str = "localhost",
        clock: Callable[[], float] = time.monotonic,
        failures: AuthFailures | None = None,
        shared: SharedFailures | None = None,
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
        # Or a fleet's: counted in its PostgreSQL database, so every node sees them.
        self.shared = shared
        # Sessions waiting for the checks in flight of their address (see may_begin), woken
        # when one ends.
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}

    def connect(self, session: SessionView) -> Greeting:
        return self.inner.connect(session)

    def deliveries(self, session: SessionView) -> list[Delivery] | None:
        return self.inner.deliveries(session)

    def decide(self, event: Event, session: SessionView) -> Decision:
        kind = type(event)
        if kind is not Authenticate and kind is not AuthChallenge:
            return self.inner.decide(event, session)
        if self.shared is not None:  # counted in a database the fleet shares
            return self._decide_shared(self.shared, event, session)
        address = counted_as(session.client_ip)
        now = self.clock()
        if self.failures.blocked(address, now):
            return self._session_failed(session, replies.AUTH_TOO_MANY_FAILURES())
        if kind is AuthChallenge:
            return self.inner.decide(event, session)
        if not self.failures.may_begin(address, now):
            # As many checks are in flight as the address has failures left: wait for them.
            return self._in_turn(event, session)
        return self._check(event, session)

    async def _decide_shared(
        self, shared: SharedFailures, event: Event, session: SessionView
    ) -> Any:
        """A fleet's node: blocked as the database counts; a failure recorded there. Checks in
        flight are not counted ahead across the fleet (each node records a failure when its
        check ends), so concurrent sessions of one address may each have a check in flight
        when the limit is reached; the per-session limit and the tarpit still hold."""
        address = counted_as(session.client_ip)
        if await shared.blocked(address, self.clock()):
            return self._session_failed(session, replies.AUTH_TOO_MANY_FAILURES())
        decision = self.inner.decide(event, session)
        reply = await decision if isinstance(decision, Awaitable) else decision
        if type(event) is AuthChallenge or not isinstance(reply, Reply) or reply.code < 500:
            return reply
        await shared.record(address, self.clock())
        return await self._failed(session, reply)

    def _check(self, event: Event, session: SessionView) -> Decision:
        """Check the credentials, counted against the address while the check runs."""
        address = counted_as(session.client_ip)
        self.failures.begin(address)
        try:
            decision = self.inner.decide(event, session)
        except BaseException:
            self._end(address, failed=False)
            raise
        if isinstance(decision, Reply):
            failed = decision.code >= 500
            self._end(address, failed=failed)
            return self._failed(session, decision) if failed else decision
        if decision is None or not isinstance(decision, Awaitable):
            self._end(address, failed=False)
            return decision
        # A task of its own, so the check ends (and is counted) however the session's wait
        # ends: a session that goes away before it is answered leaves no check counted in
        # flight for ever.
        check = asyncio.ensure_future(decision)
        check.add_done_callback(lambda done: self._end(address, failed=_refused(done)))
        return self._checked(session, check)

    async def _in_turn(self, event: Event, session: SessionView) -> Any:
        address = counted_as(session.client_ip)
        failures = self.failures
        loop = asyncio.get_running_loop()
        while not failures.may_begin(address, self.clock()) and failures.in_flight(address):
            turn: asyncio.Future[None] = loop.create_future()
            self._waiting.setdefault(address, []).append(turn)
            try:
                await turn
            finally:
                waiting = self._waiting.get(address)
                if waiting is not None and turn in waiting:
                    waiting.remove(turn)
                    if not waiting:
                        del self._waiting[address]
        if failures.blocked(address, self.clock()):
            return self._session_failed(session, replies.AUTH_TOO_MANY_FAILURES())
        decision = self._check(event, session)
        if isinstance(decision, Awaitable):
            return await decision
        return decision

    def _end(self, address: str, *, failed: bool) -> None:
        self.failures.end(address, failed=failed, now=self.clock())
        for turn in self._waiting.pop(address, ()):
            if not turn.done():
                turn.set_result(None)

    async def _checked(self, session: SessionView, check: asyncio.Future[Any]) -> Any:
        reply = await check
        if isinstance(reply, Reply) and reply.code >= 500:
            return await self._failed(session, reply)
        return reply

    async def _failed(self, session: SessionView, reply: Reply) -> Reply:
        # Counted already (AuthFailures.end, or SharedFailures.record); now the tarpit.
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


def counted_as(client_ip: str) -> str:
    """What AUTH failures of ``client_ip`` are counted against: an IPv4 address itself (one
    address may be a whole NAT, a larger block would be many), an IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(address, ipaddress.IPv4Address):
        return client_ip
    mapped = address.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def _refused(check: asyncio.Future[Any]) -> bool:
    """Whether a finished check refused the credentials (cancelled: it did not finish)."""
    if check.cancelled() or check.exception() is not None:
        return False
    reply = check.result()
    return isinstance(reply, Reply) and reply.code >= 500
