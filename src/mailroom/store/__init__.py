"""Where accepted messages go: Maildirs fsync'd before the 250 (group commit), an SQLite
index for listing and search, and a null store for load tests."""

from mailroom.store.base import StorageFull, StoreError, StoreUnavailable
from mailroom.store.envelope import Envelope
from mailroom.store.index import Index, IndexRow
from mailroom.store.maildir import MaildirStore, MessageWriter

__all__ = [
    "Envelope",
    "Index",
    "IndexRow",
    "MaildirStore",
    "MessageWriter",
    "StorageFull",
    "StoreError",
    "StoreUnavailable",
]
