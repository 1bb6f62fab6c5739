"""Session transcripts of a whole fleet in PostgreSQL, bounded by count (``transcripts_stored``)
and age (``transcripts_max_age``): the same archive as the Maildir store's
``transcripts.sqlite`` (:class:`mailroom.activity.transcript_archive.TranscriptArchive`; both
are a :class:`~mailroom.activity.transcript_archive.SessionArchive`, with its queue, writer
thread, rows and reads), so any node's web shows the session that stored any message.

Sessions never wait for it: a finished transcript is queued, and a thread of the archive's own
writes the queue in batches, one transaction each, with a NOTIFY that brings the sessions'
summaries to the other nodes' live views. When the database is down the batch is dropped
(counted in ``dropped``): a transcript is a record for people, not mail. Every node prunes
what is over the bounds every minute; the statements are idempotent.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from mailroom.activity.transcript_archive import (
    COLUMNS,
    SessionArchive,
    SessionRecord,
)
from mailroom.postgres.connection import close_quietly, connection_options, require_psycopg
from mailroom.postgres.store import EVENTS_CHANNEL

__all__ = ["PgTranscriptArchive"]

log = logging.getLogger("mailroom.postgres")

NOTIFY_LIMIT = 7000  # bytes of a NOTIFY payload (PostgreSQL takes at most 8000)

# The archive's columns, and the node that kept the session and the ids of its messages.
INSERT_COLUMNS = (*COLUMNS, "node", "messages")
INSERT = f"""
INSERT INTO transcripts ({", ".join(INSERT_COLUMNS)})
VALUES ({", ".join("%s" for _ in INSERT_COLUMNS)})
ON CONFLICT (id) DO UPDATE SET ended = EXCLUDED.ended, summary = EXCLUDED.summary,
    data = EXCLUDED.data, messages = EXCLUDED.messages, stored = EXCLUDED.stored
"""


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


class PgTranscriptArchive(SessionArchive):
    thread_name = "mailroom-pg-transcripts"
    table = "transcripts"
    placeholder = "%s"
    for_message_sql = "SELECT data FROM transcripts WHERE messages @> ARRAY[%s] LIMIT 1"
    first_prune = 0.0  # at the first batch: every node prunes; the statements are idempotent

    def __init__(self, url: str, *, node: str, max_count: int, max_age: float) -> None:
        super().__init__(max_count=max_count, max_age=max_age)
        self.url = url
        self.node = node
        self._psycopg = require_psycopg()

    def _connect(self, purpose: str) -> Any:
        return self._psycopg.connect(
            self.url, autocommit=True, **connection_options(f"mailroom {self.node} {purpose}")
        )

    def _open(self) -> Any:
        return self._connect("transcripts")

    def _close(self, conn: Any) -> None:
        close_quietly(conn)

    # -- writing -------------------------------------------------------------------------------

    def _data(self, transcript: Any) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            _clean(json.dumps(transcript.to_dict(), ensure_ascii=False))
        )
        return data

    def _failed(self, conn: Any, count: int, error: Exception) -> Any:
        # The database is away: the batch is dropped (a record for people, not mail).
        self.dropped += count
        log.warning("%d session transcripts not archived: %s", count, error)
        close_quietly(conn)
        return None

    def _insert(self, conn: Any, records: list[SessionRecord]) -> None:
        notices = []
        for record in records:
            notice = json.dumps({"node": self.node, "type": "session", "summary": record.summary})
            if len(notice.encode()) <= NOTIFY_LIMIT:
                notices.append(notice)
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(
                INSERT, [(*record.values, self.node, record.messages) for record in records]
            )
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

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
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
