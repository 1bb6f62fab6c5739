"""PostgreSQL stopped under load: sessions get clear temporary replies (451 4.3.0 at MAIL or
end of data, 421 4.3.2 at the greeting), nothing that got 250 is lost or stored twice, and the
nodes take mail again by themselves once the database is back."""

from __future__ import annotations

import collections
import smtplib
import threading
import time
from email import policy
from email.message import EmailMessage

import psycopg

from tests.fleet import fleet
from tests.pgserver import PostgresServer

__all__ = ["fleet"]


def _attempt(address: tuple[str, int], number: int) -> tuple[str, bytes]:
    """("250", queue id) or the refusal: (code, enhanced code and text)."""
    message = EmailMessage()
    message["From"] = "alice@example.test"
    message["To"] = "bob@example.test"
    message["Subject"] = f"load {number}"
    message["Message-ID"] = f"<load-{number}@example.test>"
    message.set_content(f"message {number}\n")
    try:
        with smtplib.SMTP(*address, timeout=60) as client:
            client.ehlo("client.test")
            code, text = client.mail("alice@example.test")
            if code != 250:
                return str(code), text
            client.rcpt("bob@example.test")
            code, text = client.data(message.as_bytes(policy=policy.SMTP))
            return str(code), text
    except smtplib.SMTPConnectError as exc:  # the greeting was a refusal
        return str(exc.smtp_code), exc.smtp_error
    except smtplib.SMTPServerDisconnected as exc:
        return "disconnected", str(exc).encode()


def test_database_stopped_under_load_gives_451_loses_nothing_and_recovers(
    fleet, pg_server: PostgresServer, pg_url
) -> None:
    nodes = [fleet("a", "127.0.0.2", pg_url), fleet("b", "127.0.0.3", pg_url)]
    results: list[tuple[int, str, bytes]] = []
    stop = threading.Event()
    counter = iter(range(1_000_000))
    lock = threading.Lock()

    def client(node_index: int) -> None:
        while not stop.is_set():
            with lock:
                number = next(counter)
            code, text = _attempt(nodes[node_index].smtp, number)
            with lock:
                results.append((number, code, text))

    threads = [threading.Thread(target=client, args=(i % 2,)) for i in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        before = len(results)
        pg_server.stop("immediate")  # as a crash: the next start recovers from the WAL
        time.sleep(3)
        during = len(results)
        pg_server.start()
        time.sleep(4)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        if not pg_server.running:
            pg_server.start()

    kinds = collections.Counter(
        "250" if code == "250" else f"{code} {text[:5].decode(errors='replace')}"
        for _, code, text in results
    )
    accepted = {number for number, code, _ in results if code == "250"}
    refused = [(code, text) for _, code, text in results if code != "250"]
    assert refused, kinds  # the outage was seen
    for code, text in refused:
        assert (code, text[:5]) in (("451", b"4.3.0"), ("421", b"4.3.2")), (code, text, kinds)
    # Mail flowed before, and again after the database came back.
    assert before > 0 and during >= before
    late = [n for n, code, _ in results[during:] if code == "250"]
    assert late, ("no mail accepted after the database returned", kinds)
    with psycopg.connect(pg_url) as conn:
        stored = collections.Counter(
            row[0] for row in conn.execute("SELECT message_id FROM messages")
        )
    for number in accepted:
        assert stored[f"<load-{number}@example.test>"] == 1, number
    assert max(stored.values()) == 1
