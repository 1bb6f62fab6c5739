"""``mailroom queue`` on a fleet's node: ``list`` and ``show`` read the queue in PostgreSQL
(every node's entries, with the node holding each), not the node's empty queue directory;
``retry`` and ``delete`` act on it with the file queue's output and exit codes: through the node
holding an entry while nodes run, in the database when none holds it, and never on an entry a
node holds without that node."""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
import subprocess
import threading
from pathlib import Path

import psycopg

from mailroom.postgres.queue import PgQueue
from mailroom.postgres.queue_view import PgQueueView
from mailroom.queue.entry import QueueEntry, QueueRecipient
from tests.delivery.dnsserver import dns_that_cannot_answer
from tests.fleet import fleet
from tests.live import NO_DNS_CHECKS, LiveServer, mailroom_command, queue_id_of, run_cli, wait_for

__all__ = ["fleet"]

NODE_CONFIG = (
    """
store = "{url}"
hostname = "mx.test"
domains = ["example.test"]
dns_servers = ["{dns}"]

[policy]
check_null_mx = false
check_sender_domain = false
relay_networks = ["127.0.0.0/8"]

[queue]
retry_schedule = ["1h"]

[routes]
"far.test" = "127.0.0.1:1"
"""
    + NO_DNS_CHECKS
)


def _send(address: tuple[str, int], subject: str) -> str:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("sender@example.test")
        client.rcpt("someone@far.test")
        code, text = client.data(f"Subject: {subject}\r\n\r\nhello\r\n".encode())
    assert code == 250, text
    return queue_id_of(text)


def test_queue_commands_on_the_fleets_queue(fleet, pg_url, tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(NODE_CONFIG.format(dns=dns_that_cannot_answer(), url=pg_url))
    a = fleet("a", "127.0.0.2", pg_url, "--config", str(config))
    b = fleet("b", "127.0.0.3", pg_url, "--config", str(config))
    first, second = _send(a.smtp, "through a"), _send(b.smtp, "through b")

    def attempted() -> list[dict]:
        out = run_cli("queue", "list", "--json", "--config", str(config))
        entries = json.loads(out)
        return entries if all(e["attempts"] >= 1 for e in entries) else []

    # The first attempt (a refused connection) is recorded in the database by whichever node
    # took the entry; the listing is the fleet's, from either node's configuration.
    entries = wait_for(lambda: len(attempted()) == 2 and attempted(), timeout=60)
    assert sorted(e["id"] for e in entries) == sorted([first, second])
    for entry in entries:
        assert [r["address"] for r in entry["recipients"]] == ["someone@far.test"]
        assert entry["recipients"][0]["state"] == "pending"

    listing = run_cli("queue", "list", "--config", str(config)).decode()
    assert first in listing and second in listing
    assert "someone@far.test" in listing
    assert "-- 2 messages" in listing and "2 recipients pending" in listing
    assert "(held by a/" in listing or "(held by b/" in listing  # the lease holders

    shown = run_cli("queue", "show", first, "--config", str(config)).decode()
    assert f"Queue ID:     {first}" in shown
    assert "Sender:       <sender@example.test>" in shown
    assert "Attempts:     1" in shown
    assert "Held by:      " in shown
    assert "<someone@far.test>  pending" in shown
    message = run_cli("queue", "show", first, "--message", "--config", str(config))
    assert message.startswith(b"Received: ") and b"Subject: through a\r\n" in message
    size = int(listing.split(first, 1)[1].split()[0])
    assert size == len(message)

    # retry: the node holding the entry tries it again at once (a refused connection again).
    done = _queue("retry", first, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "1/1 attempted: 0 delivered or returned, 1 deferred again" in done.stderr
    assert "Traceback" not in done.stderr
    again = json.loads(run_cli("queue", "show", first, "--json", "--config", str(config)))
    assert again["attempts"] == 2
    # Every entry, without following: both nodes take the request for what each holds.
    done = _queue("retry", "--no-wait", "--config", str(config))
    assert (done.returncode, done.stdout) == (0, "mailroom queue retry: 2 entries due now\n")

    # delete: the holding node removes it (message and all), the file queue's output.
    done = _queue("delete", second, "--config", str(config))
    assert (done.returncode, done.stdout) == (0, f"{second}: deleted\n"), done.stderr
    listed = json.loads(run_cli("queue", "list", "--json", "--config", str(config)))
    assert [e["id"] for e in listed] == [first]
    with psycopg.connect(pg_url) as conn:
        assert _count(conn, "messages", second) == 0
    missing = _queue("delete", "NOSUCHID", "--config", str(config))
    assert missing.returncode == 1 and "no queue entry NOSUCHID" in missing.stderr

    # With the fleet stopped (its leases given up), the command acts in the database itself.
    a.terminate()
    b.terminate()
    view = PgQueueView(pg_url)
    wait_for(lambda: view.running() == 0, timeout=30)  # their backends have ended too
    view.close()
    done = _queue("retry", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "1 entries due now; no mailroom is running the queue in postgresql://" in done.stderr
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT next_attempt, state->>'next_attempt' FROM queue_entries WHERE id = %s",
            (first,),
        ).fetchone()
    assert row is not None and row[0] == 0 and float(row[1]) == 0
    done = _queue("delete", first, "--config", str(config))
    assert (done.returncode, done.stdout) == (0, f"{first}: deleted\n"), done.stderr
    assert b"the queue is empty" in run_cli("queue", "list", "--config", str(config))


def _queue(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mailroom_command("queue", *args), capture_output=True, text=True, timeout=120
    )


def _count(conn: psycopg.Connection, table: str, queue_id: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (queue_id,)).fetchone()
    assert row is not None
    return int(row[0])


def _queued(url: str, queue_id: str, *, owner: str | None = None, lease: float = 0.0) -> None:
    """An entry in the database as a node's store queues it, due in the far future."""
    entry = QueueEntry(queue_id, "sender@example.test", [QueueRecipient("x@far.test")])
    entry.next_attempt = 4e9
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO messages (id, received, mailbox, sender, recipients, size, header) "
            "VALUES (%s, 0, '(queue)', %s, '[]', 0, '')",
            (queue_id, entry.sender),
        )
        conn.execute(
            "INSERT INTO queue_entries (id, header, state, next_attempt, lease_owner, "
            "lease_until) VALUES (%s, '', %s, %s, %s, "
            "extract(epoch FROM clock_timestamp()) + %s)",
            (queue_id, entry.to_json().decode(), entry.next_attempt, owner, lease),
        )


def test_an_entry_a_node_holds_is_not_changed_without_it(pg_url: str) -> None:
    """A live lease whose node does not answer: neither retry nor delete touches the entry
    (its node may be in a transaction for it right now); a lease that ran out is anybody's, as
    for a claim."""
    _queued(pg_url, "HELD1", owner="gone/1.abcdef01", lease=3600)
    _queued(pg_url, "LAPSED1", owner="gone/1.abcdef01", lease=-1)
    view = PgQueueView(pg_url)
    try:
        assert view.running() == 0
        assert view.delete(["HELD1", "LAPSED1"], wait=1.0) == ["HELD1"]
        assert view.retry(["HELD1"], every=False, wait=1.0) == ["HELD1"]
        assert view.ids() == ["HELD1"]
        entry = view.load("HELD1")
        assert entry is not None and entry.next_attempt == 4e9
        assert view.held_by("HELD1") == "gone/1.abcdef01"
    finally:
        view.close()
    with psycopg.connect(pg_url) as conn:
        assert _count(conn, "messages", "LAPSED1") == 0


def test_a_claim_in_flight_wins_over_a_delete(pg_url: str) -> None:
    """A node's claim that locked the row first: the delete waits for its transaction, then
    finds the entry held and leaves it to that node."""
    _queued(pg_url, "RACE1")
    view = PgQueueView(pg_url)
    result: list[list[str]] = []
    with psycopg.connect(pg_url) as claiming:
        with claiming.transaction():
            claiming.execute(
                "UPDATE queue_entries SET lease_owner = 'other/2.00000000', "
                "lease_until = extract(epoch FROM clock_timestamp()) + 3600 WHERE id = 'RACE1'"
            )
            worker = threading.Thread(
                target=lambda: result.append(view.delete(["RACE1"], wait=1.0))
            )
            worker.start()
            # Whatever the delete has done by now, it cannot get past the row lock.
            worker.join(0.5)
            assert not result
        worker.join(60)
    view.close()
    assert result == [["RACE1"]]
    with psycopg.connect(pg_url) as conn:
        assert _count(conn, "queue_entries", "RACE1") == 1


class _Runner:
    def __init__(self) -> None:
        self.retried: list[str] = []
        self.deleted: list[str] = []

    def retry_now(self, ids: list[str] | None = None) -> list[str]:
        self.retried += ids or []
        return list(ids or [])

    async def delete(self, ids: list[str]) -> list[str]:
        self.deleted += ids
        return list(ids)

    def wake(self, ids: list[str]) -> None: ...

    def forget(self, ids: list[str]) -> None: ...

    def readmit(self, queue_id: str) -> bool:
        return True


def test_a_node_answers_for_what_it_holds(pg_url: str, tmp_path: Path) -> None:
    """The node's side (PgQueue.request): it acts only on the entries it holds, and says so."""
    _queued(pg_url, "MINE1")
    _queued(pg_url, "OTHER1", owner="other/3.00000000", lease=3600)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE queue_entries SET next_attempt = 0")

    async def main() -> list[dict[str, object]]:
        queue = PgQueue(pg_url, owner="me/4.00000000", root=tmp_path)
        queue.runner = runner = _Runner()
        assert await asyncio.to_thread(queue.claim) == ["MINE1"]
        answers = []
        listening = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
        async with listening:
            await listening.execute('LISTEN "mailroom_queue_done"')
            queue.request("not json")
            for action, ids in (("retry", ["MINE1", "OTHER1"]), ("delete", None)):
                queue.request(json.dumps({"request": action, "action": action, "ids": ids}))
                async for notification in listening.notifies(timeout=30, stop_after=1):
                    answers.append(json.loads(notification.payload))
        await queue.stop()
        assert runner.retried == ["MINE1"] and runner.deleted == ["MINE1"]
        return answers

    assert asyncio.run(main()) == [
        {"request": "retry", "owner": "me/4.00000000", "action": "retry", "ids": ["MINE1"]},
        {"request": "delete", "owner": "me/4.00000000", "action": "delete", "ids": ["MINE1"]},
    ]


def _in_data(peer: LiveServer) -> bool:
    """Whether a session of ``peer`` has its message data and waits for the reply now."""

    def look() -> bool:
        return any(
            transcript.ended is None
            and any(
                kind == "C" and str(value).startswith("<message data")
                for _, kind, value in transcript.entries
            )
            for transcript in peer.mail_server.transcripts.list(limit=100)
        )

    return bool(peer.call(look))


def test_an_entry_in_flight_is_deleted_by_its_node_and_not_sent_again(
    fleet, serve, pg_url, tmp_path: Path
) -> None:
    """``delete`` of an entry whose transaction waits at the remote end of data: the node
    holding it deletes it (the command does not take it from under the node), the transaction
    in flight ends as it would, and nothing more is sent for it."""
    peer = serve(faults=("eod:delay=20",))
    config = tmp_path / "node.toml"
    config.write_text(
        NODE_CONFIG.format(dns=dns_that_cannot_answer(), url=pg_url).replace(
            '"127.0.0.1:1"\n', f'"127.0.0.1:{peer.smtp[1]}"\n'
        )
    )
    node = fleet("a", "127.0.0.2", pg_url, "--config", str(config), "--log-level", "info")
    queue_id = _send(node.smtp, "in flight")
    wait_for(lambda: _in_data(peer), timeout=60)

    done = _queue("delete", queue_id, "--config", str(config))
    assert (done.returncode, done.stdout) == (0, f"{queue_id}: deleted\n"), done.stderr
    with psycopg.connect(pg_url) as conn:
        assert _count(conn, "queue_entries", queue_id) == 0

    # The transaction in flight ends: one copy at the peer, and the node does no more for it.
    def received() -> list[Path]:
        new = peer.data / "mail" / "catchall" / "new"
        return list(new.iterdir()) if new.exists() else []

    wait_for(lambda: len(received()) == 1 and not _in_data(peer), timeout=60)
    sent = wait_for(
        lambda: re.search(rf"{queue_id}: to=<someone@far.test>.*status=sent", node.stderr),
        timeout=30,
    )
    # Removed while its transaction waited: the node's log says so before the peer's 250.
    removed = node.stderr.index(f"{queue_id}: removed by request")
    assert removed < sent.start()
    assert b"the queue is empty" in run_cli("queue", "list", "--config", str(config))
    assert len(received()) == 1
