"""Live events for whoever listens (the web UI's WebSocket): new message, deleted, session."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["Hub"]


class Hub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, maxsize: int = 1000) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Tell every listener; one that does not keep up misses events rather than slowing
        the server (it can reload)."""
        event = {"type": kind, "data": data}
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)
