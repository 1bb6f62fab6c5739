"""A data directory that cannot be what mailroom needs: ``mailroom serve`` says what is wrong
and exits, with no traceback, rather than start and refuse every message; ``mailroom reindex``
makes a damaged index whole again (the index is never the only copy of anything)."""

from __future__ import annotations

import json
import smtplib
import subprocess
from pathlib import Path

from tests.live import ServeProcess, mailroom_command, run_cli, serve_that_fails


def test_a_file_where_the_mail_directory_should_be_stops_the_start(tmp_path: Path) -> None:
    """It started, and answered every message 451 4.2.0 "the mailbox cannot take mail now (Not
    a directory)"; the file was made 0700 (executable) on the way, as if a directory."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "mail").write_bytes(b"")
    (data / "mail").chmod(0o600)
    done = serve_that_fails(data, timeout=30)
    assert done.returncode == 1
    assert f"mailroom serve: [Errno 20] Not a directory: '{data / 'mail'}'" in done.stderr
    assert (data / "mail").stat().st_mode & 0o777 == 0o600  # left as it was


def test_a_damaged_index_is_named_and_reindex_makes_it_anew(tmp_path: Path) -> None:
    """The index is never the only copy: a file over it that SQLite cannot read stopped the
    start with a traceback (sqlite3.DatabaseError: file is not a database), and `mailroom
    reindex`, the way to rebuild it, died the same way. Now serve names the file and the way
    out; reindex sets the damaged file aside and lists every message again."""
    data = tmp_path / "data"
    server = ServeProcess(
        ["--data", str(data), "--smtp", "127.0.0.1:0", "--web", "off", "--workers", "1"],
        tmp_path / "serve.log",
    ).wait_started()
    try:
        with smtplib.SMTP(*server.smtp) as client:
            client.sendmail("a@example.test", ["b@example.test"], b"Subject: kept\r\n\r\nhi\r\n")
    finally:
        assert server.terminate() == 0
    index = data / "index.sqlite"
    for journal in ("index.sqlite-wal", "index.sqlite-shm"):
        (data / journal).unlink(missing_ok=True)
    index.write_bytes(b"not a database, whatever it was" * 200)
    done = serve_that_fails(data, timeout=30)
    assert done.returncode == 1
    assert (
        f"mailroom serve: {index}: file is not a database; the index is rebuilt from the "
        "Maildirs by `mailroom reindex`"
    ) in done.stderr
    for command in (["list"], ["show", "06H4AZCK"]):
        listed = subprocess.run(
            mailroom_command(*command, "--data", str(data)), capture_output=True, text=True
        )
        assert "Traceback" not in listed.stderr, listed.stderr
        assert listed.returncode == 1
        assert f"mailroom {command[0]}: {index}: file is not a database;" in listed.stderr
    reindexed = subprocess.run(
        mailroom_command("reindex", "--data", str(data)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert reindexed.returncode == 0, reindexed.stderr
    rows = json.loads(run_cli("list", "--data", str(data), "--json"))
    assert [row["subject"] for row in rows] == ["kept"]
    (aside,) = data.glob("index.sqlite.damaged-*")
    assert aside.read_bytes().startswith(b"not a database")
    assert aside.stat().st_mode & 0o777 == 0o600
