"""``--store none``: accept and discard, for load-testing clients. The 250 still carries a
queue id, but nothing is kept."""

from __future__ import annotations

from mailroom.store.envelope import Envelope

__all__ = ["NullStore", "NullWriter"]


class NullWriter:
    __slots__ = ("queue_id",)

    def __init__(self, queue_id: str) -> None:
        self.queue_id = queue_id

    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        pass

    def commit(self) -> str:
        return self.queue_id


class NullStore:
    index = None

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def begin(self, envelope: Envelope, mailbox: str = "catchall") -> NullWriter:
        return NullWriter(envelope.queue_id)
