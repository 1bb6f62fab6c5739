"""dkimpy's RSA by OpenSSL (mailroom.authentication.rsa): the very bytes dkimpy's own
pure-Python RSA gives and the verdicts it gives; put in dkimpy only by
use_openssl_rsa_in_dkimpy, which checks dkimpy first and leaves a dkimpy it does not recognise
alone."""

from __future__ import annotations

import hashlib
import logging

import dkim
import dkim.crypto
import pytest

from mailroom.authentication import rsa
from mailroom.authentication.keys import generate_key

NAMES = (
    "RSASSA_PKCS1_v1_5_sign",
    "RSASSA_PKCS1_v1_5_verify",
    "evaluate_pk",
    "parse_pem_private_key",
)


def test_the_same_signatures_and_verdicts(tmp_path):
    key = generate_key(tmp_path, "example.test", "s", "rsa")
    private = dkim.crypto.parse_pem_private_key(key.private)
    public = {"modulus": private["modulus"], "publicExponent": private["publicExponent"]}
    for data in (b"", b"a message", b"x" * 10_000):
        for name in ("sha256", "sha1"):
            digest = dkim.HashThrough(getattr(hashlib, name)())
            digest.update(data)
            ours = rsa.sign(digest, private)
            assert ours == bytes(dkim.crypto.RSASSA_PKCS1_v1_5_sign(digest, private))
            assert rsa.verify(digest, ours, public)
            assert dkim.crypto.RSASSA_PKCS1_v1_5_verify(digest, ours, public)
            broken = bytes([ours[0] ^ 1]) + ours[1:]
            assert not rsa.verify(digest, broken, public)
            assert not rsa.verify(digest, ours[:-1], public)


@pytest.fixture
def fresh_dkimpy(monkeypatch):
    """dkimpy as imported, and use_openssl_rsa_in_dkimpy not yet called; both put back after
    (monkeypatch restores every name it set, and the ones the function set are among them)."""
    monkeypatch.setattr(dkim, "evaluate_pk", rsa._parse_key)
    monkeypatch.setattr(dkim, "parse_pem_private_key", rsa._parse_private)
    monkeypatch.setattr(dkim, "RSASSA_PKCS1_v1_5_sign", dkim.crypto.RSASSA_PKCS1_v1_5_sign)
    monkeypatch.setattr(dkim, "RSASSA_PKCS1_v1_5_verify", dkim.crypto.RSASSA_PKCS1_v1_5_verify)
    monkeypatch.setattr(rsa, "_in_use", False)


def _untouched(before: dict[str, object]) -> bool:
    return all(getattr(dkim, name, None) is before[name] for name in NAMES)


def test_importing_changes_nothing_in_dkimpy(fresh_dkimpy):
    import mailroom.authentication.arc
    import mailroom.authentication.dkim
    import mailroom.authentication.signing  # noqa: F401

    assert dkim.RSASSA_PKCS1_v1_5_sign is dkim.crypto.RSASSA_PKCS1_v1_5_sign
    assert dkim.evaluate_pk is rsa._parse_key


def test_this_dkimpy_passes_the_check_and_uses_them(fresh_dkimpy, tmp_path):
    assert rsa.use_openssl_rsa_in_dkimpy()
    assert dkim.RSASSA_PKCS1_v1_5_sign is rsa.sign
    assert dkim.RSASSA_PKCS1_v1_5_verify is rsa.verify
    assert dkim.evaluate_pk is rsa.evaluate_pk
    assert dkim.parse_pem_private_key is rsa.parse_pem_private_key
    # Once per process: a second call changes nothing.
    assert rsa.use_openssl_rsa_in_dkimpy()
    # And dkimpy still signs and verifies with them, RSA-2048 included.
    key = generate_key(tmp_path, "example.test", "s", "rsa")
    message = b"From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n"
    header = dkim.sign(message, b"s", b"example.test", key.private, include_headers=[b"from"])
    record = key.public_record.encode()
    assert dkim.verify(header + message, dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(header + message + b"x", dnsfunc=lambda name, timeout=5: record)


def _wrong_padding(hash, private_key):  # the right arity, the wrong bytes
    return b"\0" + bytes(dkim.crypto.RSASSA_PKCS1_v1_5_sign(hash, private_key))[1:]


def _takes_a_key_object(hash, signature, public_key, *, strict):  # a new required argument
    raise TypeError("strict")


class _KeyObject:
    def __init__(self, data):
        self.data = data


@pytest.mark.parametrize(
    ("name", "changed", "why"),
    [
        ("RSASSA_PKCS1_v1_5_sign", None, "is gone"),
        ("RSASSA_PKCS1_v1_5_sign", lambda hash: b"", "no longer takes 2 arguments"),
        ("RSASSA_PKCS1_v1_5_sign", _wrong_padding, "signatures (sha256) differ"),
        ("RSASSA_PKCS1_v1_5_verify", lambda hash, sig, key: True, "verdicts"),
        ("RSASSA_PKCS1_v1_5_verify", _takes_a_key_object, "no longer takes 3 arguments"),
        ("parse_pem_private_key", _KeyObject, "replaced by something else"),
    ],
)
def test_a_dkimpy_whose_internals_changed_is_left_alone(
    fresh_dkimpy, monkeypatch, caplog, name, changed, why
):
    if changed is None:
        monkeypatch.delattr(dkim, name)
    else:
        monkeypatch.setattr(dkim, name, changed)
    before = {n: getattr(dkim, n, None) for n in NAMES}
    with caplog.at_level(logging.WARNING, logger="mailroom.authentication"):
        assert not rsa.use_openssl_rsa_in_dkimpy()
    assert _untouched(before)
    assert not rsa._in_use
    assert why in caplog.text and "keeps dkimpy's own RSA" in caplog.text


def test_private_keys_no_longer_dicts_are_found(fresh_dkimpy, monkeypatch, caplog):
    """dkimpy parses keys into another shape: its own parser (the one this module wraps) now
    gives objects, and OpenSSL's sign would read the wrong fields."""
    monkeypatch.setattr(rsa, "_parse_private", lambda data: _KeyObject(data))
    monkeypatch.setattr(dkim, "parse_pem_private_key", rsa._parse_private)
    before = {n: getattr(dkim, n, None) for n in NAMES}
    with caplog.at_level(logging.WARNING, logger="mailroom.authentication"):
        assert not rsa.use_openssl_rsa_in_dkimpy()
    assert _untouched(before)
    assert "no longer dicts of numbers" in caplog.text


def test_a_failing_round_trip_puts_dkimpy_back(fresh_dkimpy, monkeypatch, caplog):
    """The replacements pass the first checks but a message signed through dkimpy with them
    does not verify: every name goes back."""
    before = {n: getattr(dkim, n, None) for n in NAMES}
    monkeypatch.setattr(rsa, "_round_trip", lambda key: "a message signed with them fails")
    with caplog.at_level(logging.WARNING, logger="mailroom.authentication"):
        assert not rsa.use_openssl_rsa_in_dkimpy()
    assert _untouched(before)
    assert "fails" in caplog.text
