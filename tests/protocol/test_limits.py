"""Limits: command line 512 octets (RFC 5321 §4.5.3.1.4), recipients per message
(§4.5.3.1.8, 452 4.5.3), too many bad commands in a row (421 4.7.0, 4xx and 5xx alike), too many commands that
move no mail, bad bytes in commands."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol.events import Event, MailFrom, RcptTo
from tests.protocol import wire as w
from tests.protocol.transcript import Session, default_policy, make_settings, run

EHLO = (w.EHLO, w.EHLO_OK)
MAIL = (w.MAIL, w.SENDER_OK)
TOO_MANY_RECIPIENTS = b"452 4.5.3 Error: too many recipients\r\n"
TOO_MANY_ERRORS = b"421 4.7.0 mx.example.test Error: too many errors, closing connection\r\n"


def noop_of(length: int) -> bytes:
    """A NOOP line of exactly ``length`` octets with its CRLF."""
    return b"NOOP " + b"x" * (length - 7) + b"\r\n"


def test_command_line_of_512_octets_is_accepted():
    assert len(noop_of(512)) == 512
    run([EHLO, (noop_of(512), w.OK)])


@pytest.mark.parametrize("length", [513, 600, 1100, 1200, 5000, 100_000])
def test_longer_command_line_is_refused_and_the_session_goes_on(length):
    byte_steps = (None, 1) if length < 10_000 else (None, 997)
    run(
        [EHLO, (noop_of(length), w.LINE_TOO_LONG), w.NOOP, (w.MAIL, w.SENDER_OK)],
        byte_steps=byte_steps,
    )


@pytest.mark.parametrize("line", [b"XXXX " + b"x" * 600 + b"\r\n", b"x" * 2000 + b"\r\n"])
def test_overlong_unknown_command_is_a_long_line(line):
    run([EHLO, (line, w.LINE_TOO_LONG), w.NOOP])


def test_endless_line_does_not_fill_memory():
    session = Session(make_settings())
    assert session.feed(w.EHLO) == w.EHLO_OK
    for _ in range(200):
        assert session.feed(b"A" * 1000) == b""
        assert session.conn.buffered < 4096
    assert session.feed(b"\r\nNOOP\r\n") == w.LINE_TOO_LONG + w.OK


def test_mail_and_rcpt_lines_get_the_extensions_allowance():
    # RFC 1870 §3, RFC 3461 §5: SIZE and DSN parameters lengthen MAIL and RCPT lines.
    orcpt = b"rfc822;" + b"o" * 480 + b"@example.test"
    rcpt = b"RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=" + orcpt + b"\r\n"
    assert 512 < len(rcpt) <= 1052  # 500 for DSN, 40 for RRVS
    envid = b"e" * 100
    mail = (
        b"MAIL FROM:<"
        + b"s" * 64
        + b"@"
        + b"d" * 60
        + b".example> SIZE=12345 BODY=8BITMIME RET=HDRS ENVID="
        + envid
        + b" SMTPUTF8\r\n"
    )
    run([EHLO, (mail, w.SENDER_OK), (rcpt, w.RECIPIENT_OK)])
    too_long = b"RCPT TO:<bob@example.test> ORCPT=rfc822;" + b"o" * 1100 + b"\r\n"
    run([EHLO, MAIL, (too_long, w.LINE_TOO_LONG), (w.RCPT, w.RECIPIENT_OK)])


def rcpt(n: int) -> bytes:
    return b"RCPT TO:<user%d@example.test>\r\n" % n


def test_101st_recipient_gets_452():
    rcpts = [(rcpt(n), w.RECIPIENT_OK) for n in range(100)]
    session = run(
        [
            EHLO,
            MAIL,
            *rcpts,
            (rcpt(100), TOO_MANY_RECIPIENTS),
            (rcpt(101), TOO_MANY_RECIPIENTS),
            (b"DATA\r\n", w.GO_AHEAD),
            (b"hi\r\n.\r\n", w.QUEUED),
            MAIL,
            (w.RCPT, w.RECIPIENT_OK),
        ],
        byte_steps=(None, 5),
    )
    assert session.messages == [b"hi\r\n"]


def test_recipient_limit_is_a_setting():
    settings = make_settings(max_recipients=2)
    run(
        [
            EHLO,
            MAIL,
            (b"RCPT TO:<a@example.test>\r\n", w.RECIPIENT_OK),
            (b"RCPT TO:<b@example.test>\r\n", w.RECIPIENT_OK),
            (b"RCPT TO:<c@example.test>\r\n", TOO_MANY_RECIPIENTS),
        ],
        settings=settings,
    )


def test_recipients_past_the_refusal_limit_end_the_session():
    """As Postfix's smtpd_recipient_overshoot_limit: a client that goes on sending RCPTs after
    452 4.5.3 gets each answered up to the limit, then 421 4.7.0 rather than a 452 for as long
    as it likes."""
    settings = make_settings(max_recipients=2, max_refused_recipients=3)
    over = [(rcpt(n), TOO_MANY_RECIPIENTS) for n in range(2, 5)]
    session = run(
        [
            EHLO,
            MAIL,
            (rcpt(0), w.RECIPIENT_OK),
            (rcpt(1), w.RECIPIENT_OK),
            *over,
            (rcpt(5), TOO_MANY_ERRORS),
            (w.NOOP[0], b""),
        ],
        settings=settings,
    )
    assert session.conn.closed


def refuse_odd_recipients(code: int) -> Callable[[Event], Reply]:
    """A policy that refuses every RCPT to an odd-numbered user: greylisted (450) or
    unknown (550)."""

    def policy(event: Event) -> Reply:
        if isinstance(event, RcptTo) and int(event.recipient.local_part[4:]) % 2:
            address = f"<{event.recipient}>"
            if code == 450:
                return replies.GREYLISTED(address=address, delay=300)
            return replies.MAILBOX_UNKNOWN(address=address)
        return default_policy(event)

    return policy


GREYLISTED = b"450 4.7.1 <user%d@example.test>: Recipient address rejected: Greylisted, try again in 300 seconds\r\n"
UNKNOWN = b"550 5.1.1 <user%d@example.test>: Recipient address rejected: User unknown\r\n"


@pytest.mark.parametrize(("code", "refusal"), [(450, GREYLISTED), (550, UNKNOWN)])
def test_recipients_refused_by_policy_count_too(code: int, refusal: bytes):
    """A flood of RCPTs that policy refuses (greylisted, unknown: each a lookup) is cut off
    too, even when taken recipients in between keep it from being bad commands in a row."""
    settings = make_settings(max_refused_recipients=3)
    steps = [EHLO, MAIL]
    for n in range(6):
        steps.append((rcpt(n), refusal % n if n % 2 else w.RECIPIENT_OK))
    steps.append((rcpt(6), TOO_MANY_ERRORS))
    session = run(steps, settings=settings, policy=refuse_odd_recipients(code))
    assert session.conn.closed


def test_refusals_count_across_transactions_until_a_message_is_taken():
    """RSET and a new MAIL do not start the count again (a client could otherwise flood by
    transactions); a message taken does, so a long list sent in batches of max_recipients,
    each batch overshooting, is never cut off."""
    settings = make_settings(max_recipients=1, max_refused_recipients=2)
    data = [(b"DATA\r\n", w.GO_AHEAD), (b"hi\r\n.\r\n", w.QUEUED)]
    batch = [MAIL, (rcpt(0), w.RECIPIENT_OK), (rcpt(1), TOO_MANY_RECIPIENTS)]
    session = run(
        [EHLO, *batch, (rcpt(2), TOO_MANY_RECIPIENTS), *data, *batch, *data, *batch, *data],
        settings=settings,
    )
    assert not session.conn.closed and len(session.messages) == 3
    session = run(
        [
            EHLO,
            *batch,
            (b"RSET\r\n", w.OK),
            *batch,
            (rcpt(2), TOO_MANY_ERRORS),
        ],
        settings=settings,
    )
    assert session.conn.closed


def test_no_refusal_limit():
    settings = make_settings(max_recipients=1, max_refused_recipients=0)
    over = [(rcpt(n), TOO_MANY_RECIPIENTS) for n in range(1, 1102)]
    session = run([EHLO, MAIL, (rcpt(0), w.RECIPIENT_OK), *over, w.NOOP], settings=settings)
    assert not session.conn.closed


def test_too_many_bad_commands_in_a_row():
    bad = [(b"BOGUS\r\n", w.UNKNOWN)] * 20
    session = run([EHLO, *bad, (b"NOOP\r\n", TOO_MANY_ERRORS), (b"NOOP\r\n", b"")])
    assert session.conn.closed


def test_good_commands_reset_the_count():
    bad = [(b"BOGUS\r\n", w.UNKNOWN)] * 19
    session = run([EHLO, *bad, w.NOOP, *bad, w.NOOP, *bad, (w.MAIL, w.SENDER_OK)])
    assert not session.conn.closed


def spf_temperror_at_mail(event: Event) -> Reply:
    """A policy whose SPF check of every sender meets a DNS error: 451 at MAIL."""
    if isinstance(event, MailFrom):
        return replies.SPF_TEMPERROR(
            address=f"<{event.sender}>", domain="example.test", problem="SERVFAIL"
        )
    return default_policy(event)


SPF_TEMPERROR = (
    b"451 4.7.24 <a@example.test>: SPF check of example.test could not be completed (SERVFAIL),"
    b" try again later\r\n"
)


def test_temporary_refusals_count_as_bad_commands():
    """A 4xx refuses as a 5xx does: a client looping on MAIL answered 451 (each try a round of
    SPF lookups) is cut off at the limit, not only by the idle timeout."""
    settings = make_settings(max_bad_commands=3)
    refused = (b"MAIL FROM:<a@example.test>\r\n", SPF_TEMPERROR)
    session = run(
        [EHLO, refused, refused, refused, (refused[0], TOO_MANY_ERRORS)],
        settings=settings,
        policy=spf_temperror_at_mail,
    )
    assert session.conn.closed
    # and mixed with 5xx ones, in a row
    session = run(
        [EHLO, refused, (b"BOGUS\r\n", w.UNKNOWN), refused, (w.NOOP[0], TOO_MANY_ERRORS)],
        settings=settings,
        policy=spf_temperror_at_mail,
    )
    assert session.conn.closed


def test_greylisted_recipients_are_not_bad_commands():
    """A 4xx to RCPT (greylisted, too many recipients) is counted by max_refused_recipients
    alone: a long list greylisted in a row is no error of the client's."""
    settings = make_settings(max_bad_commands=3)
    steps = [EHLO, MAIL]
    steps += [(rcpt(n), GREYLISTED % n) for n in range(1, 12, 2)]
    steps.append((rcpt(0), w.RECIPIENT_OK))
    session = run(steps, settings=settings, policy=refuse_odd_recipients(450))
    assert not session.conn.closed


CANNOT_EXPN = b"252 2.5.0 Cannot EXPN list, but will accept message and attempt delivery\r\n"
JUNK = [
    w.NOOP,
    (b"RSET\r\n", w.OK),
    (b"VRFY bob\r\n", w.CANNOT_VRFY),
    (b"EXPN staff\r\n", CANNOT_EXPN),
    (b"HELP\r\n", w.HELP),
    EHLO,
    (w.HELO, w.HELO_OK),
]
JUNK_IDS = ["noop", "rset", "vrfy", "expn", "help", "ehlo", "helo"]
MESSAGE = [MAIL, (w.RCPT, w.RECIPIENT_OK), (b"DATA\r\n", w.GO_AHEAD), (b"hi\r\n.\r\n", w.QUEUED)]


@pytest.mark.parametrize("junk", JUNK, ids=JUNK_IDS)
def test_a_command_that_moves_no_mail_past_the_limit_ends_the_session(junk):
    """Postfix's smtpd_junk_command_limit: a flood of NOOPs (or RSETs, VRFYs, EHLOs...) is
    cut off with 421 4.7.0 rather than answered for as long as the client likes."""
    settings = make_settings(max_junk_commands=4)
    session = run([EHLO, *[junk] * 3, (junk[0], TOO_MANY_ERRORS), (w.MAIL, b"")], settings=settings)
    assert session.conn.closed


def test_every_kind_counts_together_and_other_commands_go_on():
    settings = make_settings(max_junk_commands=len(JUNK))
    # The limit reached, mail still flows: MAIL and RCPT are not junk.
    steps = [*JUNK, MAIL, (w.RCPT, w.RECIPIENT_OK), (b"RSET\r\n", TOO_MANY_ERRORS)]
    session = run(steps, settings=settings)
    assert session.conn.closed


def test_a_message_taken_starts_the_count_again():
    """A client that checks its pooled connection with NOOP (or RSETs) before each message is
    never cut off; a transaction alone, or a refused message, does not count as mail sent."""
    settings = make_settings(max_junk_commands=3)
    noop, rset = JUNK[0], JUNK[1]
    session = run([EHLO, noop, rset, *MESSAGE, noop, noop, rset, *MESSAGE, noop], settings=settings)
    assert not session.conn.closed
    session = run(
        [
            EHLO,
            noop,
            MAIL,
            rset,
            MAIL,
            (w.RCPT, w.RECIPIENT_OK),
            (b"NOOP\r\n", TOO_MANY_ERRORS),
        ],
        settings=settings,
    )
    assert session.conn.closed
    refused = [*MESSAGE[:3], (b"bare\nLF\r\n.\r\n", w.BARE_LINE_ENDING)]
    session = run([EHLO, noop, rset, *refused, (b"NOOP\r\n", TOO_MANY_ERRORS)], settings=settings)
    assert session.conn.closed


def test_empty_chunks_that_do_not_end_the_message_count_as_junk():
    """BDAT 0 without LAST moves no mail (RFC 3030 allows it): a flood of them is cut off as
    a flood of NOOPs is; a chunk that carries octets, or BDAT 0 LAST, is mail."""
    settings = make_settings(max_junk_commands=4)  # EHLO is one
    empty = (b"BDAT 0\r\n", b"250 2.0.0 Ok: 0 octets received\r\n")
    steps = [EHLO, MAIL, (w.RCPT, w.RECIPIENT_OK), empty, empty, empty]
    session = run([*steps, (empty[0], TOO_MANY_ERRORS)], settings=settings)
    assert session.conn.closed
    chunk = (b"BDAT 2\r\nhi", b"250 2.0.0 Ok: 2 octets received\r\n")
    last = (b"BDAT 0 LAST\r\n", w.QUEUED)
    session = run([*steps, chunk, chunk, last, w.NOOP], settings=settings)
    assert not session.conn.closed and session.messages == [b"hihi"]


def test_a_pipelined_flood_of_noops_is_cut_off_at_the_default():
    session = Session(make_settings())
    assert session.feed(w.EHLO) == w.EHLO_OK
    assert session.feed(b"NOOP\r\n" * 10_000) == w.OK * 99 + TOO_MANY_ERRORS
    assert session.conn.closed


def test_no_junk_limit():
    session = Session(make_settings(max_junk_commands=0))
    assert session.feed(w.EHLO) == w.EHLO_OK
    assert session.feed(b"NOOP\r\n" * 1000) == w.OK * 1000
    assert not session.conn.closed


@pytest.mark.parametrize(
    "bad",
    [
        (b"BOGUS\r\n", w.UNKNOWN),
        (b"TURN\r\n", w.NOT_IMPLEMENTED),
        (b"RCPT TO:<a@example.test>\r\n", w.NEED_MAIL),
        (
            b"MAIL FROM:<bad..a@example.test>\r\n",
            b"501 5.1.7 <bad..a@example.test>: Bad sender address syntax\r\n",
        ),
        (noop_of(2000), w.LINE_TOO_LONG),
        (b"NOOP\x00\r\n", w.BAD_CHARACTERS),
    ],
    ids=["unknown", "unimplemented", "sequence", "syntax", "long-line", "nul"],
)
def test_every_kind_of_bad_command_counts(bad):
    settings = make_settings(max_bad_commands=3)
    session = run(
        [EHLO, bad, bad, bad, (w.MAIL, TOO_MANY_ERRORS), (b"QUIT\r\n", b"")], settings=settings
    )
    assert session.conn.closed
    # the fourth bad command itself is answered with 421, whatever kind it is
    session = run([EHLO, bad, bad, bad, (bad[0], TOO_MANY_ERRORS)], settings=settings)
    assert session.conn.closed


@pytest.mark.parametrize(
    "line",
    [
        b"NOOP\x00\r\n",
        b"NO\x00OP\r\n",
        b"NOOP\rRSET\r\n",
        b"NOOP \xff\xfe\r\n",
        b"MAIL FROM:<a\xc3@example.test>\r\n",
        b"\x00\r\n",
    ],
)
def test_bad_bytes_in_a_command(line):
    run([EHLO, (line, w.BAD_CHARACTERS), w.NOOP])


def test_bare_lf_ends_a_command_line():
    # Postfix and most servers accept LF alone as the end of a command (RFC 5321 §2.3.8 asks
    # clients for CRLF); it is only in message data that bare LF is dangerous.
    run([EHLO, (b"NOOP\n", w.OK), (b"MAIL FROM:<a@example.test>\n", w.SENDER_OK)])
