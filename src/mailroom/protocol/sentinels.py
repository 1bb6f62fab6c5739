"""The markers ``next_event`` returns when it has no event, shared by both sides of the
protocol: ``NEED_DATA`` (feed more bytes) and, on the server side, ``PAUSED`` (waiting for the
caller: a reply, TLS, or a secret)."""

from __future__ import annotations

from typing import Final

__all__ = ["NEED_DATA", "PAUSED", "Sentinel"]


class Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = Sentinel("NEED_DATA")  # feed more bytes with receive_data
PAUSED: Final = Sentinel("PAUSED")  # waiting for the caller: a reply, TLS, or a secret
