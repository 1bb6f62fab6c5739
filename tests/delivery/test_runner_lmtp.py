"""The queue runner over LMTP, against a small LMTP server on loopback that answers as the
test scripts it: each recipient's reply after the message is that recipient's outcome, and a
server that goes away between those replies costs nothing already answered — the recipients it
settled are saved and not sent again; the others are retried. (Dovecot, the real store, is in
tests/interop/test_dovecot_lmtp.py; it never drops a connection halfway on purpose.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from mailroom.queue.entry import QueueSpool
from mailroom.queue.settings import RelayHost
from tests.delivery.peers import (
    Inbox,
    fast,
    queue_message,
    recipient_blocks,
    running,
    wait_until,
)

# After the message, what each session answers per accepted recipient, in order; a session
# whose list is shorter than its recipients closes the connection instead of the rest.
Script = Callable[[int, list[str]], list[bytes]]


@asynccontextmanager
async def lmtp_peer(script: Script) -> AsyncIterator[tuple[int, list[list[str]]]]:
    """An LMTP server (RFC 2033) on 127.0.0.1; yields its port and the commands of each
    session."""
    sessions: list[list[str]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(sessions)
        seen: list[str] = []
        sessions.append(seen)
        rcpts: list[str] = []
        writer.write(b"220 lmtp.example.test LMTP ready\r\n")
        try:
            while line := await reader.readline():
                command = line.decode().rstrip("\r\n")
                seen.append(command)
                verb = command.split(" ", 1)[0].upper()
                if verb == "LHLO":
                    writer.write(b"250-lmtp.example.test\r\n250-PIPELINING\r\n")
                    writer.write(b"250 ENHANCEDSTATUSCODES\r\n")
                elif verb == "MAIL":
                    rcpts.clear()
                    writer.write(b"250 2.1.0 OK\r\n")
                elif verb == "RCPT":
                    rcpts.append(command.split("<", 1)[1].split(">", 1)[0])
                    writer.write(b"250 2.1.5 OK\r\n")
                elif verb == "DATA":
                    writer.write(b"354 OK\r\n")
                    await writer.drain()
                    await reader.readuntil(b"\r\n.\r\n")
                    replies = script(number, list(rcpts))
                    for reply in replies:
                        writer.write(reply)
                    if len(replies) < len(rcpts):
                        await writer.drain()
                        return  # gone before the rest were answered
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"500 5.5.1 Unknown command\r\n")
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], sessions
    finally:
        server.close()
        await server.wait_closed()


def saved(rcpt: str) -> bytes:
    return f"250 2.0.0 <{rcpt}> Saved\r\n".encode()


def test_each_recipient_has_its_own_outcome_and_a_lost_connection_repeats_none_answered(
    tmp_path: Path,
) -> None:
    spool = QueueSpool(tmp_path / "a")
    recipients = ["bob@example.test", "carol@example.test", "dave@example.test"]
    entry = queue_message(spool, recipients)

    def script(session: int, rcpts: list[str]) -> list[bytes]:
        if session == 0:
            # bob stored, carol's mailbox full for now; gone before dave's reply.
            return [saved(rcpts[0]), b"452 4.2.2 <carol@example.test> Mailbox is full\r\n"]
        return [saved(r) for r in rcpts]

    async def main() -> list[list[str]]:
        async with lmtp_peer(script) as (port, sessions):
            route = RelayHost.parse(f"lmtp://127.0.0.1:{port}")
            inbox = Inbox()
            async with running(spool, fast(routes={"example.test": route}), inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert (runner.delivered, runner.deferred, runner.bounced) == (3, 2, 0)
            assert inbox.messages == []
            return sessions

    sessions = asyncio.run(main())
    assert not spool.message_path(entry.id).exists()
    rcpts = [[c for c in s if c.startswith("RCPT")] for s in sessions]
    assert sessions[0][0] == "LHLO mx.a.test"
    assert rcpts[0] == [f"RCPT TO:<{r}>" for r in recipients]
    # bob was answered before the connection went: he is not sent again.
    assert rcpts[1:] == [["RCPT TO:<carol@example.test>", "RCPT TO:<dave@example.test>"]]


def test_a_permanent_reply_after_the_message_bounces_that_recipient(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test", "carol@example.test"])

    def script(session: int, rcpts: list[str]) -> list[bytes]:
        return [saved(rcpts[0]), b"552 5.2.2 <carol@example.test> Quota exceeded\r\n"]

    async def main() -> Inbox:
        async with lmtp_peer(script) as (port, _):
            route = RelayHost.parse({"address": f"127.0.0.1:{port}", "protocol": "lmtp"})
            inbox = Inbox()
            async with running(spool, fast(routes={"example.test": route}), inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert (runner.delivered, runner.bounced) == (1, 1)
            return inbox

    [report] = asyncio.run(main()).reports
    [carol] = recipient_blocks(report)  # bob was delivered: not in the report
    assert carol["Final-Recipient"] == "rfc822; carol@example.test"
    assert (carol["Action"], carol["Status"]) == ("failed", "5.2.2")
    assert carol["Diagnostic-Code"] == "smtp; 552 5.2.2 <carol@example.test> Quota exceeded"
    assert carol["Remote-MTA"] == "dns; 127.0.0.1"


def test_success_over_lmtp_is_reported_as_delivered(tmp_path: Path) -> None:
    """LMTP is final delivery (RFC 2033): a sender who asked NOTIFY=SUCCESS hears that the
    message was delivered, not relayed; a recipient who did not ask is not in the report."""
    from mailroom.queue.entry import QueueRecipient

    spool = QueueSpool(tmp_path / "a")
    queue_message(
        spool,
        [QueueRecipient("bob@example.test", notify=["SUCCESS"]), "carol@example.test"],
    )

    async def main() -> Inbox:
        async with lmtp_peer(lambda _, rcpts: [saved(r) for r in rcpts]) as (port, _):
            route = RelayHost.parse(f"lmtp://127.0.0.1:{port}")
            inbox = Inbox()
            async with running(spool, fast(routes={"example.test": route}), inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert (runner.delivered, runner.bounced) == (2, 0)
            return inbox

    [report] = asyncio.run(main()).reports
    assert report["Subject"] == "Successful Mail Delivery Report"
    [bob] = recipient_blocks(report)
    assert bob["Final-Recipient"] == "rfc822; bob@example.test"
    assert (bob["Action"], bob["Status"]) == ("delivered", "2.0.0")
    assert bob["Diagnostic-Code"] == "smtp; 250 2.0.0 <bob@example.test> Saved"
    human = report.get_payload()[0].get_content()
    assert "was delivered to the mailboxes of the recipients below" in human
    assert "handed on" not in human
