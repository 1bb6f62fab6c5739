"""DKIM verification against real DNS (keys published in Knot, asked through Unbound), for
mailroom's own signatures (RSA-2048 and ed25519), and for everything a hostile or broken sender
can put in a DKIM-Signature."""

from __future__ import annotations

import base64
import subprocess
import time

import dkim
import pytest

from mailroom.authentication.checks import SessionChecks
from mailroom.authentication.dkim import verify_message
from mailroom.authentication.keys import DKIMKey
from mailroom.authentication.settings import AuthenticationSettings
from mailroom.authentication.signing import headers_to_sign, sign
from mailroom.resolver import Resolver
from tests.authentication.conftest import run
from tests.dnspeers import silent_dns

MESSAGE = (
    b"From: Alice <alice@sender.test>\r\n"
    b"To: bob@example.test\r\n"
    b"Subject: signed\r\n"
    b"Date: Sat, 05 Dec 2026 09:00:00 +0000\r\n"
    b"Message-ID: <1@sender.test>\r\n"
    b"\r\n"
    b"Hello, Bob.\r\n"
)


def test_both_of_our_signatures_verify(resolver, sender_keys):
    signed = sign(MESSAGE, sender_keys) + MESSAGE
    results, lookups = run(verify_message(signed, resolver.lookup))
    assert [(r.result, r.algorithm, r.selector) for r in results] == [
        ("pass", "rsa-sha256", "rsa1"),
        ("pass", "ed25519-sha256", "ed1"),
    ]
    assert results[0].key_bits == 2048
    assert any("rsa1._domainkey.sender.test" in line for line in lookups)


def test_our_header_list_oversigns_from_to_and_subject(sender_keys):
    signed = sign(MESSAGE, sender_keys[:1])
    tags = dkim.util.parse_tag_value(signed.split(b":", 1)[1])
    signed_names = [h.strip() for h in tags[b"h"].split(b":")]
    for name in (b"from", b"to", b"subject"):
        assert signed_names.count(name) == 2
    assert b"date" in signed_names and b"message-id" in signed_names
    assert tags[b"c"] == b"relaxed/relaxed"
    assert headers_to_sign([(b"From", b"x")]).count(b"to") == 1  # absent To: signed once, empty


def test_a_changed_body_fails(resolver, sender_keys):
    signed = sign(MESSAGE, sender_keys) + MESSAGE
    tampered = signed.replace(b"Hello, Bob.", b"Hello, Eve.")
    results, _ = run(verify_message(tampered, resolver.lookup))
    assert [r.result for r in results] == ["fail", "fail"]
    assert "body hash" in results[0].reason


def test_an_added_from_fails(resolver, sender_keys):
    signed = sign(MESSAGE, sender_keys) + MESSAGE
    forged = b"From: ceo@sender.test\r\n" + signed
    results, _ = run(verify_message(forged, resolver.lookup))
    assert {r.result for r in results} == {"fail"}


def test_relaxed_canonicalization_survives_refolding(resolver, sender_keys):
    signed = sign(MESSAGE, sender_keys) + MESSAGE
    refolded = signed.replace(b"Subject: signed", b"Subject:   signed ")
    results, _ = run(verify_message(refolded, resolver.lookup))
    assert [r.result for r in results] == ["pass", "pass"]


def test_rsa_sha1_is_not_acceptable(resolver, sender_keys):
    rsa = sender_keys[0]
    header = dkim.sign(
        MESSAGE,
        rsa.selector.encode(),
        rsa.domain.encode(),
        rsa.private,
        signature_algorithm=b"rsa-sha1",
        include_headers=[b"from", b"to", b"subject"],
    )
    [result], _ = run(verify_message(header + MESSAGE, resolver.lookup))
    assert result.result == "policy" and "rsa-sha1" in result.reason
    assert result.unacceptable


def test_a_short_key_is_not_acceptable(knot, resolver, tmp_path):
    pem = subprocess.run(
        ["openssl", "genrsa", "-traditional", "512"], capture_output=True, check=True
    ).stdout
    public = subprocess.run(
        ["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem, capture_output=True, check=True
    ).stdout
    knot.set(
        "short._domainkey.sender.test",
        {"TXT": ["v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()]},
    )
    header = dkim.sign(MESSAGE, b"short", b"sender.test", pem, include_headers=[b"from", b"to"])
    [result], _ = run(verify_message(header + MESSAGE, resolver.lookup))
    assert result.result == "policy" and "512" in result.reason


def test_an_expired_signature_is_not_acceptable(resolver, sender_keys):
    signed = sign(MESSAGE, sender_keys[1:])
    past = int(time.time()) - 86400
    # Expiry is judged before the key is fetched (the signature would not verify either way).
    header = signed.replace(b"; h=", f"; x={past}; h=".encode(), 1)
    [result], _ = run(verify_message(header + MESSAGE, resolver.lookup))
    assert result.result == "policy" and "expired" in result.reason


def test_no_key_is_a_permerror_and_a_revoked_key_too(knot, resolver, sender_keys):
    key = sender_keys[1]
    other = DKIMKey(key.domain, "gone", key.algorithm, key.private, key.public_record)
    [missing], _ = run(verify_message(sign(MESSAGE, [other]) + MESSAGE, resolver.lookup))
    assert (missing.result, missing.reason) == (
        "permerror",
        "no key at gone._domainkey.sender.test",
    )
    knot.set("revoked._domainkey.sender.test", {"TXT": ["v=DKIM1; k=ed25519; p="]})
    revoked = DKIMKey(key.domain, "revoked", key.algorithm, key.private, key.public_record)
    [result], _ = run(verify_message(sign(MESSAGE, [revoked]) + MESSAGE, resolver.lookup))
    assert result.result == "permerror" and "revoked" in result.reason


@pytest.mark.parametrize(
    "header",
    [
        b"DKIM-Signature: garbage\r\n",
        b"DKIM-Signature: v=1; a=rsa-sha256\r\n",
        b"DKIM-Signature: v=1; a=rsa-md5; d=sender.test; s=x; h=from; bh=AAAA; b=AAAA\r\n",
        b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=x; h=to; bh=AAAA; b=AAAA\r\n",
        b"DKIM-Signature: v=1; a=rsa-sha256; d=[127.0.0.1]; s=x; h=from; bh=AAAA; b=AAAA\r\n",
        b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=rsa1; h=from; bh=!!!; b=!!!\r\n",
        b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=rsa1; h=from; bh=AAAA; b=AAAA; l=99999999999999999999999999\r\n",
        b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=rsa1; i=@evil.test; h=from; bh=AAAA; b=AAAA\r\n",
        b"DKIM-Signature: \xff\xfe\x00; v=1\r\n",
        b"DKIM-Signature: v=1; v=1; a=rsa-sha256\r\n",
    ],
)
def test_malformed_signatures_get_a_result_not_an_error(resolver, sender_keys, header):
    [result], _ = run(verify_message(header + MESSAGE, resolver.lookup))
    assert result.result in ("neutral", "fail", "permerror")


def test_a_hundred_signatures_are_not_a_hundred_lookups(resolver, sender_keys):
    one = sign(MESSAGE, sender_keys[1:])
    many = b"".join(one.replace(b"s=ed1", f"s=k{i}".encode()) for i in range(100)) + MESSAGE
    started = time.monotonic()
    results, lookups = run(verify_message(many, resolver.lookup, max_signatures=5))
    assert len(results) == 5 and len(lookups) == 5
    assert time.monotonic() - started < 10


def test_a_message_without_a_signature_has_no_results(resolver):
    assert run(verify_message(MESSAGE, resolver.lookup)) == ([], [])


def test_silent_dns_is_a_temperror_within_the_budget(sender_keys):
    settings = AuthenticationSettings(
        dkim_timeout=1.0, dmarc="off", iprev="off", arc="off", spf="off"
    )
    signed = sign(MESSAGE, sender_keys) + MESSAGE
    with silent_dns() as address:
        checks = SessionChecks(
            settings, Resolver([address], timeout=30).lookup, client_ip="127.0.0.1", receiver="mx"
        )
        started = time.monotonic()
        results = run(checks.message(signed))
        elapsed = time.monotonic() - started
    assert [r.result for r in results.dkim or []] == ["temperror", "temperror"]
    assert "timed out after 1 s" in results.dkim[0].reason
    assert elapsed < 5


# dkimpy adds each folded line of a header field to it one at a time: 320,000 of them (1.3 MB)
# took 6.7 s to read, on the event loop, for DKIM and again for ARC. mailroom reads messages
# for dkimpy itself now (dkimpy_reading), in linear time, and a header section over
# max_header_size (102,400 octets, as Postfix's header_size_limit) is still not verified. The
# test timeouts guard against a hang; they are not a measure of speed.
_FOLDED = b"X-Long: start" + b"\r\n a" * 1_000_000 + b"\r\n"


@pytest.mark.timeout(20)
def test_a_header_section_over_the_limit_is_not_verified(resolver, sender_keys):
    from mailroom.authentication.arc import verify_chain

    signed = sign(MESSAGE, sender_keys) + _FOLDED + MESSAGE
    results, lookups = run(verify_message(signed, resolver.lookup))
    assert [r.result for r in results] == ["neutral"] and lookups == []
    assert results[0].reason.endswith("octets, over 102400: not verified")
    assert run(verify_message(_FOLDED + MESSAGE, resolver.lookup)) == ([], [])
    arc, _ = run(verify_chain(_FOLDED + MESSAGE, resolver.lookup))
    assert arc.result == "none" and arc.reason.endswith("octets: not verified")
    # Within a larger limit the same signatures are read, and verify.
    small = sign(MESSAGE, sender_keys) + b"X-Long: start" + b"\r\n a" * 1000 + b"\r\n" + MESSAGE
    results, _ = run(verify_message(small, resolver.lookup, max_header_size=4096))
    assert [r.result for r in results] == ["neutral"]
    results, _ = run(verify_message(small, resolver.lookup))
    assert [r.result for r in results] == ["pass", "pass"]


@pytest.mark.parametrize(
    "message",
    [
        MESSAGE,
        MESSAGE.replace(b"\r\n", b"\n"),
        b"From sender@a.test Sat Dec  5 09:00:00 2026\nFrom: a@a.test\n\nbody\n\nmore",
        b"A: 1\r\n b\r\n\tc\r\nB:2\r\n\r\nbody\rwith a bare CR\nand LF\r\n",
        b"A: 1\r\nB: 2\r\n",  # no body
        b"A: 1",
        b"\r\nbody only",
        b"",
        _FOLDED[:2000] + MESSAGE,
    ],
)
def test_a_message_is_read_for_dkimpy_as_dkimpy_reads_it(message):
    from mailroom.authentication.dkimpy_reading import read_message

    assert read_message(message) == dkim.rfc822_parse(message)


@pytest.mark.parametrize("message", [b"no colon here\r\n\r\nbody", b" fold first: x\r\n\r\n"])
def test_a_header_dkimpy_refuses_is_refused_the_same_way(message):
    from mailroom.authentication.dkimpy_reading import read_message

    with pytest.raises(dkim.MessageFormatError):
        read_message(message)


@pytest.mark.timeout(30)
def test_a_long_fold_is_signed_and_verified(resolver, sender_keys):
    """An authenticated user's message with a million folded lines (4 MB of header) is signed,
    and within a larger limit verified, each read once in linear time (dkimpy's own reader:
    6.7 s for 320,000 lines, the interpreter lock held, on every signature)."""
    message = _FOLDED + MESSAGE
    signed = sign(message, sender_keys) + message
    results, _ = run(verify_message(signed, resolver.lookup, max_header_size=8 << 20))
    assert [r.result for r in results] == ["pass", "pass"]


def test_the_header_limit_is_a_setting():
    assert AuthenticationSettings().max_header_size == 102_400
    settings = AuthenticationSettings.from_toml({"max_header_size": 1_000_000})
    assert settings.max_header_size == 1_000_000
    for bad in (0, 100, "big", True):
        with pytest.raises(ValueError, match="max_header_size is a number of octets"):
            AuthenticationSettings.from_toml({"max_header_size": bad})


@pytest.mark.timeout(20)
def test_the_author_is_found_past_a_long_fold():
    """DMARC's From is read from every header section, however large (a million folded lines,
    4 MB; 320,000 took 11 s before: each folded line was added to its field as it came)."""
    from mailroom.authentication.checks import from_fields

    assert from_fields(_FOLDED + MESSAGE) == ["Alice <alice@sender.test>"]
