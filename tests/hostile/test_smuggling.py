"""SMTP smuggling: an end of data that is not ``<CRLF>.<CRLF>`` followed by a second,
pipelined transaction. Over a real socket, against a running server, every variant ends in
exactly one stored message (the whole input as one message's content) or in a refusal, never
in two messages; the smuggled MAIL, RCPT and DATA get no reply of their own."""

from __future__ import annotations

import pytest

from tests.hostile.tools import all_replies, parse, stored_files, tmp_files
from tests.live import LineClient, LiveServer

# The end-of-data look-alikes of the SMTP smuggling research (SEC Consult, 2023) and of
# CVE-2023-51764/51765/51766.
VARIANTS = {
    "LF.LF": b"\n.\n",
    "LF.CR": b"\n.\r",
    "CR.LF": b"\r.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF-NUL.CRLF": b"\r\n\x00.\r\n",
}

FIRST = b"From: alice@example.test\r\nSubject: first\r\nMessage-ID: <first@example.test>\r\n\r\nfirst body"
SMUGGLED = (
    b"MAIL FROM:<ceo@example.test>\r\n"
    b"RCPT TO:<victim@example.test>\r\n"
    b"DATA\r\n"
    b"From: ceo@example.test\r\nSubject: smuggled\r\nMessage-ID: <smuggled@example.test>\r\n"
    b"\r\nsmuggled body\r\n"
)
END = b"\r\n.\r\n"

BARE_LINE_ENDING = (
    b"554 5.6.0 Error: bare <CR> or <LF> in message data (see RFC 5321 section 2.3.8)\r\n"
)
ACCEPTED = b"250 2.0.0 Ok: queued as "
NUL_IN_DATA = (
    b"554 5.6.0 Error: NUL character in message data (declare BODY=BINARYMIME for binary "
    b"content)\r\n"
)
BYE = b"221 2.0.0 Bye\r\n"


def attack(live: LiveServer, variant: bytes, *, cut: bool) -> list[bytes]:
    """One session: a transaction whose message hides a second one behind ``variant``, the
    whole pipelined; then QUIT. Every reply after the 354, until the server closes."""
    client = LineClient(live.smtp)
    assert client.reply().startswith(b"220 ")
    assert client.command(b"EHLO attacker.example.test").startswith(b"250-")
    client.send(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    assert [client.reply() for _ in range(3)] == [
        b"250 2.1.0 Ok\r\n",
        b"250 2.1.5 Ok\r\n",
        b"354 End data with <CR><LF>.<CR><LF>\r\n",
    ]
    payload = FIRST + variant + SMUGGLED + END + b"QUIT\r\n"
    if cut:
        # The fake end in a write of its own, the smuggled transaction in the next.
        at = len(FIRST)
        client.send(payload[:at])
        client.send(payload[at : at + len(variant)])
        client.send(payload[at + len(variant) :])
    else:
        client.send(payload)
    replies = all_replies(client)
    client.close()
    return replies


@pytest.mark.parametrize("cut", [False, True], ids=["one write", "cut at the fake end"])
@pytest.mark.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))
def test_refused_by_default(serve, variant: bytes, cut: bool) -> None:
    live: LiveServer = serve()
    replies = attack(live, variant, cut=cut)
    files = stored_files(live.data)
    if b"\x00" in variant:
        # No bare CR or LF, but a NUL, which RFC 5322 forbids in a message: refused too.
        assert replies == [NUL_IN_DATA, BYE]
        assert files == []
    else:
        assert replies == [BARE_LINE_ENDING, BYE]
        assert files == []
    for path in files:
        assert_one_message_holding_both(path.read_bytes(), variant)
    assert tmp_files(live.data) == []


@pytest.mark.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))
def test_normalized_into_one_message(serve, variant: bytes) -> None:
    """With bare line endings rewritten to CRLF (bare_line_endings = normalize), the fake end
    becomes a line holding a dot, still content: one message, whose body holds the
    would-be second transaction as text."""
    live: LiveServer = serve(bare_line_endings="normalize")
    replies = attack(live, variant, cut=False)
    if b"\x00" in variant:
        assert replies == [NUL_IN_DATA, BYE]  # a NUL is never normalised away
        assert stored_files(live.data) == []
        return
    assert len(replies) == 2 and replies[0].startswith(ACCEPTED), replies
    assert replies[1] == BYE
    (path,) = stored_files(live.data)
    raw = path.read_bytes()
    assert_one_message_holding_both(raw, variant)
    # Every line ending is CRLF now; the fake end became a line holding a lone dot, which
    # mailroom's own client dot-stuffs should it ever send the message on.
    assert raw.count(b"\r") == raw.count(b"\r\n") == raw.count(b"\n")


def assert_one_message_holding_both(raw: bytes, variant: bytes) -> None:
    message = parse(raw)
    assert message["Message-ID"] == "<first@example.test>"
    assert message["Subject"] == "first"
    assert message.get_all("Message-ID") == ["<first@example.test>"]
    assert b"first body" in raw
    # The smuggled transaction is body text of the first message, not a message of its own.
    assert b"MAIL FROM:<ceo@example.test>" in raw
    assert b"smuggled body" in raw
    assert raw.count(b"Return-Path:") == 1


def test_nul_in_data_from_a_stock_client(serve) -> None:
    """smtplib sends a NUL as it is given: the message is refused, nothing stored."""
    import smtplib

    live: LiveServer = serve()
    client = smtplib.SMTP(*live.smtp, timeout=10)
    client.ehlo("client.example.test")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("a@example.test", ["b@example.test"], b"Subject: x\r\n\r\na\x00b\r\n")
    assert (refused.value.smtp_code, refused.value.smtp_error) == (554, NUL_IN_DATA[4:-2])
    client.quit()
    assert stored_files(live.data) == []
