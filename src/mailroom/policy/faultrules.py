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

import math
import re
from dataclasses import dataclass
from typing import Any

from mailroom.codes import Reply, ReplyError

__all__ = ["STAGES", "FaultError", "FaultRule", "parse_reply", "parse_rule"]


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
                # float() reads "inf" and "nan": a session would wait forever, and the
                # rule's JSON would hold Infinity or NaN, which JSON has not
                if not math.isfinite(rule.delay) or rule.delay < 0:
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
