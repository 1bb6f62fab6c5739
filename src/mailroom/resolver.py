"""DNS for mail (dnspython, async): MX records with RFC 5321 §5.1's implicit MX and RFC 7505's
null MX, the addresses of a host, and (:meth:`Resolver.lookup`) the TXT, PTR, A, AAAA and MX
answers that email authentication decides on, cached by their TTL. For transport security
(DANE, MTA-STS, TLS reporting): TLSA records (:mod:`mailroom.tlsa`, read in wire form) and
whether a validating resolver vouched for them and for a host's addresses and MX (the AD bit,
RFC 6840 §5.7, trusted only from a resolver on this host), and the TXT records of
``_mta-sts`` and ``_smtp._tls`` (through :meth:`Resolver.lookup`'s cache).

The resolver can be pointed at given name servers (``dns_servers = ["127.0.0.1:5353"]``), which
is how the tests use a DNS server of their own on loopback.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.rdatatype
import dns.resolver

from mailroom.tlsa import TLSALookup, TLSAQueryError, TLSARecordData, query_tlsa

__all__ = [
    "Lookup",
    "MailRoute",
    "Resolver",
    "ResolverError",
    "TLSALookup",
    "TLSARecordData",
]

# Answers of lookup() kept at most (dnspython's LRU cache, each for its TTL; NXDOMAIN and
# no-data answers for their SOA minimum): a busy mx listener asks for the same SPF, DKIM key
# and DMARC records again and again.
LOOKUP_CACHE_SIZE = 10_000


class ResolverError(Exception):
    """A lookup failed for now (timeout, SERVFAIL): try again later."""


@dataclass(frozen=True, slots=True)
class MailRoute:
    """Where mail for a domain goes (RFC 5321 §5.1)."""

    domain: str
    hosts: tuple[tuple[int, str], ...]  # (preference, host), best first
    null_mx: bool = False  # RFC 7505: the domain accepts no mail
    implicit: bool = False  # no MX records: the domain itself (A/AAAA) is the host
    exists: bool = True  # False: NXDOMAIN

    @property
    def deliverable(self) -> bool:
        return self.exists and not self.null_mx and bool(self.hosts)


def _split_server(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port or 53)
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host.count(":") == 0:
        return host, int(port)
    return text, 53


@dataclass(frozen=True, slots=True)
class Lookup:
    """One DNS question and what came of it, as email authentication needs it: the records
    (TXT as the concatenation of its strings, RFC 7208 §3.3 and RFC 6376 §3.6.2.2; A and AAAA
    as addresses; PTR and MX as names without the final dot, MX as ``"PREF NAME"``), or which
    kind of nothing (NXDOMAIN, no data), or an error (a timeout, SERVFAIL: try again later)."""

    name: str
    rdtype: str
    status: Literal["found", "nxdomain", "nodata", "error"]
    records: tuple[str, ...] = ()
    error: str = ""

    @property
    def void(self) -> bool:
        """NXDOMAIN or no records (RFC 7208 §4.6.4's "void lookup")."""
        return self.status in ("nxdomain", "nodata")

    def __str__(self) -> str:
        """For transcripts: ``TXT example.test -> "v=spf1 -all"`` (long answers shortened)."""
        if self.status == "found":
            shown = " | ".join(
                f'"{r}"' if self.rdtype == "TXT" else r for r in self.records[:5]
            ) + (f" (+{len(self.records) - 5} more)" if len(self.records) > 5 else "")
            if len(shown) > 300:
                shown = shown[:300] + f"... ({sum(len(r) for r in self.records)} octets)"
        elif self.status == "error":
            shown = f"error: {self.error}"
        else:
            shown = self.status.upper() if self.status == "nxdomain" else "no records"
        return f"{self.rdtype} {self.name} -> {shown}"


def _record_text(rdtype: str, rdata: object) -> str:
    if rdtype == "TXT":
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    if rdtype == "PTR":
        return str(rdata.target).rstrip(".").lower()  # type: ignore[attr-defined]
    if rdtype == "MX":
        exchange = str(rdata.exchange).rstrip(".").lower()  # type: ignore[attr-defined]
        return f"{rdata.preference} {exchange}"  # type: ignore[attr-defined]
    return str(rdata)


class Resolver:
    def __init__(self, servers: list[str] | None = None, *, timeout: float = 5.0) -> None:
        self.servers = list(servers or [])
        self.timeout = timeout
        # Name servers given in the configuration answer every lookup mailroom makes, relay
        # host names included; without them, the system's resolver (and /etc/hosts) does.
        self.explicit = bool(servers)
        self._resolver = self._make(servers, timeout)
        # lookup() has a resolver of its own, with a cache: the MX and address lookups of
        # delivery keep asking afresh, as they always did.
        self._cached = self._make(servers, timeout)
        self._cached.cache = dns.resolver.LRUCache(LOOKUP_CACHE_SIZE)
        # In front of dnspython's cache: finished Lookup values until their TTL runs out (a hit
        # in dnspython's cache still costs ~50 us of Python; this one, a dict look-up).
        self._answers: dict[tuple[str, str], tuple[float, Lookup]] = {}
        self._secure_resolver: dns.asyncresolver.Resolver | None = None
        # The AD bit says "validated" only as far as the path to the resolver can be trusted:
        # a resolver on this host (RFC 7672 §2.1.1, RFC 6698 §4), unless told otherwise.
        self.trust_remote_ad = False

    @staticmethod
    def _make(servers: list[str] | None, timeout: float) -> dns.asyncresolver.Resolver:
        if servers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            hosts = [_split_server(s) for s in servers]
            resolver.nameservers = [h for h, _ in hosts]
            resolver.port = hosts[0][1]
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = timeout
        resolver.timeout = timeout
        return resolver

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        """Ask once (through the TTL cache): never raises for what DNS answers, only says it.
        ``name`` may be a reverse name (``4.3.2.1.in-addr.arpa``) or a domain in Unicode."""
        name = name.rstrip(".")
        key = (name.lower(), rdtype)
        kept = self._answers.get(key)
        if kept is not None:
            if kept[0] > time.time():
                return kept[1]
            del self._answers[key]
        try:
            answer = await self._cached.resolve(
                dns.name.from_text(name), rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return Lookup(name, rdtype, "nxdomain")
        except dns.resolver.NoAnswer:
            return Lookup(name, rdtype, "nodata")
        except dns.exception.Timeout:
            return Lookup(name, rdtype, "error", error="timed out")
        except dns.resolver.NoNameservers as exc:
            return Lookup(name, rdtype, "error", error=_servfail(exc))
        except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
            # A name that is not a domain name (an empty label, a label over 63 octets, a
            # name over 255): no server is asked.
            return Lookup(name, rdtype, "error", error=f"{type(exc).__name__}: {exc}")
        if answer.rrset is None:
            found = Lookup(name, rdtype, "nodata")
        else:
            records = tuple(_record_text(rdtype, rdata) for rdata in answer.rrset)
            found = Lookup(name, rdtype, "found", records)
        if answer.expiration > time.time():
            if len(self._answers) >= LOOKUP_CACHE_SIZE:
                del self._answers[next(iter(self._answers))]  # the oldest
            self._answers[key] = (answer.expiration, found)
        return found

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return await self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise
        except dns.resolver.NoAnswer:
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise ResolverError(f"{name} {rdtype}: {exc}") from None
        except dns.exception.DNSException as exc:
            raise ResolverError(f"{name} {rdtype}: {exc}") from None

    async def mail_route(self, domain: str) -> MailRoute:
        domain = domain.rstrip(".").lower()
        try:
            answer = await self._query(domain, "MX")
        except dns.resolver.NXDOMAIN:
            return MailRoute(domain, (), exists=False)
        if answer is None:
            # RFC 5321 §5.1: no MX, so the domain's own address records are an implicit MX.
            addresses = await self.addresses(domain)
            if not addresses:
                return MailRoute(domain, (), implicit=True)
            return MailRoute(domain, ((0, domain),), implicit=True)
        records = sorted((int(r.preference), str(r.exchange).rstrip(".").lower()) for r in answer)
        # RFC 7505: a single MX of preference 0 with the root as exchange is a null MX.
        if len(records) == 1 and records[0][1] == "":
            return MailRoute(domain, (), null_mx=True)
        return MailRoute(domain, tuple((p, h) for p, h in records if h))

    async def addresses(self, host: str) -> list[str]:
        """The host's A and AAAA addresses. One type that cannot be answered now (SERVFAIL, a
        timeout: some name servers fail AAAA questions) does not hide the other's addresses,
        as in Postfix's dns_lookup_rv; only when no address was found does the failure raise
        (ResolverError: try again later)."""
        found: list[str] = []
        failure: ResolverError | None = None
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._query(host, rdtype)
            except dns.resolver.NXDOMAIN:
                return found
            except ResolverError as exc:
                failure = failure or exc
                continue
            if answer is not None:
                found.extend(str(r) for r in answer)
        if failure is not None and not found:
            raise failure
        return found

    async def has_null_mx(self, domain: str) -> bool:
        try:
            return (await self.mail_route(domain)).null_mx
        except ResolverError:
            return False  # unknown now: do not refuse on a failed lookup

    # -- transport security: DNSSEC-validated answers ---------------------------------------

    @property
    def ad_trusted(self) -> bool:
        """Whether this resolver's AD bit can be believed: every name server it asks is on
        this host (a validating resolver on loopback), or ``trust_remote_ad`` says so."""
        servers = [str(s) for s in self._resolver.nameservers]
        return bool(servers) and (self.trust_remote_ad or all(_is_loopback(s) for s in servers))

    def _validating(self) -> dns.asyncresolver.Resolver:
        """A resolver like ours that asks for the AD bit (RFC 6840 §5.7) with EDNS0."""
        if self._secure_resolver is None:
            secure = dns.asyncresolver.Resolver(configure=False)
            secure.nameservers = list(self._resolver.nameservers)
            secure.port = self._resolver.port
            secure.lifetime = self._resolver.lifetime
            secure.timeout = self._resolver.timeout
            secure.flags = dns.flags.RD | dns.flags.AD
            secure.use_edns(0, 0, 1232)
            self._secure_resolver = secure
        return self._secure_resolver

    async def _secure_query(self, name: str, rdtype: str) -> tuple[list[object], bool]:
        """The records of ``name`` (empty for NXDOMAIN or no data) and whether a trusted
        validating resolver vouched for the answer (or for the denial). A failure (SERVFAIL,
        which a validating resolver answers for a bogus signature; a timeout) raises."""
        try:
            answer = await self._validating().resolve(
                name, rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN as exc:
            responses = exc.kwargs.get("responses") or {}
            response = next(iter(responses.values()), None)
            ad = response is not None and bool(response.flags & dns.flags.AD)
            return [], ad and self.ad_trusted
        except dns.exception.DNSException as exc:
            raise ResolverError(f"{name} {rdtype}: {exc}") from None
        ad = bool(answer.response.flags & dns.flags.AD)
        records = list(answer.rrset) if answer.rrset is not None else []
        return records, ad and self.ad_trusted

    async def host_is_secure(self, host: str) -> bool:
        """Whether the address records of ``host`` are DNSSEC-validated (RFC 7672 §2.2.2: only
        then are its TLSA records looked up)."""
        for rdtype in ("A", "AAAA"):
            records, secure = await self._secure_query(host, rdtype)
            if records:
                return secure
        return False

    async def tlsa(self, host: str, port: int) -> TLSALookup:
        """The TLSA records of ``_PORT._tcp.HOST`` (RFC 6698 §3, RFC 7672 §2.2.3); raises
        :class:`ResolverError` when the lookup fails (bogus or indeterminate: that host must
        then not be used). Read in wire form (:mod:`mailroom.tlsa`): a record dnspython would
        refuse (a digest of the wrong length) is kept, for the DANE code to find unusable."""
        name = f"_{port}._tcp.{host.rstrip('.')}"
        servers = [(str(s), int(self._resolver.port)) for s in self._resolver.nameservers]
        try:
            answer = await query_tlsa(name, servers, timeout=self.timeout)
        except TLSAQueryError as exc:
            raise ResolverError(f"{name} TLSA: {exc}") from None
        return TLSALookup(name, answer.records, answer.authenticated and self.ad_trusted)

    async def mx_is_secure(self, domain: str) -> bool:
        """Whether the MX RRset of ``domain`` (or its denial) is DNSSEC-validated: RFC 8689
        §4.2.1 lets a REQUIRETLS message go to a PKIX-verified host found through it."""
        try:
            _, secure = await self._secure_query(domain.rstrip("."), "MX")
        except ResolverError:
            return False
        return secure

    async def policy_txt(self, name: str) -> list[str]:
        """The TXT records at ``name`` (``_mta-sts.DOMAIN``, ``_smtp._tls.DOMAIN``), each with
        its strings joined without spaces (RFC 8461 §3.1, RFC 8460 §3), through
        :meth:`lookup`'s cache; empty when there are none; raises :class:`ResolverError` when
        the lookup fails."""
        found = await self.lookup(name, "TXT")
        if found.status == "error":
            raise ResolverError(f"{name} TXT: {found.error}")
        return list(found.records)


def _servfail(exc: dns.resolver.NoNameservers) -> str:
    # "All nameservers failed to answer the query ...: Server ... answered SERVFAIL"
    text = str(exc)
    return "SERVFAIL" if "SERVFAIL" in text else text[:200]


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
