"""The session archives (mailroom.activity.transcript_archive): what SessionArchive gives both
the data directory's ``transcripts.sqlite`` and a fleet's PostgreSQL table, as one contract.
It runs here on SQLite; tests/postgres/test_transcript_archive.py runs it on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from mailroom.activity.transcript import Transcript
from mailroom.activity.transcript_archive import (
    COLUMNS,
    SessionArchive,
    SessionFilter,
    TranscriptArchive,
    session_record,
)


def session(
    session_id: str, started: float, sender: str, reply: bytes, messages: list[str]
) -> Transcript:
    """A finished session: its MAIL and RCPT, the last reply, the messages it stored."""
    transcript = Transcript(session_id, "192.0.2.7", 40000, "smtp")
    transcript.started = started
    transcript.command(f"MAIL FROM:<{sender}>".encode())
    transcript.reply(b"250 2.1.0 Ok\r\n")
    transcript.command(b"RCPT TO:<bob@b.test>")
    transcript.reply(reply)
    transcript.note("a note")
    transcript.messages = list(messages)
    transcript.ended = started + 1
    transcript.freeze()
    return transcript


SESSIONS = [
    session("S1", 100.0, "alice@a.test", b"250 2.0.0 Ok: queued as Q1\r\n", ["Q1"]),
    session("S2", 200.0, "50%off@spam.test", b"550 5.1.1 No such user\r\n", []),
    session("S3", 300.0, "carol@c.test", b"451 4.3.0 Try again later\r\n", []),
]


def check_archive(archive: SessionArchive) -> None:
    """What both archives answer alike (started, and empty)."""
    for transcript in SESSIONS:
        archive.save(transcript)
    assert archive.flush()
    assert archive.dropped == 0

    stored = archive.get("S1")
    assert stored is not None
    assert stored["entries"] == SESSIONS[0].to_dict()["entries"]  # as to_dict() gives them
    assert stored["messages"] == ["Q1"] and stored["client"] == "192.0.2.7"
    assert archive.get("nosuch") is None
    by_message = archive.for_message("Q1")
    assert by_message is not None and by_message["id"] == "S1"
    assert archive.for_message("Q2") is None

    total, found = archive.list(SessionFilter(), 2)
    assert total == 3 and [s["id"] for s in found] == ["S3", "S2"]  # newest first
    assert "entries" not in found[0]
    assert found[0]["worst_reply"] == "451 4.3.0 Try again later"
    assert found[1]["senders"] == ["50%off@spam.test"] and found[1]["recipients"] == ["bob@b.test"]
    assert archive.list(SessionFilter(refused=True), 10)[0] == 2
    assert [s["id"] for s in archive.list(SessionFilter(failed=True), 10)[1]] == ["S3", "S2"]
    # The filter's text is matched literally, a % too (5%o would match 50%off as a wildcard).
    assert [s["id"] for s in archive.list(SessionFilter(sender="50%"), 10)[1]] == ["S2"]
    assert archive.list(SessionFilter(sender="5%o", client="192.0.2"), 10)[0] == 0
    assert archive.list(SessionFilter(recipient="BOB@"), 10)[0] == 3

    # Saved again (a session is written once; a second save replaces it).
    archive.save(SESSIONS[0])
    assert archive.flush()
    assert archive.list(SessionFilter(), 10)[0] == 3

    archive.max_count = 2
    archive.prune()
    assert [s["id"] for s in archive.list(SessionFilter(), 10)[1]] == ["S3", "S2"]
    assert archive.for_message("Q1") is None


def test_the_archive_on_sqlite(tmp_path: Path) -> None:
    archive = TranscriptArchive(tmp_path / "transcripts.sqlite", max_count=100, max_age=0)
    archive.start()
    try:
        check_archive(archive)
    finally:
        archive.close()
    # Closed: the writer and the reader are gone; the file stays, readable by its owner only.
    assert (tmp_path / "transcripts.sqlite").stat().st_mode & 0o077 == 0
    assert archive._reader is None and archive._thread is None


def test_an_archive_past_its_age_is_pruned(tmp_path: Path) -> None:
    archive = TranscriptArchive(tmp_path / "t.sqlite", max_count=100, max_age=3600)
    archive.start()
    try:
        archive.save(SESSIONS[0])  # ended in 1970
        assert archive.flush()
        archive.prune()
        assert archive.list(SessionFilter(), 10) == (0, [])
    finally:
        archive.close()


def test_a_session_record_fills_the_shared_columns() -> None:
    record = session_record(SESSIONS[1].compact())
    values = dict(zip(COLUMNS, record.values, strict=True))
    assert values["id"] == "S2" and values["started"] == 200.0 and values["ended"] == 201.0
    assert (values["sender"], values["recipients"]) == ("50%off@spam.test", "bob@b.test")
    assert (values["worst_code"], values["stored"]) == (550, 0)
    assert json.loads(values["summary"]) == record.summary
    assert "entries" not in record.summary and record.summary["worst_reply"].startswith("550")
    assert json.loads(values["data"])["entries"][0][1:] == ["C", "MAIL FROM:<50%off@spam.test>"]
    assert session_record(SESSIONS[0].compact()).messages == ["Q1"]


def test_a_damaged_archive_is_set_aside_and_mail_goes_on(tmp_path: Path) -> None:
    """A transcripts.sqlite SQLite cannot read stopped mailroom serve at start with a traceback
    (sqlite3.DatabaseError: file is not a database): no mail for want of a record for
    people. Now it is set aside (kept, 0600) and a new archive made."""
    path = tmp_path / "transcripts.sqlite"
    path.write_bytes(b"not a database" * 100)
    path.chmod(0o600)
    archive = TranscriptArchive(path, max_count=100, max_age=0)
    archive.start()
    try:
        check_archive(archive)
    finally:
        archive.close()
    (aside,) = tmp_path.glob("transcripts.sqlite.damaged-*")
    assert aside.read_bytes() == b"not a database" * 100
    assert aside.stat().st_mode & 0o777 == 0o600
