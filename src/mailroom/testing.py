"""A pytest plugin: a real mailroom for the tests of an application that sends mail.

Installed with mailroom (entry point ``pytest11``), it gives every test the fixture
``smtp_server``: a mailroom on a free port of 127.0.0.1, running in a thread beside the test,
that captures what the application sends::

    def test_welcome_mail(smtp_server):
        app = make_app(smtp_host=smtp_server.host, smtp_port=smtp_server.port)
        app.sign_up("bob@example.test")
        [message] = smtp_server.messages
        assert message["To"] == "bob@example.test"
        assert "Welcome" in message["Subject"]

    def test_bounce_is_handled(smtp_server):
        smtp_server.fail("rcpt", "550 5.1.1 No such user", match="*@bounce.test")
        ...

Override the fixture ``smtp_server_settings`` (a dict of ``mailroom serve`` settings) to change
the server: ``{"auth": "accept-any", "tls": "self-signed", "max_message_size": "1M"}``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mailroom.app import Mailroom
from mailroom.config import load_config
from mailroom.policy.faults import FaultRule, parse_rule
from mailroom.store.maildir import MaildirStore, message_file

__all__ = ["CapturedMessage", "SMTPTestServer", "smtp_server", "smtp_server_settings"]


@dataclass(frozen=True)
class CapturedMessage:
    id: str
    sender: str
    recipients: list[str]
    raw: bytes  # as stored: mailroom's trace fields, then the bytes the client sent
    message: EmailMessage

    def __getitem__(self, name: str) -> Any:
        return self.message[name]


class SMTPTestServer:
    """A mailroom running in a background thread with its own event loop."""

    def __init__(
        self, data: Path, settings: dict[str, Any] | None = None, *, config_file: Path | None = None
    ) -> None:
        overrides: dict[str, Any] = {
            "smtp": "127.0.0.1:0",
            "data": str(data),
            "hostname": "mailroom.test",
            "log_level": "warning",
            "max_connections_per_ip": 0,
            "web": "off",
        }
        if config_file is not None:
            # The file's listeners and hostname, unless settings say otherwise.
            overrides.pop("smtp")
            overrides.pop("hostname")
        overrides.update(settings or {})
        self.config = load_config(config_file, overrides)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mailroom-test", daemon=True
        )
        self.server = Mailroom(self.config)
        self.host = "127.0.0.1"
        self.port = 0

    def _call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def start(self) -> SMTPTestServer:
        self._thread.start()
        self._call(self.server.start())
        self.host, self.port = self.server.addresses[0][:2]
        return self

    def address(self, role: str) -> tuple[str, int]:
        """Where the listener of a role (mx, submission...) really is."""
        for listener, (host, port) in zip(
            self.config.all_listeners, self.server.addresses, strict=False
        ):
            if listener.role == role:
                return host, port
        raise KeyError(role)

    def stop(self) -> None:
        try:
            self._call(self.server.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    # -- what was captured -----------------------------------------------------------------------

    @property
    def messages(self) -> list[CapturedMessage]:
        """Every message stored so far, oldest first, parsed with the ``email`` package."""
        store = self.server.store
        if not isinstance(store, MaildirStore):  # --store none keeps nothing
            return []
        index = store.index
        rows = sorted(index.list(limit=1_000_000), key=lambda r: (r.received, r.id))
        captured = []
        for row in rows:
            raw = message_file(self.config.data, row.path).read_bytes()
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            captured.append(CapturedMessage(row.id, row.sender, row.recipients, raw, parsed))
        return captured

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[CapturedMessage]:
        """The messages, once there are at least ``count`` of them (for applications that
        send in the background)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    @property
    def transcripts(self) -> list[dict[str, Any]]:
        """Every SMTP session so far (commands and replies), oldest first."""
        log = self.server.transcripts
        return [t.to_dict() for t in reversed(log.list(limit=len(log) or 1))]

    def clear(self) -> None:
        """Forget the captured messages."""
        store = self.server.store
        if not isinstance(store, MaildirStore):
            return
        index = store.index
        rows = index.list(limit=1_000_000)
        for row in rows:
            message_file(self.config.data, row.path).unlink(missing_ok=True)
        index.delete(r.id for r in rows)

    # -- making it fail --------------------------------------------------------------------------

    def fail(
        self,
        stage: str,
        action: str,
        *,
        match: str | None = None,
        times: int | None = None,
        every: int | None = None,
        probability: float | None = None,
    ) -> FaultRule:
        """Make the server fail: ``fail("rcpt", "550 5.1.1 No such user")``; the action is a
        reply, ``delay=SECONDS``, ``disconnect`` or ``close`` (see mailroom.policy.faults)."""
        parts = [stage]
        if match:
            parts.append(match)
        if times is not None:
            parts.append(f"times={times}")
        if every is not None:
            parts.append(f"every={every}")
        if probability is not None:
            parts.append(f"p={probability}")
        parts.append(action)
        rule = parse_rule(":".join(parts))
        return self.server.faults.add(rule)

    def clear_faults(self) -> None:
        self.server.faults.clear()


@pytest.fixture
def smtp_server_settings() -> dict[str, Any]:
    """Settings for ``smtp_server`` (override this fixture to change them)."""
    return {}


@pytest.fixture
def smtp_server(
    tmp_path_factory: pytest.TempPathFactory, smtp_server_settings: dict[str, Any]
) -> Iterator[SMTPTestServer]:
    """A running mailroom that captures mail: ``.host``, ``.port``, ``.messages``,
    ``.transcripts``, ``.fail(stage, reply)``."""
    server = SMTPTestServer(tmp_path_factory.mktemp("mailroom"), smtp_server_settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()
