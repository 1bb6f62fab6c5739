"""Session transcripts of a whole fleet in PostgreSQL, bounded by count (``transcripts_stored``)
and age (``transcripts_max_age``): the same archive as the Maildir store's
``transcripts.sqlite`` (:class:`mailroom.activity.transcript_archive.TranscriptArchive`, whose
methods this one has), so any node's web shows the session that stored any message.

Sessions never wait for it: a finished transcript is queued, and a thread of the archive's own
writes the queue in batches, one transaction each, with a NOTIFY that brings the sessions'
summaries to the other nodes' live views. When the database is down the batch is dropped
(counted in ``dropped``): a transcript is a record for people, not mail. Every node prunes
what is over the bounds every minute; the statements are idempotent.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

from mailroom.activity.transcript_archive import SessionFilter, session_facts
from mailroom.postgres.connection import close_quietly, connection_options, require_psycopg
from mailroom.postgres.store import EVENTS_CHANNEL

__all__ = ["PgTranscriptArchive"]

log = logging.getLogger("mailroom.postgres")

QUEUE_SIZE = 10_000
BATCH = 500
PRUNE_EVERY = 60.0
NOTIFY_LIMIT = 7000  # bytes of a NOTIFY payload (PostgreSQL takes at most 8000)

INSERT = """
INSERT INTO transcripts (id, node, started, ended, client, listener, sender, recipients,
    worst_code, stored, messages, summary, data)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET ended = EXCLUDED.ended, summary = EXCLUDED.summary,
    data = EXCLUDED.data, messages = EXCLUDED.messages, stored = EXCLUDED.stored
"""


def _code(text: str) -> int:
    return int(text[:3]) if text[:3].isdigit() else 0


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


class PgTranscriptArchive:
    def __init__(self, url: str, *, node: str, max_count: int, max_age: float) -> None:
        self.url = url
        self.node = node
        self.max_count = max_count
        self.max_age = max_age
        self.dropped = 0
        self._psycopg = require_psycopg()
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._read_lock = threading.Lock()
        self._reader: Any = None
        self._written = threading.Condition()
        self._pending = 0

    def _connect(self, purpose: str) -> Any:
        return self._psycopg.connect(
            self.url, autocommit=True, **connection_options(f"mailroom {self.node} {purpose}")
        )

    # -- writing -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="mailroom-pg-transcripts", daemon=True
        )
        self._thread.start()

    def save(self, transcript: Any) -> None:
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
        with self._written:
            return self._written.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        with self._read_lock:
            close_quietly(self._reader)
            self._reader = None

    def prune(self) -> None:
        conn = self._connect("transcripts")
        try:
            self._prune(conn)
        finally:
            close_quietly(conn)

    def _run(self) -> None:
        conn: Any = None
        next_prune = time.monotonic()
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
                    conn = self._connect("transcripts")
                self._write(conn, transcripts)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY
                    self._prune(conn)
            except Exception as exc:
                self.dropped += len(transcripts)
                log.warning("%d session transcripts not archived: %s", len(transcripts), exc)
                close_quietly(conn)
                conn = None
            finally:
                with self._written:
                    self._pending -= len(transcripts)
                    self._written.notify_all()
            if None in batch:
                close_quietly(conn)
                return

    def _write(self, conn: Any, transcripts: list[Any]) -> None:
        rows, notices = [], []
        for transcript in transcripts:
            data = json.loads(_clean(json.dumps(transcript.to_dict(), ensure_ascii=False)))
            facts = session_facts(data)
            summary = {k: v for k, v in data.items() if k != "entries"} | facts
            rows.append(
                (
                    data["id"],
                    self.node,
                    data["started"],
                    data["ended"] or time.time(),
                    data["client"],
                    data["listener"],
                    " ".join(facts["senders"]),
                    " ".join(facts["recipients"]),
                    _code(facts["worst_reply"] or ""),
                    len(data["messages"]),
                    list(data["messages"]),
                    json.dumps(summary, ensure_ascii=False),
                    json.dumps(data, ensure_ascii=False),
                )
            )
            notice = json.dumps({"node": self.node, "type": "session", "summary": summary})
            if len(notice.encode()) <= NOTIFY_LIMIT:
                notices.append(notice)
        if not rows:
            return
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(INSERT, rows)
            for notice in notices:
                cursor.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, notice))

    def _prune(self, conn: Any) -> None:
        with conn.transaction():
            if self.max_age > 0:
                conn.execute(
                    "DELETE FROM transcripts WHERE ended < %s", (time.time() - self.max_age,)
                )
            conn.execute(
                "DELETE FROM transcripts WHERE id IN "
                "(SELECT id FROM transcripts ORDER BY ended DESC OFFSET %s)",
                (self.max_count,),
            )

    # -- reading (from any thread) -------------------------------------------------------------

    def _read(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            for attempt in (1, 2):
                try:
                    if self._reader is None:
                        self._reader = self._connect("transcripts reader")
                    return list(self._reader.execute(sql, params).fetchall())
                except self._psycopg.OperationalError:
                    close_quietly(self._reader)
                    self._reader = None
                    if attempt == 2:
                        raise
            return []

    @staticmethod
    def _json(value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else json.loads(value)

    def get(self, session_id: str) -> dict[str, Any] | None:
        found = self._read("SELECT data FROM transcripts WHERE id = %s", (session_id,))
        return self._json(found[0][0]) if found else None

    def for_message(self, queue_id: str) -> dict[str, Any] | None:
        found = self._read(
            "SELECT data FROM transcripts WHERE messages @> ARRAY[%s] LIMIT 1", (queue_id,)
        )
        return self._json(found[0][0]) if found else None

    def list(self, where: SessionFilter, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """How many sessions match, and the newest ``limit`` of them (without entries)."""
        sql, params = where.sql()
        sql = sql.replace("%", "%%").replace("?", "%s")
        total = self._read(f"SELECT count(*) FROM transcripts WHERE {sql}", params)[0][0]
        found = self._read(
            f"SELECT summary FROM transcripts WHERE {sql} ORDER BY started DESC LIMIT %s",
            [*params, limit],
        )
        return int(total), [self._json(value) for (value,) in found]
