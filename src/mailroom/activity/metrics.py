"""Counters the running server keeps for ``/metrics``: plain attributes bumped on paths the
session already takes (a refusal is counted where it is logged), so counting costs an
attribute add, never an allocation on the accepting path."""

from __future__ import annotations

import time

__all__ = ["Metrics"]


class Metrics:
    __slots__ = (
        "connections_refused",
        "message_bytes",
        "messages_accepted",
        "refusals",
        "sessions",
        "started",
    )

    def __init__(self) -> None:
        self.started = time.time()
        self.sessions = 0  # admitted connections
        self.messages_accepted = 0
        self.message_bytes = 0  # octets of accepted messages, as the client sent them
        # (stage, code) -> 4xx/5xx replies sent at that stage; END_OF_DATA and BDAT refusals
        # are refused messages
        self.refusals: dict[tuple[str, int], int] = {}
        # code -> connections refused before the greeting (over the connection limits)
        self.connections_refused: dict[int, int] = {}

    def refused(self, stage: str, code: int) -> None:
        key = (stage, code)
        self.refusals[key] = self.refusals.get(key, 0) + 1

    def connection_refused(self, code: int) -> None:
        self.connections_refused[code] = self.connections_refused.get(code, 0) + 1
