"""``--store none``: accept and discard, for load-testing clients. The 250 still carries a
queue id, but nothing is kept."""

from __future__ import annotations

from mailroom.store.envelope import Envelope
from mailroom.store.ids import new_queue_id

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
    wants_envelope = False  # nothing is written, so the trace fields need not be made

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def begin(self, envelope: Envelope | None) -> NullWriter:
        return NullWriter(envelope.queue_id if envelope is not None else new_queue_id())
