"""Commands out of sequence (RFC 5321 §4.1.4, RFC 3030 §2) and what resets a transaction."""

from __future__ import annotations

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol import (
    ChunkReceived,
    DataCommand,
    Event,
    MailFrom,
    MessageComplete,
    RcptTo,
    State,
)
from tests.protocol import wire as w
from tests.protocol.transcript import default_policy, run

EHLO = (w.EHLO, w.EHLO_OK)
MAIL = (w.MAIL, w.SENDER_OK)
RCPT = (w.RCPT, w.RECIPIENT_OK)
DATA_AFTER_BDAT = b"503 5.5.1 Error: DATA cannot follow BDAT in one transaction\r\n"
BDAT_AFTER_DATA = b"503 5.5.1 Error: BDAT cannot follow DATA\r\n"
BDAT_AFTER_FAILED = b"503 5.5.1 Error: earlier BDAT chunk was refused, send RSET\r\n"
NO_VALID_RECIPIENTS = b"554 5.5.1 Error: no valid recipients\r\n"


def chunk_ok(size: int) -> bytes:
    return b"250 2.0.0 Ok: %d octets received\r\n" % size


def test_mail_before_hello():
    run([(w.MAIL, w.NEED_HELLO), (w.RCPT, w.NEED_MAIL), (b"DATA\r\n", w.NEED_RCPT), EHLO, MAIL])


def test_nested_mail():
    run([EHLO, MAIL, (w.MAIL, w.NESTED_MAIL), RCPT, (w.MAIL, w.NESTED_MAIL), w.NOOP])


def test_rcpt_before_mail():
    run([EHLO, (w.RCPT, w.NEED_MAIL), MAIL, RCPT])


def test_data_and_bdat_before_rcpt():
    run(
        [
            EHLO,
            (b"DATA\r\n", w.NEED_RCPT),
            (b"BDAT 4 LAST\r\nQUIT", w.NEED_RCPT),
            MAIL,
            (b"DATA\r\n", w.NEED_RCPT),
            (b"BDAT 4\r\nRSET", w.NEED_RCPT),
            RCPT,
            (b"DATA\r\n", w.GO_AHEAD),
            (b".\r\n", w.QUEUED),
        ]
    )


def test_data_after_bdat_in_one_transaction():
    session = run(
        [
            EHLO,
            MAIL,
            RCPT,
            (b"BDAT 3\r\nab\n", chunk_ok(3)),
            (b"DATA\r\n", DATA_AFTER_BDAT),
            (
                b"BDAT 3 LAST\r\ncd\n",
                b"554 5.6.0 Error: bare <CR> or <LF> in message data (see RFC 5321 section 2.3.8)\r\n",
            ),
            MAIL,
            RCPT,
            (b"BDAT 3\r\nab\r", chunk_ok(3)),
            (b"DATA\r\n", DATA_AFTER_BDAT),
            (b"BDAT 1 LAST\r\n\n", w.QUEUED),
        ]
    )
    assert session.messages == [b"ab\r\n"]


def _refuse_data(event: Event) -> Reply:
    if isinstance(event, DataCommand):
        return replies.NO_VALID_RECIPIENTS()
    return default_policy(event)


def test_bdat_after_a_refused_data():
    run(
        [
            EHLO,
            MAIL,
            RCPT,
            (b"DATA\r\n", NO_VALID_RECIPIENTS),
            (b"BDAT 4 LAST\r\nQUIT", BDAT_AFTER_DATA),
            (b"RSET\r\n", w.OK),
            MAIL,
            RCPT,
            (b"BDAT 5 LAST\r\nabc\r\n", w.QUEUED),
        ],
        policy=_refuse_data,
    )


def test_data_with_binarymime_is_refused():
    run(
        [
            EHLO,
            (b"MAIL FROM:<a@example.test> BODY=BINARYMIME\r\n", w.SENDER_OK),
            RCPT,
            (b"DATA\r\n", b"503 5.5.1 Error: BODY=BINARYMIME requires BDAT\r\n"),
            # binary content is not held to line rules
            (b"BDAT 4 LAST\r\n\x00\r\n\n", w.QUEUED),
        ]
    )


def test_ehlo_ends_the_transaction():
    session = run(
        [
            EHLO,
            MAIL,
            RCPT,
            EHLO,
            (w.RCPT, w.NEED_MAIL),
            (b"DATA\r\n", w.NEED_RCPT),
            MAIL,
            (b"DATA\r\n", w.NEED_RCPT),
        ]
    )
    assert session.conn.state is State.MAIL


def test_helo_ends_the_transaction():
    run([EHLO, MAIL, RCPT, (w.HELO, w.HELO_OK), (w.RCPT, w.NEED_MAIL), MAIL, RCPT])


def test_rset_ends_the_transaction():
    session = run(
        [
            EHLO,
            MAIL,
            RCPT,
            (b"RSET\r\n", w.OK),
            (w.RCPT, w.NEED_MAIL),
            (b"DATA\r\n", w.NEED_RCPT),
            MAIL,
        ]
    )
    assert session.conn.state is State.MAIL


def test_rset_before_hello_still_needs_hello():
    session = run([(b"RSET\r\n", w.OK), (w.MAIL, w.NEED_HELLO)])
    assert session.conn.state is State.NEED_HELLO


def test_rset_after_a_chunk_starts_the_next_message_afresh():
    session = run(
        [
            EHLO,
            MAIL,
            RCPT,
            # this chunk holds a bare LF and would make its message refused
            (b"BDAT 4\r\nold\n", chunk_ok(4)),
            (b"RSET\r\n", w.OK),
            MAIL,
            RCPT,
            (b"BDAT 5 LAST\r\nnew\r\n", w.QUEUED),
        ]
    )
    assert session.messages == [b"new\r\n"]
    complete = [e for e in session.events if isinstance(e, MessageComplete)]
    assert [e.size for e in complete] == [5]


def test_ehlo_after_a_chunk_starts_the_next_message_afresh():
    session = run(
        [
            EHLO,
            MAIL,
            RCPT,
            (b"BDAT 4\r\nold\n", chunk_ok(4)),
            EHLO,
            MAIL,
            RCPT,
            (b"BDAT 5 LAST\r\nnew\r\n", w.QUEUED),
        ]
    )
    complete = [e for e in session.events if isinstance(e, MessageComplete)]
    assert [e.size for e in complete] == [5]


def test_every_transaction_is_fresh_after_a_message():
    run(
        [
            EHLO,
            MAIL,
            RCPT,
            (b"DATA\r\n", w.GO_AHEAD),
            (b"one\r\n.\r\n", w.QUEUED),
            (w.RCPT, w.NEED_MAIL),
            (b"DATA\r\n", w.NEED_RCPT),
            MAIL,
            RCPT,
            (b"BDAT 5 LAST\r\ntwo\r\n", w.QUEUED),
            (w.RCPT, w.NEED_MAIL),
            (b"BDAT 1 LAST\r\nx", w.NEED_RCPT),
        ]
    )


def _refuse(event: Event) -> Reply:
    if (
        isinstance(event, MailFrom)
        and event.sender is not None
        and event.sender.local_part == "spammer"
    ):
        return replies.SENDER_DOMAIN_NULL_MX(address=event.sender.bracketed)
    if isinstance(event, RcptTo) and event.recipient.local_part == "nobody":
        return replies.MAILBOX_UNKNOWN(address=event.recipient.bracketed)
    if isinstance(event, ChunkReceived) and event.size == 13:
        return replies.STORAGE_FULL()
    return default_policy(event)


def test_refused_mail_starts_no_transaction():
    run(
        [
            EHLO,
            (
                b"MAIL FROM:<spammer@example.test>\r\n",
                b"550 5.7.27 <spammer@example.test>: Sender domain has a null MX and does not accept mail\r\n",
            ),
            (w.RCPT, w.NEED_MAIL),
            MAIL,
        ],
        policy=_refuse,
    )


UNKNOWN_USER = b"550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown\r\n"


def test_data_when_every_recipient_was_refused():
    # RFC 5321 §3.3: 554 "no valid recipients" (or 503) when all RCPTs were rejected.
    run(
        [
            EHLO,
            MAIL,
            (b"RCPT TO:<nobody@example.test>\r\n", UNKNOWN_USER),
            (
                b"RCPT TO:<bad..address@example.test>\r\n",
                b"501 5.1.3 <bad..address@example.test>: Bad recipient address syntax\r\n",
            ),
            (b"DATA\r\n", NO_VALID_RECIPIENTS),
            (b"BDAT 2 LAST\r\nhi", NO_VALID_RECIPIENTS),
            RCPT,
            (b"DATA\r\n", w.GO_AHEAD),
            (b".\r\n", w.QUEUED),
        ],
        policy=_refuse,
    )


def test_data_when_every_recipient_was_refused_for_syntax():
    run(
        [
            EHLO,
            MAIL,
            (
                b"RCPT TO:<bad..address@example.test>\r\n",
                b"501 5.1.3 <bad..address@example.test>: Bad recipient address syntax\r\n",
            ),
            (b"DATA\r\n", NO_VALID_RECIPIENTS),
        ]
    )


def test_bdat_after_a_refused_chunk_needs_rset():
    # RFC 3030 §2: after a refused chunk, chunks already in the pipeline are read and dropped.
    run(
        [
            EHLO,
            MAIL,
            RCPT,
            (b"BDAT 13\r\nthirteen char", b"452 4.3.1 Error: insufficient system storage\r\n"),
            (b"BDAT 4 LAST\r\nQUIT", BDAT_AFTER_FAILED),
            (b"BDAT 4 LAST\r\nQUIT", BDAT_AFTER_FAILED),
            (b"RSET\r\n", w.OK),
            MAIL,
            RCPT,
            (b"BDAT 4 LAST\r\nok\r\n", w.QUEUED),
        ],
        policy=_refuse,
    )
