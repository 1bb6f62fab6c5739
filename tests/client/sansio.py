"""Helpers for the sans-IO client tests: play a scripted server against a ClientConnection,
and pump a ClientConnection against mailroom's own sans-IO ServerConnection in memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailroom.protocol.client import ClientConnection, ClientEvent, iter_events
from tests.protocol.transcript import Session

CLIENT_NAME = "client.example.test"
GREETING = b"220 mx.example.test ESMTP test\r\n"
EHLO_FULL = (
    b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n"
)


def new(**kwargs: object) -> ClientConnection:
    return ClientConnection(local_hostname=CLIENT_NAME, **kwargs)  # type: ignore[arg-type]


@dataclass
class Scripted:
    """A client fed by a test that plays the server: ``feed`` server bytes (whole or one byte
    at a time), then look at the events and at what the client wrote."""

    step: int | None = None  # feed this many bytes at a time; None: all at once
    conn: ClientConnection = field(default_factory=new)
    events: list[ClientEvent] = field(default_factory=list)

    def feed(self, data: bytes) -> list[ClientEvent]:
        got: list[ClientEvent] = []
        pieces = (
            [data]
            if self.step is None
            else [data[i : i + self.step] for i in range(0, len(data), self.step)]
        )
        for piece in pieces:
            self.conn.receive_data(piece)
            got += iter_events(self.conn)
        self.events += got
        return got

    def sent(self) -> bytes:
        return self.conn.data_to_send()

    def ready(self, ehlo: bytes = EHLO_FULL) -> None:
        """Greeting and EHLO with ``ehlo`` as the reply."""
        self.feed(GREETING)
        self.conn.ehlo()
        assert self.sent() == f"EHLO {CLIENT_NAME}\r\n".encode()
        self.feed(ehlo)


def pump(client: ClientConnection, server: Session, *, limit: int = 1000) -> list[ClientEvent]:
    """Shuttle bytes between the two machines until neither has more to say."""
    events: list[ClientEvent] = []
    for _ in range(limit):
        out = client.data_to_send()
        if not out:
            return events
        back = server.feed(out)
        if back:
            client.receive_data(back)
        events += iter_events(client)
    raise AssertionError("the conversation did not settle")


def converse(
    server: Session,
    actions: Sequence[Callable[[ClientConnection], object]],
    **client_options: object,
) -> tuple[ClientConnection, list[ClientEvent]]:
    """Greet, then run each action and pump after it; return the client and every event."""
    client = new(**client_options)
    client.receive_data(server.greeting)
    events = list(iter_events(client))
    for action in actions:
        action(client)
        events += pump(client, server)
    return client, events
