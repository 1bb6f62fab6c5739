"""What ``mailroom queue list`` and ``show`` read of a fleet's queue: every entry in the
database, whichever node holds its lease (read-only; the runner's own view, with its leases,
is :class:`mailroom.postgres.queue.PgQueue`).

One short-lived connection per command; an entry's state is the JSON the runner saves after
every reply, so a listing shows each recipient's outcome as the remote server gave it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mailroom.postgres.connection import close_quietly, connection_options, require_psycopg
from mailroom.queue.entry import QueueEntry

__all__ = ["PgQueueView"]

DB_NOW = "extract(epoch FROM clock_timestamp())"
# The message's size as it is sent: the queue's header (our Received field first) and the body.
SIZE = (
    "octet_length(q.header) + coalesce((SELECT sum(octet_length(b.chunk)) "
    "FROM message_bodies b WHERE b.id = q.id), 0)"
)
# Who holds the lease now: a lease that ran out is nobody's (another node may take it).
HOLDER = f"CASE WHEN q.lease_until >= {DB_NOW} THEN q.lease_owner END"


def _entry(state: Any) -> QueueEntry:
    data = state if isinstance(state, dict) else json.loads(state)
    return QueueEntry.from_json(json.dumps(data).encode())


class PgQueueView:
    """The fleet's queue, read from its PostgreSQL database (``url``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._psycopg = require_psycopg()
        self._conn: Any = None
        self._rows: dict[str, tuple[QueueEntry, int, str | None]] = {}

    def _db(self) -> Any:
        if self._conn is None:
            self._conn = self._psycopg.connect(
                self.url, autocommit=True, **connection_options("mailroom queue command")
            )
        return self._conn

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None

    def _read(self, where: str = "true", params: tuple[Any, ...] = ()) -> list[QueueEntry]:
        rows = self._db().execute(
            f"SELECT q.id, q.state, {SIZE}, {HOLDER} FROM queue_entries q WHERE {where} "
            "ORDER BY q.id",
            params,
        )
        found = []
        for queue_id, state, size, holder in rows:
            entry = _entry(state)
            self._rows[queue_id] = (entry, int(size), holder)
            found.append(entry)
        return found

    def ids(self) -> list[str]:
        return [row[0] for row in self._db().execute("SELECT id FROM queue_entries ORDER BY id")]

    def entries(self) -> Iterator[QueueEntry]:
        return iter(self._read())

    def load(self, queue_id: str) -> QueueEntry | None:
        found = self._read("q.id = %s", (queue_id,))
        return found[0] if found else None

    def size(self, queue_id: str) -> int:
        if queue_id not in self._rows:
            self.load(queue_id)
        row = self._rows.get(queue_id)
        return row[1] if row is not None else 0

    def held_by(self, queue_id: str) -> str | None:
        """The node (``<node>/<pid>.<random>``) whose runner holds the entry now, if any."""
        if queue_id not in self._rows:
            self.load(queue_id)
        row = self._rows.get(queue_id)
        return row[2] if row is not None else None

    def read_message(self, queue_id: str) -> bytes:
        db = self._db()
        with db.transaction():  # one snapshot: the header and the chunks of one message
            header = db.execute(
                "SELECT header FROM queue_entries WHERE id = %s", (queue_id,)
            ).fetchall()
            chunks = db.execute(
                "SELECT chunk FROM message_bodies WHERE id = %s ORDER BY seq", (queue_id,)
            ).fetchall()
        if not header:
            raise FileNotFoundError(f"{queue_id}: no longer queued")
        return bytes(header[0][0]) + b"".join(bytes(c[0]) for c in chunks)
