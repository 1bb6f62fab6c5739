"""LISTEN/NOTIFY: how a node hears what the others did, at once.

One connection per node listens on the channels its parts asked for and hands each
notification's payload to their callback, in the event loop:

- ``mailroom_events``: messages stored, deleted or tagged anywhere in the fleet, sessions
  ended — for this node's live views (:func:`hub_forwarder`);
- ``mailroom_directory``: the directory tables changed — reload the cached copy;
- ``mailroom_faults``: the fault rules changed — reload them.

A notification is sent by the transaction that made the change, when it commits, so a listener
never hears of something it cannot yet read. Notifications sent while this node was not
listening (the database restarted, the connection broke) are lost: after reconnecting, each
channel's ``resync`` callback runs, so its part reads the state afresh rather than trust it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mailroom.activity.hub import Hub
from mailroom.postgres.connection import connection_options, redact, require_psycopg

__all__ = ["NotificationListener", "hub_forwarder"]

log = logging.getLogger("mailroom.postgres")

RECONNECT_INTERVAL = 1.0  # seconds between attempts while the database is away
Callback = Callable[[str], None]
Resync = Callable[[], Awaitable[None] | None]


@dataclass
class _Channel:
    callback: Callback
    resync: Resync | None


class NotificationListener:
    def __init__(self, url: str, *, node: str) -> None:
        self.url = url
        self.node = node
        self._channels: dict[str, _Channel] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.received = 0

    def on(self, channel: str, callback: Callback, resync: Resync | None = None) -> None:
        """Call ``callback(payload)`` for each notification on ``channel``; ``resync()`` once
        listening, and after each reconnection (what was sent meanwhile is lost)."""
        self._channels[channel] = _Channel(callback, resync)

    async def start(self, wait: float = 5.0) -> None:
        """Begin listening; wait up to ``wait`` seconds for the LISTEN to be in place (a
        database that is down is not waited for longer: the node retries by itself)."""
        if self._channels and self._task is None:
            self._task = asyncio.ensure_future(self._run())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), wait)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        psycopg = require_psycopg()
        first = True
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url,
                    autocommit=True,
                    **connection_options(f"mailroom {self.node} listen"),
                )
            except Exception as exc:
                log.debug("listener: database unreachable: %s", exc)
                await asyncio.sleep(RECONNECT_INTERVAL)
                continue
            try:
                async with conn:
                    for name in self._channels:
                        await conn.execute(f'LISTEN "{name}"')
                    if not first:
                        log.info("listening on %s again", redact(self.url))
                    first = False
                    # Listening now: whatever changed before is read afresh, so nothing falls
                    # between a part's first read and the LISTEN.
                    await self._resync()
                    self.connected.set()
                    async for notification in conn.notifies():
                        self.received += 1
                        wanted = self._channels.get(notification.channel)
                        if wanted is None:
                            continue
                        try:
                            wanted.callback(notification.payload)
                        except Exception:
                            log.exception("notification on %s", notification.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listener: connection lost: %s", exc)
            self.connected.clear()
            await asyncio.sleep(RECONNECT_INTERVAL)

    async def _resync(self) -> None:
        for name, channel in self._channels.items():
            if channel.resync is None:
                continue
            try:
                result = channel.resync()
                if result is not None:
                    await result
            except Exception:
                log.exception("resync of %s", name)


def hub_forwarder(hub: Hub, node: str) -> Callback:
    """A callback for ``mailroom_events`` that republishes what other nodes did into this
    node's hub, as this node's own sessions and web publish it (its own are already there)."""

    def forward(payload: str) -> None:
        try:
            event: dict[str, Any] = json.loads(payload)
        except ValueError:
            return
        if event.get("node") == node or not hub.active:
            return
        kind, ids = event.get("type"), event.get("ids")
        if kind == "message":
            for queue_id in ids or []:
                hub.publish("message", {"id": queue_id, "session": None})
        elif kind == "delete":
            hub.publish("deleted", {"ids": list(ids or [])})
        elif kind == "truncate":
            hub.publish("deleted", {"ids": None})
        elif kind == "tags":
            hub.publish("tagged", {"ids": ids})
        elif kind == "session":
            hub.publish("session", event.get("summary") or {})

    return forward
