"""The client against Postfix's smtp-sink (Debian package postfix), started by each test with
the options that make it refuse: soft (4xx) and hard (5xx) rejects of chosen commands with
chosen replies, 421 and hang-ups, no ESMTP, no PIPELINING. Skipped when smtp-sink is absent."""

from __future__ import annotations

import asyncio

import pytest

from mailroom.client import (
    Client,
    ConnectionFailed,
    GreetingRefused,
    MessageRefused,
    SendError,
)
from mailroom.protocol.client import MailOptions, Recipient, TraceLine, TransactionResult
from tests.client.servers import SMTP_SINK, SmtpSink, smtp_sink

pytestmark = pytest.mark.skipif(
    SMTP_SINK is None, reason="smtp-sink (Debian package postfix) is not installed"
)

MESSAGE = b"Subject: to the sink\r\n\r\nline one\r\n.\r\n..two dots\r\n"
RECIPIENTS = ["bob@example.test", "carol@example.test"]


def send(
    sink: SmtpSink, trace: list[TraceLine] | None = None, **kwargs: object
) -> TransactionResult:
    async def go() -> TransactionResult:
        async with Client(
            *sink.address, trace=trace.append if trace is not None else None
        ) as client:
            return await client.send(
                kwargs.pop("message", MESSAGE),  # type: ignore[arg-type]
                sender="alice@example.test",
                recipients=kwargs.pop("recipients", RECIPIENTS),  # type: ignore[arg-type]
            )

    return asyncio.run(go())


def refused(sink: SmtpSink) -> SendError:
    with pytest.raises(SendError) as caught:
        send(sink)
    return caught.value


def body_of(capture: bytes) -> bytes:
    """smtp-sink's capture: its X- headers and three-line Received:, then the message with LF
    line endings, then an empty line."""
    _, _, rest = capture.partition(b"\nReceived: ")
    rest = rest.split(b"\n", 3)[3]
    assert rest.endswith(b"\n\n")
    return rest[:-1]


def test_delivery_pipelined() -> None:
    lines: list[TraceLine] = []
    with smtp_sink() as sink:
        result = send(sink, lines)
        (capture,) = sink.captured()
    assert result.all_delivered and result.method == "DATA"
    assert b"X-Client-Proto: ESMTP\n" in capture
    assert b"X-Mail-Args: <alice@example.test>\n" in capture
    assert capture.count(b"X-Rcpt-Args: ") == 2
    assert body_of(capture) == MESSAGE.replace(b"\r\n", b"\n")  # dots unstuffed by the sink
    sent = [line.text for line in lines if line.direction in ("client", "server")]
    mail = sent.index("MAIL FROM:<alice@example.test>")
    assert sent[mail + 1 : mail + 4] == [
        "RCPT TO:<bob@example.test>",
        "RCPT TO:<carol@example.test>",
        "DATA",
    ]


def test_helo_fallback_without_esmtp() -> None:
    with smtp_sink("-e") as sink:
        result = send(sink)
        (capture,) = sink.captured()
    assert result.all_delivered
    assert b"X-Client-Proto: SMTP\n" in capture


def test_dsn_parameters_reach_the_sink() -> None:
    async def go(sink: SmtpSink) -> TransactionResult:
        async with Client(*sink.address) as client:
            return await client.send(
                MESSAGE,
                sender="alice@example.test",
                recipients=[
                    Recipient("bob@example.test", notify=("FAILURE",), orcpt="bob@example.test")
                ],
                options=MailOptions(ret="HDRS", envid="ID1"),
            )

    with smtp_sink() as sink:
        assert asyncio.run(go(sink)).all_delivered
        (capture,) = sink.captured()
    assert b"X-Mail-Args: <alice@example.test> RET=HDRS ENVID=ID1\n" in capture  # no SIZE
    assert (
        b"X-Rcpt-Args: <bob@example.test> NOTIFY=FAILURE ORCPT=rfc822;bob@example.test\n" in capture
    )


def test_hard_bounce_of_every_recipient() -> None:
    with smtp_sink(
        "-f", "RCPT", "-B", "550 5.1.1 Recipient address rejected: User unknown"
    ) as sink:
        failure = refused(sink)
        assert sink.captured() == []
    assert isinstance(failure, MessageRefused)
    assert failure.code == 550 and str(failure.reply.status) == "5.1.1" and failure.is_permanent
    assert failure.classification.action == "bounce"
    assert failure.classification.reason == "userunknown"
    assert [r.reply.code for r in failure.result.recipients] == [550, 550]


def test_soft_bounce_of_every_recipient() -> None:
    with smtp_sink("-r", "RCPT", "-b", "452 4.2.2 Mailbox full, try again later") as sink:
        failure = refused(sink)
    assert isinstance(failure, MessageRefused)
    assert failure.is_transient and failure.code == 452
    assert failure.classification.action == "retry"
    assert failure.classification.reason == "mailboxfull"
    assert all(r.is_transient for r in failure.result.recipients)


def test_default_bounce_replies() -> None:
    with smtp_sink("-r", "MAIL") as sink:
        soft = refused(sink)
    with smtp_sink("-f", "MAIL") as sink:
        hard = refused(sink)
    assert isinstance(soft, MessageRefused) and isinstance(hard, MessageRefused)
    assert (soft.command, soft.code, soft.is_transient) == ("MAIL", 450, True)
    assert (hard.command, hard.code, hard.is_permanent) == ("MAIL", 500, True)
    assert soft.result.recipients[0].rcpt_reply is None  # lockstep: no RCPT after MAIL failed


def test_message_refused_after_data() -> None:
    with smtp_sink("-f", ".", "-B", "554 5.7.1 Message rejected as spam") as sink:
        failure = refused(sink)
    assert isinstance(failure, MessageRefused) and failure.command == "DATA"
    assert failure.classification.reason == "spamdetected"
    assert all(
        r.rcpt_reply is not None and r.rcpt_reply.code == 250 for r in failure.result.recipients
    )


def test_421_in_the_middle() -> None:
    with smtp_sink("-Q", "RCPT") as sink:
        failure = refused(sink)
    assert isinstance(failure, MessageRefused)
    assert failure.code == 421 and failure.is_transient


def test_the_connection_is_closed_after_a_421() -> None:
    async def go(sink: SmtpSink) -> None:
        client = Client(*sink.address)
        await client.connect()
        with pytest.raises(MessageRefused):
            await client.send(MESSAGE, sender="a@example.test", recipients=RECIPIENTS)
        assert not client.is_connected
        with pytest.raises(ConnectionFailed):
            await client.send(MESSAGE, sender="a@example.test", recipients=RECIPIENTS)
        assert await client.quit() is None  # nothing to say QUIT to: closes quietly

    with smtp_sink("-Q", "RCPT") as sink:
        asyncio.run(go(sink))


def test_hang_up_without_a_reply() -> None:
    with smtp_sink("-q", "DATA") as sink:
        failure = refused(sink)
    assert isinstance(failure, ConnectionFailed) and failure.is_transient and failure.reply is None


def test_refused_at_the_greeting() -> None:
    with smtp_sink(
        "-f", "CONNECT", "-B", "554 5.7.1 Client host blocked using zen.spamhaus.org"
    ) as sink:
        failure = refused(sink)
    assert isinstance(failure, GreetingRefused) and failure.code == 554
    assert failure.classification.reason == "blocked"
