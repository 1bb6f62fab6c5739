"""The web's shared message reads (mailroom.web.message_queries): each dialect's SQL pieces, and
one contract of reads that both back ends must keep alike. The contract runs here on the SQLite
index; tests/postgres/test_web_messages.py runs it on PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailroom.store.index import SCHEMA as INDEX_SCHEMA
from mailroom.web import messages as web_messages
from mailroom.web.message_queries import (
    POSTGRES,
    SQLITE,
    MessageReads,
    MessageRow,
    message_row,
)
from mailroom.web.messages import Messages
from mailroom.web.search import parse_query

# Three messages, oldest first: (id, received, subject, read, tags, body)
FIRST, SECOND, THIRD = "06AAAA0001", "06AAAA0002", "06BBBB0003"
ATTACHED = (
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
    b"see attached\r\n--b\r\nContent-Type: application/pdf\r\n"
    b'Content-Disposition: attachment; filename="bill.pdf"\r\n\r\nJVBER\r\n--b--\r\n'
)
MESSAGES: list[tuple[str, float, str, bool, list[str], bytes]] = [
    (FIRST, 100.0, "Invoice one", False, ["Zeta", "alpha"], b"\r\nhello world\r\n"),
    (SECOND, 200.0, "Second", True, [], ATTACHED),
    (THIRD, 300.0, "Third 100%", False, [], b"\r\nplain\r\n"),
]


def header_of(subject: str) -> bytes:
    return (
        f"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: {subject}\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode()


def fields(queue_id: str, received: float, subject: str, read: bool, size: int) -> dict[str, Any]:
    """A messages row, as either store writes it."""
    return {
        "id": queue_id,
        "received": received,
        "mailbox": "catchall",
        "sender": "alice@a.test",
        "recipients": json.dumps(["bob@b.test", "hidden@c.test"]),
        "from_header": "Alice <alice@a.test>",
        "to_header": "bob@b.test",
        "subject": subject,
        "message_id": f"<{queue_id}@a.test>",
        "size": size,
        "client_ip": "127.0.0.1",
        "helo": "a.test",
        "tls": True,
        "read": read,
    }


def check_reads(messages: MessageReads) -> None:
    """What both back ends answer alike, over :data:`MESSAGES` (run in the worker thread)."""
    assert messages.counts() == (3, 2)

    counts, rows = messages.page(None, 0, 2)
    assert counts == {"total": 3, "unread": 2, "count": 3, "unread_count": 2}
    assert [r.id for r in rows] == [THIRD, SECOND]
    counts, rows = messages.page(None, 2, 2)
    assert [r.id for r in rows] == [FIRST]

    def found(text: str) -> tuple[dict[str, int], list[str]]:
        counts, rows = messages.page(parse_query(text), 0, 10)
        return counts, [r.id for r in rows]

    assert found("hello") == ({"total": 3, "unread": 2, "count": 1, "unread_count": 1}, [FIRST])
    assert found("has:attachment")[1] == [SECOND]
    assert found("bill.pdf")[1] == [SECOND]
    assert found('subject:"100%"')[1] == [THIRD]  # a % in the search, escaped in either SQL
    assert found("tag:ALPHA")[1] == [FIRST]
    # Field searches ignore case on both back ends, as free text does.
    assert found("from:ALICE subject:invoice")[1] == [FIRST]
    assert found("subject:THIRD")[1] == [THIRD]
    assert found("is:unread")[1] == [THIRD, FIRST]
    assert found("after:1970-01-01 larger:1")[0]["count"] == 3
    assert sorted(messages.matching_ids(parse_query("is:read"))) == [SECOND]
    assert messages.matching_ids(parse_query("nothing-like-this")) == []

    latest = messages.get("latest")
    assert latest is not None and latest.id == THIRD
    assert messages.get("06AAAA") is None  # a prefix of two
    prefixed = messages.get("06BB")
    assert prefixed is not None and prefixed.id == THIRD
    assert messages.get("nosuch") is None
    first = messages.get(FIRST)
    assert first is not None
    assert first.tags == ["alpha", "Zeta"]  # in order, whatever the case
    assert first.recipients == ["bob@b.test", "hidden@c.test"]
    assert (first.tls, first.read, first.auth_user, first.mailbox) == (
        True,
        False,
        None,
        "catchall",
    )
    assert first.size == len(header_of("Invoice one") + b"\r\nhello world\r\n")
    assert isinstance(first.size, int) and first.snippet.startswith("hello world")
    # Where the message is: a file of the data directory, or the database.
    where = f"catchall/new/{FIRST}" if messages.dialect is SQLITE else f"postgresql:{FIRST}"
    assert first.path == where
    opened = messages.open(FIRST)  # type: ignore[attr-defined]
    assert opened is not None and opened[1] == header_of("Invoice one") + MESSAGES[0][5]
    second = messages.get(SECOND)
    assert second is not None and (second.attachments, second.inline) == (1, 0)

    assert [r.id for r in messages.get_many([THIRD, "nosuch", FIRST])] == [THIRD, FIRST]
    assert messages.get_many([]) == []

    assert messages.set_read([FIRST, THIRD, "nosuch"], True) == 2
    assert messages.counts() == (3, 0)
    assert messages.set_read([], False) == 0
    assert messages.set_read(None, False) == 3
    assert messages.counts() == (3, 3)


def in_worker(messages: MessageReads, check: Callable[[MessageReads], None]) -> None:
    """Run ``check`` where the web runs its reads: the messages' own worker thread."""
    try:
        messages._executor.submit(check, messages).result(timeout=120)
    finally:
        messages.close()


def sqlite_messages(data: Path) -> Messages:
    """A data directory whose index and files hold :data:`MESSAGES`."""
    messages = Messages(data)
    db = sqlite3.connect(messages.data_dir / "index.sqlite")
    db.executescript(INDEX_SCHEMA)
    for queue_id, received, subject, read, tags, body in MESSAGES:
        raw = header_of(subject) + body
        path = f"catchall/new/{queue_id}"
        (data / path).parent.mkdir(parents=True, exist_ok=True)
        (data / path).write_bytes(raw)
        row = fields(queue_id, received, subject, read, len(raw)) | {"path": path}
        marks = ", ".join("?" for _ in row)
        db.execute(f"INSERT INTO messages ({', '.join(row)}) VALUES ({marks})", list(row.values()))
        db.executemany("INSERT INTO tags VALUES (?, ?)", [(queue_id, t) for t in tags])
    db.commit()
    db.close()
    return messages


def test_the_reads_on_sqlite(tmp_path: Path) -> None:
    in_worker(sqlite_messages(tmp_path), check_reads)


def test_message_row_stays_importable_from_messages() -> None:
    assert web_messages.MessageRow is MessageRow
    assert web_messages.summarize.__module__ == "mailroom.web.message_queries"


def test_search_sql_in_each_dialect() -> None:
    query = parse_query('subject:"50%" larger:1K')
    assert SQLITE.search(query.sql) == query.sql
    converted = POSTGRES.search(query.sql)
    assert "?" not in converted and converted.count("%s") == query.sql.count("?")
    assert "ILIKE %s ESCAPE" in converted and " LIKE " not in converted
    # A literal % in the SQL text is doubled for psycopg; parameters are not touched.
    assert POSTGRES.search("a LIKE '%x' AND b = ?") == "a ILIKE '%%x' AND b = %s"


def test_id_lists_in_each_dialect() -> None:
    assert SQLITE.id_in("m.id", ["a", "b"]) == ("m.id IN (?, ?)", ["a", "b"])
    assert POSTGRES.id_in("m.id", ["a", "b"]) == ("m.id = ANY(%s)", [["a", "b"]])
    ids = [str(n) for n in range(1201)]
    assert [len(c) for c in SQLITE.chunks(ids)] == [500, 500, 201]
    assert POSTGRES.chunks(ids) == [ids]
    assert SQLITE.chunks([]) == [] and POSTGRES.chunks([]) == [[]]


def test_each_dialects_own_words() -> None:
    assert SQLITE.unread_of("m.read") == "COALESCE(SUM(m.read = 0), 0)"
    assert POSTGRES.unread_of("read") == "count(*) FILTER (WHERE NOT read)"
    assert (SQLITE.booleans(True), POSTGRES.booleans(True)) == (1, True)
    assert "LEFT JOIN web.summaries s" in SQLITE.select()
    assert "'postgresql:' || m.id" in POSTGRES.select()


def test_message_row_from_values() -> None:
    values = [
        "ID1", 1.5, "catchall", "p", "s@a.test", '["r@b.test"]', "f", "t", "c", "subj",
        "<m@a>", 42, "127.0.0.1", "helo", None, 1, 0, None, None, None,
    ]  # fmt: skip
    row = message_row(values)
    assert (row.id, row.recipients, row.size, row.tls, row.read) == (
        "ID1",
        ["r@b.test"],
        42,
        True,
        False,
    )
    assert (row.attachments, row.inline, row.snippet, row.tags) == (0, 0, "", [])
