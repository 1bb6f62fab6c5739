"""The DATA and BDAT readers: dot-unstuffing, the one true end of data, SMTP smuggling, bare
line endings, line and size limits counted as the message streams (RFC 5321 §4.1.1.4, §4.5.2,
§2.3.8; RFC 1870; RFC 3030)."""

from __future__ import annotations

import pytest

from mailroom.protocol import (
    ConnectionClosed,
    MailFrom,
    MessageComplete,
    MessageData,
    MessageRefused,
)
from tests.protocol import wire as w
from tests.protocol.transcript import Session, make_settings, run

OPEN = [(w.EHLO, w.EHLO_OK), (w.MAIL, w.SENDER_OK), (w.RCPT, w.RECIPIENT_OK)]
DATA = (b"DATA\r\n", w.GO_AHEAD)
LONG_LINE = b"554 5.6.0 Error: message has a line longer than 1000 octets\r\n"


def unstuffed(wire: bytes) -> bytes:
    """What a receiver makes of dot-stuffed CRLF lines (RFC 5321 §4.5.2), line by line."""
    lines = wire.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def chunk_ok(size: int) -> bytes:
    return b"250 2.0.0 Ok: %d octets received\r\n" % size


@pytest.mark.parametrize(
    "wire, content",
    [
        (b".\r\n", b""),
        (b"hello\r\n.\r\n", b"hello\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\n.\r\n", b"..\r\n"),
        (b"..hidden\r\n.\r\n", b".hidden\r\n"),
        (b"a\r\n..\r\nb\r\n.\r\n", b"a\r\n.\r\nb\r\n"),
        (b"a\r\n.. \r\n.\r\n", b"a\r\n. \r\n"),
        # RFC 5321 §4.5.2: the server drops the first dot of any line that starts with one
        (b".unstuffed\r\n.\r\n", b"unstuffed\r\n"),
        # a dot that is not at the start of a line stays
        (b"a.b\r\n.x.\r\n.\r\n", b"a.b\r\nx.\r\n"),
        (b"\r\n\r\n.\r\n", b"\r\n\r\n"),
        (b"Subject: x\r\n\r\n..\r\n...\r\n.\r\n", b"Subject: x\r\n\r\n.\r\n..\r\n"),
        (b"8bit: \xc3\xa9\xff\r\n.\r\n", b"8bit: \xc3\xa9\xff\r\n"),
    ],
)
def test_dot_unstuffing_and_end_of_data(wire, content):
    session = run([*OPEN, DATA, (wire, w.QUEUED), w.NOOP])
    assert session.messages == [content]


def test_end_of_data_only_at_crlf_dot_crlf():
    # "." at the very start of the data (just after the DATA line's CRLF) ends an empty message;
    # a dot line anywhere else needs the CRLF before it.
    run([*OPEN, DATA, (b"x\r\n.", b""), (b"\r", b""), (b"\n", w.QUEUED)])


# SMTP smuggling: endings that some servers take for the end of data. None ends it here.
SMUGGLING = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\n.\r",
    b"\r\n\x00.\r\n",
    b"\r\n.\x00\r\n",
    b"\r\n .\r\n",
]
SMUGGLED = (
    b"MAIL FROM:<admin@example.test>\r\n"
    b"RCPT TO:<victim@example.test>\r\n"
    b"DATA\r\n"
    b"From: admin@example.test\r\n\r\nsmuggled\r\n"
)


@pytest.mark.parametrize("ending", SMUGGLING, ids=[repr(e) for e in SMUGGLING])
def test_smuggling_never_ends_data(ending):
    wire = b"Subject: x\r\n\r\nhi" + ending + SMUGGLED + b".\r\n"
    has_bare = ending.replace(b"\r\n", b"").strip(b".\x00 ") != b""
    has_nul = b"\x00" in ending
    reply = w.BARE_LINE_ENDING if has_bare else w.NUL_IN_DATA if has_nul else w.QUEUED
    session = run([*OPEN, DATA, (wire, reply), w.NOOP])
    # the would-be commands were message content: one MAIL in the whole session
    assert sum(isinstance(e, MailFrom) for e in session.events) == 1
    if not has_bare and not has_nul:
        assert session.messages == [unstuffed(wire[:-3])]


@pytest.mark.parametrize("ending", SMUGGLING, ids=[repr(e) for e in SMUGGLING])
def test_smuggling_normalised(ending):
    settings = make_settings(bare_line_endings="normalize")
    wire = b"hi" + ending + SMUGGLED + b".\r\n"
    reply = w.NUL_IN_DATA if b"\x00" in ending else w.QUEUED
    session = run([*OPEN, DATA, (wire, reply), w.NOOP], settings=settings)
    assert sum(isinstance(e, MailFrom) for e in session.events) == 1
    if b"\x00" in ending:
        assert session.messages == []
        return
    (message,) = session.messages
    # every line ending is CRLF now; the smuggled text is plain content
    assert b"\r\n" in message
    assert message.count(b"\r") == message.count(b"\n") == message.count(b"\r\n")
    assert message.endswith(b"smuggled\r\n")


@pytest.mark.parametrize(
    "wire, normalised",
    [
        (b"a\nb\r\n.\r\n", b"a\r\nb\r\n"),
        (b"a\rb\r\n.\r\n", b"a\r\nb\r\n"),
        (b"a\r\rb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
        (b"a\n\nb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
        (b"a\r\r\nb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
        (b"\n\r\n.\r\n", b"\r\n\r\n"),
        (b"a\r\n\nb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
    ],
)
def test_bare_line_endings_refused_or_normalised(wire, normalised):
    run([*OPEN, DATA, (wire, w.BARE_LINE_ENDING), w.NOOP])
    settings = make_settings(bare_line_endings="normalize")
    session = run([*OPEN, DATA, (wire, w.QUEUED), w.NOOP], settings=settings)
    assert session.messages == [normalised]


def test_refused_message_is_reported_with_its_size():
    session = run([*OPEN, DATA, (b"a\nb\r\n.\r\n", w.BARE_LINE_ENDING)])
    refused = session.events[-1]
    assert isinstance(refused, MessageRefused)
    assert (refused.size, refused.via) == (5, "DATA")


def test_message_is_streamed_in_pieces():
    session = Session(make_settings())
    for line, reply in [*OPEN, DATA]:
        assert session.feed(line) == reply
    pieces = [b"Subject: streaming\r\n", b"\r\n", b"line one\r\n", b"line two\r\n"]
    for piece in pieces:
        assert session.feed(piece) == b""
    data_events = [e for e in session.events if isinstance(e, MessageData)]
    # everything but the last CRLF (which might begin the end marker) is out already
    assert b"".join(e.data for e in data_events) == b"".join(pieces)[:-2]
    assert len(data_events) == len(pieces)
    assert session.feed(b".\r\n") == w.QUEUED
    assert session.messages == [b"".join(pieces)]


def test_size_limit_counted_as_it_streams():
    settings = make_settings(max_message_size=100)
    ehlo = w.EHLO_OK.replace(b"SIZE 52428800", b"SIZE 100")
    exactly = b"x" * 98 + b"\r\n"
    run(
        [
            (w.EHLO, ehlo),
            (w.MAIL, w.SENDER_OK),
            (w.RCPT, w.RECIPIENT_OK),
            DATA,
            (exactly + b".\r\n", w.QUEUED),
        ],
        settings=settings,
    )
    over = b"y" * 99 + b"\r\n" + (b"z" * 70 + b"\r\n") * 20
    session = run(
        [
            (w.EHLO, ehlo),
            (w.MAIL, w.SENDER_OK),
            (w.RCPT, w.RECIPIENT_OK),
            DATA,
            (over + b".\r\n", w.TOO_BIG),
            (w.RCPT, w.NEED_MAIL),
            w.NOOP,
        ],
        settings=settings,
    )
    # past the limit nothing more is handed out, but everything is read and counted
    streamed = b"".join(e.data for e in session.events if isinstance(e, MessageData))
    assert len(streamed) <= 100
    refused = next(e for e in session.events if isinstance(e, MessageRefused))
    assert refused.size == len(over)
    assert session.messages == []


def test_size_limit_applies_to_the_unstuffed_message():
    settings = make_settings(max_message_size=10)
    ehlo = w.EHLO_OK.replace(b"SIZE 52428800", b"SIZE 10")
    # 12 octets on the wire, 8 once unstuffed
    session = run(
        [
            (w.EHLO, ehlo),
            (w.MAIL, w.SENDER_OK),
            (w.RCPT, w.RECIPIENT_OK),
            DATA,
            (b"..a\r\n..b\r\n.\r\n", w.QUEUED),
        ],
        settings=settings,
    )
    assert session.messages == [b".a\r\n.b\r\n"]


@pytest.mark.parametrize(
    "line, reply",
    [
        (b"x" * 998 + b"\r\n", w.QUEUED),
        (b"x" * 999 + b"\r\n", LONG_LINE),
        # the limit is on the text line: a stuffed dot does not count
        (b".." + b"x" * 997 + b"\r\n", w.QUEUED),
        (b".." + b"x" * 998 + b"\r\n", LONG_LINE),
        (b"a\r\n" + b"x" * 998 + b"\r\nb\r\n", w.QUEUED),
        (b"a\r\n" + b"x" * 999 + b"\r\nb\r\n", LONG_LINE),
    ],
    ids=["998", "999", "stuffed-997", "stuffed-998", "middle-998", "middle-999"],
)
def test_text_line_limit(line, reply):
    run([*OPEN, DATA, (line + b".\r\n", reply), w.NOOP], byte_steps=(None, 1, 7))


HEADER_TOO_BIG = b"552 5.3.4 Error: message header exceeds fixed maximum size of 100 octets\r\n"


@pytest.mark.parametrize(
    "message, reply",
    [
        (b"A: " + b"x" * 95 + b"\r\n\r\nbody\r\n", w.QUEUED),  # 100 octets of header
        (b"A: " + b"x" * 96 + b"\r\n\r\nbody\r\n", HEADER_TOO_BIG),
        (b"A: 1\r\n" * 16 + b" folded\r\n" * 3 + b"\r\n", HEADER_TOO_BIG),
        # The body does not count, however large; an empty header section is no header.
        (b"A: 1\r\n\r\n" + b"x" * 500 + b"\r\n", w.QUEUED),
        (b"\r\n" + b"A: 1\r\n" * 100, w.QUEUED),
        # No empty line: it is all header (RFC 5322 §2.1).
        (b"A: 1\r\n" * 20, HEADER_TOO_BIG),
    ],
    ids=["100", "101", "folded", "large-body", "no-header", "no-empty-line"],
)
def test_header_section_limit(message, reply):
    """The header section is measured as it streams, in pieces of any size: the empty line
    that ends it may be split between them."""
    settings = make_settings(max_header_section=100)
    run(
        [*OPEN, DATA, (message + b".\r\n", reply), w.NOOP],
        settings=settings,
        byte_steps=(None, 1, 3),
    )


def test_header_section_limit_with_bdat():
    settings = make_settings(max_header_section=100)
    header = b"A: " + b"x" * 200 + b"\r\n\r\n"
    run(
        [
            *OPEN,
            (b"BDAT %d\r\n" % len(header) + header, chunk_ok(len(header))),
            (b"BDAT 6 LAST\r\nbody\r\n", HEADER_TOO_BIG),
            w.NOOP,
        ],
        settings=settings,
    )


def test_header_section_limit_off():
    settings = make_settings(max_header_section=0)
    session = run([*OPEN, DATA, (b"A: 1\r\n" * 1000 + b".\r\n", w.QUEUED)], settings=settings)
    assert session.messages == [b"A: 1\r\n" * 1000]


def test_long_lines_may_be_accepted():
    settings = make_settings(long_lines="accept")
    session = run(
        [*OPEN, DATA, (b"x" * 5000 + b"\r\n.\r\n", w.QUEUED)],
        settings=settings,
        byte_steps=(None, 13),
    )
    assert session.messages == [b"x" * 5000 + b"\r\n"]


def test_eof_in_the_middle_of_data_completes_nothing():
    session = Session(make_settings())
    for line, reply in [*OPEN, DATA]:
        assert session.feed(line) == reply
    assert session.feed(b"Subject: cut\r\n\r\nhalf a message\r\n.") == b""
    assert session.close() == b""
    assert isinstance(session.events[-1], ConnectionClosed)
    assert not any(isinstance(e, MessageComplete) for e in session.events)
    assert session.conn.closed


# -- BDAT -----------------------------------------------------------------------------------

BDAT_SYNTAX = b"501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n"


@pytest.mark.parametrize(
    "chunks, content",
    [
        ([b"BDAT 0 LAST\r\n"], b""),
        ([b"BDAT 5 LAST\r\nhi!\r\n"], b"hi!\r\n"),
        ([b"bdat 5 last\r\nhi!\r\n"], b"hi!\r\n"),
        # chunk data is not dot-stuffed and may hold anything, even a would-be end of data
        ([b"BDAT 13 LAST\r\n..\r\n.\r\nQUIT\r\n"], b"..\r\n.\r\nQUIT\r\n"),
        ([b"BDAT 3\r\nab\r", b"BDAT 0\r\n", b"BDAT 3 LAST\r\n\ncd"], b"ab\r\ncd"),
    ],
)
def test_bdat_chunks(chunks, content):
    replies = [chunk_ok(int(c.split()[1])) for c in chunks[:-1]] + [w.QUEUED]
    session = run([*OPEN, *zip(chunks, replies, strict=True), w.NOOP])
    assert session.messages == [content]
    complete = session.events[-2]
    assert isinstance(complete, MessageComplete)
    assert (complete.size, complete.via) == (len(content), "BDAT")


@pytest.mark.parametrize(
    "line",
    [
        b"BDAT\r\n",
        b"BDAT x\r\n",
        b"BDAT -1\r\n",
        b"BDAT 5 NOW\r\n",
        b"BDAT 5 LAST extra\r\n",
        b"BDAT " + b"9" * 21 + b"\r\n",
        b"BDAT 1.5\r\n",
        # chunk-size is ASCII digits: "²" and "١٢" are digits to str.isdigit
        "BDAT ² LAST\r\n".encode(),
        "BDAT ١٢\r\n".encode(),
    ],
)
def test_bdat_syntax(line):
    run([*OPEN, (line, BDAT_SYNTAX), w.NOOP])


def test_bdat_bare_line_endings():
    run(
        [
            *OPEN,
            (b"BDAT 4\r\na\nb\r", chunk_ok(4)),
            (b"BDAT 1 LAST\r\n\n", w.BARE_LINE_ENDING),
            w.NOOP,
        ]
    )
    settings = make_settings(bare_line_endings="normalize")
    session = run(
        [*OPEN, (b"BDAT 4\r\na\nb\r", chunk_ok(4)), (b"BDAT 2 LAST\r\n\rc", w.QUEUED)],
        settings=settings,
    )
    assert session.messages == [b"a\r\nb\r\n\r\nc"]


def test_bdat_chunk_over_the_limit():
    settings = make_settings(max_message_size=100)
    ehlo = w.EHLO_OK.replace(b"SIZE 52428800", b"SIZE 100")
    start = [(w.EHLO, ehlo), (w.MAIL, w.SENDER_OK), (w.RCPT, w.RECIPIENT_OK)]
    run([*start, (b"BDAT 100 LAST\r\n" + b"x" * 100, w.QUEUED)], settings=settings)
    run([*start, (b"BDAT 150 LAST\r\n" + b"x" * 150, w.TOO_BIG), w.NOOP], settings=settings)
    # the chunk that goes over is refused at once; chunks already pipelined are dropped
    run(
        [
            *start,
            (b"BDAT 60\r\n" + b"x" * 60, chunk_ok(60)),
            (b"BDAT 60\r\n" + b"y" * 60, w.TOO_BIG),
            (
                b"BDAT 10 LAST\r\nRSET\r\nQUIT",
                b"503 5.5.1 Error: earlier BDAT chunk was refused, send RSET\r\n",
            ),
            (b"RSET\r\n", w.OK),
            (w.MAIL, w.SENDER_OK),
            (w.RCPT, w.RECIPIENT_OK),
            (b"BDAT 3 LAST\r\nok\n", w.BARE_LINE_ENDING),
        ],
        settings=settings,
    )


def test_bdat_with_a_huge_size_is_read_and_dropped():
    settings = make_settings(max_message_size=10)
    ehlo = w.EHLO_OK.replace(b"SIZE 52428800", b"SIZE 10")
    session = Session(settings)
    for line, reply in [(w.EHLO, ehlo), (w.MAIL, w.SENDER_OK), (w.RCPT, w.RECIPIENT_OK)]:
        assert session.feed(line) == reply
    assert session.feed(b"BDAT 100000 LAST\r\n") == b""
    for _ in range(99):
        assert session.feed(b"Q" * 1000) == b""
    assert session.conn.buffered == 0
    assert session.feed(b"Q" * 1000 + b"NOOP\r\n") == w.TOO_BIG + w.OK
