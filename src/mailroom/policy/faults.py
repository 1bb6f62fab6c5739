"""Fault injection's policy: a FaultInjector wraps a policy and checks its rules first.

The rules, how they are written and read: :mod:`mailroom.policy.faultrules` (kept interpreted:
its rules are pickled to the workers). This module is compiled with mypyc in the compiled
build (the injector is asked at every command, its rules or none).
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.policy.base import DISCONNECT, Decision, Disconnect, Greeting, Policy, SessionView
from mailroom.policy.faultrules import STAGES, FaultError, FaultRule, parse_reply, parse_rule
from mailroom.protocol import Event, MailFrom, RcptTo
from mailroom.store.envelope import Delivery

__all__ = ["STAGES", "FaultError", "FaultInjector", "FaultRule", "parse_reply", "parse_rule"]


@dataclass
class FaultInjector:
    """Wraps a policy: rules are checked first, then the inner policy decides."""

    inner: Policy
    rules: list[FaultRule] = field(default_factory=list)
    hostname: str = "localhost"
    rng: random.Random = field(default_factory=random.Random)
    # Called with (session, rule) whenever a rule fires, so transcripts can show it.
    on_fire: Callable[[SessionView, FaultRule], None] | None = None
    # Called with the rules after each change (the supervisor hands them to its workers).
    on_change: Callable[[list[FaultRule]], None] | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: FaultRule | str) -> FaultRule:
        if isinstance(rule, str):
            rule = parse_rule(rule)
        with self._lock:
            rule.id = next(self._ids)
            self.rules = [*self.rules, rule]
        self._changed()
        return rule

    def replace(self, old: Callable[[FaultRule], bool], new: list[FaultRule]) -> None:
        """Put ``new`` in the place of the rules ``old`` picks, at once: a session never sees
        the set half changed."""
        with self._lock:
            kept = [r for r in self.rules if not old(r)]
            for rule in new:
                rule.id = next(self._ids)
            self.rules = kept + new
        self._changed()

    def load_shared(self, rules: list[FaultRule]) -> None:
        """The fleet's rules as its database now holds them (ids given there), in place of
        the shared ones there were; a rule kept keeps its counts."""
        with self._lock:
            before = {r.id: r for r in self.rules if r.shared}
            shared = []
            for rule in rules:
                rule.shared = True
                old = before.get(rule.id)
                if old is not None:
                    rule.fired, rule.seen = old.fired, old.seen
                    if old.times:
                        rule.times = old.times  # what this node has left of it
                shared.append(rule)
            self.rules = [r for r in self.rules if not r.shared] + shared

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self.rules)
            self.rules = [r for r in self.rules if r.id != rule_id]
            removed = len(self.rules) != before
        self._changed()
        return removed

    def clear(self) -> None:
        with self._lock:
            self.rules = []
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(list(self.rules))

    def _fire(self, stage: str, address: str | None, session: SessionView) -> FaultRule | None:
        for rule in list(self.rules):
            if STAGES[rule.stage] != stage or rule.spent:
                continue
            if rule.match and (
                address is None or not fnmatch.fnmatchcase(address.lower(), rule.match.lower())
            ):
                continue
            rule.seen += 1
            if rule.every and rule.seen % rule.every:
                continue
            if rule.probability < 1 and self.rng.random() >= rule.probability:
                continue
            if rule.times:
                rule.times -= 1
                if rule.times == 0:
                    rule.times = -1  # spent after this one
            rule.fired += 1
            if self.on_fire is not None:
                self.on_fire(session, rule)
            return rule
        return None

    def _action(self, rule: FaultRule, then: Callable[[], Any]) -> Any:
        if rule.action == "reply":
            return rule.reply
        if rule.action == "disconnect":
            return DISCONNECT
        if rule.action == "close":
            return replies.SERVICE_NOT_AVAILABLE(hostname=self.hostname)
        return self._delayed(rule.delay, then)

    async def _delayed(self, seconds: float, then: Callable[[], Any]) -> Any:
        await asyncio.sleep(seconds)
        decision = then()
        if decision is None or isinstance(decision, Reply | Disconnect):
            return decision
        return await decision

    def connect(self, session: SessionView) -> Greeting:
        if self.rules:
            rule = self._fire("CONNECT", None, session)
            if rule is not None:
                result: Greeting = self._action(rule, lambda: self.inner.connect(session))
                return result
        return self.inner.connect(session)

    def deliveries(self, session: SessionView) -> list[Delivery] | None:
        return self.inner.deliveries(session)

    def decide(self, event: Event, session: SessionView) -> Decision:
        if self.rules:
            rule = self._fire(event.stage, _address_of(event, session), session)
            if rule is not None:
                return self._action(  # type: ignore[no-any-return]
                    rule, lambda: self.inner.decide(event, session)
                )
        return self.inner.decide(event, session)


def _address_of(event: Event, session: SessionView) -> str | None:
    if isinstance(event, RcptTo):
        return str(event.recipient)
    if isinstance(event, MailFrom):
        return str(event.sender) if event.sender is not None else ""
    transaction = session.conn.transaction
    if transaction is not None:
        return str(transaction.sender) if transaction.sender is not None else ""
    return None
