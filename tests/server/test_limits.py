"""The limits of the running server: message size, recipients, connections, idle time."""

from __future__ import annotations

import dataclasses
import re
import shutil
import smtplib
import socket
import time
from pathlib import Path

import pytest

from mailroom.cli import _serve_overrides, build_parser
from mailroom.config import Config, ConfigError, load_config
from mailroom.roles import base_settings
from tests.live import LineClient, LiveServer, maildir_files, queue_id_of, wait_for

GREETING = b"220 mx.test ESMTP mailroom\r\n"


def test_size_is_advertised_and_enforced(serve) -> None:
    live: LiveServer = serve(max_message_size="10K")
    limit = 10 * 1024
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == str(limit)
        # Declared too big: refused at MAIL.
        code, text = client.mail("alice@example.test", [f"SIZE={limit + 1}"])
        assert (code, text[:5]) == (552, b"5.3.4")
        # Undeclared and too big: read to the end, then refused, and not stored.
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        big = b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n"
        code, text = client.data(big * (limit // len(big) + 1))
        assert (code, text) == (552, b"5.3.4 Error: message exceeds fixed maximum message size")
        # The session goes on; a message of exactly the limit is accepted.
        client.mail("alice@example.test", [f"SIZE={limit}"])
        client.rcpt("bob@example.test")
        body = b"Subject: fits\r\n\r\n" + b"y" * 78 + b"\r\n"
        body += b"z" * 78 + b"\r\n"
        body = body * (limit // len(body))
        body += b"." * (limit - len(body) - 2) + b"\r\n"  # a dot line too: counted unstuffed
        assert len(body) == limit
        code, text = client.data(body)
        assert code == 250, text
    (path,) = maildir_files(live.data)
    assert queue_id_of(text) in path.name
    assert path.read_bytes().endswith(body)
    assert not maildir_files(live.data, "tmp")


def test_a_size_the_disk_has_no_room_for_is_refused_for_now(serve) -> None:
    """RFC 1870 §6.1: with no fixed limit (--max-message-size 0), a SIZE= larger than the data
    directory's file system can hold now gets 452 4.3.1 at MAIL, not 250 and a refusal after
    the client sent it all; a SIZE= that fits is taken, and the session goes on."""
    live: LiveServer = serve(max_message_size="0")
    free = shutil.disk_usage(live.data).free
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        code, text = client.mail("alice@example.test", [f"SIZE={free + 1}"])
        assert (code, text) == (
            452,
            b"4.3.1 Insufficient system storage for a message of that size",
        )
        assert client.mail("alice@example.test", ["SIZE=1000"]) == (250, b"2.1.0 Ok")
        assert client.rcpt("bob@example.test")[0] == 250
        assert client.data(b"Subject: fits\r\n\r\nhi\r\n")[0] == 250
    assert len(maildir_files(live.data)) == 1


def test_header_section_limit(serve) -> None:
    """A header section over the limit (1 MiB by default) is read to its end and refused:
    without it, 48 MB of "X: y" lines was a header DMARC and the removal of forged
    Authentication-Results read line by line on the event loop (13 s, the server still)."""
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        code, text = client.data(b"X-Filler: y\r\n" * 90_000 + b"Subject: big header\r\n\r\nhi\r\n")
        assert (code, text) == (
            552,
            b"5.3.4 Error: message header exceeds fixed maximum size of 1048576 octets",
        )
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        code, text = client.data(b"X-Filler: y\r\n" * 70_000 + b"Subject: fits\r\n\r\nhi\r\n")
        assert code == 250, text
    (path,) = maildir_files(live.data)
    assert b"Subject: fits" in path.read_bytes()
    small: LiveServer = serve(max_header_section="1K")
    with smtplib.SMTP(*small.smtp) as client:
        client.ehlo()
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        code, text = client.data(b"X: y\r\n" * 200 + b"\r\nhi\r\n")  # 1,200 octets
        assert code == 552 and text.endswith(b"maximum size of 1024 octets"), text


def test_default_size_limit_is_50_mib(serve) -> None:
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == str(50 * 1024 * 1024)


def test_max_recipients(serve) -> None:
    live: LiveServer = serve(max_recipients=3)
    recipients = [f"r{n}@example.test" for n in range(5)]
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        client.mail("alice@example.test")
        replies = [client.rcpt(r) for r in recipients]
        assert [code for code, _ in replies] == [250, 250, 250, 452, 452]
        assert replies[3][1] == b"4.5.3 Error: too many recipients"
        assert client.data(b"Subject: three of five\r\n\r\nhi\r\n")[0] == 250
    (path,) = maildir_files(live.data)
    raw = path.read_bytes()
    assert raw.count(b"Delivered-To: ") == 3
    assert b"Delivered-To: r2@example.test\r\n" in raw and b"r3@example.test" not in raw


def test_max_refused_recipients(serve) -> None:
    """RCPTs past max_recipients get 452 up to the refusal limit, then 421 and the session
    ends; what was accepted before is never delivered (no DATA came)."""
    live: LiveServer = serve(max_recipients=2, max_refused_recipients=3)
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        client.mail("alice@example.test")
        replies = [client.rcpt(f"r{n}@example.test") for n in range(6)]
        assert [code for code, _ in replies] == [250, 250, 452, 452, 452, 421]
        assert replies[-1][1] == b"4.7.0 mx.test Error: too many errors, closing connection"
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    assert maildir_files(live.data) == []
    wait_for(lambda: not live.mail_server.smtp.sessions)


@pytest.mark.parametrize("name", ["max_junk_commands", "max_refused_recipients"])
def test_flood_limits_from_the_flag_and_the_file(name: str, tmp_path: Path) -> None:
    """Each of the session's flood limits reaches its sessions from --flag and from the
    TOML file's [server], 0 turns it off, and a negative one is a configuration error."""
    flag = "--" + name.replace("_", "-")
    args = build_parser().parse_args(["serve", flag, "7"])
    assert getattr(base_settings(load_config(None, _serve_overrides(args))), name) == 7
    path = tmp_path / "mailroom.toml"
    path.write_text(f"[server]\n{name} = 0\n")
    assert getattr(base_settings(load_config(path)), name) == 0
    with pytest.raises(ConfigError, match=name):
        load_config(None, {name: -1})


def connect(live: LiveServer) -> tuple[LineClient, bytes]:
    client = LineClient(live.smtp)
    return client, client.reply()


def test_max_connections(serve) -> None:
    live: LiveServer = serve(max_connections=2)
    first, greeting = connect(live)
    assert greeting == GREETING
    second, greeting = connect(live)
    assert greeting == GREETING
    third, greeting = connect(live)
    assert greeting == b"421 4.7.0 mx.test Error: too many connections, try again later\r\n"
    assert third.closed()
    third.close()
    # A freed place can be taken again.
    assert first.command(b"QUIT").startswith(b"221 ")
    assert first.closed()
    first.close()

    def admitted() -> LineClient | None:
        client, greeting = connect(live)
        if greeting == GREETING:
            return client
        client.close()
        return None

    fourth = wait_for(admitted)
    assert fourth.command(b"EHLO client.example.test").startswith(b"250-")
    fourth.close()
    second.close()


def test_max_connections_per_ip(serve) -> None:
    live: LiveServer = serve(max_connections_per_ip=1)
    first, greeting = connect(live)
    assert greeting == GREETING
    second, greeting = connect(live)
    assert greeting == b"421 4.7.0 mx.test Error: too many connections from 127.0.0.1\r\n"
    assert second.closed()
    second.close()
    assert first.command(b"NOOP") == b"250 2.0.0 Ok\r\n"  # the first is untouched
    first.close()


@pytest.mark.timeout(30)
def test_idle_timeout(serve) -> None:
    live: LiveServer = serve(timeout=1.0)
    idle, greeting = connect(live)
    assert greeting == GREETING
    busy, _ = connect(live)
    assert busy.command(b"EHLO client.example.test").startswith(b"250-")
    idle.sock.settimeout(20)
    # Nothing for a second: 421 4.4.2, then the server closes.
    assert idle.reply() == b"421 4.4.2 mx.test Error: timeout exceeded, closing connection\r\n"
    assert idle.closed()
    idle.close()
    busy.close()
    # Timed-out sessions no longer count against the limits.
    wait_for(lambda: not live.mail_server.smtp.sessions)


@pytest.mark.timeout(30)
def test_idle_timeout_in_the_middle_of_data(serve) -> None:
    live: LiveServer = serve(timeout=1.0)
    client, _ = connect(live)
    client.sock.settimeout(20)
    client.command(b"EHLO client.example.test")
    client.command(b"MAIL FROM:<alice@example.test>")
    client.command(b"RCPT TO:<bob@example.test>")
    assert client.command(b"DATA").startswith(b"354 ")
    client.send(b"Subject: never finished\r\n\r\nhalf a messa")
    assert client.reply() == b"421 4.4.2 mx.test Error: timeout exceeded, closing connection\r\n"
    assert client.closed()
    client.close()
    wait_for(lambda: not live.mail_server.smtp.sessions)
    assert not maildir_files(live.data) and not maildir_files(live.data, "tmp")


@pytest.mark.timeout(60)
def test_idle_timeout_for_a_client_that_does_not_read(serve) -> None:
    """A client that sends and never reads its replies fills the server's write buffer; the
    timeout must still end the session and free its place."""
    # (No junk limit: it would close this session at its 100th NOOP, before the timeout.)
    live: LiveServer = serve(timeout=1.0, max_connections=1, max_junk_commands=0)
    client, _ = connect(live)
    client.sock.setblocking(False)
    flood = b"NOOP\r\n" * 100_000
    try:
        while True:
            sent = client.sock.send(flood)
            assert sent > 0
    except BlockingIOError:
        pass  # both directions are full now
    wait_for(lambda: not live.mail_server.smtp.sessions, timeout=20)
    client.close()
    fresh, greeting = connect(live)
    assert greeting == GREETING
    fresh.close()


def test_max_junk_commands(serve) -> None:
    """Commands that move no mail are answered up to the limit; then the next one gets 421
    and the session ends. Mail goes on at the limit, and a message taken starts it again."""
    live: LiveServer = serve(max_junk_commands=3)
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo("client.example.test")  # 1
        assert client.noop() == (250, b"2.0.0 Ok")  # 2
        assert client.rset() == (250, b"2.0.0 Ok")  # 3
        assert (
            client.sendmail("a@example.test", ["b@example.test"], b"Subject: hi\r\n\r\nhi\r\n")
            == {}
        )
        for _ in range(3):
            assert client.noop() == (250, b"2.0.0 Ok")
        assert client.noop() == (
            421,
            b"4.7.0 mx.test Error: too many errors, closing connection",
        )
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    assert len(maildir_files(live.data)) == 1
    wait_for(lambda: not live.mail_server.smtp.sessions)


def test_max_bad_commands(serve) -> None:
    live: LiveServer = serve(max_bad_commands=3)
    client, _ = connect(live)
    assert client.command(b"EHLO client.example.test").startswith(b"250-")
    assert client.command(b"FOO").startswith(b"500 5.5.")
    assert client.command(b"BAR").startswith(b"500 5.5.")
    assert client.command(b"BAZ").startswith(b"500 5.5.")
    # Three refused in a row: the next command is not heard.
    assert client.command(b"NOOP") == (
        b"421 4.7.0 mx.test Error: too many errors, closing connection\r\n"
    )
    assert client.closed()
    client.close()
    wait_for(lambda: not live.mail_server.smtp.sessions)
    again, greeting = connect(live)
    assert greeting == GREETING
    again.close()


def test_a_client_that_pipelines_past_the_error_limit_reads_the_421_and_an_orderly_end(
    serve,
) -> None:
    """The session ends at the error limit with input still unread (the rest of the flood):
    closing the socket with unread input makes the kernel send a reset, and a client's stack
    may drop the 421 with it. The server sends its replies and a FIN, reads and drops the
    rest, and the client reads every reply, then the end of the stream (no ECONNRESET)."""
    live: LiveServer = serve(max_bad_commands=3)
    client, _ = connect(live)
    client.send(b"EHLO client.example.test\r\n" + b"JUNK\r\n" * 10 + b"X" * 500_000)
    time.sleep(0.5)  # all of it sent before the client reads: the 421 comes with input unread
    assert client.reply().startswith(b"250-")
    assert [client.reply() for _ in range(3)] == [
        b"500 5.5.1 Error: command not recognized\r\n"
    ] * 3
    assert client.reply() == b"421 4.7.0 mx.test Error: too many errors, closing connection\r\n"
    assert client.file.read() == b""  # an end of input, not a reset
    client.close()
    wait_for(lambda: not live.mail_server.smtp.sessions)


def test_a_client_that_goes_on_sending_after_the_close_is_cut_off(serve) -> None:
    """The lingering close reads and drops for a while, not for ever: a client that keeps
    sending after the 421 finds the connection gone within seconds."""
    live: LiveServer = serve(max_bad_commands=3)
    client, _ = connect(live)
    client.send(b"JUNK\r\n" * 4)
    with pytest.raises(OSError):  # a broken pipe or a reset
        for _ in range(600):  # at most 60 s
            client.send(b"Y" * 100_000)
            time.sleep(0.1)
    client.close()
    wait_for(lambda: not live.mail_server.smtp.sessions)


def test_max_connections_counts_implicit_tls_handshakes(serve) -> None:
    live: LiveServer = serve(smtps="127.0.0.1:0", max_connections=2, tls_handshake_timeout=5)
    silent = [socket.create_connection(live.smtps) for _ in range(3)]  # no ClientHello
    try:
        client, greeting = connect(live)
        client.close()
        assert greeting.startswith(b"421 4.7.0 ")
    finally:
        for sock in silent:
            sock.close()


def test_every_limit_is_a_documented_setting() -> None:
    """Every limit is a named setting with its default in the README (Postfix's habit, and
    ours): a limit a reader cannot find is one they cannot tune. --tls-handshake-timeout (30 s
    for a TLS handshake, then the connection closes) was a flag and a TOML key, missing from
    the README."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    limit = re.compile(r"max|timeout|grace")
    names = [f.name for f in dataclasses.fields(Config) if limit.search(f.name)]
    assert "tls_handshake_timeout" in names
    undocumented = [
        name
        for name in names
        if f"`{name}`" not in readme and f"`--{name.replace('_', '-')}" not in readme
    ]
    assert undocumented == []
