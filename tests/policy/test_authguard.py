"""AuthFailures: failed AUTHs per client address over a sliding window, with the clock given
(the server-level behaviour is in tests/hostile/test_auth_abuse.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import SimpleNamespace

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.policy.authguard import AuthFailures, AuthGuard, AuthLimits, counted_as
from mailroom.policy.base import SessionView
from mailroom.protocol import Authenticate, Event
from mailroom.protocol.events import PlainCredentials


def test_blocked_at_the_limit_until_the_oldest_failure_ages_out() -> None:
    failures = AuthFailures(max_failures=3, window=600)
    for t in (0, 10, 20):
        assert not failures.blocked("192.0.2.1", t)
        failures.record("192.0.2.1", t)
    assert failures.blocked("192.0.2.1", 21)
    assert not failures.blocked("192.0.2.2", 21)  # others are not held responsible
    assert failures.blocked("192.0.2.1", 599)
    assert not failures.blocked("192.0.2.1", 600)  # the failure at 0 aged out
    failures.record("192.0.2.1", 600)
    assert failures.blocked("192.0.2.1", 601)


def test_no_limit() -> None:
    failures = AuthFailures(max_failures=0, window=600)
    for t in range(100):
        failures.record("192.0.2.1", t)
    assert not failures.blocked("192.0.2.1", 100)
    assert len(failures) == 0


def test_memory_stays_bounded() -> None:
    failures = AuthFailures(max_failures=5, window=60)
    for t in range(1000):
        failures.record("192.0.2.1", t / 1000)
    assert len(failures._seen["192.0.2.1"]) == 5
    # Many addresses, each failing once: the old ones are swept out as new ones come.
    for n in range(5000):
        failures.record(f"10.0.{n // 256}.{n % 256}", float(n))
    assert len(failures) <= 1100
    failures.prune(10_000.0)
    assert len(failures) == 0


def test_checks_in_flight_count_against_the_limit() -> None:
    failures = AuthFailures(max_failures=3, window=600)
    for _ in range(3):
        assert failures.may_begin("192.0.2.1", now=0)
        failures.begin("192.0.2.1")
    # Three checks in flight, none failed yet: a fourth may not start.
    assert not failures.may_begin("192.0.2.1", now=0)
    assert not failures.blocked("192.0.2.1", now=0)
    assert failures.may_begin("192.0.2.2", now=0)
    failures.end("192.0.2.1", failed=False, now=1)  # a success frees its place
    assert failures.may_begin("192.0.2.1", now=1)
    failures.end("192.0.2.1", failed=True, now=1)
    failures.end("192.0.2.1", failed=True, now=1)
    assert failures.in_flight("192.0.2.1") == 0
    assert failures.recent("192.0.2.1", now=1) == 2
    assert failures.may_begin("192.0.2.1", now=1)
    failures.begin("192.0.2.1")
    assert not failures.may_begin("192.0.2.1", now=1)
    failures.end("192.0.2.1", failed=True, now=2)
    assert failures.blocked("192.0.2.1", now=2)
    assert failures.may_begin("192.0.2.1", now=602)  # aged out


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    assert counted_as("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert counted_as("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert counted_as("2001:db8:1:3::1") == "2001:db8:1:3::/64"  # the next prefix
    assert counted_as("192.0.2.1") == "192.0.2.1"  # IPv4: the address (a NAT may be many)
    assert counted_as("::ffff:192.0.2.1") == "192.0.2.1"
    assert counted_as("unix socket") == "unix socket"


def test_a_guesser_rotating_through_its_ipv6_prefix_is_refused() -> None:
    """AuthGuard over a directory where every password is wrong: five failures from five
    addresses of one /64, and the sixth address of it is refused before its check; another
    /64 is not held responsible."""
    asked: list[str] = []

    class WrongPasswords:
        def decide(self, event: Event, session: SessionView) -> Reply:
            asked.append(session.client_ip)
            return replies.AUTH_INVALID_CREDENTIALS()

    limits = AuthLimits(max_failures=5, failure_delay=0, max_failures_per_session=0)
    guard = AuthGuard(WrongPasswords(), limits, clock=lambda: 100.0)  # type: ignore[arg-type]
    event = Authenticate("PLAIN", PlainCredentials("", "alice", "guess"))

    async def auth(ip: str) -> Reply:
        decision = guard.decide(event, SimpleNamespace(client_ip=ip))  # type: ignore[arg-type]
        reply = await decision if isinstance(decision, Awaitable) else decision
        assert isinstance(reply, Reply)
        return reply

    async def attack() -> list[int]:
        return [(await auth(f"2001:db8::{n}")).code for n in range(1, 7)]

    assert asyncio.run(attack()) == [535] * 5 + [454]
    assert asyncio.run(auth("2001:db8::99")) == replies.AUTH_TOO_MANY_FAILURES()
    assert len(asked) == 5
    assert asyncio.run(auth("2001:db8:0:1::1")).code == 535
