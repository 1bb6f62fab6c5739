"""Failures inside the running server: an internal error answers 451 4.3.0 (or 421 4.3.0 where a
transaction reply cannot be given), logs the traceback, never shows it to the client, and the
server goes on serving; a full disk answers 452 4.3.1 and leaves no half-stored message."""

from __future__ import annotations

import errno
import logging
import os
import smtplib
from collections.abc import Callable
from typing import Any

import pytest

from mailroom.protocol import Event, MailFrom, MessageComplete, RcptTo
from mailroom.store.maildir import disk_full
from tests.live import LineClient, LiveServer, assert_stored, maildir_files, queue_id_of

LOCAL_ERROR = (451, b"4.3.0 Error: local error in processing, try again later")
LOCAL_ERROR_CLOSING = b"421 4.3.0 mx.test Error: local error in processing, closing connection\r\n"
SECRET = "injected failure 7f3c"  # must reach the log, never the client


class FailingPolicy:
    """The server's own policy, but raising for the events ``fails`` picks."""

    def __init__(self, policy: Any, fails: Callable[[Event], bool]) -> None:
        self.policy = policy
        self.fails = fails

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def connect(self, session: Any) -> Any:
        return self.policy.connect(session)

    def decide(self, event: Event, session: Any) -> Any:
        if self.fails(event):
            raise RuntimeError(SECRET)
        return self.policy.decide(event, session)


def send(live: LiveServer, body: bytes = b"Subject: hi\r\n\r\nhello\r\n") -> tuple[int, bytes]:
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        assert client.mail("alice@example.test")[0] == 250
        assert client.rcpt("bob@example.test")[0] == 250
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(body + b".\r\n")
        return client.getreply()


def assert_logged_not_sent(caplog: pytest.LogCaptureFixture, *received: bytes) -> None:
    assert any(
        record.exc_info and SECRET in str(record.exc_info[1]) for record in caplog.records
    ), caplog.text
    for text in received:
        assert SECRET.encode() not in text and b"Traceback" not in text


def assert_still_serving(live: LiveServer) -> None:
    code, text = send(live)
    assert code == 250, text
    queue_id_of(text)


def test_policy_error_at_end_of_data(serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    live: LiveServer = serve()
    server = live.mail_server.smtp  # the policy its sessions ask
    server.policy = FailingPolicy(server.policy, lambda e: isinstance(e, MessageComplete))
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        code, text = client.data(b"Subject: doomed\r\n\r\nhello\r\n")
        assert (code, text) == LOCAL_ERROR
        # The session goes on: the transaction ended, a new one may start.
        assert client.noop()[0] == 250
        assert client.mail("alice@example.test")[0] == 250
    assert_logged_not_sent(caplog, text)
    assert not maildir_files(live.data) and not maildir_files(live.data, "tmp")
    server.policy = server.policy.policy
    assert_still_serving(live)


def test_policy_error_at_mail_and_rcpt(serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    live: LiveServer = serve()
    server = live.mail_server.smtp  # the policy its sessions ask
    server.policy = FailingPolicy(server.policy, lambda e: isinstance(e, MailFrom | RcptTo))
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        assert client.mail("alice@example.test") == LOCAL_ERROR
        server.policy.fails = lambda e: isinstance(e, RcptTo)
        assert client.mail("alice@example.test")[0] == 250
        assert client.rcpt("bob@example.test") == LOCAL_ERROR
        assert client.noop()[0] == 250
    assert_logged_not_sent(caplog)
    server.policy = server.policy.policy
    assert_still_serving(live)


def test_policy_error_outside_a_transaction_closes(serve, caplog) -> None:
    caplog.set_level(logging.INFO)
    live: LiveServer = serve()
    server = live.mail_server.smtp  # the policy its sessions ask
    server.policy = FailingPolicy(server.policy, lambda e: type(e).__name__ == "Hello")
    client = LineClient(live.smtp)
    client.reply()
    reply = client.command(b"EHLO client.example.test")
    assert reply == LOCAL_ERROR_CLOSING
    assert client.closed()
    client.close()
    assert_logged_not_sent(caplog, reply)
    server.policy = server.policy.policy
    assert_still_serving(live)


def test_policy_error_at_connect(serve, caplog) -> None:
    caplog.set_level(logging.INFO)
    live: LiveServer = serve(timeout=30)
    server = live.mail_server.smtp  # the policy its sessions ask
    original = server.policy

    class FailingConnect(FailingPolicy):
        def connect(self, session: Any) -> Any:
            raise RuntimeError(SECRET)

    server.policy = FailingConnect(original, lambda e: False)
    client = LineClient(live.smtp, timeout=10)
    greeting = client.reply()
    assert greeting == LOCAL_ERROR_CLOSING
    assert client.closed()
    client.close()
    assert_logged_not_sent(caplog, greeting)
    server.policy = original
    assert_still_serving(live)


def test_store_error_when_the_message_begins(serve, caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO)
    live: LiveServer = serve()
    store = live.mail_server.store

    def begin(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(store, "begin", begin)
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        code, text = client.data(b"Subject: doomed\r\n\r\n" + b"line\r\n" * 1000)
        # The rest of the message is read and dropped, and answered at its end.
        assert (code, text) == LOCAL_ERROR
        assert client.noop()[0] == 250
    assert_logged_not_sent(caplog, text)
    monkeypatch.undo()
    assert_still_serving(live)


def test_store_error_when_committing(serve, caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO)
    live: LiveServer = serve()
    store = live.mail_server.store
    begin = store.begin

    def failing_begin(*args: Any, **kwargs: Any) -> Any:
        writer = begin(*args, **kwargs)

        def commit() -> Any:
            raise RuntimeError(SECRET)

        writer.commit = commit
        return writer

    monkeypatch.setattr(store, "begin", failing_begin)
    code, text = send(live)
    assert (code, text) == LOCAL_ERROR
    assert_logged_not_sent(caplog, text)
    monkeypatch.undo()
    assert_still_serving(live)


def test_unexpected_error_in_the_committer(serve, caplog) -> None:
    # Not an OSError: a bug, not a full disk. The committer must survive it.
    caplog.set_level(logging.INFO)
    live: LiveServer = serve()
    store = live.mail_server.store

    def broken() -> None:
        raise RuntimeError(SECRET)

    store.fault = broken
    code, text = send(live)
    assert (code, text) == LOCAL_ERROR
    assert_logged_not_sent(caplog, text)
    assert not maildir_files(live.data) and not maildir_files(live.data, "tmp")
    store.fault = None
    assert_still_serving(live)
    assert_still_serving(live)


STORAGE_FULL = (452, b"4.3.1 Error: insufficient system storage")


@pytest.mark.parametrize("lines", [10, 20_000], ids=["small", "spilled to tmp"])
def test_disk_full(serve, caplog, lines: int) -> None:
    caplog.set_level(logging.INFO)
    live: LiveServer = serve()
    store = live.mail_server.store
    body = b"Subject: disk full\r\n\r\n" + (b"x" * 70 + b"\r\n") * lines
    store.fault = disk_full
    assert send(live, body) == STORAGE_FULL
    assert send(live, body) == STORAGE_FULL  # still full, still answering
    assert not maildir_files(live.data) and not maildir_files(live.data, "tmp")
    assert "No space left on device" in caplog.text
    store.fault = None
    code, text = send(live, body)
    assert code == 250
    assert_stored(
        live.data,
        queue_id_of(text),
        body,
        sender="alice@example.test",
        recipients=["bob@example.test"],
    )
    assert len(maildir_files(live.data)) == 1


def test_an_io_error_is_a_local_error_not_a_full_disk(serve) -> None:
    """A write that fails with EIO (a failing device) is 451 4.3.0, the local error it is;
    452 4.3.1 (insufficient system storage) is for a full disk or quota only. Both say try
    again later, and nothing is kept."""
    live: LiveServer = serve()

    def failing_device() -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    live.mail_server.store.fault = failing_device
    assert send(live) == (451, b"4.3.0 Error: the message could not be stored, try again later")
    assert not maildir_files(live.data) and not maildir_files(live.data, "tmp")
    live.mail_server.store.fault = None
    assert_still_serving(live)


def test_disk_full_in_a_batch(serve) -> None:
    """Concurrent messages share a commit: a full disk fails each of them, and none is kept."""
    import asyncio

    import aiosmtplib

    live: LiveServer = serve()
    live.mail_server.store.fault = disk_full
    host, port = live.smtp

    async def one(n: int) -> int:
        try:
            await aiosmtplib.send(
                f"Subject: {n}\r\n\r\nhi\r\n",
                sender="a@example.test",
                recipients=["b@example.test"],
                hostname=host,
                port=port,
                start_tls=False,
            )
        except aiosmtplib.SMTPDataError as exc:
            assert exc.message == "4.3.1 Error: insufficient system storage"
            return exc.code
        return 250

    async def many() -> list[int]:
        return await asyncio.gather(*(one(n) for n in range(20)))

    assert asyncio.run(many()) == [452] * 20
    assert not maildir_files(live.data) and not maildir_files(live.data, "tmp")
