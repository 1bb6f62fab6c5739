"""A thin synchronous face on :class:`~mailroom.client.Client`, for scripts and for code that
has no event loop (Django views, cron jobs). Each call runs the asyncio client to completion on
a private event loop; do not use it from inside a running loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from email.message import Message
from typing import Any, TypeVar

from mailroom.client.connection import Client, send_message
from mailroom.codes import Reply
from mailroom.protocol.client import MailOptions, Recipient, TransactionResult

__all__ = ["SyncClient", "send_message_sync"]

T = TypeVar("T")


def _no_running_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("the synchronous client cannot run inside an event loop; use Client")


class SyncClient:
    """``with SyncClient("mx.example.test", 587, tls="starttls") as c: c.send(msg)``; takes
    the same arguments as :class:`~mailroom.client.Client`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._client = Client(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def client(self) -> Client:
        return self._client

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            _no_running_loop()
        except RuntimeError:
            coroutine.close()
            raise
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    def connect(self) -> Reply:
        return self._run(self._client.connect())

    def login(self, username: str, password: str, *, mechanism: str | None = None) -> Reply:
        return self._run(self._client.login(username, password, mechanism=mechanism))

    def login_oauth2(self, username: str, token: str) -> Reply:
        return self._run(self._client.login_oauth2(username, token))

    def send(
        self,
        message: Message | bytes | str,
        *,
        sender: str | None = None,
        recipients: Sequence[str | Recipient] | None = None,
        options: MailOptions | None = None,
    ) -> TransactionResult:
        return self._run(
            self._client.send(message, sender=sender, recipients=recipients, options=options)
        )

    def noop(self) -> Reply:
        return self._run(self._client.noop())

    def rset(self) -> Reply:
        return self._run(self._client.rset())

    def quit(self) -> Reply | None:
        try:
            return self._run(self._client.quit())
        finally:
            self._close_loop()

    def close(self) -> None:
        try:
            if self._loop is not None and not self._loop.is_closed():
                self._run(self._client.close())
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def __enter__(self) -> SyncClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self.quit()
        else:
            self.close()


def send_message_sync(message: Message | bytes | str, **kwargs: Any) -> TransactionResult:
    """:func:`~mailroom.client.send_message`, synchronously."""
    _no_running_loop()
    return asyncio.run(send_message(message, **kwargs))
