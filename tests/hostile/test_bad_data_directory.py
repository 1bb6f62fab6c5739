"""A data directory that cannot be what mailroom needs: ``mailroom serve`` says what is wrong
and exits, with no traceback, rather than start and refuse every message; ``mailroom reindex``
makes a damaged index whole again (the index is never the only copy of anything)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.live import mailroom_command


def serve_fails(data: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        mailroom_command(
            "serve", "--data", str(data), "--smtp", "127.0.0.1:0", "--web", "off", "--workers", "1"
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_a_file_where_the_mail_directory_should_be_stops_the_start(tmp_path: Path) -> None:
    """It started, and answered every message 451 4.2.0 "the mailbox cannot take mail now (Not
    a directory)"; the file was made 0700 (executable) on the way, as if a directory."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "mail").write_bytes(b"")
    (data / "mail").chmod(0o600)
    done = serve_fails(data)
    assert done.returncode == 1
    assert f"mailroom serve: [Errno 20] Not a directory: '{data / 'mail'}'" in done.stderr
    assert (data / "mail").stat().st_mode & 0o777 == 0o600  # left as it was
