"""Refuse early while the store cannot keep messages (its PostgreSQL database is out of reach).

A store on another machine can be down while the node runs. Rather than take a message and
refuse it after the client has sent it, the gate answers ``421 4.3.2`` at the greeting (a
client then tries the next MX host, or later) and ``451 4.3.0`` at MAIL to sessions already
open. A transaction begun while the store was up that meets it down at end of data gets
``451 4.3.0`` from the store itself. Both are temporary: the client keeps the message.
"""

from __future__ import annotations

from mailroom.codes import catalogue as replies
from mailroom.policy.base import Decision, Greeting, Policy, SessionView
from mailroom.protocol import Event, MailFrom
from mailroom.store.base import StoreHealth
from mailroom.store.envelope import Delivery

__all__ = ["StoreGate"]


class StoreGate:
    """Wraps a policy: while ``health.available`` is false, no session and no transaction is
    begun; otherwise the inner policy decides."""

    def __init__(self, inner: Policy, health: StoreHealth, *, hostname: str) -> None:
        self.inner = inner
        self.health = health
        self.hostname = hostname

    def connect(self, session: SessionView) -> Greeting:
        if not self.health.available:
            return replies.STORE_UNAVAILABLE_CLOSING(hostname=self.hostname)
        return self.inner.connect(session)

    def decide(self, event: Event, session: SessionView) -> Decision:
        if type(event) is MailFrom and not self.health.available:
            return replies.STORE_UNAVAILABLE()
        return self.inner.decide(event, session)

    def deliveries(self, session: SessionView) -> list[Delivery] | None:
        return self.inner.deliveries(session)
