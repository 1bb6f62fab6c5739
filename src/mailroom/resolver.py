"""DNS for mail (dnspython, async): MX records with RFC 5321 §5.1's implicit MX and RFC 7505's
null MX, and the addresses of a host. For transport security (DANE, MTA-STS, TLS reporting):
TLSA records and whether a validating resolver vouched for them (the AD bit, RFC 6840 §5.7,
trusted only from a resolver on this host), and the TXT records of ``_mta-sts`` and
``_smtp._tls``.

The resolver can be pointed at given name servers (``dns_servers = ["127.0.0.1:5353"]``), which
is how the tests use a DNS server of their own on loopback.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.rdatatype
import dns.rdtypes.ANY.TLSA
import dns.resolver

__all__ = ["MailRoute", "Resolver", "ResolverError", "TLSALookup", "TLSARecordData"]


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


@dataclass(frozen=True, slots=True)
class TLSARecordData:
    """One TLSA record as received (RFC 6698 §2.1): any values, checked by the DANE code."""

    usage: int
    selector: int
    mtype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TLSALookup:
    """The TLSA RRset of ``_PORT._tcp.HOST`` (RFC 7672 §2.2): ``secure`` when a trusted
    validating resolver set the AD bit on the answer (records or their denial)."""

    name: str
    records: tuple[TLSARecordData, ...]
    secure: bool


# dnspython refuses a TLSA record whose digest is not as long as its matching type says (a
# FormError for the whole answer, retried until the lookup times out). For an SMTP client such a
# record is only unusable, and the other records of its RRset still count (RFC 7672 §2.2): so
# they are read as they come, and the DANE code (mailroom.delivery.dane) judges them.
dns.rdtypes.ANY.TLSA.TLSA._cert_length_by_mtype = {}


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _split_server(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port or 53)
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host.count(":") == 0:
        return host, int(port)
    return text, 53


class Resolver:
    def __init__(self, servers: list[str] | None = None, *, timeout: float = 5.0) -> None:
        if servers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            hosts = [_split_server(s) for s in servers]
            resolver.nameservers = [h for h, _ in hosts]
            resolver.port = hosts[0][1]
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = timeout
        resolver.timeout = timeout
        self._resolver = resolver
        self._secure_resolver: dns.asyncresolver.Resolver | None = None
        # The AD bit says "validated" only as far as the path to the resolver can be trusted:
        # a resolver on this host (RFC 7672 §2.1.1, RFC 6698 §4), unless told otherwise.
        self.trust_remote_ad = False

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
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._query(host, rdtype)
            except dns.resolver.NXDOMAIN:
                return found
            if answer is not None:
                found.extend(str(r) for r in answer)
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
        then not be used)."""
        name = f"_{port}._tcp.{host.rstrip('.')}"
        records, secure = await self._secure_query(name, "TLSA")
        found = tuple(
            TLSARecordData(int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert))  # type: ignore[attr-defined]
            for r in records
            if getattr(r, "rdtype", None) == dns.rdatatype.TLSA
        )
        return TLSALookup(name, found, secure)

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
        its strings joined without spaces (RFC 8461 §3.1, RFC 8460 §3); empty when there are
        none; raises :class:`ResolverError` when the lookup fails."""
        try:
            answer = await self._query(name, "TXT")
        except dns.resolver.NXDOMAIN:
            return []
        if answer is None:
            return []
        return [b"".join(r.strings).decode("utf-8", errors="replace") for r in answer]
