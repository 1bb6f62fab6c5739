"""Line and size abuse against ``mailroom serve`` in a subprocess, whose memory is read from
/proc: megabyte command lines and header lines, DATA that never ends, NUL bytes, 8-bit and
invalid UTF-8 in commands, 10,000 recipients, commands before the greeting, many such clients
at once. Each gets its reply, the server keeps serving, and its resident memory stays within a
bound that does not grow with the input."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.policy.credentials import password_line
from tests.hostile.tools import (
    SCALES,
    all_replies,
    hwm_mib,
    raise_open_files,
    rss_mib,
    stored_files,
    tmp_files,
)
from tests.live import HOSTNAME, LineClient, ServeProcess, queue_id_of, wait_for

MIB = 1024 * 1024
MESSAGE_LIMIT = 32 * MIB
# Growth of the server's resident memory allowed after any one abuse, over its size after a
# warm-up. The inputs are many times larger: holding any of them would show.
GROWTH_LIMIT_MIB = 32

LINE_TOO_LONG = b"500 5.5.2 Error: line too long (limit 512 octets)\r\n"
NUL_IN_DATA = (
    b"554 5.6.0 Error: NUL character in message data (declare BODY=BINARYMIME for binary "
    b"content)\r\n"
)
BAD_CHARACTERS = (
    b"500 5.5.2 Error: command holds NUL, bare CR/LF or bytes that are not valid here\r\n"
)
TOO_BIG = b"552 5.3.4 Error: message exceeds fixed maximum message size\r\n"
LONG_TEXT_LINE = b"554 5.6.0 Error: message has a line longer than 1000 octets\r\n"
OK = b"250 2.0.0 Ok\r\n"
SENDER_OK = b"250 2.1.0 Ok\r\n"
RECIPIENT_OK = b"250 2.1.5 Ok\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
TOO_MANY_RECIPIENTS = b"452 4.5.3 Error: too many recipients\r\n"
BYE = b"221 2.0.0 Bye\r\n"


class Server:
    def __init__(self, process: ServeProcess, data: Path) -> None:
        self.process = process
        self.data = data
        self.pid = process.process.pid
        self.address = process.smtp
        self.baseline = 0.0

    def client(self) -> LineClient:
        client = LineClient(self.address, timeout=60)
        assert client.reply().startswith(b"220 ")
        assert client.command(b"EHLO client.example.test").startswith(b"250-")
        return client

    def send_message(self, body: bytes = b"Subject: fine\r\n\r\nhello\r\n") -> bytes:
        client = self.client()
        client.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        assert [client.reply() for _ in range(3)] == [SENDER_OK, RECIPIENT_OK, GO_AHEAD]
        reply = client.command(body + b".")
        client.close()
        return reply

    def assert_serving(self) -> None:
        assert self.process.process.poll() is None, self.process.stderr
        reply = self.send_message()
        assert reply.startswith(b"250 2.0.0 Ok: queued as "), reply
        queue_id_of(reply)

    def assert_memory_bounded(
        self, limit: float = GROWTH_LIMIT_MIB, baseline: float | None = None
    ) -> float:
        growth = rss_mib(self.pid) - (self.baseline if baseline is None else baseline)
        print(
            f"server RSS {rss_mib(self.pid):.1f} MiB (+{growth:.1f}), peak {hwm_mib(self.pid):.1f}"
        )
        assert growth < limit, f"resident memory grew by {growth:.1f} MiB"
        return growth


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    raise_open_files(8192)
    folder = tmp_path_factory.mktemp("abuse")
    passwords = folder / "passwords"
    passwords.write_text(password_line("alice", "secret") + "\n")
    process = ServeProcess(
        [
            "--data",
            str(folder / "data"),
            "--smtp",
            "127.0.0.1:0",
            "--hostname",
            HOSTNAME,
            "--web",
            "off",
            "--max-message-size",
            str(MESSAGE_LIMIT),
            "--max-connections",
            "3000",
            "--max-connections-per-ip",
            "0",
            "--auth",
            str(passwords),
            "--allow-insecure-auth",
            "--max-auth-failures",
            "0",
            "--log-level",
            "warning",
            "--shutdown-grace",
            "1",
            # One process, whose memory is what the bounds below are about.
            "--workers",
            "1",
        ],
        folder / "serve.log",
    ).wait_started()
    served = Server(process, folder / "data")
    try:
        for _ in range(20):  # warm up: imports, buffers, the first commits
            served.assert_serving()
        served.baseline = rss_mib(served.pid)
        yield served
    finally:
        assert process.terminate() == 0, process.stderr


def test_megabyte_command_lines(server: Server) -> None:
    client = server.client()
    line = b"NOOP " + b"x" * MIB + b"\r\n"
    client.send(line * 10)
    assert [client.reply() for _ in range(10)] == [LINE_TOO_LONG] * 10
    # A line that never ends is dropped as it comes, then answered once at its end.
    for _ in range(16):
        client.send(b"y" * MIB)
    client.send(b"\r\nNOOP\r\n")
    assert client.reply() == LINE_TOO_LONG
    assert client.reply() == OK
    # Too long for MAIL (with every extension's allowance) as well.
    client.send(b"MAIL FROM:<" + b"a" * MIB + b"@example.test>\r\n")
    assert client.reply() == LINE_TOO_LONG
    client.close()
    server.assert_memory_bounded()
    server.assert_serving()


def test_megabyte_header_line(server: Server) -> None:
    reply = server.send_message(b"Subject: " + b"x" * MIB + b"\r\n\r\nbody\r\n")
    assert reply == LONG_TEXT_LINE
    server.assert_memory_bounded()
    assert tmp_files(server.data) == []


@pytest.mark.parametrize("scale", SCALES)
def test_data_that_never_ends(server: Server, scale: str) -> None:
    """Four times the size limit (in the long run, 2 GiB) and no end: read as it comes, kept
    only to the limit and only on disk, refused at the end; and once more with the client
    gone before the end."""
    total = (2048 if scale == "long" else 4 * MESSAGE_LIMIT // MIB) * MIB
    chunk = (b"z" * 998 + b"\r\n") * 1048  # about 1 MiB of 1000-octet lines
    for vanish in (False, True):
        client = server.client()
        client.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        assert [client.reply() for _ in range(3)] == [SENDER_OK, RECIPIENT_OK, GO_AHEAD]
        client.send(b"Subject: endless\r\n\r\n")
        for sent in range(total // MIB):
            client.send(chunk)
            if sent % 256 == 255:
                server.assert_memory_bounded()
        if vanish:
            client.close()
        else:
            client.send(b".\r\n")
            assert client.reply() == TOO_BIG
            assert client.command(b"QUIT") == BYE
            client.close()
        wait_for(lambda: tmp_files(server.data) == [])
        server.assert_memory_bounded()
    assert not any(b"Subject: endless" in p.read_bytes()[:4096] for p in stored_files(server.data))
    server.assert_serving()


def test_nul_bytes(server: Server) -> None:
    client = server.client()
    for line in (b"NO\x00OP", b"\x00" * 100, b"MAIL FROM:<a\x00b@example.test>", b"\x00"):
        assert client.command(line) == BAD_CHARACTERS
    assert client.command(b"NOOP") == OK
    client.close()
    # In message content RFC 5322 forbids NUL (a next hop that strips it may see a line with a
    # lone dot): refused at the end of data, in DATA and in BDAT; nothing stored.
    before = stored_files(server.data)
    body = b"Subject: nul\r\n\r\nbe\x00fore and after\r\n"
    assert server.send_message(body) == NUL_IN_DATA
    client = server.client()
    client.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n")
    assert [client.reply() for _ in range(2)] == [SENDER_OK, RECIPIENT_OK]
    assert client.command(b"BDAT %d LAST\r\n" % len(body) + body[:-2]) == NUL_IN_DATA
    # Declared binary (BODY=BINARYMIME, RFC 3030), it is content like any other octet.
    client.send(b"MAIL FROM:<a@example.test> BODY=BINARYMIME\r\nRCPT TO:<b@example.test>\r\n")
    assert [client.reply() for _ in range(2)] == [SENDER_OK, RECIPIENT_OK]
    reply = client.command(b"BDAT %d LAST\r\n" % len(body) + body[:-2])
    client.close()
    assert reply.startswith(b"250 2.0.0 Ok: queued as "), reply
    (path,) = [p for p in stored_files(server.data) if p not in before]
    assert queue_id_of(reply) in path.name
    assert path.read_bytes().endswith(body)


EIGHT_BIT = [
    # Without SMTPUTF8 in the transaction: UTF-8 addresses are refused as such.
    (
        b"MAIL FROM:<j\xc3\xb6rg@example.test>",
        b"550 5.6.7 <j?rg@example.test>: Non-ASCII address needs SMTPUTF8\r\n",
    ),
    (b"MAIL FROM:<jorg@example.test>", SENDER_OK),
    (
        b"RCPT TO:<m\xc3\xbcller@b\xc3\xbccher.test>",
        b"553 5.6.7 <m?ller@b?cher.test>: Non-ASCII address needs SMTPUTF8\r\n",
    ),
    (
        b"RCPT TO:<\xc3\xa9@example.test>",
        b"553 5.6.7 <?@example.test>: Non-ASCII address needs SMTPUTF8\r\n",
    ),
    (b"RSET", OK),
    # With it: taken.
    (b"MAIL FROM:<j\xc3\xb6rg@example.test> SMTPUTF8", SENDER_OK),
    (b"RCPT TO:<m\xc3\xbcller@b\xc3\xbccher.test>", RECIPIENT_OK),
    # Invalid UTF-8 (Latin-1, stray continuation bytes), with and without: never.
    (b"RCPT TO:<j\xf6rg@example.test>", BAD_CHARACTERS),
    (b"RSET", OK),
    (b"MAIL FROM:<j\xf6rg@example.test> SMTPUTF8", BAD_CHARACTERS),
    (b"MAIL FROM:<j\x80\x80rg@example.test>", BAD_CHARACTERS),
    (b"NOOP \xff\xfe", BAD_CHARACTERS),
    (b"\xff\xfe", BAD_CHARACTERS),
    (b"HELO \x80", BAD_CHARACTERS),
    (b"EHLO h\xe9llo.test", BAD_CHARACTERS),
    # Valid UTF-8 where only ASCII may be: EHLO takes an ASCII name.
    (b"EHLO h\xc3\xa9llo.test", b"501 5.5.4 Syntax: EHLO hostname\r\n"),
    (b"NOOP", OK),
]


def test_eight_bit_and_invalid_utf8_in_commands(server: Server) -> None:
    client = server.client()
    for line, reply in EIGHT_BIT:
        assert (line, client.command(line)) == (line, reply)
    client.close()
    server.assert_serving()


def pipeline_recipients(client: LineClient, count: int, then: bytes, replies: int) -> list[bytes]:
    """MAIL, ``count`` RCPTs and ``then``, pipelined; the first ``replies`` replies."""
    commands = b"MAIL FROM:<a@example.test>\r\n" + b"".join(
        b"RCPT TO:<r%d@example.test>\r\n" % n for n in range(count)
    )

    def send() -> None:
        with contextlib.suppress(OSError):  # the server may hang up before it has all
            client.send(commands + then)

    # Written from a thread while the replies are read here: neither side's buffers fill.
    writer = threading.Thread(target=send)
    writer.start()
    got = [client.reply() for _ in range(replies)]
    writer.join()
    return got


def test_recipients_up_to_the_refusal_limit(server: Server) -> None:
    """100 recipients taken, the next 1,000 answered 452 (max_refused_recipients, as
    Postfix's smtpd_recipient_overshoot_limit): the message goes to the 100."""
    client = server.client()
    overshoot = 1_000
    count = 100 + overshoot
    replies = pipeline_recipients(client, count, b"DATA\r\n", count + 2)
    assert replies[0] == SENDER_OK
    assert replies[1:101] == [RECIPIENT_OK] * 100
    assert replies[101 : count + 1] == [TOO_MANY_RECIPIENTS] * overshoot
    assert replies[-1] == GO_AHEAD
    reply = client.command(b"Subject: many\r\n\r\nhi\r\n.")
    assert reply.startswith(b"250 "), reply
    client.close()
    (path,) = [p for p in stored_files(server.data) if queue_id_of(reply) in p.name]
    assert path.read_bytes().count(b"Delivered-To: ") == 100
    server.assert_memory_bounded()


def test_ten_thousand_recipients(server: Server) -> None:
    """A client that pipelines 10,000 RCPTs and its message regardless of the 452s is cut off
    after the 1,100th with 421 4.7.0, rather than answered for as long as it likes; nothing
    of its is stored."""
    before = set(stored_files(server.data))
    client = server.client()
    then = b"DATA\r\nSubject: too many\r\n\r\nhi\r\n.\r\n"
    replies = pipeline_recipients(client, 10_000, then, 1 + 1_100 + 1)
    assert replies[0] == SENDER_OK
    assert replies[1:101] == [RECIPIENT_OK] * 100
    assert replies[101:1101] == [TOO_MANY_RECIPIENTS] * 1_000
    assert (
        replies[-1]
        == f"421 4.7.0 {HOSTNAME} Error: too many errors, closing connection\r\n".encode()
    )
    with contextlib.suppress(ConnectionResetError):  # the rest of its RCPTs was never read
        assert client.reply() == b""
    client.close()
    assert set(stored_files(server.data)) == before
    server.assert_memory_bounded()
    server.assert_serving()


def test_commands_before_the_greeting(server: Server) -> None:
    """A client that does not wait for the greeting: every command is answered, in order,
    after it."""
    sock = socket.create_connection(server.address, timeout=30)
    sock.sendall(
        b"EHLO early.example.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
        b"DATA\r\nSubject: early\r\n\r\nhi\r\n.\r\nQUIT\r\n"
    )
    client = LineClient.__new__(LineClient)
    client.sock, client.file = sock, sock.makefile("rb")
    replies = all_replies(client)
    client.close()
    assert replies[0] == f"220 {HOSTNAME} ESMTP mailroom\r\n".encode()
    assert replies[1].startswith(f"250-{HOSTNAME} Hello early.example.test\r\n".encode())
    assert replies[2:5] == [SENDER_OK, RECIPIENT_OK, GO_AHEAD]
    assert replies[5].startswith(b"250 2.0.0 Ok: queued as ")
    assert replies[6:] == [BYE]


async def _abusive_client(address: tuple[str, int], kind: str) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection(*address)
    await reader.readline()
    writer.write(b"EHLO many.example.test\r\n")
    while (await reader.readline())[3:4] == b"-":
        pass
    if kind == "lines":
        writer.write(b"NOOP " + b"x" * MIB + b"\r\nNOOP\r\n")
    elif kind == "data":
        # Halfway through a message just under the spill threshold, then nothing.
        writer.write(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        writer.write(b"Subject: held\r\n\r\n" + (b"h" * 998 + b"\r\n") * 1000)
    else:
        # A failed AUTH waits out its tarpit; meanwhile the client pipelines megabytes.
        writer.write(b"AUTH PLAIN " + base64.b64encode(b"\0alice\0guess") + b"\r\n")
        writer.write(b"NOOP\r\n" * 200_000)
    return writer


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("kind", ["lines", "data", "auth"])
def test_many_abusive_clients_at_once(server: Server, kind: str, scale: str) -> None:
    """Hundreds of clients each holding a megabyte of input in flight: what the server keeps
    per session is bounded (the part of a message in memory shares one budget; a waiting
    session reads no more than a little ahead)."""
    # (Each failed AUTH is one argon2 check: fewer of those in the quick run.)
    count = 1000 if scale == "long" else (50 if kind == "auth" else 200)
    # Per session: its objects and what it read ahead before it paused (a read is up to
    # 256 KiB); for all: the shared budget of message bytes in memory (64 MiB) and the
    # password checks running at once (2, each 64 MiB for argon2).
    limit = GROWTH_LIMIT_MIB + (64 if kind == "data" else 0) + (128 if kind == "auth" else 0)
    limit += count * 0.3

    # Measured from the size before this test's clients: the allocator keeps (and reuses) what
    # the earlier tests freed, so the module's baseline would charge their peaks to this one.
    before = rss_mib(server.pid)

    async def run() -> float:
        tasks = [asyncio.ensure_future(_abusive_client(server.address, kind)) for _ in range(count)]
        writers = await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)
        growth = server.assert_memory_bounded(limit, baseline=before)
        for writer in writers:
            writer.transport.abort()
        return growth

    asyncio.run(run())
    wait_for(lambda: tmp_files(server.data) == [], timeout=60)
    server.assert_serving()


def test_messages_in_memory_share_one_budget(serve, monkeypatch) -> None:
    """Past the shared budget, a message in progress goes to its tmp file at its next write;
    every message is stored whole either way and the count returns to zero."""
    from mailroom.store import maildir

    monkeypatch.setattr(maildir, "MEMORY_BUDGET", 64 * 1024)
    live = serve()
    store = live.mail_server.store
    clients = []
    part = b"Subject: budget\r\n\r\n" + (b"b" * 998 + b"\r\n") * 40  # 40 kB each
    for _ in range(4):
        client = LineClient(live.smtp)
        client.reply()
        client.command(b"EHLO client.example.test")
        client.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        assert [client.reply() for _ in range(3)] == [SENDER_OK, RECIPIENT_OK, GO_AHEAD]
        client.send(part)
        clients.append(client)
    # The first fits in the budget; each later one crossed it and went to disk.
    wait_for(lambda: len(tmp_files(live.data)) == 3)
    # (The reader holds back a final CRLF until it knows whether a dot follows.)
    assert live.call(lambda: store.in_memory) == len(part) - 2
    for client in clients:
        assert client.command(b"end\r\n.").startswith(b"250 ")
        client.close()
    assert live.call(lambda: store.in_memory) == 0
    files = stored_files(live.data)
    assert len(files) == 4
    assert all(path.read_bytes().endswith(part + b"end\r\n") for path in files)
    assert tmp_files(live.data) == []
