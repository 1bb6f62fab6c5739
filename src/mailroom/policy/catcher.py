"""The catcher: accept mail for any recipient, store it, never relay (the embedded default)."""

from __future__ import annotations

from mailroom.codes import Reply
from mailroom.policy.base import Decision, SessionView
from mailroom.policy.credentials import CredentialStore
from mailroom.protocol import Authenticate, Event
from mailroom.store.envelope import Delivery

__all__ = ["CatcherPolicy"]


class CatcherPolicy:
    def __init__(self, credentials: CredentialStore | None = None) -> None:
        self.credentials = credentials

    def connect(self, session: SessionView) -> Reply | None:
        return None

    def decide(self, event: Event, session: SessionView) -> Decision:
        if type(event) is Authenticate and self.credentials is not None:
            return self.credentials.check(event.credentials)
        return None

    def deliveries(self, session: SessionView) -> list[Delivery] | None:
        return None  # every recipient's mail in one file of the catch-all mailbox
