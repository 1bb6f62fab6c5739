import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.codes import EnhancedStatus, Reply, ReplyError


def test_single_line_wire_form():
    reply = Reply(550, "5.1.1", "<bob@example.test>: no such user")
    assert reply.format() == b"550 5.1.1 <bob@example.test>: no such user\r\n"
    assert reply.format(enhanced=False) == b"550 <bob@example.test>: no such user\r\n"


def test_multi_line_repeats_the_enhanced_code_on_every_line():
    reply = Reply(452, "4.5.3", ["Too many recipients", "send the rest later"])
    assert reply.format() == (b"452-4.5.3 Too many recipients\r\n452 4.5.3 send the rest later\r\n")


def test_reply_without_status_or_text():
    assert Reply(250).format() == b"250 \r\n"
    assert Reply(334, None, "").format() == b"334 \r\n"
    assert Reply(354, None, "Go ahead").format() == b"354 Go ahead\r\n"


def test_class_mismatch_is_refused():
    with pytest.raises(ReplyError, match="class"):
        Reply(550, "4.1.1", "x")
    with pytest.raises(ReplyError):
        Reply(354, "2.0.0", "x")


@pytest.mark.parametrize("code", [199, 600, 260, 0, 1000, 99])
def test_impossible_codes_are_refused(code):
    with pytest.raises(ReplyError):
        Reply(code)


def test_text_cannot_hold_line_breaks():
    with pytest.raises(ReplyError):
        Reply(250, None, "a\r\nb")


def test_parse_single_and_multi_line():
    assert Reply.parse(b"250 2.0.0 Ok\r\n") == Reply(250, "2.0.0", "Ok")
    assert Reply.parse("221 Bye") == Reply(221, None, "Bye")
    reply = Reply.parse(b"250-mail.example.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
    assert reply.lines == ("mail.example.test", "PIPELINING", "SIZE 1000")
    assert reply.status is None


def test_parse_status_on_some_lines_only():
    # Some servers put the enhanced code on the first or last line only.
    first = Reply.parse(b"550-5.1.1 The account does not exist\r\n550 Please check the address\r\n")
    assert first.status == EnhancedStatus(5, 1, 1)
    assert first.lines == ("The account does not exist", "Please check the address")
    last = Reply.parse(b"550-Sorry\r\n550 5.7.1 Relaying denied\r\n")
    assert last.status == EnhancedStatus(5, 7, 1)
    assert last.lines == ("Sorry", "Relaying denied")


def test_parse_keeps_a_different_later_code_as_text():
    reply = Reply.parse(b"550-5.1.1 no user\r\n550 5.2.1 disabled\r\n")
    assert reply.status == EnhancedStatus(5, 1, 1)
    assert reply.lines == ("no user", "5.2.1 disabled")


@pytest.mark.parametrize(
    "wire, message",
    [
        (b"", "empty"),
        (b"25 Ok\r\n", "three-digit"),
        (b"abc Ok\r\n", "three-digit"),
        (b"250-Ok\r\n", "more lines follow"),
        (b"250 Ok\r\n250 again\r\n", "more lines follow"),
        (b"250-Ok\r\n251 Ok\r\n", "began with"),
        (b"250xOk\r\n", "space or '-'"),
        (b"650 Ok\r\n", "not an SMTP reply code"),
        (b"550 2.1.1 mismatch\r\n", "class"),
    ],
)
def test_parse_malformed_replies_raise_a_clear_error(wire, message):
    with pytest.raises(ReplyError, match=message):
        Reply.parse(wire)


def test_properties():
    assert Reply(250).is_positive
    assert Reply(354).is_intermediate
    assert Reply(421, "4.4.2").is_transient
    assert Reply(554, "5.7.1").is_permanent


_codes = st.sampled_from([c for c in range(200, 560) if (c // 10) % 10 <= 5])
_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40
).filter(lambda t: EnhancedStatus.match_prefix(t) is None)


@st.composite
def replies(draw):
    code = draw(_codes)
    status = None
    if code // 100 != 3 and draw(st.booleans()):
        status = EnhancedStatus(code // 100, draw(st.integers(0, 999)), draw(st.integers(0, 999)))
    lines = draw(st.lists(_text, min_size=1, max_size=5))
    return Reply(code, status, lines)


@given(replies())
def test_parse_format_round_trip(reply):
    assert Reply.parse(reply.format()) == reply


@given(st.binary(max_size=300))
def test_parse_raises_only_its_own_error_on_random_bytes(data):
    try:
        Reply.parse(data)
    except ReplyError:
        pass


@given(
    st.lists(
        st.sampled_from([b"250", b"-", b" ", b"2.0.0", b"5.1.1", b"x", b"\r\n", b"\n", b"550"]),
        max_size=20,
    )
)
def test_parse_raises_only_its_own_error_on_reply_like_bytes(parts):
    try:
        Reply.parse(b"".join(parts))
    except ReplyError:
        pass


def test_replies_pickle_as_their_arguments() -> None:
    """Worker processes hand fault rules (which hold replies) to each other; the compiled
    build's classes pickle only through __reduce__."""
    import pickle

    for reply in (
        Reply(550, "5.1.1", "<bob@example.test>: no such user"),
        Reply(250, None, ["a", "b"]),
    ):
        again = pickle.loads(pickle.dumps(reply))
        assert again == reply and again.format() == reply.format()
    status = EnhancedStatus(4, 7, 0)
    assert pickle.loads(pickle.dumps(status)) == status
