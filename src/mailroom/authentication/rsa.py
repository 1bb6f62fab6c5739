"""dkimpy's two RSA operations done by OpenSSL (through ``cryptography``) instead of Python's
``pow``: the same PKCS #1 v1.5 signatures (the scheme is deterministic: the bytes are equal),
about ten times less CPU. dkimpy keeps everything else (parsing, canonicalization, header
selection).

dkimpy has no hook for its cryptography: it calls ``RSASSA_PKCS1_v1_5_sign(hash, key)`` and
``RSASSA_PKCS1_v1_5_verify(hash, signature, key)`` by their names in its ``dkim`` module, with
keys as the dicts of numbers its ASN.1 parser makes. So the speed-up replaces those names, and
the two parses worth caching (``evaluate_pk`` of key records, ``parse_pem_private_key`` of our
own keys), in that module — and only in one place: :func:`use_openssl_rsa_in_dkimpy`, which the
composition root calls once when email authentication is on. Importing this package changes
nothing in dkimpy.

Before it replaces anything, it checks that dkimpy still looks the way this code expects: the
four names exist with the parameters it calls them with, and, on a key made for the check,
dkimpy's own RSA and these give the same signature bytes and the same verdicts, and a message
dkimpy signs with them verifies. A dkimpy whose internals changed fails the check; dkimpy is
then left as it is (slower, the same results) and the log says why.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import logging
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import dkim
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

__all__ = ["evaluate_pk", "parse_pem_private_key", "sign", "use_openssl_rsa_in_dkimpy", "verify"]

log = logging.getLogger("mailroom.authentication")

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


# dkimpy's own functions, as imported (before anything is replaced); None in a dkimpy without
# them (the check then leaves dkimpy alone).
_parse_key: Callable[..., Any] | None = getattr(dkim, "evaluate_pk", None)
_parse_private: Callable[..., Any] | None = getattr(dkim, "parse_pem_private_key", None)


@lru_cache(maxsize=4096)
def evaluate_pk(name: bytes, record: bytes | str) -> Any:
    """dkimpy's parse of a key record (ASN.1 in Python, ~140 us), once per record: a server
    meets the same senders' keys again and again. Its result is only read."""
    assert _parse_key is not None  # in use only once the check found it
    return _parse_key(name, record)


@lru_cache(maxsize=64)
def parse_pem_private_key(data: bytes) -> Any:
    """dkimpy's parse of a PEM private key, once per key (the server's own few)."""
    assert _parse_private is not None
    return _parse_private(data)


# The names use_openssl_rsa_in_dkimpy replaces in the dkim module, each with the number of
# arguments dkimpy passes it (by position) and its replacement.
_REPLACED: dict[str, tuple[int, Callable[..., Any]]] = {
    "RSASSA_PKCS1_v1_5_sign": (2, sign),
    "RSASSA_PKCS1_v1_5_verify": (3, verify),
    "evaluate_pk": (2, evaluate_pk),
    "parse_pem_private_key": (1, parse_pem_private_key),
}

_in_use = False


def use_openssl_rsa_in_dkimpy() -> bool:
    """Make dkimpy sign and verify RSA with OpenSSL, and cache its parses of keys, if this
    dkimpy passes the check (see the module's docstring); once per process. True if in use."""
    global _in_use
    if _in_use:
        return True
    key = _CheckKey.make()
    try:
        problem = _dkimpy_problem(key)
    except Exception as exc:  # anything unexpected in dkimpy is a reason not to touch it
        problem = f"the check failed: {exc!r}"
    if problem is None:
        originals = {name: getattr(dkim, name) for name in _REPLACED}
        for name, (_, ours) in _REPLACED.items():
            setattr(dkim, name, ours)
        try:
            problem = _round_trip(key)
        except Exception as exc:
            problem = f"a message signed with them does not verify: {exc!r}"
        if problem is not None:
            for name, original in originals.items():
                setattr(dkim, name, original)
    if problem is not None:
        log.warning(
            "dkimpy %s: %s; DKIM keeps dkimpy's own RSA (the same results, more CPU)",
            _dkimpy_version(),
            problem,
        )
        return False
    _in_use = True
    return True


def _dkimpy_version() -> str:
    try:
        return version("dkimpy")
    except PackageNotFoundError:
        return "(version unknown)"


class _CheckKey:
    """An RSA key made for the check (1024 bits: dkimpy's smallest accepted, quick to make)."""

    def __init__(self, private: rsa.RSAPrivateKey) -> None:
        from cryptography.hazmat.primitives import serialization

        self.pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    @classmethod
    def make(cls) -> _CheckKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=1024))


def _dkimpy_problem(key: _CheckKey) -> str | None:
    """Why dkimpy's RSA may not be replaced, or None: its names and their parameters, then the
    same bytes and verdicts from both on the check's key."""
    for name, (arguments, _) in _REPLACED.items():
        theirs = getattr(dkim, name, None)
        if not callable(theirs):
            return f"dkim.{name} is gone"
        if len(inspect.signature(theirs).parameters) != arguments:
            return f"dkim.{name} no longer takes {arguments} arguments"
    if _parse_key is not dkim.evaluate_pk or _parse_private is not dkim.parse_pem_private_key:
        return "dkim's key parsers were replaced by something else"
    private = _parse_private(key.pem)
    if not isinstance(private, dict) or not {"modulus", "publicExponent"} <= private.keys():
        return "its private keys are no longer dicts of numbers"
    public = {"modulus": private["modulus"], "publicExponent": private["publicExponent"]}
    for algorithm in ("sha256", "sha1"):
        digest = dkim.HashThrough(getattr(hashlib, algorithm)())
        digest.update(b"mailroom checks dkimpy's RSA")
        theirs = bytes(dkim.RSASSA_PKCS1_v1_5_sign(digest, private))
        if sign(digest, private) != theirs:
            return f"its RSA signatures ({algorithm}) differ from OpenSSL's"
        broken = bytes([theirs[0] ^ 1]) + theirs[1:]
        for signature, valid in ((theirs, True), (broken, False)):
            verdicts = (
                verify(digest, signature, public),
                bool(dkim.RSASSA_PKCS1_v1_5_verify(digest, signature, public)),
            )
            if verdicts != (valid, valid):
                return f"its RSA verdicts ({algorithm}) differ from OpenSSL's"
    return None


def _round_trip(key: _CheckKey) -> str | None:
    """With the replacements in place: a message dkimpy signs verifies, and once changed does
    not (the whole path: parse of the PEM key, signing, parse of the key record, verifying)."""
    message = b"From: a@check.invalid\r\nSubject: check\r\n\r\nmailroom checks dkimpy\r\n"
    header = dkim.sign(message, b"check", b"check.invalid", key.pem, include_headers=[b"from"])

    def key_record(name: bytes, timeout: int = 5) -> bytes:
        return key.record

    if not dkim.verify(header + message, dnsfunc=key_record):
        return "a message signed with them does not verify"
    if dkim.verify(header + message.replace(b"checks", b"changes"), dnsfunc=key_record):
        return "a changed message still verifies"
    return None
