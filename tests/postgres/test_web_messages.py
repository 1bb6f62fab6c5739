"""The web's message reads on a fleet's PostgreSQL database (PgMessages): the same contract as
on the SQLite index (tests/web/test_message_queries.py), on a real PostgreSQL."""

from __future__ import annotations

import psycopg

from mailroom.web.messages_pg import PgMessages
from tests.web.test_message_queries import (
    MESSAGES,
    check_reads,
    fields,
    header_of,
    in_worker,
)


def pg_messages(url: str) -> PgMessages:
    """A database whose tables hold the contract's messages, as a node's store writes them."""
    with psycopg.connect(url) as conn:
        for queue_id, received, subject, read, tags, body in MESSAGES:
            header = header_of(subject)
            row = fields(queue_id, received, subject, read, len(header + body))
            row |= {"node": "a", "header": header}
            marks = ", ".join("%s" for _ in row)
            conn.execute(
                f"INSERT INTO messages ({', '.join(row)}) VALUES ({marks})", list(row.values())
            )
            conn.execute("INSERT INTO message_bodies VALUES (%s, 0, %s)", (queue_id, body))
            for tag in tags:
                conn.execute("INSERT INTO tags VALUES (%s, %s)", (queue_id, tag))
    return PgMessages(url, node="a")


def test_the_reads_on_postgresql(pg_url: str) -> None:
    in_worker(pg_messages(pg_url), check_reads)
