"""mailroom's DKIM signatures verify in OpenDKIM, and OpenDKIM's in mailroom: both through
the same real DNS (Knot behind Unbound)."""

from __future__ import annotations

import pytest

from mailroom.authentication.dkim import verify_message
from mailroom.authentication.signing import sign
from tests.authentication.conftest import run
from tests.authentication.peers import OpenDKIM

MESSAGE = (
    b"From: Alice <alice@sender.test>\r\n"
    b"To: bob@example.test\r\n"
    b"Subject: between implementations\r\n"
    b"Date: Sat, 05 Dec 2026 09:00:00 +0000\r\n"
    b"Message-ID: <peer@sender.test>\r\n"
    b"\r\n"
    b"Hello from one DKIM implementation to another.\r\n"
    b".. a line that starts with a dot\r\n"
)


@pytest.fixture(scope="module")
def opendkim(unbound):
    verifier = OpenDKIM(unbound.port)
    yield verifier
    verifier.close()


def test_opendkim_verifies_both_of_mailrooms_signatures(opendkim, sender_keys):
    results = opendkim.verify(sign(MESSAGE, sender_keys) + MESSAGE)
    assert "dkim=pass (2048-bit key; unprotected) header.d=sender.test" in results
    assert "header.a=rsa-sha256 header.s=rsa1" in results
    assert "header.a=ed25519-sha256 header.s=ed1" in results
    assert results.count("dkim=pass") == 2


def test_opendkim_rejects_what_mailroom_signed_and_someone_changed(opendkim, sender_keys):
    changed = (sign(MESSAGE, sender_keys) + MESSAGE).replace(b"Hello", b"Jello")
    results = opendkim.verify(changed)
    assert results.count("dkim=fail") == 2 and "dkim=pass" not in results


def test_mailroom_verifies_opendkims_signature(opendkim, knot, resolver):
    key, record = opendkim.genkey("sender.test", "odk")
    knot.set("odk._domainkey.sender.test", {"TXT": [record]})
    signed = opendkim.sign(MESSAGE, "sender.test", "odk", key)
    [result], _ = run(verify_message(signed, resolver.lookup))
    assert (result.result, result.domain, result.selector, result.key_bits) == (
        "pass",
        "sender.test",
        "odk",
        2048,
    )
    [result], _ = run(verify_message(signed.replace(b"another", b"a third"), resolver.lookup))
    assert result.result == "fail"
