"""A driver for transcript tests: feeds bytes into a ServerConnection and answers every event
the way a plain accept-all policy would (the protocol's proposed reply; 250 with a fixed queue
id at the end of a message; 235 for any credentials)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol import (
    NEED_DATA,
    PAUSED,
    Authenticate,
    AuthSecretNeeded,
    Event,
    MessageComplete,
    MessageData,
    ServerConnection,
    SessionSettings,
    StartTLS,
)

HOST = "mx.example.test"


def default_policy(event: Event) -> Reply:
    if isinstance(event, MessageComplete):
        return replies.MESSAGE_ACCEPTED(queue_id="Q1")
    if isinstance(event, Authenticate):
        return replies.AUTH_SUCCEEDED()
    assert event.reply is not None, event
    return event.reply


@dataclass
class Session:
    settings: SessionSettings = field(default_factory=lambda: SessionSettings(hostname=HOST))
    policy: Callable[[Event], Reply] = default_policy
    tls: bool = False
    secret: object = None
    conn: ServerConnection = field(init=False)
    events: list[Event] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    _body: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.conn = ServerConnection(self.settings, client_address="192.0.2.1", tls=self.tls)
        self.greeting = self.conn.greet(replies.GREETING(hostname=HOST))

    def feed(self, data: bytes, *, step: int | None = None) -> bytes:
        """Feed ``data`` (all at once, or ``step`` bytes at a time); return all the output."""
        out = bytearray()
        pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
        for piece in pieces or [b""]:
            self.conn.receive_data(piece) if piece else None
            out += self.drain()
        return bytes(out)

    def drain(self) -> bytes:
        out = bytearray()
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                return bytes(out)
            self.events.append(event)
            if isinstance(event, MessageData):
                self._body += event.data
                continue
            if isinstance(event, AuthSecretNeeded):
                self.conn.send_auth_secret(self.secret)  # type: ignore[arg-type]
                continue
            if not event.needs_reply:
                continue
            reply = self.policy(event)
            if isinstance(event, MessageComplete):
                self.messages.append(bytes(self._body))
            if type(event).__name__ in ("MessageComplete", "MessageRefused"):
                self._body.clear()
            out += self.conn.send(reply)
            if isinstance(event, StartTLS) and reply.code == 220:
                return bytes(out)

    def close(self) -> bytes:
        self.conn.receive_data(b"")
        return self.drain()


def ehlo(session: Session) -> bytes:
    return session.feed(b"EHLO client.example.test\r\n")
