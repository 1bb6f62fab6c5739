"""Where mail for a domain goes: a static route (``[routes]``, like Postfix's transport map;
with ``[local_delivery] lmtp``, the local domains' route to the mail store), else the smarthost
(``[relay]``), else the domain's MX hosts (RFC 5321 §5.1).

A :class:`Destination` is what connections are shared and limited by: the domain for MX
delivery, the relay host for a route or the smarthost. :func:`plan` turns one into the hosts and
addresses to try, in order, or into an outcome for every recipient when DNS already decides:
NXDOMAIN bounces (5.1.2), a null MX bounces (5.1.10, RFC 7505), a temporary DNS failure is
retried (4.4.3), an MX list that leads back to this host bounces (5.4.6).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailroom.codes import reports
from mailroom.delivery.outcome import Outcome, reported
from mailroom.queue.settings import QueueSettings, RelayHost
from mailroom.resolver import Resolver, ResolverError

__all__ = ["MAX_ADDRESSES", "Destination", "Hop", "Plan", "destination_for", "plan"]

MAX_ADDRESSES = 10  # addresses tried in one attempt, over all MX hosts (Postfix: 5)


@dataclass(frozen=True, slots=True)
class Destination:
    key: str  # "example.test"; "relay 127.0.0.1:2526", "lmtp unix:/PATH" for a relay host
    relay: RelayHost | None = None  # None: deliver to the domain's MX hosts
    # What the messages ask of the next hop's TLS (RFC 8689): "normal", "requiretls", or
    # "optional" (TLS-Required: No). Messages that ask differently do not share connections.
    requirement: str = "normal"


@dataclass(frozen=True, slots=True)
class Hop:
    """One address to try. ``name`` is the host name: Remote-MTA, and TLS's server name.
    A unix socket is a hop with its path for ``address`` and port 0."""

    name: str
    address: str
    port: int


@dataclass
class Plan:
    hops: list[Hop] = field(default_factory=list)
    failure: Outcome | None = None  # set when no hop is to be tried


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _usable(address: str) -> bool:
    """An address a connection can be made to for mail: not unspecified, multicast or the
    limited broadcast (an MX pointing there is a mistake or a trick, never a mail server)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return not (ip.is_unspecified or ip.is_multicast or str(ip) == "255.255.255.255")


def _is_ours(address: str, port: int, listening: set[tuple[str, int]]) -> bool:
    """Whether ``address:port`` reaches a listener of this server (a wildcard listener takes
    the port on every address, loopback included)."""
    if (address, port) in listening:
        return True
    wildcard = ("0.0.0.0", port) in listening or ("::", port) in listening
    if not wildcard:
        return False
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def destination_for(
    domain: str, settings: QueueSettings, requirement: str = "normal"
) -> Destination:
    relay = settings.routes.get(domain.lower()) or settings.smarthost
    if settings.local_lmtp is not None and domain.lower() in settings.local_domains:
        relay = settings.local_lmtp
    if relay is not None and relay.lmtp:
        # LMTP is final delivery into a mail store (RFC 8689 §4.4), not a relay hop.
        requirement = "normal"
    prefix = "" if requirement == "normal" else f"{requirement} "
    if relay is None:
        return Destination(prefix + domain.lower(), None, requirement)
    kind = "lmtp" if relay.lmtp else "relay"
    return Destination(f"{prefix}{kind} {relay.name}", relay, requirement)


async def _system_addresses(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


async def plan(
    destination: Destination,
    domain: str,
    resolver: Resolver,
    *,
    mx_port: int = 25,
    hostname: str = "",
    own_addresses: Iterable[tuple[str, int]] = (),
) -> Plan:
    """The hops to try for ``domain``, or the outcome for its recipients. ``own_addresses``
    are the (address, port) pairs this server listens on: an MX host that has one of them (on
    ``mx_port``) is this server, as is one named ``hostname``."""
    relay = destination.relay
    if relay is not None:
        if relay.socket is not None:
            # On this host: the Remote-MTA of what it answers is this host.
            return Plan([Hop(hostname or "localhost", relay.socket, 0)])
        if _is_ip(relay.host):
            return Plan([Hop(relay.host, relay.host, relay.port)])
        if resolver.explicit:
            try:
                addresses = await resolver.addresses(relay.host)
            except ResolverError as exc:
                return Plan(failure=reported(reports.DNS_FAILED, f"DNS lookup failed: {exc}"))
        else:
            addresses = await _system_addresses(relay.host, relay.port)
        if not addresses:
            return Plan(
                failure=reported(
                    reports.ROUTE_MISCONFIGURED,
                    f"relay host {relay.host} not found: check the route in mailroom.toml",
                )
            )
        return Plan([Hop(relay.host, a, relay.port) for a in addresses[:MAX_ADDRESSES]])

    try:
        route = await resolver.mail_route(domain)
    except ResolverError as exc:
        return Plan(failure=reported(reports.DNS_FAILED, f"DNS lookup failed: {exc}"))
    if not route.exists:
        return Plan(
            failure=reported(reports.DOMAIN_NOT_FOUND, f"domain {domain} does not exist (NXDOMAIN)")
        )
    if route.null_mx:
        return Plan(
            failure=reported(
                reports.DOMAIN_NULL_MX, f"{domain} accepts no mail (null MX, RFC 7505)"
            )
        )
    if not route.hosts:
        return Plan(
            failure=reported(
                reports.NO_MAIL_ROUTE,
                f"{domain} has no MX and no address records: it takes no mail",
            )
        )
    # Each MX host's addresses, best preference first (RFC 5321 §5.1: hosts of equal
    # preference in random order), looked up before anything is tried: a host that is this
    # server, by its name or by an address it listens on, must be known first.
    hosts = list(route.hosts)
    random.shuffle(hosts)
    hosts.sort(key=lambda item: item[0])
    own = hostname.lower().rstrip(".")
    resolved: list[tuple[int, str, list[str]]] = []
    temporary: str | None = None
    numeric: list[str] = []
    for preference, host in hosts:
        if _is_ip(host):
            # RFC 5321 §5.1: an MX record's data is a host name whose address records say
            # where to go, never an address. Like Postfix ("numeric domain name in resource
            # data of MX record") and Exim (allow_mx_to_ip = false), such a host is not used.
            numeric.append(host)
            addresses = []
        else:
            try:
                addresses = await resolver.addresses(host)
            except ResolverError as exc:
                temporary = str(exc)
                addresses = []
        resolved.append((preference, host, addresses))
        if sum(len(a) for _, _, a in resolved) >= MAX_ADDRESSES:
            break
    listening = set(own_addresses)
    mine = [
        preference
        for preference, host, addresses in resolved
        if host == own or any(_is_ours(a, mx_port, listening) for a in addresses)
    ]
    if mine:
        # RFC 5321 §5.1: only hosts more preferred than this one; none left is a loop.
        resolved = [item for item in resolved if item[0] < min(mine)]
        if not resolved:
            which = next(h for p, h in hosts if p == min(mine))
            return Plan(
                failure=reported(
                    reports.MX_LOOPS_BACK,
                    f"mail for {domain} loops back to myself ({which} is its best MX, and it "
                    "is this server)",
                )
            )
    hops = [
        Hop(host, address, mx_port)
        for _, host, addresses in resolved
        for address in addresses
        if _usable(address)
    ]
    if hops:
        return Plan(hops[:MAX_ADDRESSES])
    if any(addresses for _, _, addresses in resolved):
        names = ", ".join(f"{h} ({', '.join(a)})" for _, h, a in resolved if a)
        return Plan(
            failure=reported(
                reports.UNUSABLE_ADDRESSES,
                f"the MX hosts of {domain} have no address mail can go to: {names}",
            )
        )
    if temporary is not None:
        return Plan(failure=reported(reports.DNS_FAILED, f"DNS lookup failed: {temporary}"))
    names = ", ".join(h for _, h, _ in resolved)
    text = f"no address for the MX hosts of {domain}: {names}"
    if numeric:
        text += f" (an MX record names an address, not a host: {', '.join(numeric)})"
    return Plan(failure=reported(reports.MX_HOSTS_UNRESOLVABLE, text))
