"""Fault injection: make the server fail on purpose, at any stage, with any reply.

A rule says at which stage it applies, which sessions it matches, how often it fires, and what
it does. From the command line (``--fault``, repeatable) or a config file, a rule is written

    STAGE[:MATCH][:OPTION...]:ACTION

    rcpt:*@bounce.test:550 5.1.1 No such user
    mail:p=0.1:451 4.3.0 Try again later
    connect:every=3:421 4.7.0 Too busy
    data:times=2:delay=5
    eod:disconnect
    ehlo:close

- STAGE: connect, ehlo, starttls, auth, mail, rcpt, data, eod (end of data, and the BDAT LAST
  chunk that ends a message), bdat (each BDAT chunk before the last), rset, noop, vrfy, quit.
- MATCH: a glob on the sender (mail, and later stages) or the recipient (rcpt), e.g.
  ``*@bounce.test``; anything with an ``@`` or a ``*`` is a match.
- OPTION: ``p=0.25`` (probability), ``every=N`` (every Nth time), ``times=N`` (the next N
  times, then the rule is spent).
- ACTION: a reply ``CODE [ENHANCED] text`` (validated: the enhanced class must be the basic
  code's first digit), ``delay=SECONDS`` (then go on as usual), ``disconnect`` (drop the
  connection without a word) or ``close`` (421 4.3.2 and close).
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailroom.codes import Reply, ReplyError
from mailroom.codes import catalogue as replies
from mailroom.policy.base import DISCONNECT, Decision, Disconnect, Greeting, Policy, SessionView
from mailroom.protocol import Event, MailFrom, RcptTo
from mailroom.store.envelope import Delivery

__all__ = ["FaultError", "FaultInjector", "FaultRule", "parse_rule"]


class FaultError(ValueError):
    """A rule that cannot be used; the message says what is wrong with it."""


# Stage names of rules, mapped to the stage names events carry (Event.stage).
STAGES = {
    "connect": "CONNECT",
    "ehlo": "EHLO",
    "helo": "EHLO",
    "starttls": "STARTTLS",
    "auth": "AUTH",
    "mail": "MAIL",
    "rcpt": "RCPT",
    "data": "DATA",
    "eod": "END_OF_DATA",
    "bdat": "BDAT",
    "rset": "RSET",
    "noop": "NOOP",
    "vrfy": "VRFY",
    "expn": "EXPN",
    "help": "HELP",
    "quit": "QUIT",
}
_REPLY = re.compile(r"(\d{3})(?:\s+(\d\.\d{1,3}\.\d{1,3}))?(?:\s+(.*))?", re.DOTALL)


@dataclass
class FaultRule:
    stage: str  # a key of STAGES
    action: str  # "reply", "delay", "disconnect", "close"
    reply: Reply | None = None
    delay: float = 0.0
    match: str | None = None
    probability: float = 1.0
    every: int = 0
    times: int = 0  # 0: unlimited; otherwise how many more times it may fire
    id: int = 0
    fired: int = 0
    seen: int = 0
    # What made the rule when it was not written as one: "chaos Sender" for a Mailpit Chaos
    # trigger set over the API (mailroom.web.chaos), so that API can tell its own rules.
    origin: str = ""
    # Kept in a fleet's database and applied by every node (mailroom.postgres.faults); the
    # rest (from --fault) are this node's own.
    shared: bool = False

    @property
    def spent(self) -> bool:
        return self.times < 0

    def describe(self) -> str:
        parts = [self.stage]
        if self.match:
            parts.append(self.match)
        if self.probability < 1:
            parts.append(f"p={self.probability:g}")
        if self.every:
            parts.append(f"every={self.every}")
        if self.times > 0:
            parts.append(f"times={self.times}")
        if self.action == "reply" and self.reply is not None:
            parts.append(str(self.reply))
        elif self.action == "delay":
            parts.append(f"delay={self.delay:g}")
        else:
            parts.append(self.action)
        return ":".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.describe(),
            "stage": self.stage,
            "match": self.match,
            "action": self.action,
            "reply": str(self.reply) if self.reply else None,
            "delay": self.delay,
            "probability": self.probability,
            "every": self.every,
            "times": max(self.times, 0),
            "fired": self.fired,
            "origin": self.origin or None,
        }


def parse_reply(text: str) -> Reply:
    match = _REPLY.fullmatch(text.strip())
    if match is None:
        raise FaultError(f"not a reply: {text!r} (write e.g. '550 5.1.1 No such user')")
    code, status, message = int(match[1]), match[2], (match[3] or "").strip()
    try:
        return Reply(code, status, message or "Fault injected")
    except ReplyError as exc:
        raise FaultError(str(exc)) from None


def parse_rule(text: str) -> FaultRule:
    """``STAGE[:MATCH][:OPTION...]:ACTION``, as the module's docstring describes."""
    stage, _, rest = text.strip().partition(":")
    stage = stage.lower()
    if stage not in STAGES:
        raise FaultError(f"unknown stage {stage!r}; one of {', '.join(sorted(STAGES))}")
    if not rest:
        raise FaultError("a rule needs an action: a reply, delay=N, disconnect or close")
    rule = FaultRule(stage=stage, action="")
    fields = rest.split(":")
    while fields:
        head = fields[0].strip()
        if _REPLY.match(head) and head[:3].isdigit():
            rule.action = "reply"
            rule.reply = parse_reply(":".join(fields))
            break
        fields.pop(0)
        key, eq, value = head.partition("=")
        key = key.lower()
        try:
            if eq and key == "p":
                rule.probability = float(value)
                if not 0 <= rule.probability <= 1:
                    raise ValueError
            elif eq and key == "every":
                rule.every = int(value)
                if rule.every < 1:
                    raise ValueError
            elif eq and key == "times":
                rule.times = int(value)
                if rule.times < 1:
                    raise ValueError
            elif eq and key == "delay":
                rule.action, rule.delay = "delay", float(value)
                if rule.delay < 0:
                    raise ValueError
            elif not eq and key in ("disconnect", "close"):
                rule.action = key
            elif not eq and ("@" in head or "*" in head):
                rule.match = head
            else:
                raise FaultError(f"cannot read {head!r} in rule {text!r}")
        except FaultError:
            raise
        except ValueError:
            raise FaultError(f"bad value in {head!r}") from None
        if rule.action in ("delay", "disconnect", "close"):
            if fields:
                raise FaultError(
                    f"the action comes last: {':'.join(fields)!r} follows {head!r} in {text!r}"
                )
            break
    if not rule.action:
        raise FaultError(f"no action in rule {text!r}")
    if rule.stage == "connect" and rule.reply is not None and rule.reply.code // 100 == 2:
        raise FaultError("a connect rule replaces the greeting: give a 4xx or 5xx reply")
    return rule


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
