"""dkimpy's two RSA operations done by OpenSSL (through ``cryptography``) instead of Python's
``pow``: the same PKCS #1 v1.5 signatures (the scheme is deterministic: the bytes are equal,
which tests/authentication/test_rsa.py checks against dkimpy's own code), about ten times less
CPU. dkimpy keeps everything else (parsing, canonicalization, header selection).

dkimpy calls ``RSASSA_PKCS1_v1_5_sign(hash, key)`` and ``RSASSA_PKCS1_v1_5_verify(hash,
signature, key)`` by their names in its ``dkim`` module, with keys as the dicts of numbers its
ASN.1 parser makes; :func:`install` puts these two in their place once, when mailroom's
DKIM and ARC code is imported, and caches dkimpy's parse of key records (``evaluate_pk``). Keys
built from those numbers are cached too (a server signs with a few keys and meets the same
senders' keys again and again).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import dkim
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

__all__ = ["evaluate_pk", "install", "parse_pem_private_key", "sign", "verify"]

_HASHES: dict[str, hashes.HashAlgorithm] = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}


@lru_cache(maxsize=64)
def _private(n: int, e: int, d: int, p: int, q: int, dmp1: int, dmq1: int, iqmp: int) -> Any:
    public = rsa.RSAPublicNumbers(e, n)
    return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, public).private_key()


@lru_cache(maxsize=4096)
def _public(n: int, e: int) -> Any:
    return rsa.RSAPublicNumbers(e, n).public_key()


def sign(hash: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's ``RSASSA_PKCS1_v1_5_sign``, by OpenSSL."""
    key = _private(
        private_key["modulus"],
        private_key["publicExponent"],
        private_key["privateExponent"],
        private_key["prime1"],
        private_key["prime2"],
        private_key["exponent1"],
        private_key["exponent2"],
        private_key["coefficient"],
    )
    algorithm = _HASHES[hash.name.lower()]
    return bytes(key.sign(hash.digest(), padding.PKCS1v15(), Prehashed(algorithm)))


def verify(hash: Any, signature: bytes, public_key: dict[str, int]) -> bool:
    """dkimpy's ``RSASSA_PKCS1_v1_5_verify``, by OpenSSL."""
    try:
        key = _public(public_key["modulus"], public_key["publicExponent"])
        key.verify(
            bytes(signature),
            hash.digest(),
            padding.PKCS1v15(),
            Prehashed(_HASHES[hash.name.lower()]),
        )
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


_parse_key = dkim.evaluate_pk


@lru_cache(maxsize=4096)
def evaluate_pk(name: bytes, record: bytes | str) -> Any:
    """dkimpy's parse of a key record (ASN.1 in Python, ~140 us), once per record: a server
    meets the same senders' keys again and again. Its result is only read."""
    return _parse_key(name, record)


_parse_private = dkim.parse_pem_private_key


@lru_cache(maxsize=64)
def parse_pem_private_key(data: bytes) -> Any:
    """dkimpy's parse of a PEM private key, once per key (the server's own few)."""
    return _parse_private(data)


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        dkim.RSASSA_PKCS1_v1_5_sign = sign
        dkim.RSASSA_PKCS1_v1_5_verify = verify
        dkim.evaluate_pk = evaluate_pk
        dkim.parse_pem_private_key = parse_pem_private_key
        _installed = True
