"""DNS for mail (dnspython, async): MX records with RFC 5321 §5.1's implicit MX and RFC 7505's
null MX, and the addresses of a host.

The resolver can be pointed at given name servers (``dns_servers = ["127.0.0.1:5353"]``), which
is how the tests use a DNS server of their own on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

__all__ = ["MailRoute", "Resolver", "ResolverError"]


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


class Resolver:
    def __init__(self, servers: list[str] | None = None, *, timeout: float = 5.0) -> None:
        # Name servers given in the configuration answer every lookup mailroom makes, relay
        # host names included; without them, the system's resolver (and /etc/hosts) does.
        self.explicit = bool(servers)
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
