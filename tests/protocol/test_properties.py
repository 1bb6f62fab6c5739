"""Properties of the server side, over random input (hypothesis):

- any byte stream, fed whole, byte by byte or in random pieces, yields only events and
  replies, never another exception, and the same replies and message bytes however it is cut;
- every reply parses, is ASCII, keeps to 512-octet lines, and carries a registered,
  class-consistent enhanced code;
- dot-stuffing round-trips, and the DATA and BDAT readers agree with a plain reference
  reading of the whole message (unstuffing, bare line endings, line and size limits).
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailroom.codes.catalogue import CATALOGUE
from mailroom.protocol import MessageComplete, MessageRefused, State
from mailroom.protocol.data import LineChecker
from tests.protocol import wire as w
from tests.protocol.drive import check_reply, pieces, play, scenarios, streams
from tests.protocol.transcript import Session, make_settings

# Moderate by default so the suite stays fast; MAILROOM_EXAMPLES=5000 for a deeper search.
FAST = settings(
    max_examples=int(os.environ.get("MAILROOM_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(scenario=scenarios, data=streams, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_stream_gives_only_events_and_good_replies(scenario, data, cuts):
    whole = play(scenario, [data] if data else [])
    enhanced = scenario.settings.enhanced_status_codes
    for wire in whole.replies:
        check_reply(wire, enhanced=enhanced)
    # after EOF the connection is closed, unless it waits for the caller's TLS handshake
    if whole.state is State.TLS_PENDING:
        assert whole.replies[-1].startswith(b"220 ")
    else:
        assert whole.state is State.CLOSED
    for other in (
        play(scenario, pieces(data, cuts)),
        play(scenario, pieces(data, range(len(data)))),
    ):
        assert other.replies == whole.replies
        assert other.body == whole.body
        assert other.events == whole.events


def test_every_catalogue_text_is_ascii():
    # Reply text is US-ASCII (RFC 5321 §4.2): the property above would find any other only
    # where a random session happens to send it.
    for name, template in CATALOGUE.items():
        assert template.text.isascii(), name


# -- the DATA reader against a reference ---------------------------------------------------

_line = st.binary(max_size=40).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")
)
_dotty_line = st.one_of(_line, _line.map(lambda b: b"." + b), st.sampled_from([b".", b"..", b""]))


def stuffed(body: bytes) -> bytes:
    """What a client sends for ``body`` (CRLF lines): a dot doubled at each line start."""
    return re.sub(rb"(?m)^\.", b"..", body) if body else body


@FAST
@given(
    lines=st.lists(_dotty_line, max_size=20), cuts=st.lists(st.integers(min_value=0), max_size=10)
)
def test_dot_stuffing_round_trips(lines, cuts):
    body = b"".join(line + b"\r\n" for line in lines)
    session = Session(make_settings(long_lines="accept"))
    assert session.feed(w.EHLO + w.MAIL + w.RCPT + b"DATA\r\n") == (
        w.EHLO_OK + w.SENDER_OK + w.RECIPIENT_OK + w.GO_AHEAD
    )
    out = b"".join(session.feed(piece) for piece in pieces(stuffed(body) + b".\r\n", cuts))
    assert out == w.QUEUED
    assert session.messages == [body]


_raw = st.lists(
    st.one_of(
        st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"\r\n.", b"..", b"\x00", b"a", b"bcdefgh"]),
        st.binary(max_size=6),
    ),
    max_size=30,
).map(b"".join)

_ENDING = re.compile(rb"\r\n|\r|\n")


def reference(raw: bytes, *, max_line: int) -> tuple[bytes, bool, bool]:
    """The message for the wire ``raw + CRLF.CRLF``, read in one go: (unstuffed content,
    has a bare CR or LF, has a line over ``max_line`` octets with its CRLF)."""
    content = (b"\r\n" + raw + b"\r\n").replace(b"\r\n.", b"\r\n")[2:]
    bare = bool(re.search(rb"\r(?!\n)|(?<!\r)\n", content))
    too_long = any(len(line) > max_line - 1 for line in content.split(b"\n"))
    return content, bare, too_long


@FAST
@given(
    raw=_raw,
    normalize=st.booleans(),
    max_size=st.sampled_from([0, 10, 40]),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_data_reader_agrees_with_reference(raw, normalize, max_size, cuts):
    # the first end marker must be the one the client appends
    wire = raw + b"\r\n.\r\n"
    assume_first_end = (b"\r\n" + wire).find(b"\r\n.\r\n") == len(raw)
    if not assume_first_end:
        return
    settings_ = make_settings(
        max_message_size=max_size,
        max_text_line=10,
        bare_line_endings="normalize" if normalize else "reject",
    )
    session = Session(settings_)
    session.feed(w.EHLO + w.MAIL + w.RCPT + b"DATA\r\n")
    out = b"".join(session.feed(piece) for piece in pieces(wire, cuts))
    content, bare, too_long = reference(raw, max_line=10)
    if normalize:
        content = _ENDING.sub(b"\r\n", content)
        bare = False
    end = session.events[-1]
    if max_size and len(content) > max_size:
        assert out == w.TOO_BIG
        assert isinstance(end, MessageRefused) and end.size == len(content)
    elif bare:
        assert out == w.BARE_LINE_ENDING
    elif b"\0" in content:
        assert out == w.NUL_IN_DATA
    elif too_long:
        assert out == b"554 5.6.0 Error: message has a line longer than 10 octets\r\n"
    else:
        assert out == w.QUEUED
        assert isinstance(end, MessageComplete) and end.size == len(content)
        assert session.messages == [content]


@FAST
@given(
    chunks=st.lists(_raw, min_size=1, max_size=6),
    binary=st.booleans(),
    normalize=st.booleans(),
)
def test_bdat_reader_agrees_with_reference(chunks, binary, normalize):
    settings_ = make_settings(
        max_text_line=10, bare_line_endings="normalize" if normalize else "reject"
    )
    session = Session(settings_)
    body = b" BODY=BINARYMIME" if binary else b""
    session.feed(w.EHLO + b"MAIL FROM:<a@example.test>" + body + b"\r\n" + w.RCPT)
    wire = b"".join(
        b"BDAT %d%s\r\n" % (len(c), b" LAST" if i == len(chunks) - 1 else b"") + c
        for i, c in enumerate(chunks)
    )
    out = session.feed(wire, step=3)
    content = b"".join(chunks)
    chunk_replies = b"".join(b"250 2.0.0 Ok: %d octets received\r\n" % len(c) for c in chunks[:-1])
    bare = bool(re.search(rb"\r(?!\n)|(?<!\r)\n", content))
    too_long = any(len(line) > 9 for line in content.split(b"\n"))
    if binary:
        assert out == chunk_replies + w.QUEUED
        assert session.messages == [content]
    elif normalize:
        # line lengths are measured on the octets as received, between LFs
        assert out == chunk_replies + (
            w.NUL_IN_DATA
            if b"\0" in content
            else b"554 5.6.0 Error: message has a line longer than 10 octets\r\n"
            if too_long
            else w.QUEUED
        )
        if not too_long and b"\0" not in content:
            assert session.messages == [_ENDING.sub(b"\r\n", content)]
    elif bare:
        assert out == chunk_replies + w.BARE_LINE_ENDING
    elif b"\0" in content:
        assert out == chunk_replies + w.NUL_IN_DATA
    elif too_long:
        assert (
            out == chunk_replies + b"554 5.6.0 Error: message has a line longer than 10 octets\r\n"
        )
    else:
        assert out == chunk_replies + w.QUEUED
        assert session.messages == [content]


@FAST
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_line_checker_agrees_with_reference(data, cuts):
    checker = LineChecker(8)
    for piece in pieces(data, cuts):
        checker.feed(piece)
    checker.finish()
    assert checker.bare_cr == bool(re.search(rb"\r(?!\n)", data))
    assert checker.bare_lf == bool(re.search(rb"(?<!\r)\n", data))
    assert checker.nul == (b"\0" in data)
    assert checker.too_long == any(len(line) > 7 for line in data.split(b"\n"))
