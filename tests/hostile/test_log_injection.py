"""A client's bytes in the server's log: terminal escapes (ESC), line and paragraph separators
(U+2028, U+2029, NEL), CR and other controls must never reach a log line as they are. Each is
escaped as Python writes it (``\\x1b``, ``\\u2028``), the backslash too, so a log line is one
line, says exactly what the client sent, and cannot repaint the terminal that shows it."""

from __future__ import annotations

import re
import smtplib

from tests.live import LineClient, wait_for

# What must never appear in the log, whatever a client sends.
RAW = ("\x1b", "\u2028", "\u2029", "\x85", "\x07", "\x9b")


def _assert_clean(log: str) -> None:
    for char in RAW:
        assert char not in log, (char, [line for line in log.splitlines() if char in line])


def test_unknown_verbs_and_addresses_are_escaped_in_the_log(serve_process) -> None:
    server = serve_process("--log-level", "info")
    client = LineClient(server.smtp)
    assert client.reply().startswith(b"220 ")
    assert client.command(b"\x1b[31mEVIL") == b"500 5.5.1 Error: command not recognized\r\n"
    assert client.command("HACK\u2028ME".encode()).startswith(b"500 5.5.1 ")
    assert client.command(b"EHLO client.example.test").startswith(b"250-")
    sender = "evil\u2028\x85x@example.test"
    assert client.command(f"MAIL FROM:<{sender}> SMTPUTF8".encode()).startswith(b"250 ")
    recipient = "bob\u2029\x9bz@example.test"
    assert client.command(f"RCPT TO:<{recipient}>".encode()).startswith(b"250 ")
    assert client.command(b"DATA").startswith(b"354 ")
    assert client.command(b"Subject: hi\r\n\r\nhello\r\n.").startswith(b"250 ")
    # The same transaction refused at its end (a bare LF): the NOQUEUE line quotes it too.
    assert client.command(f"MAIL FROM:<{sender}> SMTPUTF8".encode()).startswith(b"250 ")
    assert client.command(f"RCPT TO:<{recipient}>".encode()).startswith(b"250 ")
    assert client.command(b"DATA").startswith(b"354 ")
    assert client.command(b"Subject: hi\r\n\r\nbare\nLF\r\n.").startswith(b"554 5.6.0 ")
    assert client.command(b"QUIT").startswith(b"221 ")
    client.close()
    log = wait_for(lambda: server.stderr if "NOQUEUE" in server.stderr else None)
    _assert_clean(log)
    assert "stage=\\x1b[31MEVIL" in log  # the verb, upper-cased
    assert "stage=HACK\\u2028ME" in log
    assert "from=<evil\\u2028\\x85x@example.test>" in log
    assert "to=<bob\\u2029\\x9bz@example.test>" in log
    # Every record is still one line.
    record = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ |mailroom: ")
    assert all(record.match(line) for line in log.splitlines()), log


def test_escapes_through_smtplib(serve_process) -> None:
    """The same through a stock client: smtplib sends what it is given."""
    server = serve_process("--log-level", "info")
    client = smtplib.SMTP(*server.smtp, timeout=10)
    client.ehlo("client.example.test")
    assert client.docmd("\x1b]0;owned\x07")[0] == 500
    client.quit()
    log = wait_for(lambda: server.stderr if "\\x1b]0;OWNED\\x07" in server.stderr else None)
    _assert_clean(log)


def test_a_remote_servers_reply_is_escaped_in_the_queue_log(tmp_path, caplog) -> None:
    """The queue logs what the next server said; a hostile one says it with escapes."""
    import asyncio
    import logging

    from mailroom.queue.entry import QueueSpool
    from tests.delivery.peers import (
        Inbox,
        fast,
        queue_message,
        receiver,
        route_to,
        running,
        wait_until,
    )

    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test"])
    rule = "rcpt:*:550 5.1.1 \x1b[2J\x1b[Hgone\u2028INFO forged line"

    async def main() -> None:
        async with receiver(tmp_path / "b", faults=(rule,)) as b:  # noqa: SIM117 (b is used)
            async with running(spool, fast(routes=route_to(b, "example.test")), Inbox()):
                await wait_until(lambda: not spool.ids())

    with caplog.at_level(logging.INFO, logger="mailroom"):
        asyncio.run(main())
    lines = [record.getMessage() for record in caplog.records]
    _assert_clean("\n".join(lines))
    assert any("\\x1b[2J\\x1b[Hgone\\u2028INFO forged line" in line for line in lines), lines


def test_quoted() -> None:
    from mailroom.logsafe import quoted

    assert quoted("alice@example.test") == "alice@example.test"
    assert quoted("a\\b") == "a\\\\b"
    assert quoted("\x1b[31m\r\n\t\x00\x7f") == "\\x1b[31m\\r\\n\\t\\x00\\x7f".replace(
        "\\r\\n\\t", "\\x0d\\x0a\\x09"
    )
    assert quoted("\u2028\u2029\x85\u200b\U000e0001") == "\\u2028\\u2029\\x85\\u200b\\U000e0001"
    assert quoted("héllo ünïcode ✓") == "héllo ünïcode ✓"
    assert quoted(b"\x1b") == "b'\\\\x1b'"
