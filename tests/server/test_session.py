"""A session's life in the running server: pipelined batches, clients that do not read, clients
that vanish mid-message, line endings, several listeners."""

from __future__ import annotations

import smtplib
import socket
from typing import Any

import pytest

from tests.live import LineClient, LiveServer, assert_stored, maildir_files, queue_id_of, wait_for


def only_session(live: LiveServer) -> Any:
    def found() -> Any:
        sessions = list(live.mail_server.smtp.sessions)
        return sessions[0] if len(sessions) == 1 else None

    return wait_for(found)


def test_pipelined_batch_is_answered_in_one_write(serve) -> None:
    live: LiveServer = serve()
    client = LineClient(live.smtp)
    client.reply()
    assert client.command(b"EHLO client.example.test").startswith(b"250-")
    session = only_session(live)
    writes: list[bytes] = []

    def count_writes() -> None:
        transport = session.transport
        write = transport.write

        def counted(data: bytes) -> None:
            writes.append(bytes(data))
            write(data)

        transport.write = counted

    live.call(count_writes)
    client.send(
        b"MAIL FROM:<alice@example.test>\r\n"
        b"RCPT TO:<bob@example.test>\r\n"
        b"RCPT TO:<carol@example.test>\r\n"
        b"RCPT TO:<not an address>\r\n"
        b"DATA\r\n"
    )
    replies = [client.reply() for _ in range(5)]
    assert replies[:3] == [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"250 2.1.5 Ok\r\n"]
    assert replies[3].startswith(b"501 5.1.3 ")
    assert replies[4].startswith(b"354 ")
    assert writes == [b"".join(replies)]
    queue_id = queue_id_of(client.command(b"Subject: pipelined\r\n\r\nhi\r\n."))
    client.close()
    assert_stored(
        live.data,
        queue_id,
        b"Subject: pipelined\r\n\r\nhi\r\n",
        sender="alice@example.test",
        recipients=["bob@example.test", "carol@example.test"],
    )


def test_whole_transactions_pipelined(serve) -> None:
    live: LiveServer = serve()
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    count = 50
    batch = b"".join(
        b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
        b"Subject: %d\r\n\r\nbody %d\r\n.\r\n" % (n, n)
        for n in range(count)
    )
    client.send(batch + b"QUIT\r\n")
    ids = []
    for _ in range(count):
        assert client.reply() == b"250 2.1.0 Ok\r\n"
        assert client.reply() == b"250 2.1.5 Ok\r\n"
        assert client.reply().startswith(b"354 ")
        ids.append(queue_id_of(client.reply()))
    assert client.reply() == b"221 2.0.0 Bye\r\n"
    assert client.closed()
    client.close()
    for n, queue_id in enumerate(ids):
        assert_stored(
            live.data,
            queue_id,
            b"Subject: %d\r\n\r\nbody %d\r\n" % (n, n),
            sender="alice@example.test",
            recipients=["bob@example.test"],
        )


def test_client_that_does_not_read_its_replies(serve) -> None:
    # The server stops reading while its replies pile up, and goes on once they are read.
    # (No junk limit: by default the 100th NOOP after the EHLO would end the session.)
    live: LiveServer = serve(max_junk_commands=0)
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    count = 100_000  # 600 kB of commands, 1.5 MB of replies: more than the socket buffers
    client.sock.setblocking(False)
    pending = memoryview(b"NOOP\r\n" * count)
    received = bytearray()
    client.sock.settimeout(30)
    while pending:
        try:
            client.sock.setblocking(False)
            sent = client.sock.send(pending)
            pending = pending[sent:]
        except BlockingIOError:
            # Both directions are full: the server has stopped reading. Now read a little.
            client.sock.settimeout(30)
            received += client.sock.recv(65536)
    client.sock.settimeout(30)
    expected = b"250 2.0.0 Ok\r\n" * count
    while len(received) < len(expected):
        data = client.sock.recv(1 << 20)
        assert data, "closed early"
        received += data
    assert received == expected
    client.sock.sendall(b"QUIT\r\n")
    assert client.sock.recv(100) == b"221 2.0.0 Bye\r\n"
    client.close()


@pytest.mark.parametrize("size", [1000, 3_000_000], ids=["in memory", "spilled"])
def test_client_vanishes_mid_message(serve, size: int) -> None:
    live: LiveServer = serve()
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    client.command(b"MAIL FROM:<alice@example.test>")
    client.command(b"RCPT TO:<bob@example.test>")
    assert client.command(b"DATA").startswith(b"354 ")
    client.send(b"Subject: never ends\r\n\r\n" + (b"x" * 98 + b"\r\n") * (size // 100))
    if size > 1_000_000:
        wait_for(lambda: maildir_files(live.data, "tmp"))  # it was being written
    client.sock.shutdown(socket.SHUT_RDWR)
    client.close()
    wait_for(lambda: not live.mail_server.smtp.sessions)
    wait_for(lambda: not maildir_files(live.data, "tmp"))
    assert not maildir_files(live.data)
    # And the next client is served.
    with smtplib.SMTP(*live.smtp) as good:
        assert good.sendmail("a@example.test", ["b@example.test"], b"Subject: ok\r\n\r\n") == {}
    assert len(maildir_files(live.data)) == 1


def half_closed_after(live: LiveServer, data: bytes) -> LineClient:
    """A client that sends a whole transaction up to DATA, then ``data``, then shuts down its
    sending side (``printf ... | nc -N``); it has read the replies up to the 354."""
    client = LineClient(live.smtp)
    client.reply()
    client.send(
        b"EHLO client.example.test\r\n"
        b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n" + data
    )
    client.sock.shutdown(socket.SHUT_WR)
    assert client.reply().startswith(b"250-")
    assert [client.reply() for _ in range(2)] == [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n"]
    assert client.reply().startswith(b"354 ")
    return client


def test_client_that_half_closes_after_quit_gets_every_reply(serve) -> None:
    """printf ... | nc -N: the whole session, QUIT last, then the client shuts down its sending
    side and reads. Every command is answered (the message's 250 once it is stored), then
    221 and the server closes."""
    live: LiveServer = serve()
    client = half_closed_after(live, b"Subject: half-closed\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    queue_id = queue_id_of(client.reply())
    assert client.reply() == b"221 2.0.0 Bye\r\n"
    assert client.closed()
    client.close()
    assert_stored(
        live.data,
        queue_id,
        b"Subject: half-closed\r\n\r\nhi\r\n",
        sender="alice@example.test",
        recipients=["bob@example.test"],
    )


def test_client_that_half_closes_inside_a_message_is_gone(serve) -> None:
    """The end of input inside a message, even after a line that reads QUIT (message text),
    is a client gone: nothing stored, and the server closes without waiting for a timeout."""
    live: LiveServer = serve()
    client = half_closed_after(live, b"Subject: cut short\r\n\r\nhi\r\nQUIT\r\n")
    assert client.closed()
    client.close()
    wait_for(lambda: not live.mail_server.smtp.sessions)
    assert maildir_files(live.data) == []


def test_bare_line_feed_is_refused_by_default(serve) -> None:
    live: LiveServer = serve()
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    client.command(b"MAIL FROM:<alice@example.test>")
    client.command(b"RCPT TO:<bob@example.test>")
    client.command(b"DATA")
    reply = client.command(b"Subject: smuggle\r\n\r\nline\nMAIL FROM:<x@y.test>\n\r\n.")
    assert reply.startswith(b"554 5.6.0 ")
    assert client.command(b"NOOP") == b"250 2.0.0 Ok\r\n"
    client.close()
    assert not maildir_files(live.data) and not maildir_files(live.data, "tmp")


def test_bare_line_feed_normalized(serve) -> None:
    live: LiveServer = serve(bare_line_endings="normalize")
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    client.command(b"MAIL FROM:<alice@example.test>")
    client.command(b"RCPT TO:<bob@example.test>")
    client.command(b"DATA")
    queue_id = queue_id_of(client.command(b"Subject: lf\n\nline one\nline two\r\n."))
    client.close()
    assert_stored(
        live.data,
        queue_id,
        b"Subject: lf\r\n\r\nline one\r\nline two\r\n",
        sender="alice@example.test",
        recipients=["bob@example.test"],
    )


def test_several_listeners(serve) -> None:
    live: LiveServer = serve(smtp=["127.0.0.1:0", "127.0.0.1:0"])
    addresses = live.mail_server.addresses
    assert len(addresses) == 2 and addresses[0] != addresses[1]
    for address in addresses:
        with smtplib.SMTP(*address) as client:
            assert (
                client.sendmail("a@example.test", ["b@example.test"], b"Subject: x\r\n\r\n") == {}
            )
    assert len(maildir_files(live.data)) == 2


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_listener(serve) -> None:
    live: LiveServer = serve(smtp="[::1]:0")
    host, port = live.mail_server.addresses[0]
    assert host == "::1"
    with smtplib.SMTP("::1", port) as client:
        client.ehlo("v6.example.test")
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        _, text = client.data(b"Subject: v6\r\n\r\nhi\r\n")
    raw = assert_stored(
        live.data,
        queue_id_of(text),
        b"Subject: v6\r\n\r\nhi\r\n",
        sender="alice@example.test",
        recipients=["bob@example.test"],
    )
    assert b"Received: from v6.example.test ([IPv6:::1])" in raw
