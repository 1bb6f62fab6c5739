"""delivery/downgrade.py on its own: each conversion gives MIME that the email package reads
back to the same content, parts that need nothing keep their octets, and what must not or cannot
be converted is refused with its code (5.6.2, 5.6.3, 5.6.4, 5.6.5, 5.6.7, 5.6.9, 5.7.3)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from mailroom.codes import Reply
from mailroom.delivery.downgrade import (
    MAX_NESTING,
    CannotConvert,
    fit_for_next_hop,
    refused_recipients,
)
from mailroom.protocol.extensions import Extensions

SEVEN_BIT = Extensions.parse(Reply(250, None, ["hop", "PIPELINING", "DSN"]))
EIGHT_BIT = Extensions.parse(Reply(250, None, ["hop", "8BITMIME"]))
FULL = Extensions.parse(Reply(250, None, ["hop", "8BITMIME", "SMTPUTF8", "CHUNKING", "BINARYMIME"]))


def fit(message: bytes, hop: Extensions = SEVEN_BIT, **options: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {"sender": "a@a.test", "body": "8BITMIME", "smtputf8": False}
    values.update(options)
    return fit_for_next_hop(message, extensions=hop, **values)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def content(part: EmailMessage) -> str:
    """A text part's decoded content, with its line ends as the email package reads them."""
    return str(part.get_content()).replace("\r\n", "\n")


def seven_bit_lines(data: bytes) -> bool:
    return data.isascii() and all(len(line) <= 998 for line in data.split(b"\r\n"))


def test_a_plain_8bit_message_becomes_quoted_printable_utf8() -> None:
    text = "Grüße aus Köln — €5\r\n"
    original = b"From: a@a.test\r\nSubject: hi\r\n\r\n" + text.encode()
    result = fit(original)
    assert result.converted and result.body is None and not result.lost
    assert seven_bit_lines(result.message)
    parsed = parse(result.message)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_content_type() == "text/plain" and parsed.get_content_charset() == "utf-8"
    assert content(parsed) == text.replace("\r\n", "\n")


def test_a_7bit_message_declared_8bitmime_goes_to_a_7bit_hop_without_body() -> None:
    # Many clients declare BODY=8BITMIME for every message: one whose octets are all ASCII
    # needs no conversion and no BODY= at a hop without 8BITMIME (RFC 6152 §3).
    message = b"From: a@a.test\r\nSubject: plain\r\n\r\nOnly ASCII here.\r\n"
    result = fit(message)
    assert (result.message, result.body, result.converted) == (message, None, False)
    assert fit(message, EIGHT_BIT).body == "8BITMIME"


def test_a_hop_with_8bitmime_gets_the_octets_as_they_are() -> None:
    original = b"Subject: hi\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"
    result = fit(original, EIGHT_BIT)
    assert result.message == original and result.body == "8BITMIME" and not result.converted


MULTIPART = (
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"caf\xc3\xa9\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"plain ascii, left alone\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"\x80\x81\x82 data\r\n"
    b"--XX--\r\n"
    b"epilogue\r\n"
)


def test_each_8bit_part_is_encoded_as_its_type_asks() -> None:
    result = fit(MULTIPART)
    assert seven_bit_lines(result.message)
    parsed = parse(result.message)
    assert parsed["Content-Transfer-Encoding"] == "7bit"
    text, plain, data = parsed.iter_parts()
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    # The CRLF before a delimiter is the delimiter's (RFC 2046 §5.1.1), not the part's.
    assert content(text) == "café"
    assert content(plain) == "plain ascii, left alone"
    assert data["Content-Transfer-Encoding"] == "base64"
    assert data.get_content() == b"\x80\x81\x82 data"
    # What needed nothing is there octet for octet: the ASCII part, the preamble, the epilogue.
    assert b"--XX\r\nContent-Type: text/plain\r\n\r\nplain ascii, left alone\r\n--XX" in (
        result.message
    )
    assert result.message.startswith(MULTIPART[: MULTIPART.index(b"Content-Transfer-Encoding")])
    assert result.message.endswith(b"--XX--\r\nepilogue\r\n")


def test_a_message_inside_a_message_is_converted_inside() -> None:
    inner = b"Subject: inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nna\xc3\xafve\r\n"
    original = (
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + inner
        + b"--b1--\r\n"
    )
    result = fit(original)
    assert seven_bit_lines(result.message)
    [attached] = parse(result.message).iter_parts()
    assert attached["Content-Transfer-Encoding"] == "7bit"  # RFC 2046 §5.2.1: nothing else
    message = attached.get_content()
    assert message["Subject"] == "inner" and content(message) == "naïve"


def test_8bit_header_text_becomes_encoded_words() -> None:
    original = b"From: J\xc3\xb6rg <j@a.test>\r\nSubject: gr\xc3\xbc\xc3\x9fe\r\n\r\nhi\r\n"
    result = fit(original)
    assert seven_bit_lines(result.message) and not result.lost
    parsed = parse(result.message)
    assert parsed["Subject"] == "grüße"
    assert parsed["From"].addresses[0].display_name == "Jörg"
    assert parsed["From"].addresses[0].addr_spec == "j@a.test"


def test_text_in_no_known_charset_is_converted_with_loss() -> None:
    original = b"Subject: latin\r\n\r\ncaf\xe9\r\n"  # Latin-1, and nothing says so
    result = fit(original)
    assert result.lost == ["the body's 8-bit text is in no declared charset (unknown-8bit)"]
    assert parse(result.message).get_content_charset() == "unknown-8bit"
    with pytest.raises(CannotConvert) as refused:
        fit(b"Conversion-With-Loss: Prohibited\r\n" + original)
    assert str(refused.value.report.status) == "5.6.4"


def test_conversion_prohibited() -> None:
    original = b"Conversion: Prohibited\r\nSubject: x\r\n\r\ncaf\xc3\xa9\r\n"
    with pytest.raises(CannotConvert) as refused:
        fit(original)
    assert str(refused.value.report.status) == "5.6.2"
    # To a hop that takes it as it is, nothing needs converting: it goes.
    assert fit(original, EIGHT_BIT).message == original


def test_a_signed_part_is_never_converted() -> None:
    signed = (
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; boundary="s"; protocol="application/pgp-signature"\r\n'
        b"\r\n--s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
        b"8bit\r\n\r\nsign\xc3\xa9\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\n"
        b"-----BEGIN PGP SIGNATURE-----\r\n--s--\r\n"
    )
    with pytest.raises(CannotConvert) as refused:
        fit(signed)
    assert str(refused.value.report.status) == "5.7.3"
    ascii_signed = signed.replace(b"sign\xc3\xa9", b"signed").replace(b"8bit", b"7bit")
    assert fit(ascii_signed).message == ascii_signed


def test_broken_mime_fails_to_convert() -> None:
    broken = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\ncaf\xc3\xa9\r\n'
    with pytest.raises(CannotConvert) as refused:
        fit(broken)
    assert str(refused.value.report.status) == "5.6.5"
    no_boundary = b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\ncaf\xc3\xa9\r\n"
    with pytest.raises(CannotConvert) as refused:
        fit(no_boundary)
    assert str(refused.value.report.status) == "5.6.5"


def test_parts_nested_past_the_limit_fail_to_convert() -> None:
    """3,000 nested multiparts with 8-bit text at the bottom raised RecursionError in the
    converter: the runner took it for a passing failure and tried again for days. Past
    MAX_NESTING (100, as Postfix's mime_nesting_limit) the message is returned with 5.6.5;
    within it, converted."""
    from tests.hostile.mimebombs import deep

    for levels in (MAX_NESTING + 1, 3000):
        with pytest.raises(CannotConvert) as refused:
            fit(deep(levels).replace(b"the bottom", "café".encode()))
        assert str(refused.value.report.status) == "5.6.5"
        assert f"nest more than {MAX_NESTING} levels deep" in refused.value.text
    converted = fit(deep(MAX_NESTING).replace(b"the bottom", "café".encode()))
    assert converted.converted and seven_bit_lines(converted.message)


BINARY = (
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\r\n--b--\r\n"
)


def test_binarymime_to_a_hop_without_it_becomes_base64() -> None:
    result = fit(BINARY, EIGHT_BIT, body="BINARYMIME")
    assert seven_bit_lines(result.message) and result.body is None
    [image] = parse(result.message).iter_parts()
    assert image["Content-Transfer-Encoding"] == "base64"
    assert image.get_content() == b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    assert fit(BINARY, FULL, body="BINARYMIME").message == BINARY  # it takes binary


def test_binary_content_outside_mime_cannot_be_converted() -> None:
    with pytest.raises(CannotConvert) as refused:
        fit(b"Subject: raw\r\n\r\n\x00\x01\x02\r\n", EIGHT_BIT, body="BINARYMIME")
    assert str(refused.value.report.status) == "5.6.3"


def test_smtputf8_messages_to_a_hop_without_smtputf8() -> None:
    ascii_message = b"Subject: hello\r\n\r\nh\xc3\xa9llo\r\n"
    result = fit(ascii_message, EIGHT_BIT, smtputf8=True)
    assert result.smtputf8 is False and result.message == ascii_message  # goes as it is
    with pytest.raises(CannotConvert) as sender:
        fit(ascii_message, EIGHT_BIT, smtputf8=True, sender="jos\u00e9@a.test")
    assert str(sender.value.report.status) == "5.6.7"
    with pytest.raises(CannotConvert) as header:
        fit(b"Subject: h\xc3\xa9llo\r\n\r\nhi\r\n", EIGHT_BIT, smtputf8=True)
    assert str(header.value.report.status) == "5.6.9"
    assert refused_recipients(
        ["bob@b.test", "jos\u00e9@b.test"], smtputf8=True, extensions=EIGHT_BIT
    ) == ["jos\u00e9@b.test"]
    assert fit(b"Subject: h\xc3\xa9llo\r\n\r\nhi\r\n", FULL, smtputf8=True).smtputf8 is True


def test_lines_too_long_for_smtp_are_folded_by_quoted_printable() -> None:
    original = b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 2000 + b"\r\n"
    result = fit(original + b"caf\xc3\xa9\r\n")
    assert seven_bit_lines(result.message)
    # No charset was declared, and none is invented: the octets come back as they were.
    decoded = parse(result.message).get_payload(decode=True)
    assert decoded.replace(b"\r\n", b"\n") == b"x" * 2000 + b"\ncaf\xc3\xa9\n"


def test_an_8bit_fragment_cannot_be_converted() -> None:
    partial = (
        b'MIME-Version: 1.0\r\nContent-Type: message/partial; id="x@a.test"; number=1; '
        b"total=2\r\n\r\nSubject: part one\r\n\r\ncaf\xc3\xa9\r\n"
    )
    with pytest.raises(CannotConvert) as refused:
        fit(partial)
    assert str(refused.value.report.status) == "5.6.1"
    assert fit(partial, EIGHT_BIT).message == partial  # a hop that takes 8 bits takes it whole
