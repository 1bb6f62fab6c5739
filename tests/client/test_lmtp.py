"""The sans-IO client in LMTP mode (RFC 2033) as transcripts: LHLO and no HELO, and after the
message one reply per accepted recipient, each settling that recipient alone (§4.2) — after
the end of data and after BDAT LAST.

Each scripted transcript is played twice: replies fed whole and one byte at a time.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailroom.protocol.client import (
    NEED_DATA,
    ClientState,
    CommandFailed,
    HelloCompleted,
    LocalProtocolError,
    MailOptions,
    RemoteProtocolError,
    ServerClosed,
    TLSReady,
    TransactionCompleted,
    TransactionInterrupted,
)
from tests.client.sansio import CLIENT_NAME, Scripted, new

STEPS = [None, 1]
GREETING = b"220 store.example.test Dovecot ready.\r\n"
# What Dovecot 2.3's LMTP server says to LHLO.
LHLO_REPLY = (
    b"250-store.example.test\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
    b"250 PIPELINING\r\n"
)
LHLO_NO_CHUNKING = b"250-store.example.test\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n"
LHLO_LOCKSTEP = b"250-store.example.test\r\n250 CHUNKING\r\n"  # no PIPELINING
OK_MAIL = b"250 2.1.0 OK\r\n"
OK_RCPT = b"250 2.1.5 OK\r\n"
UNKNOWN = b"550 5.1.1 <nobody@example.test> User doesn't exist: nobody@example.test\r\n"
GO_AHEAD = b"354 OK\r\n"
ALICE_SAVED = b"250 2.0.0 <alice@example.test> r6SEIi8FDGspCAAAg+zDdQ Saved\r\n"
BOB_SAVED = b"250 2.0.0 <bob@example.test> r6SEIi8FDGspCAAAg+zDdQ:R2 Saved\r\n"
BOB_FULL = b"452 4.2.2 <bob@example.test> Mailbox is full\r\n"
CAROL_REFUSED = b"552 5.2.2 <carol@example.test> Quota exceeded (mailbox for user is full)\r\n"


def lmtp(step: int | None = None, reply: bytes = LHLO_REPLY) -> Scripted:
    s = Scripted(step, conn=new(lmtp=True))
    s.feed(GREETING)
    s.conn.ehlo()
    assert s.sent() == f"LHLO {CLIENT_NAME}\r\n".encode()
    s.feed(reply)
    assert s.conn.state is ClientState.READY
    return s


def completed(events: list[object]) -> TransactionCompleted:
    assert len(events) == 1 and isinstance(events[0], TransactionCompleted), events
    return events[0]


# -- LHLO --------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_lhlo_reads_the_extensions(step: int | None) -> None:
    s = Scripted(step, conn=new(lmtp=True))
    s.feed(GREETING)
    s.conn.ehlo()
    assert s.sent() == b"LHLO client.example.test\r\n"
    (hello,) = s.feed(LHLO_REPLY)
    assert isinstance(hello, HelloCompleted) and hello.esmtp
    ext = hello.extensions
    assert ext.pipelining and ext.chunking and ext.eightbitmime and ext.enhancedstatuscodes


@pytest.mark.parametrize("code", [b"500 5.5.1 Unknown command", b"421 4.3.2 Shutting down"])
def test_refused_lhlo_has_no_helo_to_fall_back_on(code: bytes) -> None:
    s = Scripted(conn=new(lmtp=True))
    s.feed(GREETING)
    s.conn.ehlo()
    s.sent()
    (failed,) = s.feed(code + b"\r\n")
    assert isinstance(failed, CommandFailed) and failed.command == "LHLO"
    assert s.sent() == b""  # no HELO, no EHLO (RFC 2033 §4.1)


def test_helo_is_not_lmtp() -> None:
    s = Scripted(conn=new(lmtp=True))
    s.feed(GREETING)
    with pytest.raises(LocalProtocolError):
        s.conn.helo()
    assert s.sent() == b""


def test_lhlo_again_after_starttls() -> None:
    s = lmtp(reply=b"250-store.example.test\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
    s.conn.starttls()
    assert s.sent() == b"STARTTLS\r\n"
    (ready,) = s.feed(b"220 2.0.0 Begin TLS.\r\n")
    assert isinstance(ready, TLSReady)
    s.conn.tls_started()
    s.conn.ehlo()
    assert s.sent() == b"LHLO client.example.test\r\n"


# -- one reply per accepted recipient after DATA -----------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_one_reply_per_accepted_recipient_after_data(step: int | None) -> None:
    s = lmtp(step, LHLO_NO_CHUNKING)
    s.conn.send_mail(
        "sender@remote.test",
        ["alice@example.test", "nobody@example.test", "bob@example.test", "carol@example.test"],
        b"Subject: hi\n\n.dot\n",
    )
    assert s.sent() == (
        b"MAIL FROM:<sender@remote.test>\r\n"
        b"RCPT TO:<alice@example.test>\r\n"
        b"RCPT TO:<nobody@example.test>\r\n"
        b"RCPT TO:<bob@example.test>\r\n"
        b"RCPT TO:<carol@example.test>\r\n"
        b"DATA\r\n"
    )
    assert not s.conn.awaiting_final
    assert s.feed(OK_MAIL + OK_RCPT + UNKNOWN + OK_RCPT + OK_RCPT + GO_AHEAD) == []
    assert s.sent() == b"Subject: hi\r\n\r\n..dot\r\n.\r\n"
    # Three recipients were accepted: three replies, and the transaction is not over before.
    # Each of them says whether the message was taken: each gets the final reply's timeout.
    assert s.conn.awaiting_final
    assert s.feed(ALICE_SAVED) == []
    assert s.conn.awaiting_final
    assert s.feed(BOB_FULL) == []
    assert s.conn.state is ClientState.BUSY and s.conn.awaiting_final
    result = completed(s.feed(CAROL_REFUSED)).result
    assert not s.conn.awaiting_final
    assert s.sent() == b""  # no RSET: the transaction is over
    assert s.conn.state is ClientState.READY
    by = {r.address: r for r in result.recipients}
    assert by["alice@example.test"].delivered
    assert by["alice@example.test"].reply.lines[0].endswith("r6SEIi8FDGspCAAAg+zDdQ Saved")
    assert by["alice@example.test"].command == "DATA"
    assert by["nobody@example.test"].command == "RCPT"
    assert by["nobody@example.test"].reply.code == 550
    assert by["bob@example.test"].is_transient and by["bob@example.test"].command == "DATA"
    assert str(by["bob@example.test"].reply.status) == "4.2.2"
    assert by["carol@example.test"].is_permanent and by["carol@example.test"].reply.code == 552
    assert [r.code for r in result.data_replies] == [250, 452, 552]
    assert result.data_reply == result.data_replies[-1]


def test_lockstep_data_without_pipelining() -> None:
    s = lmtp(reply=b"250-store.example.test\r\n250 8BITMIME\r\n")
    s.conn.send_mail("a@remote.test", ["alice@example.test", "bob@example.test"], b"x")
    assert s.sent() == b"MAIL FROM:<a@remote.test>\r\n"
    s.feed(OK_MAIL)
    assert s.sent() == b"RCPT TO:<alice@example.test>\r\n"
    s.feed(OK_RCPT)
    assert s.sent() == b"RCPT TO:<bob@example.test>\r\n"
    s.feed(OK_RCPT)
    assert s.sent() == b"DATA\r\n"
    s.feed(GO_AHEAD)
    assert s.sent() == b"x\r\n.\r\n"
    assert s.feed(ALICE_SAVED) == []
    result = completed(s.feed(BOB_SAVED)).result
    assert result.all_delivered and len(result.data_replies) == 2


def test_data_refused_is_one_reply_for_everyone_then_rset() -> None:
    s = lmtp(reply=LHLO_NO_CHUNKING)
    s.conn.send_mail("a@remote.test", ["nobody@example.test"], b"x")
    s.sent()
    # RFC 2033 §4.2: DATA with no successful RCPT fails with 503.
    s.feed(OK_MAIL + UNKNOWN + b"503 5.5.0 No valid recipients\r\n")
    assert s.sent() == b"RSET\r\n"
    result = completed(s.feed(b"250 2.0.0 OK\r\n")).result
    assert result.recipients[0].reply.code == 550 and result.data_replies == ()


def test_two_messages_on_one_connection() -> None:
    s = lmtp(reply=LHLO_NO_CHUNKING)
    for _ in range(2):
        s.conn.send_mail("a@remote.test", ["alice@example.test", "bob@example.test"], b"x")
        s.sent()
        s.feed(OK_MAIL + OK_RCPT + OK_RCPT + GO_AHEAD)
        assert s.sent() == b"x\r\n.\r\n"
        assert completed(s.feed(ALICE_SAVED + BOB_SAVED)).result.all_delivered


# -- BDAT LAST ----------------------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_one_reply_per_accepted_recipient_after_bdat_last(step: int | None) -> None:
    s = lmtp(step)
    s.conn.send_mail(
        "a@remote.test",
        ["alice@example.test", "bob@example.test"],
        b"0123456789abcde",
        MailOptions(chunk_size=10),
    )
    assert s.sent() == (
        b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
        b"RCPT TO:<bob@example.test>\r\n"
    )
    assert s.feed(OK_MAIL + OK_RCPT + OK_RCPT) == []
    assert s.sent() == b"BDAT 10\r\n0123456789BDAT 7 LAST\r\nabcde\r\n"
    assert s.feed(b"250 2.0.0 Added 10 octets\r\n") == []
    assert s.feed(ALICE_SAVED) == []
    result = completed(s.feed(BOB_FULL)).result
    assert result.method == "BDAT" and s.sent() == b""
    assert result["alice@example.test"].delivered
    assert result["bob@example.test"].reply.code == 452
    assert result["bob@example.test"].command == "DATA"


def test_bdat_last_refused_for_the_first_recipient_is_not_a_refused_chunk() -> None:
    s = lmtp(reply=LHLO_LOCKSTEP)
    s.conn.send_mail("a@remote.test", ["carol@example.test", "alice@example.test"], b"body")
    s.sent()
    s.feed(OK_MAIL)
    s.sent()
    s.feed(OK_RCPT)
    s.sent()
    s.feed(OK_RCPT)
    assert s.sent() == b"BDAT 6 LAST\r\nbody\r\n"
    assert s.feed(CAROL_REFUSED) == []  # one of two: wait for the other, send nothing
    assert s.sent() == b""
    result = completed(s.feed(ALICE_SAVED)).result
    assert s.sent() == b""  # no RSET
    assert [r.reply.code for r in result.recipients] == [552, 250]


def test_refused_chunk_before_last_gets_one_reply_and_rset() -> None:
    s = lmtp()
    s.conn.send_mail(
        "a@remote.test",
        ["alice@example.test", "bob@example.test"],
        b"01234567\r\n",
        MailOptions(chunk_size=5),
    )
    s.sent()
    s.feed(OK_MAIL + OK_RCPT + OK_RCPT)
    assert s.sent() == b"BDAT 5\r\n01234BDAT 5 LAST\r\n567\r\n"
    s.feed(b"552 5.3.4 Message too big\r\n")
    s.feed(b"503 5.5.1 Earlier chunk was refused\r\n")  # the LAST, answered once
    assert s.sent() == b"RSET\r\n"
    result = completed(s.feed(b"250 2.0.0 OK\r\n")).result
    assert [r.reply.code for r in result.recipients] == [552, 552]


def test_refused_chunk_in_lockstep_ends_the_message() -> None:
    s = lmtp(reply=LHLO_LOCKSTEP)
    s.conn.send_mail(
        "a@remote.test", ["alice@example.test"], b"0123456789", MailOptions(chunk_size=5)
    )
    s.sent()
    s.feed(OK_MAIL)
    s.sent()
    s.feed(OK_RCPT)
    assert s.sent() == b"BDAT 5\r\n01234"
    s.feed(b"552 5.3.4 Message too big\r\n")
    assert s.sent() == b"RSET\r\n"
    result = completed(s.feed(b"250 2.0.0 OK\r\n")).result
    assert result.recipients[0].reply.code == 552


# -- the server going away between the replies ---------------------------------------------------


def test_421_between_the_replies_settles_the_rest() -> None:
    s = lmtp(reply=LHLO_NO_CHUNKING)
    s.conn.send_mail("a@remote.test", ["alice@example.test", "bob@example.test"], b"x")
    s.sent()
    s.feed(OK_MAIL + OK_RCPT + OK_RCPT + GO_AHEAD)
    s.sent()
    result = completed(s.feed(ALICE_SAVED + b"421 4.3.2 Shutting down\r\n")).result
    assert [r.reply.code for r in result.recipients] == [250, 421]
    assert s.conn.state is ClientState.CLOSING


def test_connection_lost_between_the_replies_tells_who_was_answered() -> None:
    s = lmtp(reply=LHLO_NO_CHUNKING)
    s.conn.send_mail(
        "a@remote.test",
        ["alice@example.test", "nobody@example.test", "bob@example.test"],
        b"x",
    )
    s.sent()
    s.feed(OK_MAIL + OK_RCPT + UNKNOWN + OK_RCPT + GO_AHEAD)
    s.sent()
    assert s.feed(ALICE_SAVED) == []
    assert s.conn.settled_so_far() is not None
    interrupted, closed = s.feed(b"")
    assert closed == ServerClosed(expected=False)
    assert isinstance(interrupted, TransactionInterrupted)
    # alice was delivered and nobody refused; bob's fate is unknown, so he is not in it.
    known = {r.address: r.reply.code for r in interrupted.result.recipients}
    assert known == {"alice@example.test": 250, "nobody@example.test": 550}
    assert s.conn.state is ClientState.CLOSED and s.conn.settled_so_far() is None


def test_connection_lost_before_any_reply_to_the_message() -> None:
    s = lmtp(reply=LHLO_NO_CHUNKING)
    s.conn.send_mail("a@remote.test", ["alice@example.test"], b"x")
    s.sent()
    s.feed(OK_MAIL + OK_RCPT + GO_AHEAD)
    interrupted, _ = s.feed(b"")
    assert isinstance(interrupted, TransactionInterrupted)
    assert interrupted.result.recipients == ()


def test_a_reply_too_many_is_a_protocol_error() -> None:
    s = lmtp(reply=LHLO_NO_CHUNKING)
    s.conn.send_mail("a@remote.test", ["alice@example.test"], b"x")
    s.sent()
    s.feed(OK_MAIL + OK_RCPT + GO_AHEAD)
    completed(s.feed(ALICE_SAVED))
    with pytest.raises(RemoteProtocolError):
        s.feed(BOB_SAVED)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12))
def test_random_server_bytes_only_ever_give_a_protocol_error(chunks: list[bytes]) -> None:
    conn = new(lmtp=True)
    try:
        for index, chunk in enumerate(chunks):
            conn.receive_data(chunk)
            while conn.next_event() is not NEED_DATA:
                pass
            if index == 0 and conn.state is ClientState.CONNECTED:
                conn.ehlo()
            elif conn.state is ClientState.READY:
                conn.send_mail("a@example.test", ["b@example.test", "c@example.test"], b"x")
            conn.data_to_send()
            if not chunk:
                break
    except RemoteProtocolError:
        pass
