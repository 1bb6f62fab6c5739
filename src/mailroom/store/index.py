"""The SQLite index of stored messages: metadata for listing and search, never the only copy
of anything. ``rebuild`` makes it anew from the Maildirs."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mailroom.filemodes import private_dir, private_file

__all__ = ["QUEUED", "DamagedIndex", "Index", "IndexRow"]

# The mailbox of a message that went only to the outbound queue (its file is the queue's).
QUEUED = "(queue)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    received REAL NOT NULL,
    mailbox TEXT NOT NULL,
    path TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    from_header TEXT NOT NULL DEFAULT '',
    to_header TEXT NOT NULL DEFAULT '',
    cc_header TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    client_ip TEXT NOT NULL DEFAULT '',
    helo TEXT NOT NULL DEFAULT '',
    auth_user TEXT,
    tls INTEGER NOT NULL DEFAULT 0,
    read INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_received ON messages (received);
CREATE TABLE IF NOT EXISTS tags (
    id TEXT NOT NULL,
    tag TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (id, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_tag ON tags (tag);
"""

_COLUMNS = (
    "id",
    "received",
    "mailbox",
    "path",
    "sender",
    "recipients",
    "from_header",
    "to_header",
    "cc_header",
    "subject",
    "message_id",
    "size",
    "client_ip",
    "helo",
    "auth_user",
    "tls",
)


# SQLite's limit on the parameters of one statement (SQLITE_MAX_VARIABLE_NUMBER, 32766 since
# 3.32; older builds have 999).
_MAX_PARAMETERS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def _chunks(values: list[object], width: int) -> Iterator[list[object]]:
    """``values`` (rows of ``width`` flattened) in pieces one statement can take."""
    step = (_MAX_PARAMETERS // width) * width
    for start in range(0, len(values), step):
        yield values[start : start + step]


def _insert_sql(verb: str, columns: tuple[str, ...], values: list[object]) -> str:
    row = "(" + ", ".join("?" for _ in columns) + ")"
    rows = len(values) // len(columns)
    return f"{verb} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"


@dataclass(slots=True)
class IndexRow:
    id: str
    received: float
    mailbox: str
    path: str  # relative to the data directory
    sender: str
    recipients: list[str]
    size: int
    from_header: str = ""
    to_header: str = ""
    cc_header: str = ""
    subject: str = ""
    message_id: str = ""
    client_ip: str = ""
    helo: str = ""
    auth_user: str | None = None
    tls: bool = False
    read: bool = field(default=False)
    # From the X-Tags field as stored; tags set later live only in the tags table.
    tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class DamagedIndex(OSError):
    """The index file is not an SQLite database SQLite can read (a crash of the disk, a file
    written over it): ``mailroom reindex`` sets it aside and builds a new one."""

    def __init__(self, path: Path, why: sqlite3.DatabaseError) -> None:
        super().__init__(
            f"{path}: {why}; the index is rebuilt from the Maildirs by `mailroom reindex`"
        )
        self.path = path


class Index:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            private_dir(self.path.parent)
            # Made 0600 before SQLite opens it; SQLite gives its -wal and -shm the same mode.
            private_file(self.path)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                # The Maildir is the durable copy; the index may lose its last moments in a
                # crash and be rebuilt, so it need not sync on every commit.
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(SCHEMA)
            except sqlite3.DatabaseError as exc:
                db.close()
                if isinstance(exc, sqlite3.OperationalError):  # locked, disk full: may pass
                    raise OSError(f"{self.path}: {exc}") from exc
                raise DamagedIndex(self.path, exc) from exc
            self._db = db
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def insert(self, rows: Iterable[IndexRow]) -> None:
        """Add (or replace) rows, in one transaction and one statement per table: the store's
        committer calls this from its thread, and SQLite lets other threads run during each
        step of a statement, so one step for the batch rather than one per row keeps the
        event loop's thread from trading the interpreter's lock with it row by row."""
        rows = list(rows)
        values: list[object] = [
            value
            for r in rows
            for value in (
                json.dumps(r.recipients) if c == "recipients" else getattr(r, c) for c in _COLUMNS
            )
        ]
        tagged: list[object] = [
            value for r in rows if r.tags for tag in r.tags for value in (r.id, tag)
        ]
        with self._lock:
            db = self._connect()
            with db:
                for chunk in _chunks(values, len(_COLUMNS)):
                    db.execute(
                        _insert_sql("INSERT OR REPLACE INTO messages", _COLUMNS, chunk), chunk
                    )
                for chunk in _chunks(tagged, 2):
                    db.execute(
                        _insert_sql("INSERT OR IGNORE INTO tags", ("id", "tag"), chunk), chunk
                    )

    def _row(self, row: sqlite3.Row) -> IndexRow:
        data = dict(row)
        data["recipients"] = json.loads(data["recipients"])
        data["tls"] = bool(data["tls"])
        data["read"] = bool(data["read"])
        return IndexRow(**data)  # tags are not read back: the web reads the tags table

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[IndexRow]:
        with self._lock:
            db = self._connect()
            db.row_factory = sqlite3.Row
            try:
                return [self._row(r) for r in db.execute(sql, params)]
            finally:
                db.row_factory = None

    def list(self, *, limit: int = 50, offset: int = 0) -> list[IndexRow]:
        return self._query(
            "SELECT * FROM messages ORDER BY received DESC, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )

    def count(self) -> int:
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def get(self, message_id: str) -> IndexRow | None:
        rows = self._query("SELECT * FROM messages WHERE id = ?", (message_id,))
        if not rows:
            # A unique prefix is enough, as with git hashes.
            rows = self._query(
                "SELECT * FROM messages WHERE id LIKE ? ORDER BY id LIMIT 2", (message_id + "%",)
            )
            if len(rows) != 1:
                return None
        return rows[0]

    def queued_ids(self) -> set[str]:
        """Messages indexed only as queued for delivery elsewhere (no local copy)."""
        with self._lock:
            db = self._connect()
            return {
                r[0] for r in db.execute("SELECT id FROM messages WHERE mailbox = ?", (QUEUED,))
            }

    def forget_queued(self, ids: Iterable[str]) -> None:
        """Forget messages that were only queued, once their queue entries are gone: there is
        no file left to show."""
        with self._lock:
            db = self._connect()
            with db:
                db.executemany(
                    "DELETE FROM messages WHERE id = ? AND mailbox = ?", [(i, QUEUED) for i in ids]
                )

    def delete(self, ids: Iterable[str]) -> None:
        with self._lock:
            db = self._connect()
            with db:
                pairs = [(i,) for i in ids]
                db.executemany("DELETE FROM messages WHERE id = ?", pairs)
                db.executemany("DELETE FROM tags WHERE id = ?", pairs)

    def replace_all(self, rows: Iterator[IndexRow]) -> int:
        with self._lock:
            db = self._connect()
            with db:
                db.execute("DELETE FROM messages")
                db.execute("DELETE FROM tags")  # only X-Tags come back: the files hold no more
        count = 0
        batch: list[IndexRow] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= 500:
                self.insert(batch)
                count += len(batch)
                batch = []
        if batch:
            self.insert(batch)
            count += len(batch)
        return count
