"""Disk full and write errors in the store: the message gets 452 4.3.1 (insufficient system
storage), nothing half-written is left anywhere, the server keeps serving and takes mail
again when space returns. First with faults injected at the store layer under a concurrent
load (every write, sync and rename may fail), then on a real, small filesystem (a tmpfs of a
few MiB, when this machine lets the test mount one) filled to the last page."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.loadgen import make_body, run_load
from mailroom.queue.entry import QueueEntry, QueueRecipient, QueueSpool
from mailroom.store import Index
from tests.hostile.test_kill import message_id_of
from tests.hostile.tools import stored_files, tmp_files
from tests.live import (
    LineClient,
    LiveServer,
    run_cli,
    serve_that_fails,
    server_overrides,
    split_trace,
)

STORAGE_FULL = b"452 4.3.1 Error: insufficient system storage\r\n"
SIZE = 4096


class FlakyDisk:
    """A store fault that fails in bursts: ``bad`` calls in a row raise ``error``, then ``good``
    calls pass, and so on. Deterministic, and it hits every place the store asks (opening and
    writing files, the group sync, the renames into new/)."""

    def __init__(self, error: int, bad: int = 40, good: int = 60) -> None:
        self.error = error
        self.bad, self.good = bad, good
        self.calls = 0
        self.failures = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            position = self.calls % (self.bad + self.good)
            self.calls += 1
            if position < self.bad:
                self.failures += 1
                raise OSError(self.error, os.strerror(self.error))


def assert_whole(data: Path, size: int = SIZE) -> dict[str, Path]:
    """Every stored message is exactly what was sent; returns them by Message-ID."""
    found: dict[str, Path] = {}
    for path in stored_files(data):
        message_id = message_id_of(path)
        assert message_id not in found, f"stored twice: {message_id}"
        _, body = split_trace(path.read_bytes())
        assert body == make_body(size, message_id=message_id), path
        found[message_id] = path
    return found


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_store_faults_under_load(serve, error: int) -> None:
    live: LiveServer = serve(max_connections_per_ip=0)
    host, port = live.smtp
    disk = FlakyDisk(error)
    live.mail_server.store.fault = disk
    result = asyncio.run(
        run_load(host, port, messages=2000, connections=20, size=SIZE, record=True)
    )
    assert disk.failures > 0
    # Each message either got its 250 or the refusal its error calls for (a full disk 452
    # 4.3.1; an I/O error is a local error, 451 4.3.0); nothing else, nothing lost in between.
    refusal = "452 4.3.1" if error == errno.ENOSPC else "451 4.3.0"
    assert set(result.refusals) <= {refusal}, result.refusals
    assert result.messages + result.failed == 2000
    assert result.failed == result.refusals.get(refusal, 0) > 0
    # Exactly the messages that got a 250 are stored, each whole; nothing is half-written.
    stored = assert_whole(live.data)
    assert set(stored) == set(result.accepted_ids)
    assert tmp_files(live.data) == []
    # Space returns: every message is taken again.
    live.mail_server.store.fault = None
    again = asyncio.run(run_load(host, port, messages=200, connections=10, size=SIZE, record=True))
    assert (again.messages, again.failed) == (200, 0)
    stored = assert_whole(live.data)
    assert set(stored) == set(result.accepted_ids) | set(again.accepted_ids)
    rows = live.mail_server.store.index.list(limit=100_000)
    assert {row.message_id for row in rows} == set(stored)
    print(
        f"{os.strerror(error)}: {disk.failures} of {disk.calls} store calls failed; "
        f"{result.messages} accepted, {result.failed} refused with {refusal}"
    )


# -- a real filesystem that fills up ------------------------------------------------------------


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test; skipped where mounting is not allowed."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(path: Path) -> int:
    """Write to ``path`` until the filesystem is full; the octets written."""
    written = 0
    block = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                written += os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return written
    finally:
        os.close(fd)


def send(live: LiveServer, body: bytes) -> bytes:
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    client.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
    replies = [client.reply() for _ in range(3)]
    assert replies[2].startswith(b"354 "), replies
    reply = client.command(body + b".")
    assert client.command(b"NOOP") == b"250 2.0.0 Ok\r\n"  # still serving this session
    client.close()
    return reply


def test_a_real_filesystem_fills_up(small_filesystem: Path) -> None:
    data = small_filesystem / "data"
    live = LiveServer(server_overrides(data, {})).start()
    try:
        ids = [f"<fs{n}@example.test>" for n in range(20)]
        accepted = []
        for message_id in ids[:5]:
            assert send(live, make_body(SIZE, message_id=message_id)).startswith(b"250 ")
            accepted.append(message_id)
        filler = small_filesystem / "filler"
        assert fill(filler) > 0
        # Full: small messages (written at the end) and a large one (spilled to its tmp file
        # while it streams in) are refused, and the server answers every time.
        for message_id in ids[5:10]:
            assert send(live, make_body(SIZE, message_id=message_id)) == STORAGE_FULL
        big = make_body(2 * 1024 * 1024, message_id="<big@example.test>")
        assert send(live, big) == STORAGE_FULL
        assert set(assert_whole(data)) == set(accepted)
        assert tmp_files(data) == []
        # Space returns.
        filler.unlink()
        for message_id in ids[10:15]:
            assert send(live, make_body(SIZE, message_id=message_id)).startswith(b"250 ")
            accepted.append(message_id)
        assert set(assert_whole(data)) == set(accepted)
        assert tmp_files(data) == []
    finally:
        live.stop()
    # The index may have missed rows while the disk was full (it is never the only copy):
    # reindex makes it whole.
    run_cli("reindex", "--data", str(data))
    index = Index(data / "index.sqlite")
    try:
        assert {row.message_id for row in index.list(limit=1000)} == set(accepted)
    finally:
        index.close()


def test_a_chunk_that_could_not_be_written_is_refused_at_once(small_filesystem: Path) -> None:
    """BDAT on a full disk: the chunk during which the write failed gets 452 4.3.1 and ends
    the transaction (RFC 3030 §2: no more chunks are sent), rather than 250 for every chunk
    still to come and the refusal only at LAST. The session goes on."""
    data = small_filesystem / "data"
    live = LiveServer(server_overrides(data, {})).start()
    try:
        fill(small_filesystem / "filler")
        client = LineClient(live.smtp)
        client.reply()
        client.command(b"EHLO client.example.test")
        assert client.command(b"MAIL FROM:<a@example.test>").startswith(b"250 ")
        assert client.command(b"RCPT TO:<b@example.test>").startswith(b"250 ")
        chunk = b"x" * 78 + b"\r\n"
        replies = []
        for _ in range(4):  # the message goes to its tmp file past 1 MiB: the third chunk
            client.send(b"BDAT 400000\r\n" + chunk * 5000)
            replies.append(client.reply())
            if not replies[-1].startswith(b"250 "):
                break
        assert replies[-1] == STORAGE_FULL, replies
        assert len(replies) < 4
        client.send(b"BDAT 2 LAST\r\nhi")
        assert client.reply().startswith(b"503 5.5.1 ")  # no transaction: the chunk is skipped
        assert client.command(b"NOOP").startswith(b"250 ")
        client.close()
        assert tmp_files(data) == []
    finally:
        live.stop()


def test_a_queue_save_on_a_full_disk_leaves_nothing_behind(small_filesystem: Path) -> None:
    """The runner records an entry's state (write a new JSON, fsync, rename over the old); on
    a full disk that fails and the old state stays. The half-written new one stayed too, in
    queue/tmp/ until the next start."""
    spool = QueueSpool(small_filesystem / "data").ensure()
    entry = QueueEntry(id="06H4AZCKKR0E4KH4", sender="a@example.test", recipients=[])
    spool.save(entry)
    fill(small_filesystem / "filler")
    entry.recipients = [QueueRecipient(f"r{n}@example.test") for n in range(2000)]
    with pytest.raises(OSError) as raised:
        spool.save(entry)
    assert raised.value.errno == errno.ENOSPC
    assert list(spool.tmp.iterdir()) == []
    saved = spool.load(entry.id)
    assert saved is not None and saved.recipients == []


def test_a_start_on_a_full_disk_says_so(small_filesystem: Path) -> None:
    """mailroom serve on a filesystem with no room for its index: a traceback ending in
    sqlite3.OperationalError before; now one line that names the file, and exit status 1."""
    fill(small_filesystem / "filler")
    data = small_filesystem / "data"
    done = serve_that_fails(data)
    assert done.returncode == 1
    assert f"mailroom serve: {data / 'index.sqlite'}: database or disk is full" in done.stderr


def test_transcripts_on_a_full_disk_are_dropped_with_one_line_each_batch(
    small_filesystem: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The session archive on a disk that fills up: the transcripts it cannot write are
    counted as dropped and said in one line, not a traceback a batch (one a session, under
    load, for as long as the disk stays full)."""
    from mailroom.activity.transcript import Transcript
    from mailroom.activity.transcript_archive import TranscriptArchive

    def transcript(n: int) -> Transcript:
        made = Transcript(f"S{n}", "192.0.2.7", 40000, "smtp")
        made.command(b"MAIL FROM:<" + b"x" * 60_000 + b"@a.test>")
        made.ended = made.started + 1
        made.freeze()
        return made

    archive = TranscriptArchive(small_filesystem / "transcripts.sqlite", max_count=0, max_age=0)
    archive.start()
    try:
        archive.save(transcript(0))  # a server at work: its archive open and written to
        assert archive.flush() and archive.dropped == 0
        fill(small_filesystem / "filler")  # then the disk fills up
        with caplog.at_level(logging.WARNING, logger="mailroom"):
            for n in range(1, 4):
                archive.save(transcript(n))
                assert archive.flush()
    finally:
        archive.close()
    assert archive.dropped == 3
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    lines = [r.getMessage() for r in caplog.records if "not kept" in r.getMessage()]
    assert len(lines) == 3 and "full" in lines[0], caplog.text
