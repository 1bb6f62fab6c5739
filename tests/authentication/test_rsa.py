"""dkimpy's RSA by OpenSSL (mailroom.authentication.rsa) gives the very bytes dkimpy's own
pure-Python RSA gives, and verifies what it verifies."""

from __future__ import annotations

import hashlib

import dkim.crypto

from mailroom.authentication import rsa
from mailroom.authentication.keys import generate_key


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


def test_dkimpy_uses_them():
    assert dkim.RSASSA_PKCS1_v1_5_sign is rsa.sign
    assert dkim.RSASSA_PKCS1_v1_5_verify is rsa.verify
