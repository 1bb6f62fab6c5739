"""What ``mailroom check-config`` warns of: a configuration that loads but cannot work as meant.
Each warning names the thing and what the server will answer because of it (the X.3.5
"system incorrectly configured" situations, and their kin):

- a local domain without users, aliases, lists or a catch-all: every recipient there gets
  451 4.3.5;
- a list or alias whose expansion fails (a local member nobody has, a loop): 450 4.2.4;
- a static route or the smarthost naming a host that does not resolve: its mail waits in the
  queue with 4.3.5 until the name is fixed.

Warnings do not stop the server: an operator may be mid-change. Host names are looked up with
the configured ``dns_servers`` when there are some, else with the system's resolver.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailroom.mailconfig import MailServerConfig

__all__ = ["config_warnings"]


def config_warnings(mail: MailServerConfig, *, lookups: bool = True) -> list[str]:
    found: list[str] = []
    directory = mail.directory
    for domain in sorted(directory.domains):
        if directory.has_no_mailboxes(domain):
            found.append(
                f"domains: {domain} has no users, aliases, lists or catch-all: every recipient "
                "there will get 451 4.3.5 (system incorrectly configured)"
            )
    for alias in sorted(directory.aliases):
        if alias.startswith("@"):
            continue
        resolution = directory.resolve(alias)
        if resolution.problem is not None:
            found.append(
                f"aliases: {alias}: {resolution.problem}: its mail will get 450 4.2.4 (mailing "
                "list expansion problem)"
            )
    if lookups:
        found += asyncio.run(_route_warnings(mail))
    return found


async def _route_warnings(mail: MailServerConfig) -> list[str]:
    from mailroom.resolver import Resolver, ResolverError

    queue = mail.queue
    hosts: dict[str, str] = {}
    for domain, relay in sorted(queue.routes.items()):
        if relay.socket is None:
            hosts.setdefault(relay.host, f"routes: {domain}")
    if queue.smarthost is not None and queue.smarthost.socket is None:
        hosts.setdefault(queue.smarthost.host, "relay")
    resolver = Resolver(list(queue.dns_servers)) if queue.dns_servers else None
    found = []
    for host, where in hosts.items():
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
            continue  # an address, nothing to look up
        except OSError:
            pass
        if resolver is not None:
            try:
                addresses = await resolver.addresses(host)
            except ResolverError as exc:
                found.append(f"{where}: {host} could not be looked up now ({exc})")
                continue
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, 25)
            except OSError:
                infos = []
            addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            found.append(
                f"{where}: {host} does not resolve: its mail will wait in the queue with 4.3.5 "
                "(system incorrectly configured)"
            )
    return found
