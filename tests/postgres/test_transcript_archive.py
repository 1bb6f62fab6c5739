"""A fleet's session archive (PgTranscriptArchive) keeps the same contract as the data
directory's (tests/activity/test_transcript_archive.py), on a real PostgreSQL; and its rows
name the node that kept them."""

from __future__ import annotations

import psycopg

from mailroom.postgres.transcripts import PgTranscriptArchive
from tests.activity.test_transcript_archive import check_archive


def test_the_archive_on_postgresql(pg_url: str) -> None:
    archive = PgTranscriptArchive(pg_url, node="a", max_count=100, max_age=0)
    archive.start()
    try:
        check_archive(archive)
    finally:
        archive.close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT id, node, messages FROM transcripts ORDER BY id").fetchall()
    assert rows == [("S2", "a", []), ("S3", "a", [])]
