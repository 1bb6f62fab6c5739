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

The reads both back ends share (a page, a search, a message by id, the summaries) are
:class:`~mailroom.web.message_queries.MessageReads`, in SQLite's dialect here; what is this
store's own is the connection, the files, deleting and the tags.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections import OrderedDict
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailroom.filemodes import private_dir, private_file
from mailroom.sqlite_files import database_files
from mailroom.store import tags as tag_table
from mailroom.store.index import QUEUED
from mailroom.store.index import SCHEMA as INDEX_SCHEMA
from mailroom.store.maildir import message_file
from mailroom.web.message_queries import (
    SEARCH_TEXT_LIMIT,
    SQLITE,
    SUMMARY_BATCH,
    MessageReads,
    MessageRow,
    summarize,
)
from mailroom.web.mime import MimeLimits, ParsedMessage, addresses, parse_message

log = logging.getLogger("mailroom.web")

__all__ = [
    "SEARCH_TEXT_LIMIT",
    "SUMMARY_BATCH",
    "MessageRow",
    "Messages",
    "created",
    "list_item",
    "sender_of",
    "summarize",
]

SUMMARY_SCHEMA = """
CREATE TABLE IF NOT EXISTS web.summaries (
    id TEXT PRIMARY KEY,
    attachments INTEGER NOT NULL,
    inline INTEGER NOT NULL,
    snippet TEXT NOT NULL,
    search_text TEXT NOT NULL
);
"""
# Parsed messages kept for the next request about them: at most this many, of at most this
# many octets of source in all (a parsed message takes a few times its size in memory).
PARSED_CACHE_MESSAGES = 16
PARSED_CACHE_OCTETS = 32 * 1024 * 1024


def created(timestamp: float) -> str:
    """RFC 3339 in UTC with milliseconds, as Mailpit's ``Created``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def bcc_of(row: MessageRow) -> list[dict[str, str]]:
    """Envelope recipients the To and Cc fields do not name: the Bcc recipients."""
    named = {a["Address"].lower() for a in addresses(row.to_header) + addresses(row.cc_header)}
    return [{"Name": "", "Address": r} for r in row.recipients if r.lower() not in named]


def sender_of(from_header: str) -> dict[str, str]:
    """Mailpit's ``From``: the field's first address; never null (Mailpit's clients read
    ``From.Address`` unguarded), so a field that names no address is its text as the Name, and
    no field an empty address, as Mailpit stores them."""
    found = addresses(from_header)
    if found:
        return found[0]
    return {"Name": " ".join(from_header.split()), "Address": ""}


def list_item(row: MessageRow) -> dict[str, Any]:
    """Mailpit's ``MessageSummary``."""
    return {
        "ID": row.id,
        "MessageID": row.message_id.strip().strip("<>"),
        "Read": row.read,
        "From": sender_of(row.from_header),
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


class Messages(MessageReads):
    """The Maildir store's messages: the index's rows, the files, the web's summaries."""

    dialect = SQLITE

    def __init__(
        self, data_dir: Path, *, enabled: bool = True, limits: MimeLimits | None = None
    ) -> None:
        super().__init__(limits)
        self.data_dir = data_dir
        self.enabled = enabled  # False with --store none: there is nothing to show
        # id -> (the file's size and mtime, the parsed message); the worker thread's only
        self._parsed: OrderedDict[str, tuple[tuple[int, int], ParsedMessage]] = OrderedDict()
        self._parsed_octets = 0
        self._conn: sqlite3.Connection | None = None

    # -- the connection, in the worker thread --------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            private_dir(self.data_dir)
            # 0600 before SQLite makes them (0644); their -wal and -shm follow their mode.
            db = sqlite3.connect(private_file(self.data_dir / "index.sqlite"), timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(INDEX_SCHEMA)
            self._attach_cache(db)
            self._conn = db
        return self._conn

    def _attach_cache(self, db: sqlite3.Connection) -> None:
        """The web's own database, ``web.sqlite``, attached as ``web``. It is a cache: one
        SQLite cannot read (damaged, or not a database) is deleted and made again, rather
        than every request answering 500."""
        path = self.data_dir / "web.sqlite"
        for attempt in (1, 2):
            try:
                db.execute("ATTACH DATABASE ? AS web", (str(private_file(path)),))
                db.execute("PRAGMA web.journal_mode=WAL")
                db.execute("PRAGMA web.synchronous=OFF")  # a cache: lost rows are made again
                db.executescript(SUMMARY_SCHEMA)
                return
            except sqlite3.OperationalError:
                raise  # the disk (full, locked): not the file's fault, nothing to delete
            except sqlite3.DatabaseError as exc:
                with contextlib.suppress(sqlite3.Error):  # not attached if ATTACH failed
                    db.execute("DETACH DATABASE web")
                if attempt == 2:
                    raise
                log.error("%s: %s; deleted, and made again (a cache)", path, exc)
                for name in database_files(path):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name)

    def _close_db(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _transaction(self, db: sqlite3.Connection) -> AbstractContextManager[Any]:
        return db

    # -- summaries -------------------------------------------------------------------------

    def _summary_row(self, id_: str, path: str, fields: list[str]) -> tuple[Any, ...]:
        return (id_, *self._summary(path, fields))

    def _save_summaries(self, db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO web.summaries "
                "(id, attachments, inline, snippet, search_text) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def _summary(self, path: str, fields: list[str]) -> tuple[int, int, str, str]:
        try:
            raw = (self.data_dir / path).read_bytes()
        except OSError:
            return 0, 0, "", " ".join(fields).lower()
        return summarize(raw, fields, self.limits)

    # -- messages --------------------------------------------------------------------------

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
        db = self._db()
        if ids is None:
            found = db.execute("SELECT id, path, mailbox FROM messages").fetchall()
        else:
            found = []
            for part in self.dialect.chunks(ids):
                condition, params = self.dialect.id_in("id", part)
                found += db.execute(
                    f"SELECT id, path, mailbox FROM messages WHERE {condition}", params
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

    # -- tags (the index's table; run these with call()) ----------------------------------------

    def all_tags(self) -> list[str]:
        return tag_table.all_tags(self._db()) if self.enabled else []

    def tags_of(self, ids: list[str]) -> dict[str, list[str]]:
        return tag_table.tags_of(self._db(), ids)

    def tag_counts(self) -> dict[str, int]:
        return tag_table.tag_counts(self._db()) if self.enabled else {}

    def set_tags(self, ids: list[str], tags: list[str]) -> list[str]:
        return tag_table.set_tags(self._db(), ids, tags)

    def rename_tag(self, old: str, new: str) -> int:
        return tag_table.rename_tag(self._db(), old, new)

    def delete_tag(self, tag: str) -> int:
        return tag_table.delete_tag(self._db(), tag)

    def database_size(self) -> int:
        total = 0
        for name in ("index.sqlite", "web.sqlite"):
            with contextlib.suppress(OSError):
                total += (self.data_dir / name).stat().st_size
        return total
