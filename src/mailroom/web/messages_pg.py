"""The stored messages as the web reads and changes them, when they live in PostgreSQL: the
same methods as :class:`~mailroom.web.messages.Messages` (the Maildir store's SQLite index and
files), over the fleet's one database, so any node's web UI and API show every node's messages.

Queries run through a connection of the web's own, in one worker thread, as with SQLite. The
web's summaries (attachments, snippet, text to search) are a table of the same database: a
summary one node made serves all. Changes (deletions, tags) tell the other nodes' live views
with a NOTIFY in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mailroom.postgres.connection import (
    close_quietly,
    connection_options,
    is_unavailable,
    require_psycopg,
)
from mailroom.postgres.store import EVENTS_CHANNEL, NOTIFY_IDS
from mailroom.web.messages import SUMMARY_BATCH, MessageRow, summarize
from mailroom.web.mime import MimeLimits, ParsedMessage, parse_message
from mailroom.web.search import Query

__all__ = ["PgMessages"]

T = TypeVar("T")

_SELECT = (
    "SELECT m.id, m.received, m.mailbox, m.sender, m.recipients, m.from_header, "
    "m.to_header, m.cc_header, m.subject, m.message_id, m.size, m.client_ip, m.helo, "
    "m.auth_user, m.tls, m.read, s.attachments, s.inline, s.snippet "
    "FROM messages m LEFT JOIN web_summaries s ON s.id = m.id"
)


def _sql(text: str) -> str:
    """Search SQL is written with SQLite's ``?`` placeholders; psycopg's are ``%s``."""
    return text.replace("%", "%%").replace("?", "%s")


def _row(values: tuple[Any, ...]) -> MessageRow:
    (id_, received, mailbox, sender, recipients, from_h, to_h, cc_h, subject) = values[:9]
    (message_id, size, client_ip, helo, auth_user, tls, read, attachments, inline) = values[9:18]
    return MessageRow(
        id_,
        received,
        mailbox,
        f"postgresql:{id_}",  # no file: the body is in the database
        sender,
        json.loads(recipients),
        from_h,
        to_h,
        cc_h,
        subject,
        message_id,
        int(size),
        client_ip,
        helo,
        auth_user,
        bool(tls),
        bool(read),
        attachments or 0,
        inline or 0,
        values[18] or "",
    )


class PgMessages:
    def __init__(self, url: str, *, node: str, limits: MimeLimits | None = None) -> None:
        self.url = url
        self.node = node
        self.limits = limits or MimeLimits()  # past them a message is shown as its source
        self.enabled = True
        self.deleted = 0  # messages deleted through this node's web since start
        self._psycopg = require_psycopg()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mailroom-web")
        self._conn: Any = None

    # -- running in the worker thread ----------------------------------------------------

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._retrying, function, args)

    def _retrying(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        # A connection the database dropped (a restart, a failover) is made again once.
        try:
            return function(*args)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            close_quietly(self._conn)
            self._conn = None
            return function(*args)

    def close(self) -> None:
        def close_db() -> None:
            close_quietly(self._conn)
            self._conn = None

        with contextlib.suppress(RuntimeError):
            self._executor.submit(close_db).result(timeout=30)
        self._executor.shutdown(wait=True)

    def _db(self) -> Any:
        if self._conn is None:
            self._conn = self._psycopg.connect(
                self.url, autocommit=True, **connection_options(f"mailroom {self.node} web")
            )
        return self._conn

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

    def _summarize_missing(self, ids: Iterable[str] | None = None) -> None:
        db = self._db()
        sql = (
            "SELECT m.id, m.subject, m.from_header, m.to_header, m.cc_header, m.sender, "
            "m.recipients, m.message_id FROM messages m "
            "LEFT JOIN web_summaries s ON s.id = m.id WHERE s.id IS NULL"
        )
        params: list[object] = []
        if ids is not None:
            id_list = list(ids)
            if not id_list:
                return
            sql += " AND m.id = ANY(%s)"
            params = [id_list]
        pending = db.execute(sql, params).fetchall()
        for start in range(0, len(pending), SUMMARY_BATCH):
            rows = []
            for id_, *fields in pending[start : start + SUMMARY_BATCH]:
                raw = self._raw(id_)
                if raw is None:
                    continue  # deleted meanwhile
                rows.append((id_, *summarize(raw, fields, self.limits)))
            with db.transaction(), db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO web_summaries (id, attachments, inline, snippet, search_text) "
                    "SELECT %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM messages WHERE id = %s) "
                    "ON CONFLICT (id) DO NOTHING",
                    [(*row, row[0]) for row in rows],
                )

    # -- queries ---------------------------------------------------------------------------

    def page(
        self, query: Query | None, start: int, limit: int
    ) -> tuple[dict[str, int], list[MessageRow]]:
        """Counts (total, unread, matching, matching unread) and one page, newest first."""
        db = self._db()
        if query is not None and query.needs_summaries:
            self._summarize_missing()
        total, unread = self._counts(db)
        where = _sql(query.sql) if query is not None else "true"
        params = list(query.params) if query is not None else []
        if query is None:
            matching, matching_unread = total, unread
        else:
            matching, matching_unread = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE NOT m.read) FROM messages m "
                f"LEFT JOIN web_summaries s ON s.id = m.id WHERE {where}",
                params,
            ).fetchone()
        page_ids = [
            r[0]
            for r in db.execute(
                "SELECT m.id FROM messages m LEFT JOIN web_summaries s ON s.id = m.id "
                f"WHERE {where} ORDER BY m.received DESC, m.id DESC LIMIT %s OFFSET %s",
                [*params, limit, start],
            )
        ]
        self._summarize_missing(page_ids)
        counts = {
            "total": total,
            "unread": unread,
            "count": matching,
            "unread_count": matching_unread,
        }
        return counts, self._rows(page_ids)

    @staticmethod
    def _counts(db: Any) -> tuple[int, int]:
        total, unread = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT read) FROM messages"
        ).fetchone()
        return int(total), int(unread)

    def _rows(self, ids: list[str]) -> list[MessageRow]:
        if not ids:
            return []
        db = self._db()
        found = {
            values[0]: _row(values)
            for values in db.execute(f"{_SELECT} WHERE m.id = ANY(%s)", (ids,))
        }
        for id_, tag in db.execute(
            "SELECT id, tag FROM tags WHERE id = ANY(%s) ORDER BY tag", (ids,)
        ):
            if id_ in found:
                found[id_].tags.append(tag)
        return [found[i] for i in ids if i in found]

    def matching_ids(self, query: Query) -> list[str]:
        db = self._db()
        if query.needs_summaries:
            self._summarize_missing()
        return [
            r[0]
            for r in db.execute(
                "SELECT m.id FROM messages m LEFT JOIN web_summaries s ON s.id = m.id "
                f"WHERE {_sql(query.sql)}",
                query.params,
            )
        ]

    def counts(self) -> tuple[int, int]:
        return self._counts(self._db())

    def get_many(self, ids: list[str]) -> list[MessageRow]:
        """Those of ``ids`` (whole ids) that are stored, in that order: the live events'
        new messages, read in one query."""
        if not ids:
            return []
        self._summarize_missing(ids)
        return self._rows(ids)

    def get(self, message_id: str) -> MessageRow | None:
        """By id, ``latest``, or a unique prefix of an id."""
        db = self._db()
        if message_id == "latest":
            found = db.execute(
                "SELECT id FROM messages ORDER BY received DESC, id DESC LIMIT 1"
            ).fetchall()
        else:
            found = db.execute("SELECT id FROM messages WHERE id = %s", (message_id,)).fetchall()
            if not found and message_id and message_id.isalnum():
                found = db.execute(
                    "SELECT id FROM messages WHERE id LIKE %s ORDER BY id LIMIT 2",
                    (message_id + "%",),
                ).fetchall()
                if len(found) != 1:
                    return None
        if not found:
            return None
        self._summarize_missing([found[0][0]])
        rows = self._rows([found[0][0]])
        return rows[0] if rows else None

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

    def set_read(self, ids: list[str] | None, read: bool) -> int:
        db = self._db()
        if ids is None:
            return int(db.execute("UPDATE messages SET read = %s", (read,)).rowcount)
        return int(
            db.execute("UPDATE messages SET read = %s WHERE id = ANY(%s)", (read, ids)).rowcount
        )

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
