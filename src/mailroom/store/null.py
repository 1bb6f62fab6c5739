"""``--store none``: accept and discard, for load-testing clients. The 250 still carries a
queue id, but nothing is kept."""

from __future__ import annotations

from mailroom.store.envelope import Envelope
from mailroom.store.ids import new_queue_id

__all__ = ["NullStore", "NullWriter"]


class NullWriter:
    __slots__ = ("_kept", "queue_id")

    spilled = False
    failure = None  # nothing is written: nothing can fail

    def __init__(self, queue_id: str, keep: bool = False) -> None:
        self.queue_id = queue_id
        # Kept only while the message is read (email authentication checks it at its end).
        self._kept: bytearray | None = bytearray() if keep else None

    def write(self, data: bytes) -> None:
        if self._kept is not None:
            self._kept += data

    def read(self) -> bytes:
        return bytes(self._kept or b"")

    def replace_head(self, head_length: int, new_head: bytes, deliveries: object = None) -> None:
        pass

    def abort(self) -> None:
        pass

    def commit(self) -> str:
        return self.queue_id


class NullStore:
    index = None
    wants_envelope = False  # nothing is written, so the trace fields need not be made
    # Keep each message until its end (the server sets it when authentication checks need
    # to read messages: the benchmarks measure the checks on this store too).
    keep_messages = False

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def has_room(self, size: int) -> bool:
        return True  # it keeps nothing

    def begin(self, envelope: Envelope | None) -> NullWriter:
        return NullWriter(
            envelope.queue_id if envelope is not None else new_queue_id(), self.keep_messages
        )
