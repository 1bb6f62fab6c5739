"""Real peers for the queue runner's tests, all on loopback in the test's own event loop:
mailroom servers to deliver to (with fault rules, TLS, AUTH), the runner over a queue made on
disk, and an in-memory stand-in for the server's ``deliver_local`` that keeps the reports."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mailroom.app import Mailroom
from mailroom.config import Config, load_config
from mailroom.delivery import QueueRunner
from mailroom.queue.entry import QueueEntry, QueueRecipient, QueueSpool
from mailroom.queue.settings import QueueSettings, RelayHost
from mailroom.store.ids import new_queue_id

SENDER_HOST = "mx.a.test"
RECEIVER_HOST = "mx.example.test"


def server_settings(data: Path, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "data": data,
        "smtp": "127.0.0.1:0",
        "hostname": RECEIVER_HOST,
        "shutdown_grace": 1.0,
        "log_level": "warning",
    }
    if "web" in {f.name for f in fields(Config)}:
        settings["web"] = "off"
    settings.update(overrides)
    return settings


@asynccontextmanager
async def receiver(data: Path, **overrides: Any) -> AsyncIterator[Mailroom]:
    """A mailroom catcher to deliver to (every message in ``data/mail/catchall``)."""
    server = Mailroom(load_config(None, server_settings(data, **overrides)))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def port_of(server: Mailroom) -> int:
    return server.addresses[0][1]


def route_to(server: Mailroom, *domains: str, **options: Any) -> dict[str, RelayHost]:
    host, port = server.addresses[0]
    return {d: RelayHost.parse({"address": f"{host}:{port}", **options}) for d in domains}


def stored(data: Path) -> list[bytes]:
    """What a receiver stored, oldest first: by the queue id in each file's name
    (``TIME.QUEUEID.HOST,S=SIZE``; milliseconds, then a counter), not by modification time,
    which two messages delivered a few milliseconds apart can share (the kernel's clock tick)."""
    folder = data / "mail" / "catchall" / "new"
    if not folder.is_dir():
        return []
    return [p.read_bytes() for p in sorted(folder.iterdir(), key=lambda p: p.name.split(".")[1])]


def message_ids(data: Path) -> list[str]:
    found = []
    for raw in stored(data):
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        found.append(str(parsed["Message-ID"]))
    return found


def commands(server: Mailroom) -> list[list[str]]:
    """The commands of each session the server saw, oldest session first."""
    sessions = list(reversed(server.transcripts.list(limit=10_000)))
    return [
        [item["text"] for item in t.to_dict()["entries"] if item["from"] == "client"]
        for t in sessions
    ]


def make_message(subject: str = "hello", message_id: str | None = None, size: int = 0) -> bytes:
    message_id = message_id or f"<{new_queue_id()}@a.test>"
    text = (
        "Received: from client.a.test ([127.0.0.1]) by mx.a.test (mailroom) with ESMTPA;\r\n"
        "\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
        "From: Alice <alice@a.test>\r\n"
        "To: bob@example.test\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n"
        "\r\n"
        "Hello Bob.\r\n"
    )
    return text.encode() + b"x" * size + (b"\r\n" if size else b"")


def queue_message(
    spool: QueueSpool,
    recipients: Sequence[str | QueueRecipient],
    *,
    sender: str = "alice@a.test",
    message: bytes | None = None,
    **changes: Any,
) -> QueueEntry:
    """Put a message in the queue on disk, as the store would."""
    spool.ensure()
    entry = QueueEntry(
        id=new_queue_id(),
        sender=sender,
        recipients=[r if isinstance(r, QueueRecipient) else QueueRecipient(r) for r in recipients],
    )
    for name, value in changes.items():
        setattr(entry, name, value)
    spool.message_path(entry.id).write_bytes(message or make_message())
    spool.save(entry)
    return entry


class Inbox:
    """The server's ``deliver_local``, kept in memory: the reports the runner hands over."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.fail = False

    async def __call__(self, *, sender: str, recipients: Sequence[str], message: bytes) -> str:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.messages.append((sender, list(recipients), message))
        return f"REPORT{len(self.messages)}"

    @property
    def reports(self) -> list[EmailMessage]:
        found = []
        for sender, _, raw in self.messages:
            assert sender == ""
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            found.append(parsed)
        return found


def recipient_blocks(report: EmailMessage) -> list[Any]:
    """The per-recipient fields of a DSN."""
    status = report.get_payload()[1]
    if status.get_content_type() == "message/global-delivery-status":
        # RFC 6533: the email package splits the fields of message/delivery-status only.
        raw = report.as_bytes().replace(
            b"message/global-delivery-status", b"message/delivery-status"
        )
        status = email.message_from_bytes(raw, policy=email.policy.default).get_payload()[1]
    assert status.get_content_type() == "message/delivery-status"
    return list(status.get_payload()[1:])


async def wait_until(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(
    spool: QueueSpool, settings: QueueSettings, inbox: Inbox | None = None, **options: Any
) -> AsyncIterator[QueueRunner]:
    runner = QueueRunner(
        spool,
        settings,
        hostname=SENDER_HOST,
        deliver_local=inbox if inbox is not None else Inbox(),
        linger=options.pop("linger", 0.5),
        **options,
    )
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop(grace=5)


def fast(**changes: Any) -> QueueSettings:
    """Queue settings for tests: retries within a fraction of a second."""
    values: dict[str, Any] = {
        "retry_schedule": (0.2,),
        "connect_timeout": 5.0,
        "command_timeout": 10.0,
        "data_done_timeout": 10.0,
        "delay_warning": 0.0,
    }
    values.update(changes)
    return QueueSettings(**values)
