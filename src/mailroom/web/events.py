"""Live updates over WebSocket at ``/api/events``, in Mailpit's shape: each event is one JSON
text frame ``{"Type": ..., "Data": ...}``.

- ``new``: a stored message (its list entry, as ``GET /api/v1/messages`` gives it)
- ``delete``: ``{"ID": ...}`` of a deleted message; ``truncate``: all were deleted
- ``stats``: ``{"Total", "Unread", "Version"}`` after any change
- ``session``: a finished SMTP session (its summary, as ``GET /api/v1/sessions`` gives it)
- ``faults``: ``{"rules": [...]}`` when the fault rules change
- ``update``: ``{"ID", "Tags"}`` of a message whose tags were set; ``prune``: a tag was
  renamed or deleted on every message (both as Mailpit sends them)

The event hub is subscribed to only while a client is connected, so with no browser open
the SMTP sessions publish nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from mailroom import __version__
from mailroom.web.messages import list_item

if TYPE_CHECKING:
    from mailroom.web.context import EventHub, FaultRules, MessageStore

__all__ = ["EVENTS", "EventStream", "event_stream"]

log = logging.getLogger("mailroom.web")

CLIENT_QUEUE = 1000  # events waiting for one client; a client that falls behind is dropped


class _Client:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(CLIENT_QUEUE)
        self.closer: asyncio.Future[bool] | None = None


class EventStream:
    def __init__(self, hub: EventHub, messages: MessageStore, faults: FaultRules) -> None:
        self.hub = hub
        self.messages = messages
        self.fault_rules = faults
        self._clients: set[_Client] = set()
        self._hub_queue: asyncio.Queue[dict[str, Any]] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def clients(self) -> int:
        return len(self._clients)

    # -- connections ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        if self._closing:
            await ws.close()
            return ws
        client = _Client(ws)
        self._add(client)
        writer = asyncio.ensure_future(self._write(client))
        try:
            async for message in ws:  # the client says nothing we need; this waits for close
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self._remove(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        return ws

    async def _write(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            if text is None:
                return
            try:
                await client.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def _add(self, client: _Client) -> None:
        self._clients.add(client)
        if self._hub_queue is None:
            self._hub_queue = self.hub.subscribe()
            self._pump = asyncio.ensure_future(self._pump_hub(self._hub_queue))

    def _remove(self, client: _Client) -> None:
        self._clients.discard(client)
        if not self._clients:
            self._stop_pump()

    def _stop_pump(self) -> None:
        if self._hub_queue is not None:
            self.hub.unsubscribe(self._hub_queue)
            self._hub_queue = None
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None

    async def close(self) -> None:
        self._closing = True
        self._stop_pump()
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                await client.ws.close(code=1001, message=b"server shutting down")

    # -- events ------------------------------------------------------------------------------

    def broadcast(self, kind: str, data: Any) -> None:
        if not self._clients:
            return
        text = json.dumps({"Type": kind, "Data": data}, ensure_ascii=False)
        for client in list(self._clients):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                log.info("a live-update client fell behind; dropping it")
                self._clients.discard(client)
                client.closer = asyncio.ensure_future(
                    client.ws.close(code=1013, message=b"too slow")
                )

    async def _pump_hub(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            # Everything waiting is one batch: at a thousand messages a second, one query for
            # their rows and one count for the stats, not a thousand of each.
            events = [await queue.get()]
            while not queue.empty():
                events.append(queue.get_nowait())
            try:
                await self._translate(events)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live update failed for %d events", len(events))

    async def _translate(self, events: list[dict[str, Any]]) -> None:
        messages = self.messages
        ids = [e["data"]["id"] for e in events if e["type"] == "message"]
        rows = {row.id: row for row in await messages.call(messages.get_many, ids)} if ids else {}
        new = False
        for event in events:
            kind, data = event["type"], event["data"]
            if kind == "message":
                row = rows.get(data["id"])
                if row is not None:
                    item = list_item(row)
                    item["Session"] = data.get("session")
                    self.broadcast("new", item)
                    new = True
            elif kind == "deleted":  # by another node of a fleet (mailroom.postgres.notify)
                deleted = data.get("ids")
                await self.deleted(deleted or [], everything=deleted is None)
            elif kind == "tagged":
                await self.tagged(data.get("ids"))
            else:  # "session" and the rest: as they are
                self.broadcast(kind, data)
        if new:
            await self.stats()

    async def stats(self) -> None:
        if not self._clients:
            return
        messages = self.messages
        total, unread = await messages.call(messages.counts)
        self.broadcast("stats", {"Total": total, "Unread": unread, "Version": __version__})

    async def deleted(self, ids: list[str], *, everything: bool = False) -> None:
        if everything:
            self.broadcast("truncate", None)
        else:
            for message_id in ids:
                self.broadcast("delete", {"ID": message_id})
        await self.stats()

    async def tagged(self, ids: list[str] | None) -> None:
        if not self._clients:
            return
        if ids is None:
            self.broadcast("prune", None)
            return
        for message_id, tags in (await self.messages.call(self.messages.tags_of, ids)).items():
            self.broadcast("update", {"ID": message_id, "Tags": tags})

    async def faults(self) -> None:
        rules = [rule.to_dict() for rule in self.fault_rules.rules]
        self.broadcast("faults", {"rules": rules})


EVENTS: web.AppKey[EventStream] = web.AppKey("mailroom-events")


def event_stream(request: web.Request) -> EventStream:
    return request.app[EVENTS]
