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
"""

from __future__ import annotations

import json
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from mailroom.filemodes import private_dir, private_file

__all__ = ["SessionFilter", "TranscriptArchive", "session_facts"]

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

_PATH = re.compile(r"^(MAIL FROM|RCPT TO):\s*<([^>]*)>", re.IGNORECASE)


class _Transcript(Protocol):
    id: str

    def to_dict(self) -> dict[str, Any]: ...


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
    """What a list of sessions shows of one (its ``to_dict()``): the envelope senders and
    recipients it gave, and its worst reply (a 5xx over a 4xx over the ``250 ... queued as``
    of a message over the rest, the last of its kind: a refused session's ``550`` rather than
    the ``221 Bye`` it ended with)."""
    senders: list[str] = []
    recipients: list[str] = []
    worst = ""
    for entry in data.get("entries", ()):
        text = entry["text"]
        if entry["from"] == "client":
            match = _PATH.match(text)
            if match is not None:
                kind, address = match[1].upper(), match[2]
                target = senders if kind == "MAIL FROM" else recipients
                if address not in target:
                    target.append(address)
        elif entry["from"] == "server":
            last = text.rstrip("\r\n").rsplit("\n", 1)[-1]
            if _rank(last) >= _rank(worst):
                worst = last
    return {"senders": senders, "recipients": recipients, "worst_reply": worst or None}


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
        where: list[str] = ["1"]
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


def _create_private(path: Path) -> None:
    """The database file made readable by its owner only before SQLite opens it (its -wal and
    -shm files take the same mode): transcripts name addresses and AUTH users."""
    private_dir(path.parent)
    private_file(path)


class TranscriptArchive:
    def __init__(self, path: Path, *, max_count: int, max_age: float) -> None:
        self.path = path
        self.max_count = max_count
        self.max_age = max_age
        self.dropped = 0
        self._queue: queue.Queue[_Transcript | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._written = threading.Condition()
        self._pending = 0

    # -- writing -------------------------------------------------------------------------------

    def start(self) -> None:
        _create_private(self.path)
        db = self._open()
        db.executescript(SCHEMA)
        self._prune(db)
        db.close()
        self._thread = threading.Thread(target=self._run, name="mailroom-transcripts", daemon=True)
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
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def prune(self) -> None:
        """Delete what is over the bounds now (the writer does so every minute)."""
        db = self._open()
        try:
            self._prune(db)
        finally:
            db.close()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a record for people, not the mail itself
        return db

    def _run(self) -> None:
        db = self._open()
        next_prune = time.monotonic() + PRUNE_EVERY
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
                    self._write(db, transcripts)
                    if time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + PRUNE_EVERY
                        self._prune(db)
                except sqlite3.Error:
                    log.exception("could not write %d session transcripts", len(transcripts))
                finally:
                    with self._written:
                        self._pending -= len(transcripts)
                        self._written.notify_all()
                if None in batch:
                    return
        finally:
            db.close()

    def _write(self, db: sqlite3.Connection, transcripts: Iterable[_Transcript]) -> None:
        rows, links = [], []
        for transcript in transcripts:
            data = transcript.to_dict()
            facts = session_facts(data)
            summary = {k: v for k, v in data.items() if k != "entries"} | facts
            rows.append(
                (
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
            )
            links += [(queue_id, data["id"]) for queue_id in data["messages"]]
        if not rows:
            return
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
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

    # -- reading (from any thread) -------------------------------------------------------------

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            if self._reader is None:
                self._reader = self._open()
            return self._reader.execute(sql, list(params)).fetchall()

    def get(self, session_id: str) -> dict[str, Any] | None:
        found = self._read("SELECT data FROM sessions WHERE id = ?", (session_id,))
        return json.loads(found[0][0]) if found else None

    def for_message(self, queue_id: str) -> dict[str, Any] | None:
        found = self._read(
            "SELECT s.data FROM session_messages m JOIN sessions s ON s.id = m.session "
            "WHERE m.queue_id = ?",
            (queue_id,),
        )
        return json.loads(found[0][0]) if found else None

    def list(self, where: SessionFilter, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """How many sessions match, and the newest ``limit`` of them (without entries)."""
        sql, params = where.sql()
        total = self._read(f"SELECT COUNT(*) FROM sessions WHERE {sql}", params)[0][0]
        found = self._read(
            f"SELECT summary FROM sessions WHERE {sql} ORDER BY started DESC LIMIT ?",
            [*params, limit],
        )
        return int(total), [json.loads(text) for (text,) in found]
