"""What ``mailroom queue`` reads and changes of a fleet's queue: every entry in the database,
whichever node holds its lease (the runner's own view, with its leases, is
:class:`mailroom.postgres.queue.PgQueue`).

One short-lived connection per command; an entry's state is the JSON the runner saves after
every reply, so a listing shows each recipient's outcome as the remote server gave it.

``retry`` and ``delete`` never change an entry a running node works on behind its back:

- an entry nobody holds (no lease, or one that ran out) is changed here, in one statement whose
  test is the claim's (``lease_owner IS NULL OR lease_until < now``) under the same row lock, so
  a node claiming at that moment either takes it before (and the statement leaves it alone) or
  after (and sees it due now, or gone);
- an entry a node holds is asked of that node on ``mailroom_queue``; its runner acts as on a
  file queue's request (a round in flight finishes its transaction, a deleted entry gets
  nothing more) and answers on ``mailroom_queue_done``. The request is said again every second
  until each entry is answered for, gone, or free to be changed here, for at most ``wait``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

from mailroom.postgres.connection import (
    close_quietly,
    connection_options,
    redact,
    require_psycopg,
)
from mailroom.postgres.queue import QUEUE_CHANNEL, QUEUE_DONE_CHANNEL, RUNNER_APPLICATION
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
# Nobody holds it: a node's claim would take it (mailroom.postgres.queue's CLAIM).
FREE = f"(lease_owner IS NULL OR lease_until < {DB_NOW})"
MAKE_DUE = (
    "UPDATE queue_entries SET next_attempt = 0, "
    "state = jsonb_set(state, '{next_attempt}', '0.0'::jsonb) "
    f"WHERE id = ANY(%s) AND {FREE} RETURNING id"
)
# As the runner removes an entry: the message goes too when only the queue kept it.
DELETE_FREE = (
    f"WITH gone AS (DELETE FROM queue_entries WHERE id = ANY(%s) AND {FREE} RETURNING id), "
    "dropped AS (DELETE FROM messages WHERE id IN (SELECT id FROM gone) "
    "AND mailbox = '(queue)' RETURNING id) "
    "SELECT id FROM gone"
)
RUNNERS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name LIKE %s"
)
IDS_PER_REQUEST = 300  # a notification's payload holds under 8000 bytes
APPLICATION = "mailroom queue command"


def _entry(state: Any) -> QueueEntry:
    data = state if isinstance(state, dict) else json.loads(state)
    return QueueEntry.from_json(json.dumps(data).encode())


class PgQueueView:
    """The fleet's queue, read from its PostgreSQL database (``url``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = redact(url)  # for messages: "no mailroom is running the queue in ..."
        self._psycopg = require_psycopg()
        self._conn: Any = None
        self._rows: dict[str, tuple[QueueEntry, int, str | None]] = {}

    def _db(self) -> Any:
        if self._conn is None:
            self._conn = self._psycopg.connect(
                self.url, autocommit=True, **connection_options(APPLICATION)
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

    # -- retry and delete ----------------------------------------------------------------------

    def running(self) -> int:
        """How many nodes run the queue now (their runners' connections to the database)."""
        row = self._db().execute(RUNNERS, (RUNNER_APPLICATION + "%",))
        return int(row.fetchone()[0])

    def retry(self, ids: list[str], *, every: bool, wait: float) -> list[str]:
        """Make entries due now; the ids no node answered for within ``wait`` seconds.
        ``every``: the command named none (the nodes retry every entry they hold)."""
        return self._act("retry", ids, every=every, wait=wait)

    def delete(self, ids: list[str], *, wait: float) -> list[str]:
        """Remove entries without a report; the ids no node answered for within ``wait``."""
        return self._act("delete", ids, every=False, wait=wait)

    def _here(self, action: str, ids: list[str]) -> set[str]:
        """Act on the entries nobody holds; the ids settled: changed here, or gone."""
        if not ids:
            return set()
        db = self._db()
        changed = {
            row[0] for row in db.execute(MAKE_DUE if action == "retry" else DELETE_FREE, (ids,))
        }
        present = {
            row[0] for row in db.execute("SELECT id FROM queue_entries WHERE id = ANY(%s)", (ids,))
        }
        return changed | (set(ids) - present)

    def _act(self, action: str, ids: list[str], *, every: bool, wait: float) -> list[str]:
        left = set(ids) - self._here(action, ids)
        if not left:
            return []
        token = secrets.token_hex(8)
        listening = self._psycopg.connect(
            self.url, autocommit=True, **connection_options(APPLICATION)
        )
        try:
            listening.execute(f'LISTEN "{QUEUE_DONE_CHANNEL}"')
            deadline = time.monotonic() + wait
            while left:
                self._ask(action, token, None if every else sorted(left))
                for notification in listening.notifies(timeout=1.0):
                    left -= _answered(notification.payload, token)
                    if not left:
                        break
                # A node that stopped gave its leases up; one that died lets them run out.
                left -= self._here(action, sorted(left))
                if time.monotonic() > deadline:
                    break
        finally:
            close_quietly(listening)
        return sorted(left)

    def _ask(self, action: str, token: str, ids: list[str] | None) -> None:
        groups: list[list[str] | None] = [None]
        if ids is not None:
            groups = [ids[i : i + IDS_PER_REQUEST] for i in range(0, len(ids), IDS_PER_REQUEST)]
        for group in groups:
            payload = json.dumps({"request": token, "action": action, "ids": group})
            self._db().execute("SELECT pg_notify(%s, %s)", (QUEUE_CHANNEL, payload))


def _answered(payload: str, token: str) -> set[str]:
    """The ids a node's answer to our request says it acted on."""
    try:
        data = json.loads(payload)
        if data.get("request") != token:
            return set()
        return {str(i) for i in data.get("ids") or []}
    except (ValueError, AttributeError, TypeError):
        return set()
