"""SPF (RFC 7208): may this client IP address send mail for this domain?

:func:`check_sender` evaluates ``check_host()`` (§4) for the MAIL FROM identity, or for the
HELO identity when the reverse-path is null (§2.3, §2.4), over the server's asynchronous
resolver. It follows the RFC's text, section by section: the record selection of §4.5, a
syntax check of the whole record before anything is evaluated (§4.6), the mechanisms of §5,
``redirect`` and ``exp`` (§6), the macros of §7, and the processing limits of §4.6.4 — at most
10 terms that query DNS (include, a, mx, ptr, exists, redirect) across the whole evaluation,
recursion included; at most 10 address lookups per ``mx`` (more MX records is a permerror)
and per ``ptr`` (names past the tenth are ignored); at most 2 void lookups. The caller limits
the time (:mod:`mailroom.authentication.checks` gives each check a budget); on timeout the
result is temperror.

Why not pyspf: its DNS is blocking (it would need a thread per check, with its own lookups
beside our cache and our time budget), and the tests use it as an independent second opinion
instead (``tests/authentication/test_spf.py`` compares both on the same real DNS).
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from mailroom.authentication.dns import DNSLog, LookupFunc
from mailroom.protocol.syntax import ascii_digits

__all__ = ["SPFLimits", "SPFResult", "check_host", "check_sender", "valid_domain"]

Result = Literal["none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"]
_QUALIFIERS: dict[str, Result] = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_DNS_TERMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9\-_.]*)=(.*)$", re.DOTALL)
_CIDR = re.compile(r"^(.*?)((?:/[0-9]+)?(?://[0-9]+)?)$", re.DOTALL)
# RFC 7208's toplabel: "*alphanum ALPHA *alphanum" is written as the digits before the first
# letter, so that a long label that fails is not cut every way first (that was quadratic in
# the record's length, which the sender's DNS chooses).
_TOPLABEL = re.compile(r"^(?:[0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9])$")
_MACRO = re.compile(r"%\{([slodiphcrtvSLODIPHCRTV])([0-9]*)([rR]?)([.\-+,/_=]*)\}")
_ENDS_WITH_MACRO = re.compile(_MACRO.pattern + "$")
_EXP_ONLY = frozenset("crt")
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
MAX_EXPLANATION = 200  # octets of a domain's exp= text put in a reply


@dataclass(frozen=True, slots=True)
class SPFLimits:
    """RFC 7208 §4.6.4's limits (its defaults; the RFC allows making the void limit larger)."""

    dns_terms: int = 10
    void_lookups: int = 2
    addresses_per_term: int = 10


@dataclass(frozen=True, slots=True)
class SPFResult:
    result: Result
    identity: Literal["mailfrom", "helo"]
    domain: str  # the domain whose record was checked (of MAIL FROM, or the HELO name)
    sender: str  # the identity as checked: "postmaster@helo" for a null reverse-path
    client_ip: str
    mechanism: str = ""  # the directive that matched ("-all", "ip4:192.0.2.0/24"), if any
    explanation: str = ""  # the domain's own words on a fail (exp=), US-ASCII
    problem: str = ""  # why: for none, temperror, permerror
    lookups: tuple[str, ...] = ()  # the DNS questions and answers, for the transcript

    def describe(self) -> str:
        why = (self.mechanism and f"matched {self.mechanism}") or self.problem
        return f"spf={self.result} ({self.identity} {self.sender}, {self.client_ip}" + (
            f": {why})" if why else ")"
        )


class _Stop(Exception):
    """Evaluation ends with temperror or permerror (§4.6.2: "an exception")."""

    def __init__(self, result: Result, problem: str) -> None:
        super().__init__(problem)
        self.result = result
        self.problem = problem


def valid_domain(name: str) -> bool:
    """§4.3: a multi-label domain whose labels are 1 to 63 octets, at most 253 in all (a final
    dot allowed). Underscores pass: SPF and DKIM names use them."""
    name = name[:-1] if name.endswith(".") else name
    if not name or len(name) > 253 or "." not in name:
        return False
    try:
        labels = name.encode("idna").decode("ascii").split(".") if not name.isascii() else None
    except UnicodeError:
        return False
    labels = labels or name.split(".")
    return all(_LABEL.match(label) for label in labels)


# -- the record's syntax ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Directive:
    qualifier: str
    name: str
    argument: str | None  # domain-spec, ip network, or None
    cidr4: int | None
    cidr6: int | None
    text: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # ip4, ip6


@dataclass(slots=True)
class _Record:
    directives: list[_Directive] = field(default_factory=list)
    redirect: str | None = None
    explanation: str | None = None


def _cidr(text: str, maximum: int) -> int:
    # RFC 7208 §12 ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT); a TXT record is UTF-8.
    if not ascii_digits(text) or (len(text) > 1 and text[0] == "0") or int(text) > maximum:
        raise _Stop("permerror", f"invalid prefix length /{text}")
    return int(text)


def _check_macro_string(text: str, *, explain: bool = False) -> None:
    """§7.1: '%' only as %{...}, %%, %_ or %-; macro letters c, r, t only in exp text;
    visible characters only (and spaces in explanations)."""
    position = 0
    while position < len(text):
        char = text[position]
        if char == "%":
            following = text[position + 1 : position + 2]
            if following in ("%", "_", "-"):
                position += 2
                continue
            match = _MACRO.match(text, position)
            if match is None:
                raise _Stop("permerror", f"invalid macro in {text!r}")
            if match.group(1).lower() in _EXP_ONLY and not explain:
                raise _Stop("permerror", f"%{{{match.group(1)}}} is only for explanations")
            if match.group(2) and int(match.group(2)) == 0:
                raise _Stop("permerror", f"zero transformer in {match.group(0)}")
            position = match.end()
            continue
        if not (0x21 <= ord(char) <= 0x7E or (explain and char == " ")):
            raise _Stop("permerror", f"invalid character {char!r} in {text!r}")
        position += 1


def _check_domain_spec(text: str) -> None:
    """§7.1: domain-spec = macro-string domain-end, domain-end = "." toplabel ["."] or a
    macro."""
    if not text:
        raise _Stop("permerror", "empty domain-spec")
    _check_macro_string(text)
    body = text[:-1] if text.endswith(".") else text
    if _ENDS_WITH_MACRO.search(body):
        return
    head, dot, top = body.rpartition(".")
    if not dot or not head or not _TOPLABEL.match(top):
        raise _Stop("permerror", f"domain-spec {text!r} does not end in a top label")


def _parse_directive(term: str) -> _Directive:
    qualifier = "+"
    rest = term
    if rest[:1] in _QUALIFIERS:
        qualifier, rest = rest[0], rest[1:]
    name, colon, argument = rest.partition(":")
    cidr_text = ""
    if not colon:
        name, slash, tail = rest.partition("/")
        cidr_text = slash + tail
        argument = ""
    name = name.lower()
    if name not in _MECHANISMS:
        raise _Stop("permerror", f"unknown mechanism {term!r}")
    cidr4 = cidr6 = None
    if name in ("a", "mx"):
        if colon:
            split = _CIDR.match(argument)
            assert split is not None
            argument, cidr_text = split.group(1), split.group(2)
            _check_domain_spec(argument)
        if cidr_text:
            four, double, six = cidr_text.partition("//")
            if four:
                cidr4 = _cidr(four[1:], 32)
            if double:
                cidr6 = _cidr(six, 128)
        return _Directive(qualifier, name, argument or None, cidr4, cidr6, term)
    if cidr_text:
        raise _Stop("permerror", f"{name} takes no prefix length: {term!r}")
    if name == "all":
        if colon:
            raise _Stop("permerror", f"all takes no argument: {term!r}")
        return _Directive(qualifier, name, None, None, None, term)
    if name in ("ip4", "ip6"):
        if not colon:
            raise _Stop("permerror", f"{name} needs a network: {term!r}")
        address, _, length = argument.partition("/")
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise _Stop("permerror", f"not an address: {term!r}") from None
        if parsed.version != (4 if name == "ip4" else 6):
            raise _Stop("permerror", f"not an IPv{name[-1]} address: {term!r}")
        bits = _cidr(length, 32 if name == "ip4" else 128) if "/" in argument else None
        network = ipaddress.ip_network(
            f"{address}/{bits}" if bits is not None else address, strict=False
        )
        return _Directive(
            qualifier,
            name,
            address,
            bits if name == "ip4" else None,
            bits if name == "ip6" else None,
            term,
            network,
        )
    if name == "ptr":
        if colon:
            _check_domain_spec(argument)
        return _Directive(qualifier, name, argument or None, None, None, term)
    # include, exists: the domain-spec is required.
    if not colon:
        raise _Stop("permerror", f"{name} needs a domain: {term!r}")
    _check_domain_spec(argument)
    return _Directive(qualifier, name, argument, None, None, term)


@lru_cache(maxsize=1024)
def parse_record(text: str) -> _Record:
    """The terms after "v=spf1" (§4.6.1, §12); any syntax error is a permerror (§4.6).
    Cached: the same senders' records come again and again (a parse is never changed)."""
    record = _Record()
    for term in text.split(" ")[1:]:
        if not term:
            continue
        modifier = _MODIFIER.match(term)
        if modifier is not None:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name in ("redirect", "exp"):
                if (record.redirect if name == "redirect" else record.explanation) is not None:
                    raise _Stop("permerror", f"{name}= appears twice")
                _check_domain_spec(value)
                if name == "redirect":
                    record.redirect = value
                else:
                    record.explanation = value
            else:
                _check_macro_string(value)  # unknown modifiers are ignored, but parsed
            continue
        record.directives.append(_parse_directive(term))
    return record


def _select(records: tuple[str, ...]) -> str | None:
    """§4.5: the one record that starts with "v=spf1" (then SP or its end)."""
    found = [r for r in records if r[:6].lower() == "v=spf1" and (len(r) == 6 or r[6] == " ")]
    if len(found) > 1:
        raise _Stop("permerror", f"{len(found)} SPF records")
    return found[0] if found else None


# -- evaluation ------------------------------------------------------------------------------


class _Evaluation:
    def __init__(
        self,
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
        sender: str,
        helo: str,
        lookup: LookupFunc,
        limits: SPFLimits,
        receiver: str,
    ) -> None:
        self.ip = ip
        local, _, domain = sender.rpartition("@")
        self.local = local or "postmaster"
        self.sender_domain = domain
        self.sender = f"{self.local}@{domain}"
        self.helo = helo
        self.lookup = lookup
        self.limits = limits
        self.receiver = receiver or "unknown"
        self.dns_terms = 0
        self.voids = 0
        self._validated: str | None = None  # %{p}, found once

    # -- limits ------------------------------------------------------------------------------

    def count_term(self, name: str) -> None:
        self.dns_terms += 1
        if self.dns_terms > self.limits.dns_terms:
            raise _Stop(
                "permerror",
                f"more than {self.limits.dns_terms} DNS-querying terms (at {name})",
            )

    def count_void(self, what: str) -> None:
        self.voids += 1
        if self.voids > self.limits.void_lookups:
            raise _Stop(
                "permerror", f"more than {self.limits.void_lookups} void lookups (at {what})"
            )

    async def ask(self, name: str, rdtype: str, *, void_counts: bool = True) -> tuple[str, ...]:
        answer = await self.lookup(name, rdtype)
        if answer.status == "error":
            raise _Stop("temperror", f"DNS error for {rdtype} {name}: {answer.error}")
        if answer.void and void_counts:
            self.count_void(f"{rdtype} {name}")
        return answer.records

    # -- macros (§7) -------------------------------------------------------------------------

    def _value(self, letter: str, domain: str) -> str:
        ip = self.ip
        if letter == "s":
            return self.sender
        if letter == "l":
            return self.local
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if ip.version == 4:
                return str(ip)
            return ".".join(ip.exploded.replace(":", ""))
        if letter == "v":
            return "in-addr" if ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return str(ip)
        if letter == "r":
            return self.receiver
        if letter == "t":
            return str(int(time.time()))
        raise AssertionError(letter)  # "p" is resolved by the caller

    async def expand(self, text: str, domain: str, *, explain: bool = False) -> str:
        _check_macro_string(text, explain=explain)
        out: list[str] = []
        position = 0
        while position < len(text):
            char = text[position]
            if char != "%":
                out.append(char)
                position += 1
                continue
            following = text[position + 1]
            if following in "%_-":
                out.append({"%": "%", "_": " ", "-": "%20"}[following])
                position += 2
                continue
            match = _MACRO.match(text, position)
            assert match is not None  # checked above
            letter, digits, reverse, delimiters = match.groups()
            lower = letter.lower()
            value = (
                await self.validated_name(domain) if lower == "p" else self._value(lower, domain)
            )
            if digits or reverse or delimiters:
                parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
                if reverse:
                    parts.reverse()
                if digits:
                    parts = parts[-int(digits) :]
                value = ".".join(parts)
            if letter.isupper():
                value = urllib.parse.quote(value, safe="-._~")
            out.append(value)
            position = match.end()
        return "".join(out)

    async def target(self, spec: str | None, domain: str) -> str:
        """A domain-spec expanded into the name to query (§4.8, §7.3: over 253 characters,
        labels go from the left)."""
        if spec is None:
            return domain
        name = await self.expand(spec, domain)
        name = name[:-1] if name.endswith(".") else name
        while len(name) > 253 and "." in name:
            name = name.split(".", 1)[1]
        return name

    async def validated_name(self, domain: str) -> str:
        """%{p} (§7.3): a validated name of the client, preferring ``domain`` or a subdomain."""
        if self._validated is None:
            names = await self.validated_names()
            best = next((n for n in names if n == domain), None)
            best = best or next((n for n in names if n.endswith("." + domain)), None)
            self._validated = best or (names[0] if names else "unknown")
        return self._validated

    async def validated_names(self) -> list[str]:
        """§5.5: the client's PTR names (the first 10) that resolve back to it. DNS errors
        make a name (or all, for the PTR lookup) not validated rather than an error."""
        reverse = self.ip.reverse_pointer
        answer = await self.lookup(reverse, "PTR")
        if answer.status != "found":
            if answer.void:
                self.count_void(f"PTR {reverse}")
            return []
        validated = []
        rdtype = "A" if self.ip.version == 4 else "AAAA"
        for name in answer.records[: self.limits.addresses_per_term]:
            addresses = await self.lookup(name, rdtype)
            if addresses.status == "found" and self._among(addresses.records, None, None):
                validated.append(name.lower())
        return validated

    # -- mechanisms (§5) ---------------------------------------------------------------------

    def _among(self, addresses: tuple[str, ...], cidr4: int | None, cidr6: int | None) -> bool:
        bits = cidr4 if self.ip.version == 4 else cidr6
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if address.version != self.ip.version:
                continue
            if bits is None:
                if address == self.ip:
                    return True
            elif self.ip in ipaddress.ip_network(f"{address}/{bits}", strict=False):
                return True
        return False

    async def matches(self, directive: _Directive, domain: str) -> bool:
        name = directive.name
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            network = directive.network
            assert network is not None
            return self.ip.version == network.version and self.ip in network
        self.count_term(directive.text)
        target = await self.target(directive.argument, domain)
        if name == "include":
            if not valid_domain(target):
                raise _Stop("permerror", f"include of an invalid domain {target!r}")
            result, _, _ = await self.check_host(target, top=False)
            if result == "pass":
                return True
            if result in ("fail", "softfail", "neutral"):
                return False
            if result == "temperror":
                raise _Stop("temperror", f"include:{target} gave temperror")
            raise _Stop("permerror", f"include:{target} gave {result}")
        if not valid_domain(target):
            return False  # §4.8: a malformed target name matches nothing
        rdtype = "A" if self.ip.version == 4 else "AAAA"
        if name == "a":
            addresses = await self.ask(target, rdtype)
            return self._among(addresses, directive.cidr4, directive.cidr6)
        if name == "mx":
            hosts = await self.ask(target, "MX")
            if len(hosts) > self.limits.addresses_per_term:
                raise _Stop(
                    "permerror",
                    f"{target} has {len(hosts)} MX records (at most "
                    f"{self.limits.addresses_per_term} are looked up)",
                )
            for host in hosts:
                exchange = host.split(" ", 1)[-1]
                if not exchange:
                    continue  # a null MX has no addresses
                addresses = await self.ask(exchange, rdtype, void_counts=False)
                if self._among(addresses, directive.cidr4, directive.cidr6):
                    return True
            return False
        if name == "exists":
            return bool(await self.ask(target, "A"))
        if name == "ptr":
            target = target.lower()
            return any(
                n == target or n.endswith("." + target) for n in await self.validated_names()
            )
        raise AssertionError(name)

    # -- check_host() (§4) -------------------------------------------------------------------

    async def check_host(self, domain: str, *, top: bool) -> tuple[Result, str, str]:
        """(result, matched directive, explanation) of ``domain``'s record."""
        domain = domain[:-1] if domain.endswith(".") else domain
        if not valid_domain(domain):
            return "none", "", ""
        answer = await self.lookup(domain, "TXT")
        if answer.status == "error":
            raise _Stop("temperror", f"DNS error for TXT {domain}: {answer.error}")
        text = _select(answer.records)
        if text is None:
            return "none", "", ""
        record = parse_record(text)
        for directive in record.directives:
            if await self.matches(directive, domain):
                result = _QUALIFIERS[directive.qualifier]
                explanation = ""
                if result == "fail" and top and record.explanation is not None:
                    explanation = await self.explain(record.explanation, domain)
                return result, directive.text, explanation
        if record.redirect is not None:
            self.count_term("redirect")
            target = await self.target(record.redirect, domain)
            if not valid_domain(target):
                raise _Stop("permerror", f"redirect to an invalid domain {target!r}")
            result, matched, explanation = await self.check_host(target, top=top)
            if result == "none":
                raise _Stop("permerror", f"redirect={target} has no SPF record")
            return result, matched, explanation
        return "neutral", "", ""

    async def explain(self, spec: str, domain: str) -> str:
        """§6.2: the explanation on a fail; any trouble means none."""
        try:
            target = await self.target(spec, domain)
            if not valid_domain(target):
                return ""
            answer = await self.lookup(target, "TXT")
            if answer.status != "found" or len(answer.records) != 1:
                return ""
            text = await self.expand(answer.records[0], domain, explain=True)
        except _Stop:
            return ""
        if not text.isascii():
            return ""
        return text[:MAX_EXPLANATION]


async def check_host(
    ip: str,
    domain: str,
    sender: str,
    *,
    helo: str = "",
    lookup: LookupFunc,
    receiver: str = "unknown",
    limits: SPFLimits | None = None,
    identity: Literal["mailfrom", "helo"] = "mailfrom",
) -> SPFResult:
    """RFC 7208's check_host(<ip>, <domain>, <sender>)."""
    log = DNSLog(lookup)
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # §5: an IPv4 client seen through an IPv6 socket
    evaluation = _Evaluation(address, sender, helo, log, limits or SPFLimits(), receiver)
    try:
        result, matched, explanation = await evaluation.check_host(domain, top=True)
        problem = ""
        if result == "none":
            problem = (
                f"{domain} is not a valid domain"
                if not valid_domain(domain)
                else f"no SPF record for {domain}"
            )
    except _Stop as stop:
        result, matched, explanation, problem = stop.result, "", "", stop.problem
    return SPFResult(
        result,
        identity,
        domain.rstrip(".").lower(),
        evaluation.sender,
        str(address),
        matched,
        explanation,
        problem,
        tuple(log.lines()),
    )


async def check_sender(
    ip: str,
    mail_from: str,
    helo: str,
    *,
    lookup: LookupFunc,
    receiver: str = "unknown",
    limits: SPFLimits | None = None,
) -> SPFResult:
    """The SPF result a receiver records: for the MAIL FROM address, or for the HELO name when
    the reverse-path is null (§2.4: then the sender is "postmaster@" the HELO name)."""
    if mail_from:
        domain = mail_from.rpartition("@")[2]
        return await check_host(
            ip, domain, mail_from, helo=helo, lookup=lookup, receiver=receiver, limits=limits
        )
    return await check_host(
        ip,
        helo,
        f"postmaster@{helo}",
        helo=helo,
        lookup=lookup,
        receiver=receiver,
        limits=limits,
        identity="helo",
    )
