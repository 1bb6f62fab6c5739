"""``mailroom serve`` as a process: graceful shutdown on SIGTERM and SIGINT, one log line per
transaction, and the defaults with no options at all."""

from __future__ import annotations

import re
import signal
import smtplib
import socket
import time
from pathlib import Path

import pytest

from tests.live import (
    LineClient,
    ServeProcess,
    assert_stored,
    cli_list,
    free_port,
    maildir_files,
    queue_id_of,
    tls_context,
    wait_for,
)

SHUTTING_DOWN = b"421 4.3.2 mx.test Service shutting down, closing transmission channel\r\n"


def start_message(client: LineClient) -> None:
    assert client.reply().startswith(b"220 ")
    assert client.command(b"EHLO client.example.test").startswith(b"250-")
    assert client.command(b"MAIL FROM:<alice@example.test>") == b"250 2.1.0 Ok\r\n"
    assert client.command(b"RCPT TO:<bob@example.test>") == b"250 2.1.5 Ok\r\n"
    assert client.command(b"DATA").startswith(b"354 ")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_graceful_shutdown(serve_process, signum: int) -> None:
    process: ServeProcess = serve_process("--shutdown-grace", "20")
    idle = LineClient(process.smtp)
    assert idle.reply().startswith(b"220 ")
    assert idle.command(b"EHLO idle.example.test").startswith(b"250-")
    greeted = LineClient(process.smtp)
    assert greeted.reply().startswith(b"220 ")
    sending = LineClient(process.smtp)
    start_message(sending)
    head = b"Subject: in flight\r\n\r\nthe first half, "
    sending.send(head)

    process.process.send_signal(signum)
    # Idle sessions hear 421 4.3.2 at once and are closed...
    assert idle.reply() == SHUTTING_DOWN
    assert idle.closed()
    assert greeted.reply() == SHUTTING_DOWN
    assert greeted.closed()
    # ...and no one new gets in.
    wait_for(lambda: _refused_or_closed(process.smtp))
    # The message in flight may finish: its 250, then 421, then the end.
    assert process.process.poll() is None
    tail = b"the second half.\r\n"
    sending.send(tail + b".\r\n")
    reply = sending.reply()
    queue_id = queue_id_of(reply)
    assert sending.reply() == SHUTTING_DOWN
    assert sending.closed()
    assert process.process.wait(timeout=30) == 0
    assert_stored(
        process_data(process),
        queue_id,
        head + tail,
        sender="alice@example.test",
        recipients=["bob@example.test"],
    )
    for client in (idle, greeted, sending):
        client.close()


def _refused_or_closed(address: tuple[str, int]) -> bool:
    try:
        client = LineClient(address, timeout=5)
    except OSError:
        return True  # the listener is closed
    try:
        greeting = client.reply()
    except OSError:
        return True
    finally:
        client.close()
    return greeting in (b"", SHUTTING_DOWN)


def process_data(process: ServeProcess) -> Path:
    return process.log.parent / "data"


def test_grace_period_ends(serve_process) -> None:
    process: ServeProcess = serve_process("--shutdown-grace", "0.5")
    slow = LineClient(process.smtp, timeout=20)
    start_message(slow)
    slow.send(b"Subject: too slow\r\n\r\nand never finished")
    process.process.send_signal(signal.SIGTERM)
    # After the grace period the message is given up: 421 4.3.2, nothing stored.
    assert slow.reply() == SHUTTING_DOWN
    assert slow.closed()
    slow.close()
    assert process.process.wait(timeout=30) == 0
    data = process_data(process)
    assert not maildir_files(data) and not maildir_files(data, "tmp")


LOG_LINE = re.compile(
    r"(?P<id>[0-9A-Z]{16}|NOQUEUE): client=127\.0\.0\.1 from=<(?P<sender>[^>]*)> "
    r"to=(?P<to>\S+) size=(?P<size>\d+) via=(?P<via>DATA|BDAT) reply=(?P<reply>.+)$",
    re.MULTILINE,
)


def test_one_log_line_per_transaction(serve_process) -> None:
    process: ServeProcess = serve_process("--max-message-size", "1K")
    bodies = [b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n22\r\n"]
    ids = []
    with smtplib.SMTP(*process.smtp) as client:
        client.ehlo()
        for body in bodies:
            client.mail("alice@example.test")
            client.rcpt("bob@example.test")
            client.rcpt("carol@example.test")
            code, text = client.data(body)
            ids.append(queue_id_of(text))
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        code, _ = client.data(b"Subject: too big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 20)
        assert code == 552
        assert client.docmd("VRFY")[0] == 501  # a refused command
    assert process.terminate() == 0
    log = process.stderr
    lines = list(LOG_LINE.finditer(log))
    accepted = [m for m in lines if m["reply"].startswith("250")]
    assert [m["id"] for m in accepted] == ids
    for match, body in zip(accepted, bodies, strict=True):
        assert match["sender"] == "alice@example.test"
        assert match["to"] == "<bob@example.test>,<carol@example.test>"
        assert int(match["size"]) == len(body)
        assert match["via"] == "DATA"
    # Each queue id is logged once: one line per transaction.
    for queue_id in ids:
        assert log.count(queue_id) == 1, log
    # A refused command is logged with the reply that was sent.
    assert re.search(r"refused: client=127\.0\.0\.1 stage=VRFY reply=501 5\.5\.4 ", log), log
    (refused,) = [m for m in lines if not m["reply"].startswith("250")]
    assert refused["id"] == "NOQUEUE" and refused["to"] == "<bob@example.test>"
    assert refused["reply"] == "552 5.3.4 Error: message exceeds fixed maximum message size"
    assert "stage=END_OF_DATA" not in log  # not a second line for the same transaction
    assert "Traceback" not in log


def test_serve_with_no_options(tmp_path: Path, serve_process) -> None:
    if not free_port(1025):
        pytest.skip("127.0.0.1:1025 is in use")
    if not free_port(8025):
        pytest.skip("127.0.0.1:8025 (the web UI's default) is in use")
    cwd = tmp_path / "empty"
    cwd.mkdir()
    process: ServeProcess = serve_process(bare=True, cwd=cwd)
    assert process.smtp == ("127.0.0.1", 1025)
    with smtplib.SMTP("127.0.0.1", 1025) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == str(50 * 1024 * 1024)
        assert "starttls" not in client.esmtp_features and "auth" not in client.esmtp_features
        client.mail("alice@example.test")
        client.rcpt("anyone@anywhere.example")  # any recipient: a catcher
        code, text = client.data(b"Subject: defaults\r\n\r\nhi\r\n")
        assert code == 250
    data = cwd / "mailroom-data"
    assert_stored(
        data,
        queue_id_of(text),
        b"Subject: defaults\r\n\r\nhi\r\n",
        sender="alice@example.test",
        recipients=["anyone@anywhere.example"],
        hostname=socket.gethostname(),
    )
    assert (data / "index.sqlite").is_file()
    assert process.terminate() == 0
    assert sorted(p.name for p in cwd.iterdir()) == ["mailroom-data"]


def test_graceful_shutdown_between_chunks(serve_process) -> None:
    """A message sent with BDAT is in flight from its first chunk to its last."""
    process: ServeProcess = serve_process("--shutdown-grace", "20")
    idle = LineClient(process.smtp)
    assert idle.reply().startswith(b"220 ")
    sending = LineClient(process.smtp)
    assert sending.reply().startswith(b"220 ")
    sending.command(b"EHLO client.example.test")
    sending.command(b"MAIL FROM:<alice@example.test>")
    sending.command(b"RCPT TO:<bob@example.test>")
    first, last = b"Subject: chunked\r\n\r\nfirst, ", b"last.\r\n"
    sending.send(b"BDAT %d\r\n" % len(first) + first)
    assert sending.reply().startswith(b"250 2.0.0 ")
    process.process.send_signal(signal.SIGTERM)
    assert idle.reply() == SHUTTING_DOWN
    sending.send(b"BDAT %d LAST\r\n" % len(last) + last)
    queue_id = queue_id_of(sending.reply())
    assert sending.reply() == SHUTTING_DOWN
    assert sending.closed()
    assert process.process.wait(timeout=30) == 0
    assert_stored(
        process_data(process),
        queue_id,
        first + last,
        sender="alice@example.test",
        recipients=["bob@example.test"],
    )
    idle.close()
    sending.close()


def test_killed_server_loses_nothing_it_acknowledged(serve_process) -> None:
    process: ServeProcess = serve_process()
    ids = []
    with smtplib.SMTP(*process.smtp) as client:
        client.ehlo()
        for n in range(5):
            client.mail("alice@example.test")
            client.rcpt("bob@example.test")
            code, text = client.data(f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())
            assert code == 250
            ids.append(queue_id_of(text))
        # One more, cut off in the middle: never acknowledged.
        client.putcmd("mail", "FROM:<alice@example.test>")
        client.getreply()
        client.putcmd("rcpt", "TO:<bob@example.test>")
        client.getreply()
        client.putcmd("data")
        client.getreply()
        client.send(b"Subject: lost\r\n\r\n" + b"x" * 70 + b"\r\n")
        process.process.kill()
        assert process.process.wait(timeout=30) == -signal.SIGKILL
    data = process_data(process)
    for n, queue_id in enumerate(ids):
        assert_stored(
            data,
            queue_id,
            f"Subject: {n}\r\n\r\nbody {n}\r\n".encode(),
            sender="alice@example.test",
            recipients=["bob@example.test"],
        )
    assert {row["id"] for row in cli_list(data)} == set(ids)
    # It starts again on the same data, and takes mail.
    again: ServeProcess = serve_process()
    with smtplib.SMTP(*again.smtp) as client:
        assert (
            client.sendmail("a@example.test", ["b@example.test"], b"Subject: after\r\n\r\n") == {}
        )
    assert again.terminate() == 0
    assert len(cli_list(data)) == len(ids) + 1
    assert not maildir_files(data, "tmp")


def test_a_tls_client_that_neither_reads_nor_closes_does_not_hold_the_shutdown(
    serve_process,
) -> None:
    """An idle session over TLS gets 421 4.3.2 and its TLS is closed, which waits for the
    client's close_notify; clients that send none (and read nothing) held the stop for the
    whole grace period, and asyncio's own TLS shutdown timeout after it. The grace is for
    messages in flight: with none, the server is gone well inside it."""
    process: ServeProcess = serve_process("--tls", "self-signed", "--shutdown-grace", "60")
    context = tls_context(process_data(process))
    stuck = []
    for _ in range(3):
        sock = socket.create_connection(process.smtp, timeout=30)
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        sock.sendall(b"EHLO stuck.example.test\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\n")
        assert reader.readline().startswith(b"220 ")
        stuck.append(context.wrap_socket(sock, server_hostname="127.0.0.1"))
    started = time.monotonic()
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(timeout=90) == 0
    assert time.monotonic() - started < 30, "held for the grace period"
    for sock in stuck:
        sock.close()
