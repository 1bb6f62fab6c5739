"""The web's reads of the stored messages, written once for both back ends.

:class:`~mailroom.web.messages.Messages` (the Maildir store's SQLite index and files) and
:class:`~mailroom.web.messages_pg.PgMessages` (a fleet's PostgreSQL database) ask the same
questions: a page of messages with its counts, the ids a search matches, one message by id or
prefix, the rows of some ids with their summaries and tags, the summaries still missing. They
differ only in how their SQL says some things, which a :class:`Dialect` holds (placeholders,
a list of ids, counting unread rows, the summary table, where a message's path comes from), and
in what each back end does itself (:class:`MessageReads`' abstract methods): connecting, reading
a message for its summary, writing summaries, a transaction.

Searches (:mod:`mailroom.web.search`) are written in SQLite's SQL with ``?`` placeholders;
:meth:`Dialect.search` turns them into the back end's. A search ignores case on both, as a user
of a catcher expects (``from:ALICE`` finds alice@): SQLite's ``LIKE`` does (ASCII letters), and
on PostgreSQL, whose ``LIKE`` does not, it becomes ``ILIKE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from mailroom.web.mime import MimeLimits, parse_message
from mailroom.web.search import Query

__all__ = [
    "POSTGRES",
    "SQLITE",
    "SUMMARY_BATCH",
    "Dialect",
    "MessageReads",
    "MessageRow",
    "summarize",
]

T = TypeVar("T")

SEARCH_TEXT_LIMIT = 256 * 1024  # characters of body text kept for free-text search
SUMMARY_BATCH = 200  # messages read and summarized per transaction


@dataclass(slots=True)
class MessageRow:
    """An index row with the web's summary of it."""

    id: str
    received: float
    mailbox: str
    path: str
    sender: str
    recipients: list[str]
    from_header: str
    to_header: str
    cc_header: str
    subject: str
    message_id: str
    size: int
    client_ip: str
    helo: str
    auth_user: str | None
    tls: bool
    read: bool
    attachments: int = 0
    inline: int = 0
    snippet: str = ""
    tags: list[str] = field(default_factory=list)


def summarize(
    raw: bytes, fields: list[str], limits: MimeLimits | None = None
) -> tuple[int, int, str, str]:
    """A message's summary: its attachments, inline parts, snippet and the text free-text
    search looks in (``fields``, the index's addresses and subject, come first)."""
    try:
        parsed = parse_message(raw, limits)
    except Exception:  # a message the parser cannot read is still listed
        return 0, 0, "", " ".join(fields).lower()
    names = " ".join(p.filename for p in parsed.attachments + parsed.inline)
    snippet = parsed.snippet()
    text = parsed.text or snippet
    search = " ".join([*fields, names, text[:SEARCH_TEXT_LIMIT]]).lower()
    return len(parsed.attachments), len(parsed.inline), snippet, search


@dataclass(frozen=True)
class Dialect:
    """What one database's SQL says its own way."""

    name: str
    placeholder: str  # "?" (sqlite3) or "%s" (psycopg)
    summaries: str  # the table of the web's summaries
    path: str  # a row's path: the index's column, or made from the id (no file)
    true: str  # a WHERE that keeps every row
    unread: str  # how many of the rows are unread, {read} the column
    tag_order: str  # tags in order, without regard to case
    ids_at_once: int | None  # ids in one IN (...) list; None: one array parameter, = ANY(...)
    booleans: Callable[[bool], object] = bool  # a boolean as a parameter
    like: str = "LIKE"  # a pattern match that ignores case

    def search(self, sql: str) -> str:
        """Search SQL (written with ``?``: :mod:`mailroom.web.search`) in this dialect."""
        if self.like != "LIKE":
            sql = sql.replace(" LIKE ", f" {self.like} ")
        if self.placeholder == "?":
            return sql
        return sql.replace("%", "%%").replace("?", self.placeholder)

    def id_in(self, column: str, ids: Sequence[str]) -> tuple[str, list[object]]:
        """``column`` is one of ``ids`` (not empty): the condition and its parameters."""
        if self.ids_at_once is None:
            return f"{column} = ANY({self.placeholder})", [list(ids)]
        return f"{column} IN ({', '.join(self.placeholder for _ in ids)})", list(ids)

    def chunks(self, ids: list[str]) -> list[list[str]]:
        """``ids`` in as many lists as :meth:`id_in` needs."""
        size = self.ids_at_once
        if size is None:
            return [ids]
        return [ids[start : start + size] for start in range(0, len(ids), size)]

    def unread_of(self, column: str) -> str:
        return self.unread.format(read=column)

    def select(self) -> str:
        """The columns of a :class:`MessageRow`, in :func:`message_row`'s order."""
        return (
            f"SELECT m.id, m.received, m.mailbox, {self.path}, m.sender, m.recipients, "
            "m.from_header, m.to_header, m.cc_header, m.subject, m.message_id, m.size, "
            "m.client_ip, m.helo, m.auth_user, m.tls, m.read, s.attachments, s.inline, "
            f"s.snippet FROM messages m LEFT JOIN {self.summaries} s ON s.id = m.id"
        )


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    summaries="web.summaries",
    path="m.path",
    true="1 = 1",
    unread="COALESCE(SUM({read} = 0), 0)",
    tag_order="tag COLLATE NOCASE",
    ids_at_once=500,
    booleans=int,
)
POSTGRES = Dialect(
    name="postgresql",
    placeholder="%s",
    summaries="web_summaries",
    path="'postgresql:' || m.id",  # no file: the body is in the database
    true="true",
    unread="count(*) FILTER (WHERE NOT {read})",
    tag_order="tag",  # the column's collation ignores case
    ids_at_once=None,
    like="ILIKE",  # PostgreSQL's LIKE minds case
)


def message_row(values: Sequence[Any]) -> MessageRow:
    """A row of :meth:`Dialect.select`."""
    (id_, received, mailbox, path, sender, recipients, from_h, to_h, cc_h, subject) = values[:10]
    (message_id, size, client_ip, helo, auth_user, tls, read, attachments, inline) = values[10:19]
    return MessageRow(
        id_,
        received,
        mailbox,
        path,
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
        values[19] or "",
    )


class MessageReads(ABC):
    """The reads both back ends share, in one worker thread of their own (:meth:`call`), so
    the event loop that runs SMTP never waits on the database."""

    dialect: ClassVar[Dialect]

    def __init__(self, limits: MimeLimits | None = None) -> None:
        self.limits = limits or MimeLimits()  # past them a message is shown as its source
        self.enabled = True  # False with --store none: there is nothing to show
        self.deleted = 0  # messages deleted through this web since start
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mailroom-web")

    # -- what each back end does itself ----------------------------------------------------

    @abstractmethod
    def _db(self) -> Any:
        """The worker thread's connection (made when first needed)."""

    @abstractmethod
    def _close_db(self) -> None: ...

    @abstractmethod
    def _transaction(self, db: Any) -> AbstractContextManager[Any]: ...

    @abstractmethod
    def _summary_row(self, id_: str, path: str, fields: list[str]) -> tuple[Any, ...] | None:
        """``(id, attachments, inline, snippet, search_text)`` of a message, or None to leave
        it (deleted meanwhile)."""

    @abstractmethod
    def _save_summaries(self, db: Any, rows: list[tuple[Any, ...]]) -> None: ...

    # -- running in the worker thread ----------------------------------------------------

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_worker, function, args)

    def _in_worker(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        return function(*args)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._executor.submit(self._close_db).result(timeout=30)
        self._executor.shutdown(wait=True)

    # -- summaries -------------------------------------------------------------------------

    def _summarize_missing(self, ids: Iterable[str] | None = None) -> None:
        """Read and summarize the messages (of ``ids``, or all) that have no summary yet."""
        dialect = self.dialect
        db = self._db()
        sql = (
            f"SELECT m.id, {dialect.path}, m.subject, m.from_header, m.to_header, m.cc_header, "
            "m.sender, m.recipients, m.message_id FROM messages m "
            f"LEFT JOIN {dialect.summaries} s ON s.id = m.id WHERE s.id IS NULL"
        )
        params: list[object] = []
        if ids is not None:
            id_list = list(ids)
            if not id_list:
                return
            condition, params = dialect.id_in("m.id", id_list)
            sql += f" AND {condition}"
        pending = db.execute(sql, params).fetchall()
        for start in range(0, len(pending), SUMMARY_BATCH):
            rows = []
            for id_, path, *fields in pending[start : start + SUMMARY_BATCH]:
                row = self._summary_row(id_, path, fields)
                if row is not None:
                    rows.append(row)
            self._save_summaries(db, rows)

    # -- queries ---------------------------------------------------------------------------

    def page(
        self, query: Query | None, start: int, limit: int
    ) -> tuple[dict[str, int], list[MessageRow]]:
        """Counts (total, unread, matching, matching unread) and one page, newest first."""
        if not self.enabled:
            return {"total": 0, "unread": 0, "count": 0, "unread_count": 0}, []
        dialect, mark = self.dialect, self.dialect.placeholder
        db = self._db()
        if query is not None and query.needs_summaries:
            self._summarize_missing()
        total, unread = self._counts(db)
        where = dialect.search(query.sql) if query is not None else dialect.true
        params = list(query.params) if query is not None else []
        if query is None:
            matching, matching_unread = total, unread
        else:
            matching, matching_unread = db.execute(
                f"SELECT COUNT(*), {dialect.unread_of('m.read')} FROM messages m "
                f"LEFT JOIN {dialect.summaries} s ON s.id = m.id WHERE {where}",
                params,
            ).fetchone()
        page_ids = [
            r[0]
            for r in db.execute(
                f"SELECT m.id FROM messages m LEFT JOIN {dialect.summaries} s ON s.id = m.id "
                f"WHERE {where} ORDER BY m.received DESC, m.id DESC LIMIT {mark} OFFSET {mark}",
                [*params, limit, start],
            )
        ]
        self._summarize_missing(page_ids)
        rows = self._rows(page_ids)
        counts = {
            "total": total,
            "unread": unread,
            "count": matching,
            "unread_count": matching_unread,
        }
        return counts, rows

    def _counts(self, db: Any) -> tuple[int, int]:
        total, unread = db.execute(
            f"SELECT COUNT(*), {self.dialect.unread_of('read')} FROM messages"
        ).fetchone()
        return int(total), int(unread)

    def _rows(self, ids: list[str]) -> list[MessageRow]:
        if not ids:
            return []
        dialect = self.dialect
        db = self._db()
        condition, params = dialect.id_in("m.id", ids)
        found = {
            values[0]: message_row(values)
            for values in db.execute(f"{dialect.select()} WHERE {condition}", params)
        }
        condition, params = dialect.id_in("id", ids)
        for id_, tag in db.execute(
            f"SELECT id, tag FROM tags WHERE {condition} ORDER BY {dialect.tag_order}", params
        ):
            if id_ in found:
                found[id_].tags.append(tag)
        return [found[i] for i in ids if i in found]

    def matching_ids(self, query: Query) -> list[str]:
        if not self.enabled:
            return []
        db = self._db()
        if query.needs_summaries:
            self._summarize_missing()
        return [
            r[0]
            for r in db.execute(
                f"SELECT m.id FROM messages m LEFT JOIN {self.dialect.summaries} s "
                f"ON s.id = m.id WHERE {self.dialect.search(query.sql)}",
                query.params,
            )
        ]

    def counts(self) -> tuple[int, int]:
        if not self.enabled:
            return 0, 0
        return self._counts(self._db())

    def get_many(self, ids: list[str]) -> list[MessageRow]:
        """Those of ``ids`` (whole ids) that are stored, in that order: the live events'
        new messages, read in one query."""
        if not self.enabled or not ids:
            return []
        self._summarize_missing(ids)
        return self._rows(ids)

    def get(self, message_id: str) -> MessageRow | None:
        """By id, ``latest``, or a unique prefix of an id."""
        if not self.enabled:
            return None
        mark = self.dialect.placeholder
        db = self._db()
        if message_id == "latest":
            found = db.execute(
                "SELECT id FROM messages ORDER BY received DESC, id DESC LIMIT 1"
            ).fetchall()
        else:
            found = db.execute(
                f"SELECT id FROM messages WHERE id = {mark}", (message_id,)
            ).fetchall()
            if not found and message_id and message_id.isalnum():
                found = db.execute(
                    f"SELECT id FROM messages WHERE id LIKE {mark} ORDER BY id LIMIT 2",
                    (message_id + "%",),
                ).fetchall()
                if len(found) != 1:
                    return None
        if not found:
            return None
        self._summarize_missing([found[0][0]])
        rows = self._rows([found[0][0]])
        return rows[0] if rows else None

    # -- changes ---------------------------------------------------------------------------

    def set_read(self, ids: list[str] | None, read: bool) -> int:
        """Mark the messages of ``ids`` (all with None) read or unread; how many changed."""
        if not self.enabled:
            return 0
        mark, value = self.dialect.placeholder, self.dialect.booleans(read)
        db = self._db()
        with self._transaction(db):
            if ids is None:
                return int(db.execute(f"UPDATE messages SET read = {mark}", (value,)).rowcount)
            changed = 0
            for part in self.dialect.chunks(ids):
                condition, params = self.dialect.id_in("id", part)
                cursor = db.execute(
                    f"UPDATE messages SET read = {mark} WHERE {condition}", [value, *params]
                )
                changed += cursor.rowcount
            return changed
