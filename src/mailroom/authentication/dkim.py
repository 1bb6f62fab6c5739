"""DKIM verification (RFC 6376, with RFC 8463's ed25519-sha256 and RFC 8301's end of
rsa-sha1) of every signature of a message, up to a limit.

The cryptography and the canonicalization are dkimpy's (the reference implementation, also used
by authheaders and by Mailman; it does rsa-sha256, ed25519-sha256 through PyNaCl, and ARC).
Its DNS is not used: for each signature the key record ``<s>._domainkey.<d>`` is fetched first
through our asynchronous resolver, then handed to dkimpy as a ``dnsfunc`` that only returns what
was fetched. The hashing runs on the event loop for small messages and in a thread for big ones
(:data:`THREAD_THRESHOLD`).

What dkimpy accepts and RFC 8301 forbids is refused here before it gets there: an rsa-sha1
signature is ``policy`` ("not acceptable"), as is an RSA key under 1024 bits (dkimpy's own
``minkey``, checked after the signature verifies) and a signature past its ``x=`` expiry.

Results, per RFC 8601 §2.7.1: ``pass``; ``fail`` (the signature or the body hash does not
verify); ``policy`` (verifies, or would, but is not acceptable: sha1, short key, expired);
``neutral`` (the header is malformed); ``permerror`` (no key, a revoked or unusable key);
``temperror`` (the key could not be fetched now).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import dkim
import dkim.util

from mailroom.authentication.dkimpy_reading import dkimpy_object, read_message
from mailroom.authentication.dns import DNSLog, LookupFunc
from mailroom.authentication.settings import MAX_HEADER_SIZE
from mailroom.header_section import header_length

__all__ = [
    "DKIMResult",
    "DKIMSignature",
    "KeyRecord",
    "fetch_key",
    "parse_signature",
    "verify_message",
]

log = logging.getLogger("mailroom.authentication")

Result = Literal["pass", "fail", "policy", "neutral", "permerror", "temperror"]
THREAD_THRESHOLD = 256 * 1024  # octets; a message this big is hashed off the event loop
MIN_RSA_BITS = 1024  # RFC 8301 §3.2: verifiers MUST NOT consider shorter keys valid
_SIGNATURE_FIELD = re.compile(rb"^dkim-signature[ \t]*:", re.IGNORECASE | re.MULTILINE)
_ALGORITHMS = {"rsa-sha256", "ed25519-sha256", "rsa-sha1"}


@dataclass(frozen=True, slots=True)
class DKIMSignature:
    """The tags of one DKIM-Signature header field that the decisions need."""

    index: int  # which DKIM-Signature, from the top (0)
    domain: str  # d=
    selector: str  # s=
    algorithm: str  # a=
    identity: str  # i= (default "@" + d=)
    b: str  # the start of b=, for RFC 8601's header.b (first 8 characters)
    expires: int | None  # x=
    tags: dict[bytes, bytes] = field(repr=False, compare=False)

    @property
    def key_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


@dataclass(frozen=True, slots=True)
class DKIMResult:
    result: Result
    reason: str = ""
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    identity: str = ""
    b: str = ""
    key_bits: int = 0

    @property
    def unacceptable(self) -> bool:
        """Signed, but not in a way this server accepts (RFC 7372's X.7.21)."""
        return self.result == "policy"

    def describe(self) -> str:
        who = f"d={self.domain} s={self.selector} a={self.algorithm}" if self.domain else ""
        why = f": {self.reason}" if self.reason else ""
        return f"dkim={self.result} ({who}{why})" if who or why else f"dkim={self.result}"


class SignatureError(ValueError):
    """A DKIM-Signature header field that cannot be used (RFC 8601's ``neutral``)."""


def _tag(tags: dict[bytes, bytes], name: bytes) -> str:
    return tags.get(name, b"").decode("utf-8", "replace")


def parse_signature(index: int, value: bytes) -> DKIMSignature:
    """The tags of a DKIM-Signature value, checked as far as they can be without the key."""
    try:
        tags = dkim.util.parse_tag_value(value)
    except (dkim.util.InvalidTagValueList, ValueError, IndexError) as exc:
        raise SignatureError(f"malformed tag list: {exc}") from None
    for required in (b"v", b"a", b"b", b"bh", b"d", b"h", b"s"):
        if required not in tags:
            raise SignatureError(f"no {required.decode()}= tag")
    if tags[b"v"] != b"1":
        raise SignatureError("v= is not 1")
    algorithm = _tag(tags, b"a").lower()
    if algorithm not in _ALGORITHMS:
        raise SignatureError(f"unknown algorithm {algorithm[:40]!r}")
    domain = _tag(tags, b"d").lower().rstrip(".")
    selector = _tag(tags, b"s").lower()
    if not re.fullmatch(r"[a-z0-9_.-]{1,253}", domain) or "." not in domain:
        raise SignatureError(f"d= is not a domain: {domain[:60]!r}")
    if not re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*", selector) or len(selector) > 200:
        raise SignatureError(f"s= is not a selector: {selector[:60]!r}")
    if b"from" not in [h.strip().lower() for h in tags[b"h"].split(b":")]:
        raise SignatureError("h= does not include From (RFC 6376 §5.4)")
    identity = _tag(tags, b"i") or f"@{domain}"
    if not identity.lower().rstrip(".").endswith(domain) or "@" not in identity:
        raise SignatureError("i= is not within d=")
    expires = None
    if b"x" in tags:
        if not tags[b"x"].strip().isdigit():
            raise SignatureError("x= is not a number")
        expires = int(tags[b"x"])
    b = re.sub(rb"\s+", b"", tags[b"b"]).decode("ascii", "replace")
    return DKIMSignature(index, domain, selector, algorithm, identity, b[:8], expires, tags)


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What DNS said for ``<s>._domainkey.<d>``: the record's text, or why there is none."""

    name: str
    text: bytes | None
    result: Result | None = None  # None: usable; else the result it gives the signature
    reason: str = ""


async def fetch_key(name: str, lookup: LookupFunc) -> KeyRecord:
    answer = await lookup(name, "TXT")
    if answer.status == "error":
        return KeyRecord(name, None, "temperror", f"key {name}: {answer.error}")
    if answer.void:
        return KeyRecord(name, None, "permerror", f"no key at {name}")
    # RFC 6376 §3.6.2.2: the strings of a record are one; several records are undefined, and
    # the first that is a key is taken (as OpenDKIM and dkimpy do).
    for text in answer.records:
        data = text.encode("utf-8", "replace")
        try:
            tags = dkim.util.parse_tag_value(data)
        except (dkim.util.InvalidTagValueList, ValueError, IndexError):
            continue
        if b"p" not in tags:
            continue
        if not tags[b"p"].strip():
            return KeyRecord(name, None, "permerror", f"key {name} revoked (empty p=)")
        return KeyRecord(name, data)
    return KeyRecord(name, None, "permerror", f"no usable key record at {name}")


# -- verifying -------------------------------------------------------------------------------


def _quiet_logger() -> logging.Logger:
    # dkimpy logs every failure at ERROR; our result says it instead.
    logger = logging.getLogger("mailroom.authentication.dkimpy")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    return logger


_DKIMPY_LOG = _quiet_logger()


def _verify_one(message: bytes, signature: DKIMSignature, key: KeyRecord) -> DKIMResult:
    """The cryptographic part: dkimpy with the key already in hand (no DNS here)."""
    assert key.text is not None
    base = _base(signature)
    checker = dkimpy_object(dkim.DKIM, message, _DKIMPY_LOG, minkey=MIN_RSA_BITS)

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        return key.text or b""

    try:
        valid = checker.verify(idx=signature.index, dnsfunc=dnsfunc)
    except dkim.KeyFormatError as exc:
        text = str(exc)
        if "too small" in text:
            return DKIMResult("policy", f"RSA key of {checker.keysize} bits", **base)
        return DKIMResult("permerror", f"unusable key: {text[:120]}", **base)
    except dkim.ValidationError as exc:
        if "body hash mismatch" in str(exc):
            return DKIMResult("fail", "body hash did not verify", **base)
        return DKIMResult("neutral", f"invalid signature: {str(exc)[:120]}", **base)
    except dkim.DKIMException as exc:
        # A signature header or message that dkimpy cannot process (RFC 8601: neutral).
        return DKIMResult("neutral", f"{type(exc).__name__}: {str(exc)[:120]}", **base)
    except Exception as exc:  # dkimpy on input it never expected: a result, not a crash
        log.debug("dkimpy failed on signature %d", signature.index, exc_info=True)
        return DKIMResult("neutral", f"cannot verify: {type(exc).__name__}", **base)
    bits = int(checker.keysize or 0)
    if not valid:
        return DKIMResult("fail", "signature did not verify", key_bits=bits, **base)
    if signature.algorithm == "rsa-sha1":
        return DKIMResult("policy", "rsa-sha1 is not acceptable (RFC 8301)", key_bits=bits, **base)
    return DKIMResult("pass", "", key_bits=bits, **base)


def _base(signature: DKIMSignature) -> dict[str, Any]:
    return {
        "domain": signature.domain,
        "selector": signature.selector,
        "algorithm": signature.algorithm,
        "identity": signature.identity,
        "b": signature.b,
    }


def signature_headers(message: bytes, max_header_size: int = MAX_HEADER_SIZE) -> list[bytes]:
    """The values of the message's DKIM-Signature header fields, top first (none when the
    header section is over ``max_header_size``)."""
    if header_length(message) > max_header_size:
        return []
    return _signature_values(message)


def _signature_values(message: bytes) -> list[bytes]:
    """The DKIM-Signature values, the header read as dkimpy reads it (none when it cannot
    be)."""
    try:
        headers, _ = read_message(message)
    except Exception:
        return []
    return [value for name, value in headers if name.lower() == b"dkim-signature"]


async def verify_message(
    message: bytes,
    lookup: LookupFunc,
    *,
    max_signatures: int = 5,
    now: float | None = None,
    max_header_size: int = MAX_HEADER_SIZE,
) -> tuple[list[DKIMResult], list[str]]:
    """Every DKIM signature's result (the first ``max_signatures``; the rest are not looked
    at), and the DNS lookups made. No signature: an empty list (RFC 8601's ``dkim=none``).
    A header section over ``max_header_size`` octets is not read: one neutral result when it
    holds a signature."""
    dns_log = DNSLog(lookup)
    size = header_length(message)
    if size > max_header_size:
        if _SIGNATURE_FIELD.search(message, 0, size) is None:
            return [], []
        why = f"header section of {size} octets, over {max_header_size}: not verified"
        return [DKIMResult("neutral", why)], []
    values = _signature_values(message)
    results: list[DKIMResult | None] = [None] * min(len(values), max_signatures)
    signatures: list[tuple[int, DKIMSignature]] = []
    clock = time.time() if now is None else now
    for index, value in enumerate(values[:max_signatures]):
        try:
            signature = parse_signature(index, value)
        except SignatureError as exc:
            results[index] = DKIMResult("neutral", str(exc))
            continue
        if signature.expires is not None and signature.expires < clock:
            results[index] = DKIMResult("policy", "signature expired (x=)", **_base(signature))
            continue
        signatures.append((index, signature))
    names = sorted({s.key_name for _, s in signatures})
    keys = dict(
        zip(names, await asyncio.gather(*(fetch_key(n, dns_log) for n in names)), strict=True)
    )
    work: list[tuple[int, DKIMSignature, KeyRecord]] = []
    for index, signature in signatures:
        key = keys[signature.key_name]
        if key.result is not None:
            results[index] = DKIMResult(key.result, key.reason, **_base(signature))
        else:
            work.append((index, signature, key))
    if work:
        if len(message) >= THREAD_THRESHOLD:
            verified = await asyncio.to_thread(_verify_all, message, work)
        else:
            verified = _verify_all(message, work)
        for index, result in verified:
            results[index] = result
    return [r for r in results if r is not None], dns_log.lines()


def _verify_all(
    message: bytes, work: Iterable[tuple[int, DKIMSignature, KeyRecord]]
) -> list[tuple[int, DKIMResult]]:
    return [(index, _verify_one(message, signature, key)) for index, signature, key in work]
