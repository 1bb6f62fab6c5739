"""ARC (RFC 8617): verifying the chain of ARC sets a message arrives with, and reading what a
trusted forwarder said about the message when it got it.

dkimpy does the cryptography (``dkim.ARC``); as for DKIM, the keys of every ARC-Seal and
ARC-Message-Signature are fetched first through our asynchronous resolver and handed to it.

The result is ``none`` (no ARC sets), ``pass`` or ``fail`` (§5.2 validation: every seal
verifies, the newest message signature verifies, the instances run 1..N without gaps, cv=none
only on the first). When the chain passes, :meth:`ARCResult.trusted_pass` tells whether a sealer
the admin trusts (``trusted_arc_sealers``) saw DMARC pass before it forwarded the message: that
is what lets a receiver deliver mail that a mailing list or a forwarder changed (§7.2).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import dkim
import dkim.util

from mailroom.authentication.dkim import KeyRecord, fetch_key
from mailroom.authentication.dkimpy_reading import dkimpy_object, read_message
from mailroom.authentication.dns import DNSLog, LookupFunc
from mailroom.authentication.settings import MAX_HEADER_SIZE
from mailroom.header_section import header_length

__all__ = ["ARCResult", "ARCSet", "verify_chain"]

log = logging.getLogger("mailroom.authentication")

Result = Literal["none", "pass", "fail"]
MAX_INSTANCES = 50  # RFC 8617 §4.2.1
_ARC_HEADERS = (b"arc-seal", b"arc-message-signature", b"arc-authentication-results")
_DKIMPY_LOG = logging.getLogger("mailroom.authentication.dkimpy")


@dataclass(frozen=True, slots=True)
class ARCSet:
    instance: int
    sealer: str  # the ARC-Seal's d=
    results: str  # the ARC-Authentication-Results value (what that hop found)


@dataclass(frozen=True, slots=True)
class ARCResult:
    result: Result
    reason: str = ""
    sets: tuple[ARCSet, ...] = field(default=())  # newest first

    def trusted_pass(self, trusted: Iterable[str]) -> ARCSet | None:
        """The newest set sealed by a trusted domain whose hop saw dmarc=pass, on a chain
        that passes."""
        if self.result != "pass":
            return None
        names = {t.lower().rstrip(".") for t in trusted}
        for arc_set in self.sets:
            if arc_set.sealer in names:
                if re.search(r"(^|[;\s])dmarc\s*=\s*pass\b", arc_set.results, re.IGNORECASE):
                    return arc_set
                return None  # the trusted hop did not see a pass: nothing to rely on
        return None

    def claims_trusted(self, trusted: Iterable[str]) -> bool:
        """Whether any set claims to come from a trusted sealer (whatever the chain says)."""
        names = {t.lower().rstrip(".") for t in trusted}
        return any(s.sealer in names for s in self.sets)

    def describe(self) -> str:
        sealers = ",".join(f"{s.instance}:{s.sealer}" for s in self.sets)
        detail = "; ".join(p for p in (self.reason, sealers and f"sealed by {sealers}") if p)
        return f"arc={self.result}" + (f" ({detail})" if detail else "")


def _sets(headers: Sequence[Sequence[bytes]]) -> tuple[dict[int, dict[bytes, bytes]], str]:
    """ARC header fields grouped by instance (i=); a problem found on the way, if any."""
    grouped: dict[int, dict[bytes, bytes]] = {}
    for name, value in headers:
        kind = name.lower()
        if kind not in _ARC_HEADERS:
            continue
        match = re.search(rb"(?:^|;)\s*i\s*=\s*([0-9]{1,3})\s*(?:;|$)", value)
        if match is None:
            return grouped, f"{name.decode('latin-1')} without a valid i= tag"
        instance = int(match.group(1))
        if instance < 1 or instance > MAX_INSTANCES:
            return grouped, f"ARC instance {instance} out of range (1..{MAX_INSTANCES})"
        fields = grouped.setdefault(instance, {})
        if kind in fields:
            return grouped, f"two {name.decode('latin-1')} fields for i={instance}"
        fields[kind] = value
    return grouped, ""


async def verify_chain(
    message: bytes, lookup: LookupFunc, max_header_size: int = MAX_HEADER_SIZE
) -> tuple[ARCResult, list[str]]:
    dns_log = DNSLog(lookup)
    size = header_length(message)
    if size > max_header_size:  # a bound on a stranger's work (settings.MAX_HEADER_SIZE)
        return ARCResult("none", f"header section of {size} octets: not verified"), []
    try:
        headers, _ = read_message(message)
    except Exception:
        return ARCResult("none", "unparsable header"), []
    grouped, problem = _sets(headers)
    if not grouped and not problem:
        return ARCResult("none"), []
    if problem:
        return ARCResult("fail", problem), []
    newest = max(grouped)
    if sorted(grouped) != list(range(1, newest + 1)):
        return ARCResult("fail", f"ARC instances are not 1..{newest}"), []
    sets: list[ARCSet] = []
    key_names: set[str] = set()
    for instance in range(newest, 0, -1):
        fields = grouped[instance]
        if len(fields) != 3:
            return ARCResult("fail", f"incomplete ARC set i={instance}"), []
        seal_domain = ""
        for kind in (b"arc-seal", b"arc-message-signature"):
            try:
                tags = dkim.util.parse_tag_value(fields[kind])
            except Exception:
                return ARCResult("fail", f"malformed {kind.decode()} i={instance}"), []
            domain = tags.get(b"d", b"").decode("ascii", "replace").lower().rstrip(".")
            selector = tags.get(b"s", b"").decode("ascii", "replace").lower()
            if not re.fullmatch(r"[a-z0-9_.-]+", domain) or not re.fullmatch(
                r"[a-z0-9_.-]+", selector
            ):
                return ARCResult("fail", f"{kind.decode()} i={instance}: bad d= or s="), []
            key_names.add(f"{selector}._domainkey.{domain}")
            if kind == b"arc-seal":
                seal_domain = domain
        results = fields[b"arc-authentication-results"].decode("utf-8", "replace")
        sets.append(ARCSet(instance, seal_domain, " ".join(results.split())))
    names = sorted(key_names)
    keys = dict(
        zip(names, await asyncio.gather(*(fetch_key(n, dns_log) for n in names)), strict=True)
    )
    for key in keys.values():
        if key.result == "temperror":
            # A key that cannot be fetched now: the chain cannot be called broken.
            return ARCResult("none", key.reason, tuple(sets)), dns_log.lines()
    outcome = _verify(message, keys)
    return ARCResult(outcome[0], outcome[1], tuple(sets)), dns_log.lines()


def _verify(message: bytes, keys: dict[str, KeyRecord]) -> tuple[Result, str]:
    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        key = keys.get(name.decode("ascii", "replace").rstrip(".").lower())
        return key.text if key is not None else None

    try:
        checker = dkimpy_object(dkim.ARC, message, _DKIMPY_LOG, minkey=1024)
        cv, _, reason = checker.verify(dnsfunc=dnsfunc)
    except Exception as exc:  # dkimpy on input it never expected: a result, not a crash
        log.debug("ARC verification failed", exc_info=True)
        return "fail", f"cannot verify: {type(exc).__name__}"
    if cv == dkim.CV_Pass:
        return "pass", ""
    if cv == dkim.CV_None:
        return "none", str(reason)
    return "fail", str(reason)[:160]
