"""The PostgreSQL store behind a running mailroom: 250 only after COMMIT, the message whole in
the database, batches of concurrent sessions in one transaction, 451 4.3.0 and 421 4.3.2 while
the database is down, and recovery when it returns."""

from __future__ import annotations

import concurrent.futures
import smtplib
import socket
from email import policy
from email.message import EmailMessage

import psycopg
import pytest

from tests.live import QUEUED_TEXT, wait_for
from tests.pgserver import PostgresServer


def _message(subject: str, body: str = "Hello.\n") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "alice@example.test"
    message["To"] = "bob@example.test"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@example.test>"
    message.set_content(body)
    return message


def _send(address: tuple[str, int], message: EmailMessage) -> str:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.ehlo("client.test")
        code, text = client.mail("alice@example.test")
        assert code == 250
        client.rcpt("bob@example.test")
        code, text = client.data(message.as_bytes(policy=policy.SMTP))
    assert code == 250, text
    match = QUEUED_TEXT.match(text.decode())
    assert match is not None, text
    return match["id"]


def _stored(url: str, queue_id: str) -> bytes:
    with psycopg.connect(url) as conn:
        header = conn.execute("SELECT header FROM messages WHERE id = %s", (queue_id,)).fetchone()
        chunks = conn.execute(
            "SELECT chunk FROM message_bodies WHERE id = %s ORDER BY seq", (queue_id,)
        ).fetchall()
    assert header is not None, queue_id
    return bytes(header[0]) + b"".join(bytes(c[0]) for c in chunks)


def test_a_message_is_in_the_database_when_250_comes(serve, pg_url) -> None:
    live = serve(store=pg_url, node="node-a")
    queue_id = _send(live.smtp, _message("first"))
    raw = _stored(pg_url, queue_id)
    assert raw.startswith(
        b"Return-Path: <alice@example.test>\r\nDelivered-To: bob@example.test\r\n"
    )
    assert b"Subject: first\r\n" in raw and raw.endswith(b"Hello.\r\n")
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT sender, recipients, subject, node, size, mailbox FROM messages WHERE id = %s",
            (queue_id,),
        ).fetchone()
    assert row == (
        "alice@example.test",
        '["bob@example.test"]',
        "first",
        "node-a",
        len(raw),
        "catchall",
    )


def test_a_large_message_is_stored_in_chunks_and_whole(serve, pg_url) -> None:
    live = serve(store=pg_url)
    body = "".join(f"line {n:07d} of a large message\n" for n in range(120_000))  # ~3.6 MB
    queue_id = _send(live.smtp, _message("large", body))
    raw = _stored(pg_url, queue_id)
    with psycopg.connect(pg_url) as conn:
        chunks = conn.execute(
            "SELECT count(*), max(length(chunk)) FROM message_bodies WHERE id = %s", (queue_id,)
        ).fetchone()
    assert chunks[0] >= 4 and chunks[1] <= 1024 * 1024
    assert raw.count(b" of a large message\r\n") == 120_000
    assert b"line 0119999 of a large message\r\n" in raw


def test_concurrent_sessions_share_transactions(serve, pg_url) -> None:
    live = serve(store=pg_url)
    store = live.mail_server.store
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda n: _send(live.smtp, _message(f"batch {n}")), range(200)))
    assert len(set(ids)) == 200
    assert store.committed == 200
    # Group commit: fewer transactions than messages (each batch is one), never more.
    assert store.transactions <= 200
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 200
        assert conn.execute("SELECT count(DISTINCT id) FROM message_bodies").fetchone()[0] == 200


def test_database_down_gives_451_at_mail_and_421_at_greeting_then_recovers(
    serve, pg_server: PostgresServer, pg_url
) -> None:
    live = serve(store=pg_url)
    _send(live.smtp, _message("before"))
    client = smtplib.SMTP(*live.smtp, timeout=30)
    client.ehlo("client.test")
    pg_server.stop()
    try:
        # The open session: its next transaction is refused at MAIL, or at end of data if the
        # store had not noticed yet; 451 4.3.0 either way, and nothing is kept.
        code, text = client.mail("alice@example.test")
        if code == 250:
            client.rcpt("bob@example.test")
            code, text = client.data(_message("during").as_bytes(policy=policy.SMTP))
        assert (code, text[:5]) == (451, b"4.3.0"), text
        wait_for(lambda: not live.mail_server.store.available, timeout=30)
        # A new session: 421 4.3.2 at the greeting.
        with socket.create_connection(live.smtp, timeout=30) as raw:
            greeting = raw.recv(1000)
        assert greeting.startswith(b"421 4.3.2 "), greeting
    finally:
        pg_server.start()
    wait_for(lambda: live.mail_server.store.available, timeout=30)
    client.rset()
    code, text = client.mail("alice@example.test")
    assert code == 250
    client.quit()
    queue_id = _send(live.smtp, _message("after"))
    assert b"Subject: after" in _stored(pg_url, queue_id)
    with psycopg.connect(pg_url) as conn:
        subjects = {r[0] for r in conn.execute("SELECT subject FROM messages")}
    assert subjects == {"before", "after"}


def test_serve_refuses_a_database_without_the_schema(serve, pg_server: PostgresServer) -> None:
    from mailroom.postgres.migrate import SchemaError

    url = pg_server.create_database()
    with pytest.raises(SchemaError, match="mailroom db migrate"):
        serve(store=url)


@pytest.mark.parametrize("size", [2_000, 3 * 1024 * 1024])  # in memory, and spilled to a file
def test_the_writer_reads_and_replaces_the_header_section_before_commit(
    pg_url, tmp_path, size
) -> None:
    """What email authentication does at end of data (read the message, put an
    Authentication-Results field on top), on a message kept in memory and on a spilled one."""
    import asyncio

    from mailroom.postgres.store import PostgresStore
    from mailroom.store.envelope import Envelope

    async def scenario() -> tuple[str, bool]:
        store = PostgresStore(
            pg_url, data_dir=tmp_path, hostname="mx.test", node="n", loop=asyncio.get_running_loop()
        )
        store.start()
        try:
            envelope = Envelope("0123456789ABCDEF", "a@example.test", ["b@example.test"])
            writer = store.begin(envelope)
            head = b"Subject: checked\r\n\r\n"
            writer.write(head)
            writer.write(b"y" * size + b"\r\n")
            spilled = writer.spilled
            read = await asyncio.to_thread(writer.read)
            assert read.startswith(head) and len(read) == len(head) + size + 2
            writer.replace_head(len(head), b"Authentication-Results: mx.test; spf=pass\r\n" + head)
            return await writer.commit(), spilled
        finally:
            store.close()

    queue_id, spilled = asyncio.run(scenario())
    assert spilled == (size > 1024 * 1024)
    raw = _stored(pg_url, queue_id)
    _, _, message = raw.partition(b"Authentication-Results: ")
    assert message.startswith(b"mx.test; spf=pass\r\nSubject: checked\r\n\r\nyyy")
    assert message.endswith(b"y" * 100 + b"\r\n") and message.count(b"y") == size
    assert not list(tmp_path.glob("tmp/pg-*"))  # the spill file is gone
