"""Live events for whoever listens (the web UI's WebSocket): new message, deleted, session.

Sessions publish only while someone listens (:attr:`Hub.active`). With worker processes, the
supervisor's hub is the one the web listens to; it tells the workers when it becomes active
(``on_change``), and their hubs (:class:`mailroom.workers.ForwardingHub`) send what they are
given to it, a batch per turn of their event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

__all__ = ["Hub"]


class Hub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        # Told whether anyone listens, each time that changes.
        self.on_change: Callable[[bool], None] | None = None

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, maxsize: int = 1000) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self._subscribers.add(queue)
        if len(self._subscribers) == 1 and self.on_change is not None:
            self.on_change(True)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        if queue in self._subscribers:
            self._subscribers.discard(queue)
            if not self._subscribers and self.on_change is not None:
                self.on_change(False)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Tell every listener; one that does not keep up misses events rather than slowing
        the server (it can reload)."""
        event = {"type": kind, "data": data}
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)
