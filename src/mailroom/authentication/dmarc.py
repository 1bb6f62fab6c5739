"""DMARC (RFC 7489): does an authenticated identifier align with the author's domain, and what
does that domain ask a receiver to do with mail that fails?

The author domain comes from the From header field (§6.6.1; a field with several addresses, or
several From fields, are checked domain by domain and the strictest failing policy wins). The
policy record is ``_dmarc.<domain>``, else ``_dmarc.<organizational domain>`` (§6.6.3); the
organizational domain comes from the Public Suffix List, through the ``publicsuffixlist``
package (a maintained copy of the list, updated with each release, and a fast matcher; names
under a suffix the list does not know, such as ``.test``, count as under a one-label suffix).
Alignment (§3.1) is strict or relaxed per ``adkim`` and ``aspf``; ``pct`` (§6.6.4) samples
which failing messages get the policy, the others the next milder one.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from publicsuffixlist import PublicSuffixList

from mailroom.authentication.dkim import DKIMResult
from mailroom.authentication.dns import DNSLog, LookupFunc
from mailroom.authentication.spf import SPFResult
from mailroom.header_section import address_list
from mailroom.protocol.syntax import a_label, ascii_digits

__all__ = [
    "DMARCRecord",
    "DMARCResult",
    "author_domains",
    "evaluate",
    "organizational_domain",
    "parse_record",
]

Result = Literal["pass", "fail", "none", "temperror", "permerror"]
Policy = Literal["none", "quarantine", "reject"]
_POLICIES: tuple[Policy, ...] = ("none", "quarantine", "reject")
_MILDER: dict[Policy, Policy] = {"reject": "quarantine", "quarantine": "none", "none": "none"}


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix and one more label (the domain itself if it is a
    public suffix)."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(identifier: str, author: str, mode: str) -> bool:
    identifier, author = identifier.lower().rstrip("."), author.lower().rstrip(".")
    if mode == "s":
        return identifier == author
    return organizational_domain(identifier) == organizational_domain(author)


def _a_label(domain: str) -> str:
    return a_label(domain.strip().lower().rstrip("."))


def author_domains(from_fields: Sequence[str]) -> list[str]:
    """The domains of the From header fields' addresses, in order, each once (§6.6.1)."""
    domains: list[str] = []
    for value in from_fields:
        for _, address in address_list([value]):
            domain = address.rpartition("@")[2] if "@" in address else ""
            domain = _a_label(domain)
            if domain and re.fullmatch(r"[a-z0-9_.-]+", domain) and domain not in domains:
                domains.append(domain)
    return domains


@dataclass(frozen=True, slots=True)
class DMARCRecord:
    policy: Policy
    subdomain_policy: Policy | None
    percent: int
    adkim: str
    aspf: str
    text: str


def parse_record(text: str) -> DMARCRecord | None:
    """A policy record (§6.3, §6.4); None if it is not one or is unusable (§6.6.3 step 6)."""
    tags: dict[str, str] = {}
    for index, part in enumerate(text.split(";")):
        name, equals, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if index == 0:
            if name != "v" or value != "DMARC1":
                return None
            continue
        if equals and name and name not in tags:
            tags[name] = value
    policy = tags.get("p", "").lower()
    subdomain = tags.get("sp", "").lower() or None
    if policy not in _POLICIES or (subdomain is not None and subdomain not in _POLICIES):
        # A record with a reporting address but no valid policy means p=none.
        if "mailto:" not in tags.get("rua", "").lower():
            return None
        policy, subdomain = "none", None
    percent_text = tags.get("pct", "100")
    percent = int(percent_text) if ascii_digits(percent_text) and len(percent_text) <= 3 else 100
    return DMARCRecord(
        policy,  # type: ignore[arg-type]
        subdomain,
        min(percent, 100),
        "s" if tags.get("adkim", "r").lower() == "s" else "r",
        "s" if tags.get("aspf", "r").lower() == "s" else "r",
        text,
    )


@dataclass(frozen=True, slots=True)
class DMARCResult:
    result: Result
    domain: str = ""  # the author domain (header.from)
    policy: Policy = "none"  # what the domain asks for this message (p=, or sp= for subdomains)
    disposition: Policy = "none"  # what applies after pct= sampling (none on pass)
    record: str = ""
    reason: str = ""
    aligned_by: str = ""  # "dkim d=...", "spf ..." on pass

    def describe(self) -> str:
        parts = [f"p={self.policy}" if self.record else "", self.reason or self.aligned_by]
        detail = ", ".join(p for p in parts if p)
        return f"dmarc={self.result} (header.from={self.domain}" + (
            f", {detail})" if detail else ")"
        )


async def _discover(domain: str, lookup: LookupFunc) -> tuple[DMARCRecord | None, str, str]:
    """(record, where it was found, trouble): §6.6.3. Trouble "temperror" is a DNS error."""
    organizational = organizational_domain(domain)
    for candidate in dict.fromkeys((domain, organizational)):
        answer = await lookup(f"_dmarc.{candidate}", "TXT")
        if answer.status == "error":
            return None, candidate, "temperror"
        records = [r for r in answer.records if re.match(r"\s*v\s*=\s*DMARC1\s*(;|$)", r)]
        if len(records) > 1:
            return None, candidate, f"{len(records)} DMARC records at _dmarc.{candidate}"
        if records:
            record = parse_record(records[0])
            if record is None:
                return None, candidate, f"no valid policy at _dmarc.{candidate}"
            return record, candidate, ""
    return None, domain, ""


async def _evaluate_domain(
    domain: str,
    spf: SPFResult | None,
    dkim: Sequence[DKIMResult],
    lookup: LookupFunc,
    sample: Callable[[], int],
) -> DMARCResult:
    record, found_at, trouble = await _discover(domain, lookup)
    if record is None:
        if trouble == "temperror":
            return DMARCResult("temperror", domain, reason="DNS error for the DMARC record")
        return DMARCResult("none", domain, reason=trouble or "no DMARC record")
    policy = record.policy
    if found_at != domain and record.subdomain_policy is not None:
        policy = record.subdomain_policy
    for result in dkim:
        if result.result == "pass" and aligned(result.domain, domain, record.adkim):
            return DMARCResult(
                "pass", domain, policy, "none", record.text, aligned_by=f"dkim d={result.domain}"
            )
    if spf is not None and spf.result == "pass" and aligned(spf.domain, domain, record.aspf):
        return DMARCResult(
            "pass", domain, policy, "none", record.text, aligned_by=f"spf {spf.domain}"
        )
    temporary = (spf is not None and spf.result == "temperror") or any(
        r.result == "temperror" for r in dkim
    )
    if temporary:
        # §6.6.2: no aligned pass, but a check could not finish: no permanent conclusion.
        return DMARCResult(
            "temperror", domain, policy, "none", record.text, "a check had a temporary error"
        )
    disposition = policy
    if record.percent < 100 and sample() >= record.percent:
        disposition = _MILDER[policy]  # §6.6.4: not selected, the next milder policy
    reason = "no aligned SPF or DKIM pass"
    if disposition != policy:
        reason += f"; pct={record.percent} sampled out"
    return DMARCResult("fail", domain, policy, disposition, record.text, reason)


async def evaluate(
    from_fields: Sequence[str],
    spf: SPFResult | None,
    dkim: Sequence[DKIMResult],
    lookup: LookupFunc,
    *,
    sample: Callable[[], int] | None = None,
) -> tuple[DMARCResult, list[str]]:
    """The DMARC result for the message, and the DNS lookups made. ``sample`` gives 0..99 for
    pct= (random by default)."""
    dns_log = DNSLog(lookup)
    draw = sample or (lambda: random.randrange(100))
    domains = author_domains(from_fields)
    if not domains:
        reason = "no From field" if not from_fields else "no domain in From"
        return DMARCResult("none", "", reason=reason), dns_log.lines()
    results = [await _evaluate_domain(d, spf, dkim, dns_log, draw) for d in domains]
    if len(results) == 1:
        return results[0], dns_log.lines()
    # Several author domains (§6.6.1): the strictest policy among those that fail.
    failing = [r for r in results if r.result == "fail"]
    if failing:
        worst = max(failing, key=lambda r: _POLICIES.index(r.disposition))
        return worst, dns_log.lines()
    for kind in ("temperror", "pass", "none"):
        for result in results:
            if result.result == kind:
                return result, dns_log.lines()
    return results[0], dns_log.lines()
