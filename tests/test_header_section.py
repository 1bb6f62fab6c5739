"""One reading of a message's header section for every part: where it ends, its fields, and
the text of its encoded words."""

from __future__ import annotations

import time

import pytest

from mailroom.header_section import (
    MAX_DECODED,
    MAX_SEARCH,
    address_list,
    decode_address_field,
    decode_encoded_words,
    header_fields,
    header_length,
    split_message,
)


@pytest.mark.parametrize(
    ("message", "head", "body"),
    [
        (b"A: 1\r\nB: 2\r\n\r\nbody\r\n", b"A: 1\r\nB: 2\r\n", b"body\r\n"),
        (b"A: 1\nB: 2\n\nbody\n", b"A: 1\nB: 2\n", b"body\n"),
        # Line ends mixed (a file edited by hand): the first empty line, whichever it is.
        (b"A: 1\n\r\nbody\r\n\r\nmore", b"A: 1\n", b"body\r\n\r\nmore"),
        (b"A: 1\r\n\nbody", b"A: 1\r\n", b"body"),
        # The earlier empty line wins, whatever its line ends: not the first CRLF CRLF.
        (b"A: 1\n\nbody\r\n\r\nmore", b"A: 1\n", b"body\r\n\r\nmore"),
        # No empty line: all header.
        (b"A: 1\r\n", b"A: 1\r\n", b""),
        (b"A: 1", b"A: 1", b""),
        # An empty line first: no header section at all (RFC 5322 §2.1).
        (b"\r\nSubject: not a header\r\n\r\nbody", b"", b"Subject: not a header\r\n\r\nbody"),
        (b"\nbody", b"", b"body"),
        (b"", b"", b""),
    ],
)
def test_split_message(message: bytes, head: bytes, body: bytes) -> None:
    assert split_message(message) == (head, body)
    assert header_length(message) == len(head)


def test_empty_line_is_looked_for_in_the_first_mebibyte_only() -> None:
    message = b"A: " + b"x" * MAX_SEARCH + b"\r\n\r\nbody"
    assert header_length(message) == len(message)
    assert split_message(message) == (message, b"")
    # A header section of exactly MAX_SEARCH octets (the server's limit) is found whole.
    longest = b"A: " + b"x" * (MAX_SEARCH - 5) + b"\r\n"
    assert len(longest) == MAX_SEARCH
    assert split_message(longest + b"\r\nbody") == (longest, b"body")


def test_header_fields_keep_folds_and_line_ends() -> None:
    head = b"Subject: one\r\n two\r\n\tthree\r\nFrom: a@b.test\r\n"
    assert list(header_fields(head)) == [
        b"Subject: one\r\n two\r\n\tthree\r\n",
        b"From: a@b.test\r\n",
    ]
    # A fold with no field before it is a field of its own, as written.
    assert list(header_fields(b" stray\r\nA: 1\r\n")) == [b" stray\r\n", b"A: 1\r\n"]


def test_a_long_fold_is_read_in_linear_time() -> None:
    # 320,000 folded lines: joined line by line this took 11 s; no timing asserted, only
    # that the field comes back whole (a quadratic join would not finish in CI's time).
    head = b"X: a\r\n" + b" b\r\n" * 320_000
    started = time.perf_counter()
    (field,) = header_fields(head)
    assert field == head
    print(f"320,000 folded lines: {time.perf_counter() - started:.3f} s")


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        ("plain text", "plain text"),
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?utf-8?b?w6l0w6k=?= d'hiver", "été d'hiver"),
        # Whitespace between adjacent encoded words is not text (RFC 2047 §6.2).
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        ("=?iso-8859-1?q?=E9t=E9?=", "été"),
        # An unknown charset: the value as written.
        ("=?x-nonesuch?q?abc?=", "=?x-nonesuch?q?abc?="),
        # Octets not of their charset: what can be read, the rest replaced.
        ("=?utf-8?q?ok=FF?=", "ok\ufffd"),
        # A word touching the text after it: no space put in (make_header would).
        ("=?utf-8?b?0LTQvtGB0YLQsNCy0LvQtdC90L4=?=. Mail failure.", "доставлено. Mail failure."),
        # UTF-8 written as it is (RFC 6532) beside an encoded word keeps its letters.
        ("Réponse =?utf-8?q?caf=C3=A9?= ж", "Réponse café ж"),
    ],
)
def test_decode_encoded_words(text: str, decoded: str) -> None:
    assert decode_encoded_words(text) == decoded


def test_encoded_words_past_the_bound_are_kept_as_written() -> None:
    word = "=?utf-8?q?a?= "
    text = word * (2 * MAX_DECODED // len(word))
    decoded = decode_encoded_words(text)
    decoded_words = MAX_DECODED // len(word)
    assert decoded.startswith("a" * decoded_words)
    assert decoded.endswith(word)
    assert decoded.count("=?utf-8?q?a?=") >= decoded_words - 1


@pytest.mark.parametrize(
    ("values", "pairs"),
    [
        (["Alice <alice@a.test>, bob@b.test"], [("Alice", "alice@a.test"), ("", "bob@b.test")]),
        (["(a comment (nested)) carol@c.test"], [("a comment nested", "carol@c.test")]),
        # Nested past the standard library's recursion: every address-like word, so a From
        # cannot hide its domain from DMARC in a nest.
        (["(" * 5000 + " victim@bank.test"], [("", "victim@bank.test")]),
        ([":" * 3000 + "x@evil.test, y@bank.test"], [("", "x@evil.test"), ("", "y@bank.test")]),
        (["(" * 5000], []),
    ],
)
def test_address_list(values: list[str], pairs: list[tuple[str, str]]) -> None:
    assert address_list(values) == pairs


def test_address_list_reads_a_long_run_once() -> None:
    # The look-behind starts a match only where a run starts: a run of a million letters
    # without "@" is passed over once (from each letter it took time with the run's square).
    assert address_list(["(" * 5000 + "a" * 1_000_000]) == []


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("Plain <a@x.test>, b@x.test", "Plain <a@x.test>, b@x.test"),  # no words: as written
        ("=?utf-8?q?J=C3=B6rg?= <j@x.test>", "Jörg <j@x.test>"),
        # What a word holds is a name, never an address (RFC 2047 §6.2).
        (
            "=?utf-8?q?Bank_=3Cceo=40bank=2Etest=3E?= <x@evil.test>",
            '"Bank <ceo@bank.test>" <x@evil.test>',
        ),
        ("=?utf-8?q?a=22b=5Cc?= <a@x.test>, c@x.test", '"a\\"b\\\\c" <a@x.test>, c@x.test'),
    ],
)
def test_decode_address_field(value: str, decoded: str) -> None:
    assert decode_address_field(value) == decoded
    names = [name for name, _ in address_list([decoded])]
    assert names == [decode_encoded_words(name) for name, _ in address_list([value])]


def test_a_long_address_field_is_kept_as_written() -> None:
    value = "=?utf-8?q?a?= <a@x.test>, " * (MAX_DECODED // 20)
    assert decode_address_field(value) == value
