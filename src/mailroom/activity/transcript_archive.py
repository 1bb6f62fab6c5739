"""Session transcripts kept on disk, so a message's session can still be read after a restart:
``<data>/transcripts.sqlite``, bounded by count (``transcripts_stored``) and age
(``transcripts_max_age``).

The SMTP sessions never wait for it. A finished transcript is handed to :meth:`save`, which
only appends it to a bounded queue; one thread of its own turns transcripts into rows and writes
them in batches, and prunes what is over the bounds. When the queue is full (the disk is far
slower than the sessions), transcripts are dropped from the archive, counted in ``dropped``,
and still kept in memory as before.

The facts a list of sessions shows and filters by (the sender, the recipients, the worst reply)
are read from a transcript's entries by :func:`session_facts`, for the archive's columns and
for the sessions still in memory alike.

A fleet keeps the same archive in its PostgreSQL database
(:class:`mailroom.postgres.transcripts.PgTranscriptArchive`). What the two share is
:class:`SessionArchive`: the queue and the writer's thread, a session's row
(:func:`session_record`, the :data:`COLUMNS` both tables have), and the reads; each keeps its
own connections, statements and what it does when a write fails.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from mailroom.filemodes import private_dir, private_file
from mailroom.sqlite_files import set_aside

__all__ = [
    "COLUMNS",
    "SessionArchive",
    "SessionFilter",
    "SessionRecord",
    "TranscriptArchive",
    "expand_entries",
    "session_facts",
    "session_record",
]

log = logging.getLogger("mailroom.server")

QUEUE_SIZE = 10_000  # finished transcripts waiting to be written
BATCH = 500  # transcripts written in one transaction
PRUNE_EVERY = 60.0  # seconds between removals of what is over the bounds

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    ended REAL NOT NULL,
    client TEXT NOT NULL,
    listener TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    worst_code INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    summary TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_ended ON sessions (ended);
CREATE TABLE IF NOT EXISTS session_messages (
    queue_id TEXT PRIMARY KEY,
    session TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS session_messages_session ON session_messages (session);
"""
# The columns both archives keep of a session, in this order (the table above; PostgreSQL's
# ``transcripts`` has them too, and the node and the stored messages' ids besides).
COLUMNS = (
    "id",
    "started",
    "ended",
    "client",
    "listener",
    "sender",
    "recipients",
    "worst_code",
    "stored",
    "summary",
    "data",
)

_PATH = re.compile(r"^(MAIL FROM|RCPT TO):\s*<([^>]*)>", re.IGNORECASE)


class _Transcript(Protocol):
    id: str

    def compact(self) -> dict[str, Any]: ...


def _code(text: str) -> int:
    head = text[:3]
    return int(head) if head.isdigit() else 0


def _rank(reply: str) -> int:
    """5xx over 4xx over a message accepted over anything else."""
    code = _code(reply)
    if code >= 400:
        return code // 100
    return 1 if code == 250 and "queued as" in reply else 0


def session_facts(data: dict[str, Any]) -> dict[str, Any]:
    """What a list of sessions shows of one (its ``to_dict()``, or its ``compact()``): the
    envelope senders and recipients it gave, and its worst reply (a 5xx over a 4xx over the
    ``250 ... queued as`` of a message over the rest, the last of its kind: a refused
    session's ``550`` rather than the ``221 Bye`` it ended with)."""
    senders: list[str] = []
    recipients: list[str] = []
    worst, worst_rank = "", -1
    for entry in data.get("entries", ()):
        if isinstance(entry, list):  # compact: [time, "C"|"S"|"I", text]
            side, text = entry[1], entry[2]
        else:
            side, text = _SIDE[entry["from"]], entry["text"]
        if side == "C":
            if text[:4].upper() not in ("MAIL", "RCPT"):
                continue
            match = _PATH.match(text)
            if match is not None:
                kind, address = match[1].upper(), match[2]
                target = senders if kind == "MAIL FROM" else recipients
                if address not in target:
                    target.append(address)
        elif side == "S":
            last = text.rstrip("\r\n").rsplit("\n", 1)[-1]
            rank = _rank(last)
            if rank >= worst_rank:
                worst, worst_rank = last, rank
    return {"senders": senders, "recipients": recipients, "worst_reply": worst or None}


_SIDE = {"client": "C", "server": "S", "info": "I"}


class SessionFilter:
    """Which sessions a list shows: ``refused`` (stored no message), ``failed`` (got a 4xx or
    5xx reply), and text found in the client address, the senders or the recipients."""

    def __init__(
        self,
        *,
        refused: bool = False,
        failed: bool = False,
        client: str = "",
        sender: str = "",
        recipient: str = "",
    ) -> None:
        self.refused, self.failed = refused, failed
        self.client, self.sender, self.recipient = client.lower(), sender.lower(), recipient.lower()

    def matches(self, summary: dict[str, Any]) -> bool:
        """For a summary with :func:`session_facts` added."""
        if self.refused and summary["messages"]:
            return False
        if self.failed and _code(summary.get("worst_reply") or "") < 400:
            return False
        if self.client and self.client not in str(summary["client"]).lower():
            return False
        if self.sender and not any(self.sender in s.lower() for s in summary["senders"]):
            return False
        return not self.recipient or any(self.recipient in r.lower() for r in summary["recipients"])

    def sql(self) -> tuple[str, list[object]]:
        where: list[str] = ["1 = 1"]
        params: list[object] = []
        if self.refused:
            where.append("stored = 0")
        if self.failed:
            where.append("worst_code >= 400")
        for column, text in (
            ("client", self.client),
            ("sender", self.sender),
            ("recipients", self.recipient),
        ):
            if text:
                escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                where.append(f"lower({column}) LIKE ? ESCAPE '\\'")
                params.append(f"%{escaped}%")
        return " AND ".join(where), params


_FROM = {"C": "client", "S": "server", "I": "info"}


def expand_entries(entries: list[Any]) -> list[dict[str, Any]]:
    """Compact entries (:meth:`Transcript.compact`) as :meth:`Transcript.to_dict` gives them;
    entries that are dicts already (an archive written before) stay as they are."""
    return [
        {"time": entry[0], "from": _FROM[entry[1]], "text": entry[2]}
        if isinstance(entry, list)
        else entry
        for entry in entries
    ]


def _loaded(value: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON column's value: text (SQLite) or already read (PostgreSQL's jsonb)."""
    return value if isinstance(value, dict) else json.loads(value)


def _expanded(value: str | dict[str, Any]) -> dict[str, Any]:
    """A stored transcript as ``to_dict()`` gives it."""
    data = _loaded(value)
    data["entries"] = expand_entries(data.get("entries", []))
    return data


@dataclass(frozen=True)
class SessionRecord:
    """A finished session as an archive keeps it."""

    summary: dict[str, Any]  # what a list of sessions shows: no entries, session_facts added
    messages: list[str]  # the queue ids of the messages it stored
    values: tuple[Any, ...]  # the values of COLUMNS (summary and data as JSON text)


def session_record(data: dict[str, Any]) -> SessionRecord:
    """The row of a transcript (its ``compact()`` or ``to_dict()``)."""
    facts = session_facts(data)
    summary = {k: v for k, v in data.items() if k != "entries"} | facts
    values = (
        data["id"],
        data["started"],
        data["ended"] or time.time(),
        data["client"],
        data["listener"],
        " ".join(facts["senders"]),
        " ".join(facts["recipients"]),
        _code(facts["worst_reply"] or ""),
        len(data["messages"]),
        json.dumps(summary, ensure_ascii=False),
        json.dumps(data, ensure_ascii=False),
    )
    return SessionRecord(summary, list(data["messages"]), values)


def _create_private(path: Path) -> None:
    """The database file made readable by its owner only before SQLite opens it (its -wal and
    -shm files take the same mode): transcripts name addresses and AUTH users."""
    private_dir(path.parent)
    private_file(path)


class SessionArchive(ABC):
    """Finished transcripts, written by a thread of the archive's own and read from any thread.

    Sessions never wait for it: :meth:`save` only appends to a bounded queue (a full one drops
    the transcript from the archive, counted in ``dropped``); the thread writes the queue in
    batches (:meth:`_insert`) and prunes what is over the bounds every :data:`PRUNE_EVERY`
    seconds. Each archive says how it connects, writes, prunes and reads, and what a failed
    write costs (:meth:`_failed`)."""

    thread_name: ClassVar[str]
    table: ClassVar[str]  # the table of sessions, with COLUMNS
    placeholder: ClassVar[str] = "?"  # its driver's ("?": sqlite3; "%s": psycopg)
    for_message_sql: ClassVar[str]  # the data of the session that stored a queue id
    first_prune: ClassVar[float] = PRUNE_EVERY  # seconds from start to the writer's first prune
    write_errors: ClassVar[tuple[type[Exception], ...]] = (Exception,)

    def __init__(self, *, max_count: int, max_age: float) -> None:
        self.max_count = max_count
        self.max_age = max_age
        self.dropped = 0
        self._queue: queue.Queue[_Transcript | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._read_lock = threading.Lock()
        self._reader: Any = None
        self._written = threading.Condition()
        self._pending = 0

    # -- what each archive does its own way -------------------------------------------------

    @abstractmethod
    def _open(self) -> Any:
        """A new connection."""

    @abstractmethod
    def _close(self, conn: Any) -> None:
        """Close a connection (None: there is none)."""

    def _first_writer(self) -> Any:
        """The writer's connection before the first batch (None: made at the first batch)."""
        return None

    @abstractmethod
    def _data(self, transcript: _Transcript) -> dict[str, Any]:
        """What is kept of a transcript: its ``compact()`` or its ``to_dict()``."""

    @abstractmethod
    def _insert(self, conn: Any, records: list[SessionRecord]) -> None:
        """Write a batch (not empty), in one transaction."""

    @abstractmethod
    def _prune(self, conn: Any) -> None:
        """Delete what is over the bounds."""

    @abstractmethod
    def _failed(self, conn: Any, count: int, error: Exception) -> Any:
        """A batch of ``count`` was not written (in the ``except`` of ``error``): the
        connection to go on with (None: a new one for the next batch)."""

    @abstractmethod
    def _read(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        """Run a query on the reader's connection (under ``_read_lock``)."""

    # -- writing -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def save(self, transcript: _Transcript) -> None:
        """Queue a finished transcript for writing; never blocks."""
        try:
            with self._written:
                self._pending += 1
            self._queue.put_nowait(transcript)
        except queue.Full:
            with self._written:
                self._pending -= 1
            self.dropped += 1

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until what was saved so far is written (for tests and shutdown)."""
        with self._written:
            return self._written.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        with self._read_lock:
            self._close(self._reader)
            self._reader = None

    def prune(self) -> None:
        """Delete what is over the bounds now (the writer does so every minute)."""
        conn = self._open()
        try:
            self._prune(conn)
        finally:
            self._close(conn)

    def _run(self) -> None:
        conn = self._first_writer()
        next_prune = time.monotonic() + self.first_prune
        try:
            while True:
                item = self._queue.get()
                batch = [item]
                while item is not None and len(batch) < BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    batch.append(item)
                transcripts = [t for t in batch if t is not None]
                try:
                    if conn is None:
                        conn = self._open()
                    self._write(conn, transcripts)
                    if time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + PRUNE_EVERY
                        self._prune(conn)
                except self.write_errors as exc:
                    conn = self._failed(conn, len(transcripts), exc)
                finally:
                    with self._written:
                        self._pending -= len(transcripts)
                        self._written.notify_all()
                if None in batch:
                    return
        finally:
            self._close(conn)

    def _write(self, conn: Any, transcripts: Iterable[_Transcript]) -> None:
        records = [session_record(self._data(transcript)) for transcript in transcripts]
        if records:
            self._insert(conn, records)

    # -- reading (from any thread) -------------------------------------------------------------

    def _sql(self, text: str) -> str:
        """SQL written with ``?`` (as :meth:`SessionFilter.sql` writes it) for the driver."""
        if self.placeholder == "?":
            return text
        return text.replace("%", "%%").replace("?", self.placeholder)

    def get(self, session_id: str) -> dict[str, Any] | None:
        found = self._read(self._sql(f"SELECT data FROM {self.table} WHERE id = ?"), (session_id,))
        return _expanded(found[0][0]) if found else None

    def for_message(self, queue_id: str) -> dict[str, Any] | None:
        found = self._read(self.for_message_sql, (queue_id,))
        return _expanded(found[0][0]) if found else None

    def list(self, where: SessionFilter, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """How many sessions match, and the newest ``limit`` of them (without entries)."""
        sql, params = where.sql()
        sql = self._sql(sql)
        total = self._read(f"SELECT COUNT(*) FROM {self.table} WHERE {sql}", params)[0][0]
        found = self._read(
            f"SELECT summary FROM {self.table} WHERE {sql} ORDER BY started DESC "
            f"LIMIT {self.placeholder}",
            [*params, limit],
        )
        return int(total), [_loaded(value) for (value,) in found]


class TranscriptArchive(SessionArchive):
    """The archive of a data directory: ``transcripts.sqlite``."""

    thread_name = "mailroom-transcripts"
    table = "sessions"
    for_message_sql = (
        "SELECT s.data FROM session_messages m JOIN sessions s ON s.id = m.session "
        "WHERE m.queue_id = ?"
    )
    write_errors = (sqlite3.Error,)

    def __init__(self, path: Path, *, max_count: int, max_age: float) -> None:
        super().__init__(max_count=max_count, max_age=max_age)
        self.path = path

    def start(self) -> None:
        """Open (or make) the file. One SQLite cannot read is set aside, as
        ``transcripts.sqlite.damaged-TIME``, and a new one made: transcripts are a record for
        people, and mail must not stop for want of it. One it cannot open for now (a full
        disk) is an OSError that names it."""
        try:
            self._start_database()
        except sqlite3.OperationalError as exc:
            raise OSError(f"{self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            aside = set_aside(self.path)
            log.error("%s: %s; set aside as %s, a new one made", self.path, exc, aside)
            try:
                self._start_database()
            except sqlite3.Error as again:
                raise OSError(f"{self.path}: {again}") from again
        super().start()

    def _start_database(self) -> None:
        _create_private(self.path)
        db = self._open()
        try:
            db.executescript(SCHEMA)
            self._prune(db)
        finally:
            db.close()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a record for people, not the mail itself
        return db

    def _close(self, conn: sqlite3.Connection | None) -> None:
        if conn is not None:
            conn.close()

    def _first_writer(self) -> sqlite3.Connection:
        return self._open()

    def _data(self, transcript: _Transcript) -> dict[str, Any]:
        return transcript.compact()  # expanded when read (get, for_message)

    def _failed(self, conn: sqlite3.Connection, count: int, error: Exception) -> Any:
        self.dropped += count
        if isinstance(error, sqlite3.OperationalError):
            # The disk (a full one, a lock, an I/O error): one line per batch, not a traceback
            # per batch for as long as the disk stays full (a record for people, not mail).
            log.warning("%s: %d session transcripts not kept: %s", self.path, count, error)
        else:
            log.exception("could not write %d session transcripts", count)
        return conn

    def _insert(self, db: sqlite3.Connection, records: list[SessionRecord]) -> None:
        links = [(queue_id, r.values[0]) for r in records for queue_id in r.messages]
        marks = ", ".join("?" for _ in COLUMNS)
        with db:
            db.executemany(
                f"INSERT OR REPLACE INTO sessions VALUES ({marks})", [r.values for r in records]
            )
            db.executemany("INSERT OR REPLACE INTO session_messages VALUES (?, ?)", links)

    def _prune(self, db: sqlite3.Connection) -> None:
        with db:
            if self.max_age > 0:
                db.execute("DELETE FROM sessions WHERE ended < ?", (time.time() - self.max_age,))
            db.execute(
                "DELETE FROM sessions WHERE id IN "
                "(SELECT id FROM sessions ORDER BY ended DESC LIMIT -1 OFFSET ?)",
                (self.max_count,),
            )
            db.execute(
                "DELETE FROM session_messages WHERE session NOT IN (SELECT id FROM sessions)"
            )

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            if self._reader is None:
                self._reader = self._open()
            return list(self._reader.execute(sql, list(params)).fetchall())
