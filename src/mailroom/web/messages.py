"""The stored messages as the web reads and changes them.

The store's index (``index.sqlite``) is read through a connection of the web's own, in one
worker thread, so the event loop that runs SMTP never waits on SQLite or the disk. What the
index does not know — how many attachments a message has, a snippet and the text to search —
the web reads from the message file once and keeps in its own database (``web.sqlite`` beside
the index, attached to the same connection so one query joins both). It is a cache: delete it
and it is made again.

A message is parsed at most once while it is looked at: the last parsed ones are kept (a
bounded cache, by count and by size), and only in the worker thread. A message past the
limits on parts and nesting is never parsed beyond its header (see :mod:`.mime`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from mailroom.filemodes import private_dir, private_file
from mailroom.store.index import QUEUED
from mailroom.store.index import SCHEMA as INDEX_SCHEMA
from mailroom.store.maildir import message_file
from mailroom.web.mime import MimeLimits, ParsedMessage, addresses, parse_message
from mailroom.web.search import Query

__all__ = ["MessageRow", "Messages", "created", "list_item"]

T = TypeVar("T")

SUMMARY_SCHEMA = """
CREATE TABLE IF NOT EXISTS web.summaries (
    id TEXT PRIMARY KEY,
    attachments INTEGER NOT NULL,
    inline INTEGER NOT NULL,
    snippet TEXT NOT NULL,
    search_text TEXT NOT NULL
);
"""
SEARCH_TEXT_LIMIT = 256 * 1024  # characters of body text kept for free-text search
SUMMARY_BATCH = 200  # messages read and summarized per transaction
# Parsed messages kept for the next request about them: at most this many, of at most this
# many octets of source in all (a parsed message takes a few times its size in memory).
PARSED_CACHE_MESSAGES = 16
PARSED_CACHE_OCTETS = 32 * 1024 * 1024


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


_SELECT = (
    "SELECT m.id, m.received, m.mailbox, m.path, m.sender, m.recipients, m.from_header, "
    "m.to_header, m.cc_header, m.subject, m.message_id, m.size, m.client_ip, m.helo, "
    "m.auth_user, m.tls, m.read, s.attachments, s.inline, s.snippet "
    "FROM messages m LEFT JOIN web.summaries s ON s.id = m.id"
)


def _row(values: tuple[Any, ...]) -> MessageRow:
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
        size,
        client_ip,
        helo,
        auth_user,
        bool(tls),
        bool(read),
        attachments or 0,
        inline or 0,
        values[19] or "",
    )


def created(timestamp: float) -> str:
    """RFC 3339 in UTC with milliseconds, as Mailpit's ``Created``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def bcc_of(row: MessageRow) -> list[dict[str, str]]:
    """Envelope recipients the To and Cc fields do not name: the Bcc recipients."""
    named = {a["Address"].lower() for a in addresses(row.to_header) + addresses(row.cc_header)}
    return [{"Name": "", "Address": r} for r in row.recipients if r.lower() not in named]


def list_item(row: MessageRow) -> dict[str, Any]:
    """Mailpit's ``MessageSummary``."""
    sender = addresses(row.from_header)
    return {
        "ID": row.id,
        "MessageID": row.message_id.strip().strip("<>"),
        "Read": row.read,
        "From": sender[0] if sender else None,
        "To": addresses(row.to_header),
        "Cc": addresses(row.cc_header),
        "Bcc": bcc_of(row),
        "ReplyTo": [],
        "Subject": row.subject,
        "Created": created(row.received),
        "Username": row.auth_user or "",
        "Tags": row.tags,
        "Size": row.size,
        "Attachments": row.attachments,
        "Snippet": row.snippet,
    }


class Messages:
    def __init__(
        self, data_dir: Path, *, enabled: bool = True, limits: MimeLimits | None = None
    ) -> None:
        self.data_dir = data_dir
        self.enabled = enabled  # False with --store none: there is nothing to show
        self.limits = limits or MimeLimits()
        # id -> (the file's size and mtime, the parsed message); the worker thread's only
        self._parsed: OrderedDict[str, tuple[tuple[int, int], ParsedMessage]] = OrderedDict()
        self._parsed_octets = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mailroom-web")
        self._db: sqlite3.Connection | None = None
        self.deleted = 0  # messages deleted through the web since start

    # -- running in the worker thread ----------------------------------------------------

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    async def with_db(self, function: Callable[..., T], *args: Any) -> T:
        """``function(connection, *args)`` in the worker thread, with the index (and the
        web's cache, as ``web.``) open: for the modules that keep tables of their own."""
        return await self.call(lambda: function(self._connect(), *args))

    def close(self) -> None:
        def close_db() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        with contextlib.suppress(RuntimeError):
            self._executor.submit(close_db).result(timeout=30)
        self._executor.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            private_dir(self.data_dir)
            # 0600 before SQLite makes them (0644); their -wal and -shm follow their mode.
            db = sqlite3.connect(private_file(self.data_dir / "index.sqlite"), timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(INDEX_SCHEMA)
            web_db = private_file(self.data_dir / "web.sqlite")
            db.execute("ATTACH DATABASE ? AS web", (str(web_db),))
            db.execute("PRAGMA web.journal_mode=WAL")
            db.execute("PRAGMA web.synchronous=OFF")  # a cache: lost rows are made again
            db.executescript(SUMMARY_SCHEMA)
            self._db = db
        return self._db

    # -- summaries -------------------------------------------------------------------------

    def _summarize_missing(self, ids: Iterable[str] | None = None) -> None:
        """Read and summarize the messages (of ``ids``, or all) that have no summary yet."""
        db = self._connect()
        sql = (
            "SELECT m.id, m.path, m.subject, m.from_header, m.to_header, m.cc_header, "
            "m.sender, m.recipients, m.message_id FROM messages m "
            "LEFT JOIN web.summaries s ON s.id = m.id WHERE s.id IS NULL"
        )
        params: list[object] = []
        if ids is not None:
            id_list = list(ids)
            if not id_list:
                return
            sql += f" AND m.id IN ({', '.join('?' for _ in id_list)})"
            params = list(id_list)
        pending = db.execute(sql, params).fetchall()
        for start in range(0, len(pending), SUMMARY_BATCH):
            rows = []
            for id_, path, *fields in pending[start : start + SUMMARY_BATCH]:
                rows.append((id_, *self._summary(path, fields)))
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO web.summaries "
                    "(id, attachments, inline, snippet, search_text) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )

    def _summary(self, path: str, fields: list[str]) -> tuple[int, int, str, str]:
        try:
            parsed = parse_message((self.data_dir / path).read_bytes(), self.limits)
        except OSError:
            return 0, 0, "", " ".join(fields).lower()
        except Exception:  # a message the parser cannot read is still listed
            return 0, 0, "", " ".join(fields).lower()
        names = " ".join(p.filename for p in parsed.attachments + parsed.inline)
        text = parsed.text or parsed.snippet()
        search = " ".join([*fields, names, text[:SEARCH_TEXT_LIMIT]]).lower()
        return len(parsed.attachments), len(parsed.inline), parsed.snippet(), search

    # -- queries ---------------------------------------------------------------------------

    def page(
        self, query: Query | None, start: int, limit: int
    ) -> tuple[dict[str, int], list[MessageRow]]:
        """Counts (total, unread, matching, matching unread) and one page, newest first."""
        if not self.enabled:
            return {"total": 0, "unread": 0, "count": 0, "unread_count": 0}, []
        db = self._connect()
        if query is not None and query.needs_summaries:
            self._summarize_missing()
        total, unread = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(read = 0), 0) FROM messages"
        ).fetchone()
        where = query.sql if query is not None else "1"
        params = list(query.params) if query is not None else []
        if query is None:
            matching, matching_unread = total, unread
        else:
            matching, matching_unread = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(m.read = 0), 0) FROM messages m "
                f"LEFT JOIN web.summaries s ON s.id = m.id WHERE {where}",
                params,
            ).fetchone()
        page_ids = [
            r[0]
            for r in db.execute(
                f"SELECT m.id FROM messages m LEFT JOIN web.summaries s ON s.id = m.id "
                f"WHERE {where} ORDER BY m.received DESC, m.id DESC LIMIT ? OFFSET ?",
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

    def _rows(self, ids: list[str]) -> list[MessageRow]:
        if not ids:
            return []
        db = self._connect()
        marks = ", ".join("?" for _ in ids)
        found = {
            values[0]: _row(values)
            for values in db.execute(f"{_SELECT} WHERE m.id IN ({marks})", ids)
        }
        for id_, tag in db.execute(
            f"SELECT id, tag FROM tags WHERE id IN ({marks}) ORDER BY tag COLLATE NOCASE", ids
        ):
            if id_ in found:
                found[id_].tags.append(tag)
        return [found[i] for i in ids if i in found]

    def matching_ids(self, query: Query) -> list[str]:
        if not self.enabled:
            return []
        db = self._connect()
        if query.needs_summaries:
            self._summarize_missing()
        return [
            r[0]
            for r in db.execute(
                "SELECT m.id FROM messages m LEFT JOIN web.summaries s ON s.id = m.id "
                f"WHERE {query.sql}",
                query.params,
            )
        ]

    def counts(self) -> tuple[int, int]:
        if not self.enabled:
            return 0, 0
        total, unread = (
            self._connect()
            .execute("SELECT COUNT(*), COALESCE(SUM(read = 0), 0) FROM messages")
            .fetchone()
        )
        return int(total), int(unread)

    def get(self, message_id: str) -> MessageRow | None:
        """By id, ``latest``, or a unique prefix of an id."""
        if not self.enabled:
            return None
        db = self._connect()
        if message_id == "latest":
            found = db.execute(
                "SELECT id FROM messages ORDER BY received DESC, id DESC LIMIT 1"
            ).fetchall()
        else:
            found = db.execute("SELECT id FROM messages WHERE id = ?", (message_id,)).fetchall()
            if not found and message_id and message_id.isalnum():
                found = db.execute(
                    "SELECT id FROM messages WHERE id LIKE ? ORDER BY id LIMIT 2",
                    (message_id + "%",),
                ).fetchall()
                if len(found) != 1:
                    return None
        if not found:
            return None
        self._summarize_missing([found[0][0]])
        rows = self._rows([found[0][0]])
        return rows[0] if rows else None

    def raw(self, row: MessageRow) -> bytes:
        return message_file(self.data_dir, row.path).read_bytes()

    def open(self, message_id: str) -> tuple[MessageRow, bytes, ParsedMessage] | None:
        """The message's row, its file's bytes and its parsed form (parsed once, then kept a
        while: reading the file again costs little, parsing it does)."""
        row = self.get(message_id)
        if row is None:
            return None
        path = message_file(self.data_dir, row.path)
        with path.open("rb") as file:
            info = os.fstat(file.fileno())
            raw = file.read()
        version = (info.st_size, info.st_mtime_ns)
        cached = self._parsed.get(row.id)
        if cached is not None and cached[0] == version:
            self._parsed.move_to_end(row.id)
            return row, raw, cached[1]
        parsed = parse_message(raw, self.limits)
        self._keep(row.id, version, parsed)
        return row, raw, parsed

    def _keep(self, message_id: str, version: tuple[int, int], parsed: ParsedMessage) -> None:
        self._forget(message_id)
        if version[0] > PARSED_CACHE_OCTETS:
            return
        self._parsed[message_id] = (version, parsed)
        self._parsed_octets += version[0]
        while (
            len(self._parsed) > PARSED_CACHE_MESSAGES or self._parsed_octets > PARSED_CACHE_OCTETS
        ):
            oldest = next(iter(self._parsed))
            self._forget(oldest)

    def _forget(self, message_id: str) -> None:
        gone = self._parsed.pop(message_id, None)
        if gone is not None:
            self._parsed_octets -= gone[0][0]

    # -- changes ---------------------------------------------------------------------------

    def delete(self, ids: list[str] | None) -> list[str]:
        """Delete the messages of ``ids`` (all with None): the Maildir file, then the index
        row and the summary. The ids that were deleted."""
        if not self.enabled:
            return []
        db = self._connect()
        if ids is None:
            found = db.execute("SELECT id, path, mailbox FROM messages").fetchall()
        else:
            found = []
            for chunk in range(0, len(ids), 500):
                part = ids[chunk : chunk + 500]
                found += db.execute(
                    "SELECT id, path, mailbox FROM messages "
                    f"WHERE id IN ({', '.join('?' for _ in part)})",
                    part,
                ).fetchall()
        for _, path, mailbox in found:
            if mailbox == QUEUED:
                continue  # the queue's own file, still to be delivered: only unlisted here
            with contextlib.suppress(FileNotFoundError):
                os.unlink(message_file(self.data_dir, path))
        deleted = [id_ for id_, _, _ in found]
        for message_id in deleted:
            self._forget(message_id)
        with db:
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in deleted])
            db.executemany("DELETE FROM web.summaries WHERE id = ?", [(i,) for i in deleted])
            db.executemany("DELETE FROM tags WHERE id = ?", [(i,) for i in deleted])
        self.deleted += len(deleted)
        return deleted

    def set_read(self, ids: list[str] | None, read: bool) -> int:
        if not self.enabled:
            return 0
        db = self._connect()
        with db:
            if ids is None:
                cursor = db.execute("UPDATE messages SET read = ?", (int(read),))
                return cursor.rowcount
            changed = 0
            for chunk in range(0, len(ids), 500):
                part = ids[chunk : chunk + 500]
                cursor = db.execute(
                    f"UPDATE messages SET read = ? WHERE id IN ({', '.join('?' for _ in part)})",
                    [int(read), *part],
                )
                changed += cursor.rowcount
            return changed

    def database_size(self) -> int:
        total = 0
        for name in ("index.sqlite", "web.sqlite"):
            with contextlib.suppress(OSError):
                total += (self.data_dir / name).stat().st_size
        return total
