"""The sans-IO client (mailroom.protocol.client) as transcripts: what it writes for each reply,
the events it gives, and the exact bytes of a message on the wire.

Each scripted transcript is played twice: replies fed whole and one byte at a time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailroom.protocol.client import (
    NEED_DATA,
    AuthCompleted,
    ClientState,
    CommandCompleted,
    CommandFailed,
    ExtensionNotOffered,
    GreetingReceived,
    HelloCompleted,
    InvalidAddress,
    LocalProtocolError,
    MailOptions,
    MessageTooLarge,
    Recipient,
    RemoteProtocolError,
    ServerClosed,
    ServiceClosing,
    SMTPUTF8NotOffered,
    TLSReady,
    TransactionCompleted,
    TransactionInterrupted,
)
from mailroom.protocol.client_sasl import CramMD5, Login, Plain, ScramSHA256, XOAuth2
from tests.client.sansio import CLIENT_NAME, EHLO_FULL, GREETING, Scripted, new

STEPS = [None, 1]
OK_MAIL = b"250 2.1.0 Ok\r\n"
OK_RCPT = b"250 2.1.5 Ok\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
QUEUED = b"250 2.0.0 Ok: queued as Q1\r\n"
RESET = b"250 2.0.0 Ok\r\n"
EHLO_PLAIN = b"250-mx.example.test\r\n250 8BITMIME\r\n"  # no PIPELINING, no SIZE


def only(events: list, kind: type):  # type: ignore[no-untyped-def,type-arg]
    assert len(events) == 1 and isinstance(events[0], kind), events
    return events[0]


# -- greeting and hello --------------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_greeting_and_ehlo_extensions(step: int | None) -> None:
    s = Scripted(step)
    greeting = only(s.feed(GREETING), GreetingReceived)
    assert greeting.accepted and s.conn.state is ClientState.CONNECTED
    s.conn.ehlo()
    assert s.sent() == b"EHLO client.example.test\r\n"
    hello = only(s.feed(EHLO_FULL), HelloCompleted)
    ext = hello.extensions
    assert hello.esmtp and s.conn.state is ClientState.READY
    assert (ext.pipelining, ext.size, ext.eightbitmime, ext.smtputf8, ext.dsn) == (
        True,
        1000,
        True,
        True,
        True,
    )
    assert ext.enhancedstatuscodes and not ext.chunking and not ext.starttls
    assert ext.auth_mechanisms == ("PLAIN", "LOGIN")


@pytest.mark.parametrize("step", STEPS)
def test_helo_after_ehlo_is_refused_with_5xx(step: int | None) -> None:
    s = Scripted(step)
    s.feed(GREETING)
    s.conn.ehlo()
    s.sent()
    assert s.feed(b"502 5.5.1 Error: command not implemented\r\n") == []
    assert s.sent() == b"HELO client.example.test\r\n"
    hello = only(s.feed(b"250 mx.example.test\r\n"), HelloCompleted)
    assert not hello.esmtp and hello.extensions.names == () and s.conn.state is ClientState.READY


def test_old_style_auth_keyword_is_read() -> None:
    s = Scripted()
    s.ready(b"250-mx\r\n250-AUTH=PLAIN LOGIN\r\n250-AUTH CRAM-MD5\r\n250 SIZE\r\n")
    assert s.conn.extensions.auth_mechanisms == ("PLAIN", "LOGIN", "CRAM-MD5")
    assert s.conn.extensions.size == 0  # offered without a limit


def test_size_of_unicode_digits_is_no_limit() -> None:
    # str.isdigit is true of "²", which int refuses: a server's odd SIZE is read as no number
    s = Scripted()
    s.ready("250-mx\r\n250 SIZE ²\r\n".encode())
    assert s.conn.extensions.size == 0


def test_ehlo_421_fails_and_closes() -> None:
    s = Scripted()
    s.feed(GREETING)
    s.conn.ehlo()
    s.sent()
    failed = only(s.feed(b"421 4.3.2 mx Service shutting down\r\n"), CommandFailed)
    assert failed.command == "EHLO" and failed.reply.code == 421
    assert s.conn.state is ClientState.CLOSING
    assert s.sent() == b""  # no HELO after a 421


def test_554_greeting_then_quit() -> None:
    s = Scripted()
    greeting = only(s.feed(b"554 5.7.1 mx No SMTP service here\r\n"), GreetingReceived)
    assert not greeting.accepted
    s.conn.quit()
    assert s.sent() == b"QUIT\r\n"
    only(s.feed(b"221 2.0.0 Bye\r\n"), CommandCompleted)
    only(s.feed(b""), ServerClosed)
    assert s.events[-1] == ServerClosed(expected=True) and s.conn.state is ClientState.CLOSED


def test_ehlo_name_must_be_a_domain() -> None:
    with pytest.raises(ValueError):
        new().__class__(local_hostname="bad name\r\nMAIL FROM:<x>")
    s = Scripted()
    s.feed(GREETING)
    with pytest.raises(ValueError):
        s.conn.ehlo("two words")
    s.conn.ehlo("[192.0.2.1]")
    assert s.sent() == b"EHLO [192.0.2.1]\r\n"


# -- a mail transaction --------------------------------------------------------------------------

MESSAGE = (
    b"Subject: dots\n"  # bare LF
    b"\n"
    b".starts with a dot\r\n"
    b"smuggle\n.\nMAIL FROM:<evil@example.test>\r\n"  # <LF>.<LF>
    b"carriage\r.\rreturns\r\n"  # <CR>.<CR>
    b"mixed\r\n.\nend"  # <CRLF>.<LF>, and no line ending at the end
)
ON_THE_WIRE = (
    b"Subject: dots\r\n"
    b"\r\n"
    b"..starts with a dot\r\n"
    b"smuggle\r\n..\r\nMAIL FROM:<evil@example.test>\r\n"
    b"carriage\r\n..\r\nreturns\r\n"
    b"mixed\r\n..\r\nend\r\n"
    b".\r\n"
)


@pytest.mark.parametrize("step", STEPS)
def test_pipelined_transaction_with_data(step: int | None) -> None:
    s = Scripted(step)
    s.ready()
    s.conn.send_mail("alice@example.test", ["bob@example.test", "carol@example.test"], MESSAGE)
    size = len(ON_THE_WIRE) - len(b".\r\n") - 4  # before dot-stuffing: four extra dots
    assert s.sent() == (
        f"MAIL FROM:<alice@example.test> SIZE={size}\r\n".encode()
        + b"RCPT TO:<bob@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n"
    )
    assert s.feed(OK_MAIL + OK_RCPT + OK_RCPT + GO_AHEAD) == []
    wire = s.sent()
    assert wire == ON_THE_WIRE
    # The only end of data on the wire is the real one: nothing can be smuggled through.
    assert wire.count(b"\r\n.\r\n") == 1 and wire.endswith(b"\r\n.\r\n")
    assert b"\n.\n" not in wire and b"\r.\r" not in wire
    done = only(s.feed(QUEUED), TransactionCompleted).result
    assert done.all_delivered and done.method == "DATA" and done.size == size
    assert [r.reply.code for r in done.recipients] == [250, 250]
    assert done.data_reply is not None and done.data_reply.lines == ("Ok: queued as Q1",)
    assert s.conn.state is ClientState.READY


@pytest.mark.parametrize("step", STEPS)
def test_pipelined_partial_refusal_gives_per_recipient_results(step: int | None) -> None:
    s = Scripted(step)
    s.ready()
    s.conn.send_mail("a@example.test", ["bob@example.test", "nobody@example.test"], b"hi\r\n")
    s.sent()
    unknown = b"550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown\r\n"
    s.feed(OK_MAIL + OK_RCPT + unknown + GO_AHEAD)
    assert s.sent() == b"hi\r\n.\r\n"
    result = only(s.feed(QUEUED), TransactionCompleted).result
    assert [r.address for r in result.delivered] == ["bob@example.test"]
    (refused,) = result.failed
    assert refused.address == "nobody@example.test" and refused.is_permanent
    assert refused.reply.code == 550 and str(refused.reply.status) == "5.1.1"
    assert result["nobody@example.test"].rcpt_reply == refused.reply


@pytest.mark.parametrize("step", STEPS)
def test_pipelined_every_recipient_refused_but_354_sends_an_empty_message(step: int | None) -> None:
    s = Scripted(step)
    s.ready()
    s.conn.send_mail("a@example.test", ["x@example.test"], b"secret body\r\n")
    s.sent()
    s.feed(OK_MAIL + b"450 4.2.2 over quota\r\n" + GO_AHEAD)
    assert s.sent() == b".\r\n"  # RFC 2920 §3.1: never the message itself
    result = only(s.feed(b"554 5.5.1 Error: no valid recipients\r\n"), TransactionCompleted).result
    assert not result.delivered and result.recipients[0].is_transient
    assert result.recipients[0].reply.code == 450


@pytest.mark.parametrize("step", STEPS)
def test_pipelined_data_refused_then_rset(step: int | None) -> None:
    s = Scripted(step)
    s.ready()
    s.conn.send_mail("a@example.test", ["x@example.test"], b"body\r\n")
    s.sent()
    s.feed(OK_MAIL + b"550 5.1.1 unknown\r\n" + b"554 5.5.1 Error: no valid recipients\r\n")
    assert s.sent() == b"RSET\r\n"  # MAIL opened a transaction: close it before the next
    assert s.conn.state is ClientState.BUSY
    result = only(s.feed(RESET), TransactionCompleted).result
    assert result.recipients[0].reply.code == 550 and result.data_reply is None
    assert s.conn.state is ClientState.READY


@pytest.mark.parametrize("step", STEPS)
def test_lockstep_without_pipelining(step: int | None) -> None:
    s = Scripted(step)
    s.ready(EHLO_PLAIN)
    s.conn.send_mail("a@example.test", ["b@example.test", "c@example.test"], b"x")
    assert s.sent() == b"MAIL FROM:<a@example.test>\r\n"  # no SIZE: not offered
    s.feed(OK_MAIL)
    assert s.sent() == b"RCPT TO:<b@example.test>\r\n"
    s.feed(OK_RCPT)
    assert s.sent() == b"RCPT TO:<c@example.test>\r\n"
    s.feed(OK_RCPT)
    assert s.sent() == b"DATA\r\n"
    s.feed(GO_AHEAD)
    assert s.sent() == b"x\r\n.\r\n"
    assert only(s.feed(QUEUED), TransactionCompleted).result.all_delivered


def test_lockstep_mail_refused_sends_no_rcpt() -> None:
    s = Scripted()
    s.ready(EHLO_PLAIN)
    s.conn.send_mail("spammer@example.test", ["b@example.test", "c@example.test"], b"x")
    s.sent()
    result = only(s.feed(b"553 5.7.1 Sender address rejected\r\n"), TransactionCompleted).result
    assert s.sent() == b""
    assert [r.reply.code for r in result.recipients] == [553, 553]
    assert all(r.rcpt_reply is None for r in result.recipients)


def test_lockstep_all_recipients_refused_resets() -> None:
    s = Scripted()
    s.ready(EHLO_PLAIN)
    s.conn.send_mail("a@example.test", ["b@example.test"], b"x")
    s.sent()
    s.feed(OK_MAIL)
    s.sent()
    s.feed(b"550 5.1.1 no\r\n")
    assert s.sent() == b"RSET\r\n"
    assert only(s.feed(RESET), TransactionCompleted).result.failed


def test_two_messages_on_one_connection() -> None:
    s = Scripted()
    s.ready()
    for number in (1, 2):
        s.conn.send_mail("a@example.test", ["b@example.test"], f"message {number}".encode())
        s.sent()
        s.feed(OK_MAIL + OK_RCPT + GO_AHEAD)
        assert s.sent() == f"message {number}\r\n.\r\n".encode()
        assert only(s.feed(QUEUED), TransactionCompleted).result.all_delivered


# -- BDAT ----------------------------------------------------------------------------------------

EHLO_CHUNKING = b"250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 8BITMIME\r\n"


@pytest.mark.parametrize("step", STEPS)
def test_bdat_chunks_pipelined(step: int | None) -> None:
    s = Scripted(step)
    s.ready(EHLO_CHUNKING)
    s.conn.send_mail("a@example.test", ["b@example.test"], b"12345\n.\n", MailOptions(chunk_size=4))
    assert s.sent() == b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
    assert s.feed(OK_MAIL + OK_RCPT) == []
    # No dot-stuffing with BDAT, but line endings are still CRLF.
    assert s.sent() == b"BDAT 4\r\n1234BDAT 4\r\n5\r\n.BDAT 2 LAST\r\n\r\n"
    chunk_ok = b"250 2.0.0 Ok: 4 octets received\r\n"
    assert s.feed(chunk_ok + chunk_ok) == []
    result = only(s.feed(QUEUED), TransactionCompleted).result
    assert result.all_delivered and result.method == "BDAT" and result.size == 10


def test_awaiting_final_is_the_reply_after_the_message() -> None:
    """Only the reply that says whether the message was taken gets RFC 5321 §4.5.3.2.6's ten
    minutes: after the end of data, and after BDAT LAST (not after the chunks before it)."""
    s = Scripted()
    assert not s.conn.awaiting_final  # the greeting
    s.ready()
    s.conn.send_mail("a@example.test", ["b@example.test"], b"hi\r\n")
    s.sent()
    assert not s.conn.awaiting_final  # MAIL, RCPT and DATA pipelined
    s.feed(OK_MAIL + OK_RCPT)
    assert not s.conn.awaiting_final  # DATA's 354
    s.feed(GO_AHEAD)
    assert s.sent().endswith(b"\r\n.\r\n") and s.conn.awaiting_final
    only(s.feed(QUEUED), TransactionCompleted)
    assert not s.conn.awaiting_final

    s = Scripted()
    s.ready(EHLO_PLAIN)  # lockstep: the 354 first, then the message
    s.conn.send_mail("a@example.test", ["b@example.test"], b"hi\r\n")
    s.feed(OK_MAIL + OK_RCPT)
    assert not s.conn.awaiting_final
    s.feed(GO_AHEAD)
    assert s.conn.awaiting_final

    s = Scripted()
    s.ready(EHLO_CHUNKING)
    s.conn.send_mail("a@example.test", ["b@example.test"], b"abc\r\n", MailOptions(chunk_size=3))
    s.sent()
    s.feed(OK_MAIL + OK_RCPT)
    assert s.sent() == b"BDAT 3\r\nabcBDAT 2 LAST\r\n\r\n" and not s.conn.awaiting_final
    s.feed(b"250 2.0.0 Ok: 3 octets received\r\n")
    assert s.conn.awaiting_final  # the next reply is BDAT LAST's
    only(s.feed(QUEUED), TransactionCompleted)
    assert not s.conn.awaiting_final


def test_bdat_refused_chunk_ends_the_message_and_resets() -> None:
    s = Scripted()
    s.ready(EHLO_CHUNKING)
    s.conn.send_mail("a@example.test", ["b@example.test"], b"abcdefgh", MailOptions(chunk_size=5))
    s.sent()
    s.feed(OK_MAIL + OK_RCPT)
    s.sent()
    s.feed(b"552 5.3.4 Error: message exceeds fixed maximum message size\r\n")
    s.feed(b"503 5.5.1 Error: earlier BDAT chunk was refused, send RSET\r\n")
    assert s.sent() == b"RSET\r\n"
    result = only(s.feed(RESET), TransactionCompleted).result
    assert result.recipients[0].reply.code == 552  # the first refusal, not the follow-up


def test_binarymime_is_sent_as_is() -> None:
    s = Scripted()
    s.ready(EHLO_CHUNKING)
    body = b"\x00\xff\r\n.\n\r"
    s.conn.send_mail("a@example.test", ["b@example.test"], body, MailOptions(body="BINARYMIME"))
    assert s.sent().startswith(b"MAIL FROM:<a@example.test> BODY=BINARYMIME\r\n")
    s.feed(OK_MAIL + OK_RCPT)
    assert s.sent() == b"BDAT 7 LAST\r\n" + body


def test_chunking_can_be_turned_off() -> None:
    s = Scripted()
    s.ready(EHLO_CHUNKING)
    s.conn.send_mail("a@example.test", ["b@example.test"], b"x", MailOptions(chunking=False))
    assert s.sent().endswith(b"DATA\r\n")


# -- what is refused before sending -------------------------------------------------------------


def test_message_larger_than_size_is_refused_locally() -> None:
    s = Scripted()
    s.ready()  # SIZE 1000
    with pytest.raises(MessageTooLarge) as caught:
        s.conn.send_mail("a@example.test", ["b@example.test"], b"x" * 999 + b"\n")
    assert caught.value.size == 1001 and caught.value.limit == 1000
    assert caught.value.reply.code == 552 and str(caught.value.reply.status) == "5.3.4"
    assert s.sent() == b"" and s.conn.state is ClientState.READY
    s.conn.send_mail("a@example.test", ["b@example.test"], b"x" * 998)  # 1000 with CRLF: fits
    assert b"SIZE=1000" in s.sent()


def test_smtputf8() -> None:
    s = Scripted()
    s.ready()
    s.conn.send_mail("álvaro@example.test", ["bøb@exämple.test"], b"x")
    assert s.sent().startswith("MAIL FROM:<álvaro@example.test> SIZE=3 SMTPUTF8\r\n".encode())
    plain = Scripted()
    plain.ready(EHLO_PLAIN)
    with pytest.raises(SMTPUTF8NotOffered) as caught:
        plain.conn.send_mail("a@example.test", ["bøb@example.test"], b"x")
    assert caught.value.reply.code == 553 and caught.value.address == "bøb@example.test"


def test_8bitmime_when_the_message_needs_it() -> None:
    s = Scripted()
    s.ready()
    s.conn.send_mail("a@example.test", ["b@example.test"], "café".encode())
    assert s.sent().startswith(b"MAIL FROM:<a@example.test> SIZE=7 BODY=8BITMIME\r\n")
    s.feed(OK_MAIL + OK_RCPT + GO_AHEAD + QUEUED)
    s.conn.send_mail("a@example.test", ["b@example.test"], b"ascii")
    assert b"BODY" not in s.sent()


def test_dsn_parameters() -> None:
    s = Scripted()
    s.ready()
    s.conn.send_mail(
        "",
        [
            Recipient(
                "bob@example.test", notify=("success", "failure"), orcpt="bob+x=y@example.test"
            ),
            Recipient("carol@example.test", notify=("NEVER",)),
        ],
        b"x",
        MailOptions(ret="HDRS", envid="id 1+2=3"),
    )
    assert s.sent() == (
        b"MAIL FROM:<> SIZE=3 RET=HDRS ENVID=id+201+2B2+3D3\r\n"
        b"RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx+3Dy@example.test\r\n"
        b"RCPT TO:<carol@example.test> NOTIFY=NEVER\r\n"
        b"DATA\r\n"
    )
    # Without DSN offered, the parameters are left out (RFC 3461 §4).
    plain = Scripted()
    plain.ready(EHLO_PLAIN)
    plain.conn.send_mail(
        "", [Recipient("b@example.test", notify=("DELAY",))], b"x", MailOptions(ret="FULL")
    )
    assert plain.sent() == b"MAIL FROM:<>\r\n"


@pytest.mark.parametrize(
    "address",
    [
        "bob",
        "bob@",
        "<bob@example.test>",
        "bob@example.test>\r\nRSET",
        "bob @example.test",
        "a@b@c",
    ],
)
def test_addresses_that_cannot_be_sent(address: str) -> None:
    s = Scripted()
    s.ready()
    with pytest.raises(InvalidAddress):
        s.conn.send_mail("a@example.test", [address], b"x")
    with pytest.raises(InvalidAddress):
        s.conn.send_mail(address, ["b@example.test"], b"x")
    assert s.sent() == b""


def test_extensions_not_offered() -> None:
    s = Scripted()
    s.ready(EHLO_PLAIN)
    with pytest.raises(ExtensionNotOffered):
        s.conn.starttls()
    with pytest.raises(ExtensionNotOffered):
        s.conn.send_mail("a@example.test", ["b@example.test"], b"x", MailOptions(body="BINARYMIME"))
    with pytest.raises(ExtensionNotOffered):
        s.conn.send_mail("a@example.test", ["b@example.test"], b"x", MailOptions(chunking=True))
    with pytest.raises(ExtensionNotOffered):
        s.conn.authenticate(Plain("u", "p"), allow_plaintext=True)


def test_commands_out_of_turn() -> None:
    s = Scripted()
    with pytest.raises(LocalProtocolError):
        s.conn.ehlo()  # before the greeting
    s.feed(GREETING)
    with pytest.raises(LocalProtocolError):
        s.conn.send_mail("a@example.test", ["b@example.test"], b"x")  # before EHLO
    s.conn.ehlo()
    with pytest.raises(LocalProtocolError):
        s.conn.noop()  # EHLO still outstanding
    s.feed(EHLO_FULL)
    with pytest.raises(LocalProtocolError):
        s.conn.send_mail("a@example.test", [], b"x")


# -- STARTTLS ------------------------------------------------------------------------------------

EHLO_TLS = b"250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n"


@pytest.mark.parametrize("step", STEPS)
def test_starttls(step: int | None) -> None:
    s = Scripted(step)
    s.ready(EHLO_TLS)
    s.conn.starttls()
    assert s.sent() == b"STARTTLS\r\n"
    only(s.feed(b"220 2.0.0 Ready to start TLS\r\n"), TLSReady)
    assert s.conn.state is ClientState.TLS_HANDSHAKE
    s.conn.tls_started()
    assert s.conn.tls and s.conn.state is ClientState.CONNECTED
    assert not s.conn.extensions.pipelining  # forgotten: EHLO again (RFC 3207 §4.2)
    s.conn.ehlo()
    assert s.sent() == b"EHLO client.example.test\r\n"


def test_plaintext_injected_after_starttls_is_refused() -> None:
    s = Scripted()
    s.ready(EHLO_TLS)
    s.conn.starttls()
    with pytest.raises(RemoteProtocolError):
        s.feed(b"220 2.0.0 Ready to start TLS\r\n250-injected\r\n")
    s = Scripted()
    s.ready(EHLO_TLS)
    s.conn.starttls()
    s.feed(b"220 2.0.0 Ready to start TLS\r\n")
    with pytest.raises(RemoteProtocolError):
        s.feed(b"250 injected later\r\n")


@pytest.mark.parametrize("step", [None, 1, 7, 4096])
def test_a_long_reply_in_pieces_is_read_whole(step: int | None) -> None:
    """A reply of 128 lines of RFC 5321's 512 octets (CRLF included), fed in pieces of any
    size: each octet is searched once (from the start each time, a 60 MB reply in 16 KiB
    pieces took 145 s of the event loop), and the lines come out whole, the next reply
    after them."""
    lines = [b"220-" + b"%03d" % n + b"x" * 503 for n in range(127)] + [b"220 " + b"y" * 506]
    s = Scripted(step)
    greeting = only(s.feed(b"\r\n".join(lines) + b"\r\n"), GreetingReceived)
    assert list(greeting.reply.lines) == [line[4:].decode() for line in lines]
    s.conn.ehlo()
    s.sent()
    s.feed(EHLO_FULL)
    assert s.conn.extensions.pipelining


def test_a_reply_too_long_is_a_protocol_error() -> None:
    """A next hop's reply is kept (the queue's last reply, a report's diagnostic): over 64 KiB
    in all it is refused, not kept, however its lines are cut."""
    s = Scripted(16384)
    with pytest.raises(RemoteProtocolError, match="reply longer than 65536 octets"):
        s.feed((b"220-" + b"x" * 60_000 + b"\r\n") * 999 + b"220 ok\r\n")
    s = Scripted()
    with pytest.raises(RemoteProtocolError, match="reply longer than 65536 octets"):
        s.feed((b"220-" + b"x" * 500 + b"\r\n") * 200 + b"220 ok\r\n")


def test_starttls_refused() -> None:
    s = Scripted()
    s.ready(EHLO_TLS)
    s.conn.starttls()
    failed = only(s.feed(b"454 4.7.0 TLS not available due to temporary reason\r\n"), CommandFailed)
    assert failed.command == "STARTTLS" and s.conn.state is ClientState.READY and not s.conn.tls


# -- AUTH ----------------------------------------------------------------------------------------

EHLO_AUTH = b"250-mx\r\n250 AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256 XOAUTH2\r\n"


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


@pytest.mark.parametrize("step", STEPS)
def test_auth_plain_with_initial_response(step: int | None) -> None:
    s = Scripted(step)
    s.ready(EHLO_AUTH)
    s.conn.authenticate(Plain("bob", "secret"), allow_plaintext=True)
    assert s.sent() == b"AUTH PLAIN " + b64(b"\0bob\0secret") + b"\r\n"
    done = only(s.feed(b"235 2.7.0 Authentication successful\r\n"), AuthCompleted)
    assert done.mechanism == "PLAIN" and s.conn.authenticated == "PLAIN"


def test_plaintext_mechanisms_need_tls_or_consent() -> None:
    s = Scripted()
    s.ready(EHLO_AUTH)
    with pytest.raises(LocalProtocolError):
        s.conn.authenticate(Plain("bob", "secret"))
    with pytest.raises(LocalProtocolError):
        s.conn.authenticate(XOAuth2("bob", "token"))
    s.conn.authenticate(CramMD5("bob", "secret"))  # the password never crosses the wire


@pytest.mark.parametrize("step", STEPS)
def test_auth_login(step: int | None) -> None:
    s = Scripted(step)
    s.ready(EHLO_AUTH)
    s.conn.authenticate(Login("bob", "secret"), allow_plaintext=True)
    assert s.sent() == b"AUTH LOGIN\r\n"
    s.feed(b"334 " + b64(b"Username:") + b"\r\n")
    assert s.sent() == b64(b"bob") + b"\r\n"
    s.feed(b"334 " + b64(b"Password:") + b"\r\n")
    assert s.sent() == b64(b"secret") + b"\r\n"
    only(s.feed(b"235 2.7.0 Authentication successful\r\n"), AuthCompleted)


def test_auth_cram_md5_rfc_2195_example() -> None:
    s = Scripted()
    s.ready(EHLO_AUTH)
    s.conn.authenticate(CramMD5("tim", "tanstaaftanstaaf"))
    assert s.sent() == b"AUTH CRAM-MD5\r\n"
    s.feed(b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n")
    assert base64.b64decode(s.sent()) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def _scram_server_first(client_first: bytes, password: str) -> tuple[bytes, bytes, bytes]:
    """A SCRAM-SHA-256 server written out from RFC 5802 for the test: its first message,
    the server signature the client must check, and the client proof it expects."""
    bare = client_first.split(b",", 2)[2].decode()
    nonce = dict(item.split("=", 1) for item in bare.split(","))["r"] + "SERVERNONCE"
    salt = b"saltsalt"
    server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i=4096"
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 4096)
    without_proof = f"c={base64.b64encode(b'n,,').decode()},r={nonce}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored = hashlib.sha256(client_key).digest()
    proof = bytes(
        a ^ b for a, b in zip(client_key, hmac.digest(stored, auth_message, "sha256"), strict=True)
    )
    return server_first.encode(), hmac.digest(server_key, auth_message, "sha256"), proof


def test_auth_scram_verifies_the_server() -> None:
    s = Scripted()
    s.ready(EHLO_AUTH)
    s.conn.authenticate(ScramSHA256("bob", "secret", nonce=lambda: "CLIENTNONCE"))
    line = s.sent()
    assert line.startswith(b"AUTH SCRAM-SHA-256 ")
    client_first = base64.b64decode(line.split()[2])
    assert client_first == b"n,,n=bob,r=CLIENTNONCE"
    server_first, signature, proof = _scram_server_first(client_first, "secret")
    s.feed(b"334 " + b64(server_first) + b"\r\n")
    client_final = base64.b64decode(s.sent())
    assert client_final.endswith(b",p=" + b64(proof))
    s.feed(b"334 " + b64(b"v=" + b64(signature)) + b"\r\n")
    assert s.sent() == b"\r\n"  # the empty response after the server's final message
    only(s.feed(b"235 2.7.0 Authentication successful\r\n"), AuthCompleted)


def test_auth_scram_iteration_count_of_unicode_digits_is_cancelled() -> None:
    s = Scripted()
    s.ready(EHLO_AUTH)
    s.conn.authenticate(ScramSHA256("bob", "secret", nonce=lambda: "CLIENTNONCE"))
    s.sent()
    server_first = "r=CLIENTNONCESERVER,s=c2FsdA==,i=²".encode()
    s.feed(b"334 " + b64(server_first) + b"\r\n")
    assert s.sent() == b"*\r\n"
    failed = only(s.feed(b"501 5.7.0 Authentication cancelled\r\n"), CommandFailed)
    assert "iteration count" in failed.detail and s.conn.authenticated is None


def test_auth_scram_wrong_server_signature_is_cancelled() -> None:
    s = Scripted()
    s.ready(EHLO_AUTH)
    s.conn.authenticate(ScramSHA256("bob", "secret", nonce=lambda: "CLIENTNONCE"))
    client_first = base64.b64decode(s.sent().split()[2])
    server_first, _, _ = _scram_server_first(client_first, "secret")
    s.feed(b"334 " + b64(server_first) + b"\r\n")
    s.sent()
    s.feed(b"334 " + b64(b"v=" + b64(b"\0" * 32)) + b"\r\n")
    assert s.sent() == b"*\r\n"
    failed = only(s.feed(b"501 5.7.0 Authentication cancelled\r\n"), CommandFailed)
    assert "signature" in failed.detail and s.conn.authenticated is None


def test_auth_scram_235_without_signature_is_not_believed() -> None:
    s = Scripted()
    s.ready(EHLO_AUTH)
    s.conn.authenticate(ScramSHA256("bob", "secret", nonce=lambda: "CLIENTNONCE"))
    client_first = base64.b64decode(s.sent().split()[2])
    server_first, _, _ = _scram_server_first(client_first, "secret")
    s.feed(b"334 " + b64(server_first) + b"\r\n")
    s.sent()
    failed = only(s.feed(b"235 2.7.0 Authentication successful\r\n"), CommandFailed)
    assert "prove" in failed.detail and s.conn.authenticated is None


def test_auth_xoauth2_failure_keeps_the_servers_error() -> None:
    s = Scripted()
    s.ready(EHLO_AUTH)
    s.conn.authenticate(XOAuth2("bob@example.test", "ya29.token"), allow_plaintext=True)
    assert (
        base64.b64decode(s.sent().split()[2])
        == b"user=bob@example.test\x01auth=Bearer ya29.token\x01\x01"
    )
    error = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
    s.feed(b"334 " + b64(error) + b"\r\n")
    assert s.sent() == b"\r\n"
    failed = only(s.feed(b"535 5.7.8 Username and Password not accepted\r\n"), CommandFailed)
    assert failed.reply.code == 535 and failed.detail == error.decode()


def test_auth_garbage_challenge_is_cancelled() -> None:
    s = Scripted()
    s.ready(EHLO_AUTH)
    s.conn.authenticate(CramMD5("bob", "secret"))
    s.sent()
    s.feed(b"334 not base64!\r\n")
    assert s.sent() == b"*\r\n"
    assert only(s.feed(b"501 5.7.0 Authentication cancelled\r\n"), CommandFailed).detail


# -- the server misbehaving or closing -----------------------------------------------------------


def test_unsolicited_421() -> None:
    s = Scripted()
    s.ready()
    closing = only(s.feed(b"421 4.4.2 mx Error: timeout exceeded\r\n"), ServiceClosing)
    assert closing.reply.code == 421 and s.conn.state is ClientState.CLOSING
    assert s.feed(b"") == [ServerClosed(expected=True)]


def test_421_in_the_middle_of_a_transaction() -> None:
    s = Scripted()
    s.ready()
    s.conn.send_mail("a@example.test", ["b@example.test", "c@example.test"], b"x")
    s.sent()
    result = only(s.feed(OK_MAIL + b"421 4.3.2 shutting down\r\n"), TransactionCompleted).result
    assert [r.reply.code for r in result.recipients] == [421, 421]
    assert s.conn.state is ClientState.CLOSING and s.sent() == b""
    s.feed(b"503 5.5.1 late reply\r\n")  # what was pipelined may still be answered: ignored


def test_connection_lost_mid_transaction() -> None:
    s = Scripted()
    s.ready()
    s.conn.send_mail("a@example.test", ["b@example.test"], b"x")
    assert s.feed(b"") == [ServerClosed(expected=False)]
    assert s.conn.state is ClientState.CLOSED


def test_connection_lost_after_the_recipients_tells_who_was_refused() -> None:
    s = Scripted()
    s.ready()
    s.conn.send_mail("a@example.test", ["b@example.test", "nobody@example.test"], b"x")
    s.sent()
    s.feed(OK_MAIL + OK_RCPT + b"550 5.1.1 unknown\r\n" + GO_AHEAD)
    assert s.sent() == b"x\r\n.\r\n"
    interrupted, closed = s.feed(b"")
    # The message got no reply: only the refusal is known.
    assert isinstance(interrupted, TransactionInterrupted) and closed == ServerClosed(False)
    assert [(r.address, r.reply.code) for r in interrupted.result.recipients] == [
        ("nobody@example.test", 550)
    ]


@pytest.mark.parametrize(
    "garbage",
    [b"hello\r\n", b"220-more\r\n221 mismatched\r\n", b"999 no\r\n", b"25\r\n", b"x" * 70000],
)
def test_malformed_replies(garbage: bytes) -> None:
    s = Scripted()
    with pytest.raises(RemoteProtocolError):
        s.feed(garbage)


def test_reply_to_nothing() -> None:
    s = Scripted()
    s.ready()
    with pytest.raises(RemoteProtocolError):
        s.feed(b"250 surprise\r\n")


def test_sloppy_but_clear_replies_are_read() -> None:
    s = Scripted()
    only(s.feed(b"220 mx ready\n"), GreetingReceived)  # bare LF
    s.conn.ehlo()
    s.sent()
    s.feed(EHLO_FULL)
    s.conn.noop()
    s.sent()
    # A class mismatch between the codes keeps the text, and the basic code rules.
    done = only(s.feed(b"250 5.0.0 Ok\r\n"), CommandCompleted)
    assert done.reply.code == 250 and done.reply.status is None and "5.0.0" in done.reply.text


def test_next_event_needs_data() -> None:
    conn = new()
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"220 mx")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b" ready\r\n")
    assert isinstance(conn.next_event(), GreetingReceived)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12))
def test_random_server_bytes_only_ever_give_a_protocol_error(chunks: list[bytes]) -> None:
    """The fuzz invariant of h11: whatever the server sends, the client either goes on or
    raises RemoteProtocolError; never another exception."""
    conn = new()
    try:
        for index, chunk in enumerate(chunks):
            conn.receive_data(chunk)
            while conn.next_event() is not NEED_DATA:
                pass
            if index == 0 and conn.state is ClientState.CONNECTED:
                conn.ehlo()
            elif conn.state is ClientState.READY:
                conn.send_mail("a@example.test", ["b@example.test"], b"x")
            conn.data_to_send()
            if not chunk:
                break  # the server closed the connection
    except RemoteProtocolError:
        pass


def test_trace_masks_secrets() -> None:
    lines = []
    s = Scripted(conn=new(trace=lines.append))
    s.ready(EHLO_AUTH)
    s.conn.authenticate(Login("bob", "hunter2"), allow_plaintext=True)
    s.feed(b"334 " + b64(b"Username:") + b"\r\n")
    s.feed(b"334 " + b64(b"Password:") + b"\r\n")
    texts = [line.text for line in lines if line.direction == "client"]
    assert "AUTH LOGIN" in texts and all(b64(b"hunter2").decode() not in t for t in texts)
    assert all("hunter2" not in t and "bob" not in t for t in texts[2:])
    server = [line for line in lines if line.direction == "server"]
    assert server[0].reply is not None and server[0].reply.code == 220
    assert CLIENT_NAME in texts[0]
