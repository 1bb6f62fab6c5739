"""A driver for transcript tests: feeds bytes into a ServerConnection and answers every event
the way a plain accept-all policy would (the protocol's proposed reply; 250 with a fixed queue
id at the end of a message; 235 for any credentials).

:func:`run` plays a transcript (a list of ``(client bytes, expected server bytes)`` steps) four
ways: step by step and all at once (pipelined), each fed whole and one byte at a time; every
way must give exactly the expected bytes, in order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
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
    MessageRefused,
    Reset,
    ServerConnection,
    SessionSettings,
    StartTLS,
)

HOST = "mx.example.test"
NONCE = "c0ffee"  # every CRAM-MD5 and SCRAM nonce, so that transcripts can be pinned

Step = tuple[bytes, bytes]


def make_settings(**changes: object) -> SessionSettings:
    base = SessionSettings(hostname=HOST, nonce=lambda: NONCE)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def default_policy(event: Event) -> Reply:
    if isinstance(event, MessageComplete):
        return replies.MESSAGE_ACCEPTED(queue_id="Q1")
    if isinstance(event, Authenticate):
        return replies.AUTH_SUCCEEDED()
    assert event.reply is not None, event
    return event.reply


@dataclass
class Session:
    settings: SessionSettings = field(default_factory=make_settings)
    policy: Callable[[Event], Reply] = default_policy
    tls: bool = False
    secret: object = None
    greeting_reply: Reply | None = None
    conn: ServerConnection = field(init=False)
    events: list[Event] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    _body: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.conn = ServerConnection(self.settings, client_address="192.0.2.1", tls=self.tls)
        self.greeting = self.conn.greet(self.greeting_reply or replies.GREETING(hostname=HOST))

    def feed(self, data: bytes, *, step: int | None = None) -> bytes:
        """Feed ``data`` (all at once, or ``step`` bytes at a time); return all the output."""
        out = bytearray()
        pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
        for piece in pieces or [b""]:
            if piece:
                self.conn.receive_data(piece)
            out += self.drain()
        return bytes(out)

    def drain(self) -> bytes:
        out = bytearray()
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                return bytes(out)
            assert isinstance(event, Event)
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
            if isinstance(event, MessageComplete | MessageRefused | Reset):
                self._body.clear()
            out += self.conn.send(reply)
            if isinstance(event, StartTLS) and reply.code == 220:
                return bytes(out)

    def close(self) -> bytes:
        self.conn.receive_data(b"")
        return self.drain()


def ehlo(session: Session) -> bytes:
    return session.feed(b"EHLO client.example.test\r\n")


def run(
    steps: Sequence[Step],
    *,
    settings: SessionSettings | None = None,
    pipelined: bool = True,
    byte_steps: Sequence[int | None] = (None, 1),
    **session_options: object,
) -> Session:
    """Play ``steps`` lockstep (each fed whole, then one byte at a time) and pipelined (all
    the client's bytes in one go, whole and byte by byte); every way must give exactly the
    expected bytes. Returns the session of the first lockstep play, for further checks."""
    settings = settings or make_settings()
    first: Session | None = None
    for step in byte_steps:
        session = Session(settings, **session_options)  # type: ignore[arg-type]
        for number, (client, expected) in enumerate(steps):
            got = session.feed(client, step=step)
            assert got == expected, f"step {number} {client[:60]!r} (fed by {step}): {got!r}"
        first = first or session
    if pipelined:
        batch = b"".join(client for client, _ in steps)
        expected_all = b"".join(expected for _, expected in steps)
        for step in byte_steps:
            session = Session(settings, **session_options)  # type: ignore[arg-type]
            got = session.feed(batch, step=step)
            assert got == expected_all, f"pipelined (fed by {step}): {got!r}"
    assert first is not None
    return first
