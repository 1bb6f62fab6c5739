"""The stored messages as the web reads and changes them, when they live in PostgreSQL: the
same methods as :class:`~mailroom.web.messages.Messages` (the Maildir store's SQLite index and
files), over the fleet's one database, so any node's web UI and API show every node's messages.

Queries run through a connection of the web's own, in one worker thread, as with SQLite; the
reads are :class:`~mailroom.web.message_queries.MessageReads`, in PostgreSQL's dialect. The
web's summaries (attachments, snippet, text to search) are a table of the same database: a
summary one node made serves all. Changes (deletions, tags) tell the other nodes' live views
with a NOTIFY in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from mailroom.postgres.connection import (
    close_quietly,
    connection_options,
    is_unavailable,
    require_psycopg,
)
from mailroom.postgres.store import EVENTS_CHANNEL, NOTIFY_IDS
from mailroom.web.message_queries import POSTGRES, MessageReads, MessageRow, summarize
from mailroom.web.mime import MimeLimits, ParsedMessage, parse_message

__all__ = ["PgMessages"]

T = TypeVar("T")


class PgMessages(MessageReads):
    """A fleet's messages: the database's rows, bodies, summaries and tags."""

    dialect = POSTGRES

    def __init__(self, url: str, *, node: str, limits: MimeLimits | None = None) -> None:
        super().__init__(limits)
        self.url = url
        self.node = node
        self._psycopg = require_psycopg()
        self._conn: Any = None

    # -- the connection, in the worker thread --------------------------------------------

    def _in_worker(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        # A connection the database dropped (a restart, a failover) is made again once.
        try:
            return function(*args)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            close_quietly(self._conn)
            self._conn = None
            return function(*args)

    def _close_db(self) -> None:
        close_quietly(self._conn)
        self._conn = None

    def _db(self) -> Any:
        if self._conn is None:
            self._conn = self._psycopg.connect(
                self.url, autocommit=True, **connection_options(f"mailroom {self.node} web")
            )
        return self._conn

    def _transaction(self, db: Any) -> Any:
        return db.transaction()

    def _notify(self, db: Any, kind: str, ids: list[str] | None) -> None:
        """Tell the other nodes' live views (sent when the transaction commits)."""
        chunks = (
            [None]
            if ids is None
            else [ids[i : i + NOTIFY_IDS] for i in range(0, len(ids), NOTIFY_IDS)]
        )
        for chunk in chunks:
            payload = json.dumps({"node": self.node, "type": kind, "ids": chunk})
            db.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, payload))

    # -- summaries -------------------------------------------------------------------------

    def _summary_row(self, id_: str, path: str, fields: list[str]) -> tuple[Any, ...] | None:
        raw = self._raw(id_)
        if raw is None:
            return None  # deleted meanwhile
        return (id_, *summarize(raw, fields, self.limits))

    def _save_summaries(self, db: Any, rows: list[tuple[Any, ...]]) -> None:
        with db.transaction(), db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO web_summaries (id, attachments, inline, snippet, search_text) "
                "SELECT %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM messages WHERE id = %s) "
                "ON CONFLICT (id) DO NOTHING",
                [(*row, row[0]) for row in rows],
            )

    # -- messages --------------------------------------------------------------------------

    def _raw(self, message_id: str) -> bytes | None:
        db = self._db()
        # One snapshot for the header and the chunks: a concurrent delete shows all or none.
        with db.transaction():
            header = db.execute(
                "SELECT header FROM messages WHERE id = %s", (message_id,)
            ).fetchone()
            if header is None:
                return None
            chunks = db.execute(
                "SELECT chunk FROM message_bodies WHERE id = %s ORDER BY seq", (message_id,)
            )
            return bytes(header[0]) + b"".join(bytes(c[0]) for c in chunks)

    def raw(self, row: MessageRow) -> bytes:
        raw = self._raw(row.id)
        if raw is None:
            raise FileNotFoundError(f"message {row.id} is gone")
        return raw

    def open(self, message_id: str) -> tuple[MessageRow, bytes, ParsedMessage] | None:
        row = self.get(message_id)
        if row is None:
            return None
        raw = self._raw(row.id)
        if raw is None:
            return None
        return row, raw, parse_message(raw, self.limits)

    # -- changes ---------------------------------------------------------------------------

    def delete(self, ids: list[str] | None) -> list[str]:
        """Delete the messages of ``ids`` (all with None): their rows, bodies, copies, tags and
        summaries go with them (foreign keys). The ids that were deleted."""
        db = self._db()
        with db.transaction():
            if ids is None:
                deleted = [r[0] for r in db.execute("DELETE FROM messages RETURNING id")]
                self._notify(db, "truncate", None)
            else:
                deleted = [
                    r[0]
                    for r in db.execute(
                        "DELETE FROM messages WHERE id = ANY(%s) RETURNING id", (ids,)
                    )
                ]
                if deleted:
                    self._notify(db, "delete", deleted)
        self.deleted += len(deleted)
        return deleted

    def database_size(self) -> int:
        return int(self._db().execute("SELECT pg_database_size(current_database())").fetchone()[0])

    # -- tags --------------------------------------------------------------------------------
    # The tags table compares without regard to case (its collation), as SQLite's NOCASE does.

    def all_tags(self) -> list[str]:
        return [r[0] for r in self._db().execute("SELECT DISTINCT tag FROM tags ORDER BY tag")]

    def tags_of(self, ids: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {i: [] for i in ids}
        for id_, tag in self._db().execute(
            "SELECT id, tag FROM tags WHERE id = ANY(%s) ORDER BY tag", (ids,)
        ):
            found[id_].append(tag)
        return found

    def tag_counts(self) -> dict[str, int]:
        rows = self._db().execute("SELECT min(tag), count(*) FROM tags GROUP BY tag ORDER BY 1")
        return {tag: int(count) for tag, count in rows}

    def set_tags(self, ids: list[str], tags: list[str]) -> list[str]:
        """Give each message of ``ids`` exactly ``tags``; a tag in use keeps its spelling."""
        db = self._db()
        with db.transaction():
            spelled = {}
            for tag in tags:
                found = db.execute("SELECT tag FROM tags WHERE tag = %s LIMIT 1", (tag,)).fetchone()
                spelled[tag] = found[0] if found else tag
            changed = [
                r[0] for r in db.execute("SELECT id FROM messages WHERE id = ANY(%s)", (ids,))
            ]
            db.execute("DELETE FROM tags WHERE id = ANY(%s)", (changed,))
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO tags (id, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(message_id, spelled[tag]) for message_id in changed for tag in tags],
                )
            if changed:
                self._notify(db, "tags", changed)
        order = {message_id: n for n, message_id in enumerate(ids)}
        return sorted(changed, key=order.__getitem__)

    def rename_tag(self, old: str, new: str) -> int:
        db = self._db()
        with db.transaction():
            ids = [r[0] for r in db.execute("DELETE FROM tags WHERE tag = %s RETURNING id", (old,))]
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO tags (id, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(i, new) for i in ids],
                )
            db.execute("UPDATE tags SET tag = %s WHERE tag = %s", (new, new))
            self._notify(db, "tags", None)
        return len(ids)

    def delete_tag(self, tag: str) -> int:
        db = self._db()
        with db.transaction():
            count = int(db.execute("DELETE FROM tags WHERE tag = %s", (tag,)).rowcount)
            self._notify(db, "tags", None)
        return count
