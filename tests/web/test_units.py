"""The web's pure parts: search queries into SQL, MIME messages into Mailpit's fields."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.web import mime
from mailroom.web.mime import (
    _PARSER,
    SNIPPET_LENGTH,
    _read,
    addresses,
    collapsed_prefix,
    html_to_text,
    parse_message,
    strip_trace,
)
from mailroom.web.search import SearchError, parse_query

# -- search ----------------------------------------------------------------------------------


def test_terms_become_clauses_with_parameters() -> None:
    query = parse_query('from:alice -subject:"weekly report" is:unread kittens')
    assert query.where == [
        "(m.from_header LIKE ? ESCAPE '\\' OR m.sender LIKE ? ESCAPE '\\')",
        "NOT (m.subject LIKE ? ESCAPE '\\')",
        "NOT m.read",  # SQLite and PostgreSQL alike (an integer there, a boolean here)
        "s.search_text LIKE ? ESCAPE '\\'",
    ]
    assert query.params == ["%alice%", "%alice%", "%weekly report%", "%kittens%"]
    assert query.needs_summaries  # free text reads the bodies' summaries


def test_index_only_queries_need_no_summaries() -> None:
    assert not parse_query("from:a to:b cc:c subject:d is:read larger:1M").needs_summaries
    assert parse_query("has:attachment").needs_summaries


def test_like_wildcards_are_literal() -> None:
    assert parse_query("50%_off").params == ["%50\\%\\_off%"]


# Spaces after the last term were read again from each of them (a time growing with the square
# of the run: 50,000 took minutes). The bound guards against that hang, not a measure of speed.
@pytest.mark.timeout(10)
def test_a_long_run_of_spaces_is_read_once() -> None:
    assert parse_query("kittens" + " " * 100_000) == parse_query("kittens")
    assert parse_query(" " * 100_000 + "-from:alice  ") == parse_query("-from:alice")


def test_free_text_is_lowercased_to_match_the_lowercased_summary() -> None:
    assert parse_query("KiTTens").params == ["%kittens%"]


def test_dates_in_a_time_zone() -> None:
    query = parse_query("after:2024-05-01 before:2024-05-02T12:00:00Z", tz="Europe/Berlin")
    midnight = datetime(2024, 5, 1, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    assert query.where == ["m.received >= ?", "m.received <= ?"]
    assert query.params == [
        midnight,
        datetime.fromisoformat("2024-05-02T12:00:00+00:00").timestamp(),
    ]


def test_sizes() -> None:
    assert parse_query("larger:100K smaller:2.5M").params == [102400, int(2.5 * 1024 * 1024)]
    # Past what a column holds (an OverflowError binding it was a 500): the largest it holds.
    huge = parse_query(f"larger:{'9' * 30} smaller:{'9' * 400}G").params
    assert huge == [2**63 - 1, 2**63 - 1]


def test_dates_at_the_ends_of_the_calendar() -> None:
    """A naive time on year 1's first day: timestamp() raised ValueError ("year 0 is out of
    range"), a 500 for ``before:0001-01-01``. The first and last days are before and after
    every message."""
    early, late = parse_query("before:0001-01-01 after:0001-01-01T00:00:00").params
    assert early == late < datetime.fromisoformat("1970-01-01T00:00:00+00:00").timestamp()
    (last,) = parse_query("after:9999-12-31T23:59:59").params
    assert last > datetime.fromisoformat("3000-01-01T00:00:00+00:00").timestamp()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("before:yesterday", "not a date"),
        ("larger:big", "not a size"),
    ],
)
def test_bad_terms(text: str, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        parse_query(text)
    with pytest.raises(SearchError, match="time zone"):
        parse_query("after:2024-01-01", tz="Nowhere/Special")


def test_empty_and_unknown_prefixes() -> None:
    assert parse_query("").where == []
    assert parse_query("   ").sql == "1 = 1"
    unknown = parse_query("x-mailer:thing")
    assert unknown.params == ["%x-mailer:thing%"]  # free text, as written


def test_generated_sql_runs() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH ':memory:' AS web")
    db.execute(
        "CREATE TABLE messages (id, received, sender, recipients, from_header, to_header, "
        "cc_header, subject, message_id, size, read)"
    )
    db.execute("CREATE TABLE web.summaries (id, attachments, inline, snippet, search_text)")
    db.execute(
        "INSERT INTO messages VALUES ('A', 1e9, 'a@x', '[\"b@y\"]', 'Al <a@x>', 'b@y', '', "
        "'Hi 100%', '<1@x>', 10, 0)"
    )
    db.execute("INSERT INTO web.summaries VALUES ('A', 1, 0, 'hi', 'al a@x hi 100% body')")
    query = parse_query('from:a@x -is:read has:attachment "100%" larger:5 after:2000-01-01')
    found = db.execute(
        f"SELECT m.id FROM messages m LEFT JOIN web.summaries s ON s.id = m.id WHERE {query.sql}",
        query.params,
    ).fetchall()
    assert found == [("A",)]
    for text, expected in ((f"larger:{'9' * 30}", []), (f"smaller:{'9' * 30}", [("A",)])):
        query = parse_query(text)
        found = db.execute(f"SELECT m.id FROM messages m WHERE {query.sql}", query.params)
        assert found.fetchall() == expected, text


# -- MIME ------------------------------------------------------------------------------------

NESTED = (
    b"From: =?utf-8?q?Jos=C3=A9?= <jose@example.test>\r\n"
    b'To: a@example.test, "B, Jr." <b@example.test>\r\n'
    b"Subject: nested\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=OUT\r\n"
    b"\r\n"
    b"--OUT\r\n"
    b"Content-Type: multipart/alternative; boundary=ALT\r\n"
    b"\r\n"
    b"--ALT\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Caf=E9 ol=E9\r\n"
    b"--ALT\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b'<p>Caf\xc3\xa9 <img src="cid:logo"></p><style>p{}</style>\r\n'
    b"--ALT--\r\n"
    b"--OUT\r\n"
    b"Content-Type: image/gif\r\n"
    b"Content-ID: <logo>\r\n"
    b"Content-Disposition: inline\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"R0lGODlhAQABAAAAACw=\r\n"
    b"--OUT\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: forwarded\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--OUT\r\n"
    b'Content-Type: application/octet-stream; name="data.bin"\r\n'
    b"\r\n"
    b"raw\r\n"
    b"--OUT--\r\n"
)


def test_parts_are_numbered_as_imap_numbers_them() -> None:
    parsed = parse_message(NESTED)
    assert list(parsed.parts) == ["1.1", "1.2", "2", "3", "4"]
    assert parsed.text == "Café olé"  # the CRLF before a boundary belongs to the boundary
    assert parsed.html.startswith("<p>Café")
    assert [p.part_id for p in parsed.inline] == ["2"]
    assert [(p.part_id, p.content_type) for p in parsed.attachments] == [
        ("3", "message/rfc822"),
        ("4", "application/octet-stream"),
    ]
    assert parsed.parts["3"].payload().startswith(b"Subject: forwarded")
    assert parsed.parts["2"].payload() == b"GIF89a\x01\x00\x01\x00\x00\x00\x00,"
    assert parsed.parts["4"].filename == "data.bin"


def test_headers_decoded_and_addresses() -> None:
    parsed = parse_message(NESTED)
    assert parsed.header("From") == "José <jose@example.test>"
    assert addresses(parsed.header("To")) == [
        {"Name": "", "Address": "a@example.test"},
        {"Name": "B, Jr.", "Address": "b@example.test"},
    ]
    assert addresses("") == [] and addresses("undisclosed-recipients:;") == []


def test_safe_html_embeds_cid_images() -> None:
    html = parse_message(NESTED).safe_html()
    assert 'src="data:image/gif;base64,R0lGODlhAQABAAAAACw="' in html
    assert "cid:" not in html


def test_snippet_from_html_when_there_is_no_text() -> None:
    raw = (
        b"Content-Type: text/html\r\n\r\n"
        b"<html><head><title>T</title><style>x{}</style></head>"
        b"<body><p>Hello&nbsp;there</p><script>evil()</script><p>again</p></body></html>"
    )
    parsed = parse_message(raw)
    assert parsed.text == ""
    assert parsed.snippet() == "Hello there again"  # any white space, nbsp too, is one space
    assert html_to_text("<b>a</b>b") == "ab"


# Markup the stdlib parser refuses ("<![foo[", an unknown marked section) is read by taking the
# tags out; a run of "<" once made that scan from each of them to the end of the markup. The
# bound guards against that hang, not a measure of speed.
@pytest.mark.timeout(10)
def test_markup_the_parser_refuses_is_read_without_its_tags() -> None:
    assert html_to_text("<![foo[ x ]]><p>Hello &amp; bye</p>").split() == ["Hello", "&", "bye"]
    assert html_to_text("<![foo[ x ]]>" + "<" * 200_000 + "tail").endswith("tail")


# Constructs the standard library's parser cannot close (Python 3.11.7's looks for each one's end
# to the end of the markup, then moves on by one "<"): 20,000 of "<a b=c " would take about
# two minutes, with the interpreter lock held. The parser stops once such looks pass a budget
# in proportion to the markup, and each caller reads the text, links or elements another way.
# The bound guards against that hang; it is not a measure of speed.
_NEVER_CLOSED = ["<a b=c ", "<a ", '<a b="', "<link ", "<!-- a> ", "<![CDATA[ a> ", "</ ", "<? "]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("unit", _NEVER_CLOSED)
def test_markup_that_never_closes_is_read_in_bounded_time(unit: str) -> None:
    from mailroom.web.htmlcheck import check_html
    from mailroom.web.linkcheck import extract_links

    markup = '<p>Hello <a href="https://example.test/x">there</a></p>' + unit * 20_000
    assert html_to_text(markup).split()[:2] == ["Hello", "there"]
    assert extract_links(markup, "", 10) == ["https://example.test/x"]
    assert check_html(markup)["Total"]["Nodes"] >= 2


def test_the_bounded_parser_reads_a_page_as_the_standard_one_does() -> None:
    from html.parser import HTMLParser

    from mailroom.web.htmlparse import BoundedHTMLParser

    page = (
        "<!doctype html><html><head><title>T</title><style>p > a { color: red }</style></head>"
        "<body><!--[if mso]><table><![endif]--><p>One &amp; two</p><?xml x?>"
        '<img src="data:image/png;base64,' + "A" * 200_000 + '"><br/><p>three <b>four'
    )

    def events(parser_class: type[HTMLParser]) -> list[tuple[str, object]]:
        seen: list[tuple[str, object]] = []

        class Recorder(parser_class):  # type: ignore[valid-type,misc]
            def handle_starttag(self, tag: str, attrs: object) -> None:
                seen.append(("start", (tag, attrs)))

            def handle_endtag(self, tag: str) -> None:
                seen.append(("end", tag))

            def handle_data(self, data: str) -> None:
                seen.append(("data", data))

            def handle_comment(self, data: str) -> None:
                seen.append(("comment", data))

        recorder = Recorder(convert_charrefs=True)
        recorder.feed(page)
        recorder.close()
        return seen

    assert events(BoundedHTMLParser) == events(HTMLParser)


# Header values the standard library's structured parser reads in time with their square, or
# not at all (nested comments: RecursionError, a 500 before): each 1 MiB, read as the message
# view reads them. The web reads a bounded part of such a value; the source stays whole.
_HOSTILE_FIELDS = [
    ("To", "("),
    ("To", '"a" '),
    ("To", "\\"),
    ("Content-Type", ";"),
    ("Content-Type", "; name*1*=a"),
    ("Subject", "=?utf-8?q?a?= "),
    ("Content-Disposition", "; filename*1*=a"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "unit"), _HOSTILE_FIELDS)
def test_hostile_header_values_are_read_in_bounded_time(name: str, unit: str) -> None:
    value = ("text/plain" if name == "Content-Type" else "") + unit * (1024 * 1024 // len(unit))
    raw = f"From: a@example.test\r\n{name}: {value}\r\n\r\nthe body\r\n".encode()
    parsed = parse_message(raw)
    for field in ("To", "From", "Subject"):
        addresses(parsed.header(field))
    assert addresses(parsed.header("From")) == [{"Name": "", "Address": "a@example.test"}]
    assert len(parsed.headers()[name][0]) > 1_000_000  # shown whole (encoded words past the
    # first 16 KiB as written)
    assert parsed.text.strip() == "the body" or parsed.attachments


def test_ordinary_header_values_are_read_whole() -> None:
    recipients = ", ".join(f"User {n} <u{n}@example.test>" for n in range(200))
    params = "; ".join(f"p{n}=v{n}" for n in range(99))
    raw = (
        f"From: a@example.test\r\nTo: {recipients}\r\n"
        "Subject: =?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?=\r\n"
        f"Content-Type: text/plain; charset=utf-8; {params}\r\n\r\nhi\r\n"
    ).encode()
    parsed = parse_message(raw)
    assert len(addresses(parsed.header("To"))) == 200
    assert parsed.header("Subject") == "café au lait"
    assert parsed.text.strip() == "hi"


def test_deeply_nested_style_rules_are_checked_without_recursing_without_end() -> None:
    """2,000 nested "@media x{" raised RecursionError (the HTML check answered 500); rules
    past 32 levels are not read, those above are."""
    from mailroom.web.htmlcheck import check_html

    style = "@media screen{" * 2000 + "p{color:red}" + "}" * 2000
    result = check_html(f"<style>{style}</style><p>x</p>")
    assert result["Total"]["Nodes"] >= 2
    assert "css-at-media" in {warning["Slug"] for warning in result["Warnings"]}


def test_deeply_nested_functions_in_a_style_are_checked_without_recursing_without_end() -> None:
    """20,000 nested "calc(" in a style attribute or sheet raised RecursionError (a 500);
    a value's functions are read 32 levels deep, and the outer ones still count."""
    from mailroom.web.htmlcheck import check_html

    for markup in (
        '<p style="width: ' + "calc(" * 20_000 + '1px">x</p>',
        "<style>p{width:" + "calc(" * 20_000 + "1px}</style><p>x</p>",
    ):
        result = check_html(markup)
        assert {"css-unit-calc", "css-width"} <= {w["Slug"] for w in result["Warnings"]}, result


def test_snippet_is_short() -> None:
    parsed = parse_message(b"Subject: x\r\n\r\n" + b"word " * 200)
    assert len(parsed.snippet()) == 250


def test_broken_messages_still_parse() -> None:
    parsed = parse_message(b"no headers at all, just text")
    assert parsed.header("Subject") == ""
    parsed = parse_message(b"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nnever ends")
    assert parsed.parts
    parsed = parse_message(b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nhi")
    assert parsed.text.strip() == "hi"


def test_strip_trace_removes_only_what_delivery_added() -> None:
    raw = (
        b"Return-Path: <a@x>\r\nDelivered-To: b@y\r\nDelivered-To: c@y\r\n"
        b"Received: from x by y;\r\n date\r\nSubject: s\r\nReturn-Path: <kept@x>\r\n\r\nbody"
    )
    assert strip_trace(raw) == (
        b"Received: from x by y;\r\n date\r\nSubject: s\r\nReturn-Path: <kept@x>\r\n\r\nbody"
    )
    assert strip_trace(b"Subject: s\r\n\r\nb") == b"Subject: s\r\n\r\nb"


# Shapes where a header could end somewhere else than a reader of lines would end it, or where
# a message is not one part: the quick read of a one-part message must read each as the
# email package reads it whole.
READ_WHOLE_OR_QUICK = [
    b"Subject: a\r\n\r\nbody\r\nmore\r\n",
    b"\r\nbody\r\n",
    b"\nbody\n",
    b" folded: x\r\nSubject: a\r\n\r\nbody\r\n",
    b"no colon line\r\nSubject: a\r\n\r\nbody\r\n",
    b"Subject: a\nX: b\n\nbody\r\nmore\n",
    b"Subject: a\r\nX: b\n\r\nbody\r\n",
    b"Subject: a\r\n\nX: b\r\n\r\nbody",
    b"Subject: a\rX: b\r\n\r\nbody\r\n",
    b"From alice@example.test Mon Jan  1 00:00:00 2024\r\nSubject: a\r\n\r\nbody\r\n",
    b"Subject: a\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n",
    b"Subject: a\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\nx\r\n--B--\r\n",
    b"Subject: a\r\nContent-Transfer-Encoding: base64\r\n\r\naMOp\r\n",
    b"Subject: \xc3\xa9\r\n\r\n\xff\xfe body\r\n",
    b"Subject: a\r\n\r\n",
    b"Subject: a\r\n\r\n\r\n",
    b"Subject: a",
    b"Subject: a\r\nX-Bad header: y\r\n\r\nbody\r\n",
    b"Subject: a\r\n:\r\n\r\nbody\r\n",
    b"Subject: a\r\nFrom: b\r\n  \r\n\r\nbody\r\n",
    b"Subject: a\r\n\t\r\nX: y\r\n\r\nbody\r\n",
]


@pytest.mark.parametrize("raw", READ_WHOLE_OR_QUICK)
def test_a_one_part_message_is_read_as_the_email_package_reads_it(raw: bytes) -> None:
    whole, quick = _PARSER.parsebytes(raw), _read(raw)
    assert quick.items() == whole.items()
    assert quick.get_unixfrom() == whole.get_unixfrom()
    assert quick.is_multipart() == whole.is_multipart()
    if not whole.is_multipart():
        assert quick.get_payload() == whole.get_payload()
        assert quick.get_payload(decode=True) == whole.get_payload(decode=True)


def test_every_message_of_the_test_data_is_parsed_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """parse_message with the quick read and with the email package reading every message
    whole: the same parts, bodies and snippet for each message the tests keep."""

    def view(raw: bytes) -> tuple[object, ...]:
        parsed = parse_message(raw)
        parts = [
            (p.part_id, p.content_type, p.filename, p.payload()) for p in parsed.parts.values()
        ]
        return parsed.text, parsed.html, parts, parsed.snippet(), parsed.header("Subject")

    files = sorted((Path(__file__).parent.parent / "data").rglob("*.eml"))
    assert len(files) > 40
    quick = [view(path.read_bytes()) for path in files]
    monkeypatch.setattr(mime, "_read", _PARSER.parsebytes)
    assert quick == [view(path.read_bytes()) for path in files]


@given(st.text(alphabet=st.sampled_from("ab \t\n\r\x0b\x0c\x1c\u00a0\u2003\u3000é"), max_size=3000))
def test_a_snippet_is_the_text_with_its_white_space_collapsed(text: str) -> None:
    expected = re.sub(r"\s+", " ", text).strip()
    for length in (0, 1, 7, SNIPPET_LENGTH):
        assert collapsed_prefix(text, length) == expected[:length]


def test_wrong_web_passwords_from_one_ipv6_prefix_count_together() -> None:
    """As SMTP AUTH: an IPv6 guesser is counted by its /64, so rotating through its own
    prefix gains nothing; another prefix is not held responsible."""
    import asyncio
    import base64

    from mailroom.settings_types import Listener
    from mailroom.web.auth import TOO_MANY, WebAuth
    from mailroom.web.context import WebSettings

    settings = WebSettings(Listener("::1", 8025), "mx.example.test", auth="admin:right")
    login = WebAuth(settings)

    def header(password: str) -> str:
        return "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()

    async def guesses() -> list[object]:
        answers = [await login.user(header(f"guess{n}"), f"2001:db8::{n}") for n in range(5)]
        answers.append(await login.user(header("right"), "2001:db8::ff"))
        answers.append(await login.user(header("right"), "2001:db8:0:1::1"))
        return answers

    *wrong, past_the_limit, elsewhere = asyncio.run(guesses())
    assert TOO_MANY not in wrong and all(answer != "admin" for answer in wrong)
    assert past_the_limit is TOO_MANY
    assert elsewhere == "admin"
