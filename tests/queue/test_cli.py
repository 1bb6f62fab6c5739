"""``mailroom queue list|show|retry|delete`` as a user runs it (a subprocess), on a queue with no
server running and on one whose runner is live (delivering to a real mailroom on loopback)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailroom.delivery import QueueRunner
from mailroom.queue.entry import QueueRecipient, QueueSpool
from tests.delivery.peers import (
    Inbox,
    fast,
    make_message,
    queue_message,
    receiver,
    route_to,
    stored,
)


def queue_cli(data: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "mailroom", "queue", *args, "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def test_list_show_and_json(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path)
    first = queue_message(
        spool,
        [
            "bob@example.test",
            QueueRecipient(
                "carol@example.test",
                last_reply="452 4.2.2 <carol@example.test>: Mailbox full",
                status="4.2.2",
                reason="mailboxfull",
                reason_why="words 'mailbox full'",
                remote_mta="mx.example.test",
                attempts=2,
                notify=["FAILURE", "DELAY"],
            ),
        ],
        message=make_message("first", "<first@a.test>"),
        envid="ENV1",
    )
    second = queue_message(spool, ["dave@other.test"], sender="")

    listing = queue_cli(tmp_path, "list").stdout
    assert first.id in listing and second.id in listing
    assert "<alice@a.test>" in listing and "<>" in listing
    assert "(452 4.2.2 <carol@example.test>: Mailbox full)" in listing
    assert "-- 2 messages" in listing and "3 recipients pending" in listing

    as_json = json.loads(queue_cli(tmp_path, "list", "--json").stdout)
    assert [e["id"] for e in as_json] == sorted([first.id, second.id])
    assert as_json[0]["recipients"][1]["reason"] == "mailboxfull"

    shown = queue_cli(tmp_path, "show", first.id[:12]).stdout
    assert f"Queue ID:     {first.id}" in shown
    assert "Envelope id:  ENV1" in shown
    # The reason where it was said, and the evidence beside the remote reply.
    assert "reason:    mailboxfull at mx.example.test (words 'mailbox full')" in shown
    assert "reply:     452 4.2.2 <carol@example.test>: Mailbox full" in shown
    assert "notify:    FAILURE,DELAY" in shown
    message = queue_cli(tmp_path, "show", first.id, "--message").stdout
    assert "Message-ID: <first@a.test>" in message
    assert json.loads(queue_cli(tmp_path, "show", first.id, "--json").stdout)["envid"] == "ENV1"
    missing = queue_cli(tmp_path, "show", "NOSUCHID", ok=False)
    assert missing.returncode == 1 and "no queue entry NOSUCHID" in missing.stderr


def test_retry_and_delete_without_a_server(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path)
    entries = [queue_message(spool, [f"u{n}@example.test"], next_attempt=4e9) for n in range(3)]
    done = queue_cli(tmp_path, "retry", entries[0].id)
    assert "go at its next start" in done.stderr
    assert [(spool.load(e.id) or e).next_attempt for e in entries] == [0.0, 4e9, 4e9]
    queue_cli(tmp_path, "retry")
    assert all((spool.load(e.id) or e).next_attempt == 0.0 for e in entries)
    deleted = queue_cli(tmp_path, "delete", entries[1].id)
    assert deleted.stdout == f"{entries[1].id}: deleted\n"
    assert spool.ids() == sorted([entries[0].id, entries[2].id])
    assert not spool.message_path(entries[1].id).exists()
    assert queue_cli(tmp_path, "delete", "NOSUCHID", ok=False).returncode == 1


@contextmanager
def live_runner(tmp_path: Path, spool: QueueSpool, **changes: Any) -> Iterator[dict[str, Any]]:
    """A receiving mailroom and a queue runner delivering to it, on a loop in a thread."""
    state: dict[str, Any] = {}
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        async with receiver(tmp_path / "b", faults=("rcpt:times=1:451 4.3.0 try later",)) as b:
            settings = fast(routes=route_to(b, "example.test"), **changes)
            runner = QueueRunner(spool, settings, hostname="mx.a.test", deliver_local=Inbox())
            await runner.start()
            state["runner"] = runner
            ready.set()
            await stop.wait()
            await runner.stop(grace=5)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield state
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def test_retry_and_delete_through_the_running_server(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    keep = [queue_message(spool, [f"u{n}@example.test"]) for n in range(3)]
    with live_runner(tmp_path, spool, retry_schedule=(3600.0,)) as state:
        runner = state["runner"]
        # One of the three met the 451 at its first attempt: it waits an hour now.
        deadline = time.monotonic() + 30
        while not (runner.delivered == 2 and [e.attempts for e in spool.entries()] == [1]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert len([e for e in keep if e.id in spool.ids()]) == 1
        extra = queue_message(spool, ["x@example.test"], next_attempt=4e9)
        done = queue_cli(tmp_path / "a", "delete", extra.id)
        assert done.stdout == f"{extra.id}: deleted\n"
        retried = queue_cli(tmp_path / "a", "retry")
        assert "1/1 attempted: 1 delivered or returned, 0 deferred again" in retried.stderr
        assert spool.ids() == []
    assert len(stored(tmp_path / "b")) == 3


def test_data_directory_from_config(tmp_path: Path) -> None:
    """``--config FILE`` finds the queue in the data directory the file names (the command line
    reads the configuration and hands the directory to the queue command)."""
    data = tmp_path / "elsewhere"
    entry = queue_message(QueueSpool(data), ["bob@example.test"])
    config = tmp_path / "mailroom.toml"
    config.write_text(f'data = "{data}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "mailroom", "queue", "list", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert entry.id in done.stdout and "-- 1 message" in done.stdout


def test_an_unreadable_entry_stops_neither_the_queue_nor_the_command(tmp_path: Path) -> None:
    """A JSON file in the queue that is not an entry (damaged on disk, cut short by hand): the
    runner's start and `mailroom queue list` died on it with a JSONDecodeError traceback, so
    one bad file kept the whole server from starting. Now it is logged with its path and left
    where it is, neither delivered nor removed, and the other entries go on."""
    spool = QueueSpool(tmp_path / "a")
    good = queue_message(spool, ["u1@example.test"])
    damaged = spool.active / "06H4AZCKKR0E4KH4.json"
    damaged.write_bytes(b'{"id": "06H4AZCKKR0E4KH4", "sender": ')
    spool.message_path("06H4AZCKKR0E4KH4").write_bytes(b"Subject: x\r\n\r\nx\r\n")
    listed = queue_cli(tmp_path / "a", "list", "--json")
    assert [entry["id"] for entry in json.loads(listed.stdout)] == [good.id]
    assert f"{damaged}: not a queue entry, left as it is (JSONDecodeError: " in listed.stderr
    with live_runner(tmp_path, spool) as state:
        runner = state["runner"]
        deadline = time.monotonic() + 30
        while runner.delivered < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert spool.ids() == ["06H4AZCKKR0E4KH4"]
    assert damaged.read_bytes() == b'{"id": "06H4AZCKKR0E4KH4", "sender": '
    assert spool.message_path("06H4AZCKKR0E4KH4").exists()
    assert len(stored(tmp_path / "b")) == 1
