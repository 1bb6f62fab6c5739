"""Three mail server nodes on one database, any of which may die: kill -9 of one while it
receives and of another while it delivers. Every message that got 250 is delivered to each of
its recipients exactly once, by whichever node holds its queue entry; the survivor takes the
dead nodes' entries over once their leases run out, and sends only the recipients the remote
server had not acknowledged.

The remote server is a second mailroom (a catcher with Maildirs), which counts what it
received: one file per transaction, its Delivered-To fields naming the recipients. Its end of
data waits (a fault rule): every one while the first node dies, every other one while the second
does, so when a node is killed its connections are held there, before the remote end took
anything: nothing is half-acknowledged, and the count must come out exact."""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import smtplib
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import psycopg

from mailroom.policy.faultrules import parse_rule
from tests.delivery.dnsserver import dns_that_cannot_answer
from tests.fleet import fleet
from tests.live import NO_DNS_CHECKS, queue_id_of, wait_for

__all__ = ["fleet"]

NODE_CONFIG = (
    """
hostname = "mx.test"
domains = ["example.test"]
dns_servers = ["{dns}"]

[policy]
check_null_mx = false
check_sender_domain = false
relay_networks = ["127.0.0.0/8"]

[queue]
max_per_destination = 4
retry_schedule = ["1s"]

[routes]
"one.test" = "127.0.0.1:{port}"
"two.test" = "127.0.0.1:{port}"
"""
    + NO_DNS_CHECKS
)


def _message(number: int) -> bytes:
    message = EmailMessage()
    message["From"] = "sender@example.test"
    message["To"] = "a@one.test, b@two.test"
    message["Subject"] = f"fleet {number}"
    message["Message-ID"] = f"<fleet-{number}@example.test>"
    message.set_content("x" * 2000 + f"\nmessage {number}\n")
    return message.as_bytes(policy=policy.SMTP)


def _send(address: tuple[str, int], number: int) -> str | None:
    """The queue id if the node answered 250 to the end of data, else None."""
    try:
        with smtplib.SMTP(*address, timeout=30) as client:
            client.ehlo("client.test")
            client.mail("sender@example.test")
            client.rcpt(f"user{number}@one.test")
            client.rcpt(f"user{number}@two.test")
            code, text = client.data(_message(number))
    except (OSError, smtplib.SMTPException):
        return None
    return queue_id_of(text) if code == 250 else None


def _received(peer_data: Path) -> collections.Counter[tuple[str, str]]:
    """(Message-ID, recipient) -> how many times the peer stored it."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for path in (peer_data / "mail" / "catchall" / "new").iterdir():
        head = path.read_bytes().split(b"\r\n\r\n", 1)[0].decode()
        lines = head.split("\r\n")
        message_id = next(line[12:].strip() for line in lines if line.startswith("Message-ID:"))
        for line in lines:
            if line.startswith("Delivered-To: "):
                counts[(message_id, line[14:].strip())] += 1
    return counts


def _held_by(url: str, node: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM queue_entries WHERE lease_owner LIKE %s", (f"{node}/%",)
        ).fetchone()[0]


def test_kill_9_while_receiving_and_while_delivering_loses_and_repeats_nothing(
    fleet, serve, pg_url, tmp_path
) -> None:
    # While node a receives (and already delivers), every end of data is held: its kill can
    # never fall between the remote 250 and the queue's record of it, the one moment no mail
    # system can close (the message would be sent again, RFC 5321 §6.1). CI met that once.
    peer = serve(faults=("eod:delay=8",))
    config = tmp_path / "node.toml"
    config.write_text(NODE_CONFIG.format(dns=dns_that_cannot_answer(), port=peer.smtp[1]))
    flags = ("--config", str(config), "--queue-lease", "3", "--log-level", "info")
    nodes = {
        name: fleet(name, address, pg_url, *flags)
        for name, address in (("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4"))
    }

    # Receiving: messages spread over the three nodes, node a killed halfway through.
    accepted: dict[int, str] = {}
    order = itertools.cycle("abc")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        first = {pool.submit(_send, nodes[next(order)].smtp, n): n for n in range(30)}
        time.sleep(0.3)
        nodes["a"].kill()
        killed_a = time.monotonic()
        rest = {pool.submit(_send, nodes["bc"[n % 2]].smtp, n): n for n in range(30, 60)}
        for future, number in {**first, **rest}.items():
            queue_id = future.result()
            if queue_id is not None:
                accepted[number] = queue_id
    assert len(accepted) >= 40, accepted  # node a's refused connections are the rest
    held_by_a = _held_by(pg_url, "a")
    # From now on every other one: node b's connections fill with held ones, the rest go
    # through, so a message can be half delivered when b dies.
    peer.call(
        lambda: peer.mail_server.faults.replace(
            lambda rule: True, [parse_rule("eod:every=2:delay=8")]
        )
    )

    # Delivering: node b's connections wait at the peer's end of data; kill it there.
    wait_for(lambda: _held_by(pg_url, "b") > 0, timeout=30)
    time.sleep(2.0)
    held_by_b = _held_by(pg_url, "b")
    nodes["b"].kill()
    killed_b = time.monotonic()
    assert held_by_a + held_by_b > 0, "the dead nodes held no work: nothing was taken over"
    peer.call(lambda: peer.mail_server.faults.clear())

    # Node c takes over once the leases (3 s) run out, and the queue empties.
    def queue_empty() -> bool:
        with psycopg.connect(pg_url) as conn:
            return conn.execute("SELECT count(*) FROM queue_entries").fetchone()[0] == 0

    wait_for(queue_empty, timeout=120, interval=0.5)
    assert time.monotonic() - killed_b > 3.0 or held_by_b == 0
    assert time.monotonic() - killed_a > 3.0

    counts = _received(peer.data)
    for number in accepted:
        for recipient in (f"user{number}@one.test", f"user{number}@two.test"):
            assert counts[(f"<fleet-{number}@example.test>", recipient)] == 1, (
                number,
                recipient,
                counts[(f"<fleet-{number}@example.test>", recipient)],
            )
    # A message never acknowledged may have been kept (its 250 lost with node a), never twice.
    assert max(counts.values()) == 1
    log = nodes["c"].stderr
    assert "status=sent" in log


def test_a_refused_recipient_is_bounced_into_the_senders_mailbox(
    fleet, serve, pg_url, tmp_path
) -> None:
    """The shared queue's runner reports as the file queue's does: a 550 from the remote end
    becomes a DSN, stored (in the database) for the local sender, and the entry goes."""
    peer = serve(faults=("rcpt:*@one.test:550 5.1.1 No such user",))
    config = tmp_path / "node.toml"
    config.write_text(
        NODE_CONFIG.format(dns=dns_that_cannot_answer(), port=peer.smtp[1])
        + '\n[users."sender@example.test"]\n'
    )
    node = fleet("a", "127.0.0.2", pg_url, "--config", str(config))
    queue_id = _send(node.smtp, 1)
    assert queue_id is not None

    def report() -> tuple[str, str] | None:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT mailbox, sender FROM messages WHERE id <> %s", (queue_id,)
            ).fetchone()
            queued = conn.execute("SELECT count(*) FROM queue_entries").fetchone()[0]
        return row if row is not None and queued == 0 else None

    mailbox, sender = wait_for(report, timeout=60, interval=0.5)
    assert (mailbox, sender) == ("example.test/sender", "")
    with psycopg.connect(pg_url) as conn:
        body = b"".join(
            bytes(r[0])
            for r in conn.execute(
                "SELECT chunk FROM message_bodies b JOIN messages m ON m.id = b.id "
                "WHERE m.mailbox = 'example.test/sender' ORDER BY seq"
            )
        )
    assert b"Final-Recipient: rfc822; user1@one.test" in body
    assert b"Status: 5.1.1" in body
    with psycopg.connect(pg_url) as conn:
        relayed = conn.execute("SELECT count(*) FROM messages WHERE id = %s", (queue_id,))
        assert relayed.fetchone()[0] == 0
    # The recipient at two.test was delivered once; the relayed message left with its entry.
    assert sum(_received(peer.data).values()) == 1
