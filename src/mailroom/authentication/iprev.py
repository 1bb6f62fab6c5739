"""iprev (RFC 8601 §3): forward-confirmed reverse DNS of the client's address.

The client's PTR names (the first :data:`MAX_NAMES`) are looked up forward; if one has the
client's address among its A or AAAA records, the result is ``pass`` with that name. Results per
§2.7.3: ``pass``; ``fail`` (PTR names exist, none leads back); ``permerror`` (no PTR record);
``temperror`` (a DNS error kept the answer from being known).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from mailroom.authentication.dns import DNSLog, LookupFunc

__all__ = ["IprevResult", "check_iprev"]

Result = Literal["pass", "fail", "permerror", "temperror"]
MAX_NAMES = 10  # PTR names tried, as RFC 7208 §4.6.4 limits the same walk for SPF's ptr


@dataclass(frozen=True, slots=True)
class IprevResult:
    result: Result
    client_ip: str
    name: str = ""  # the confirmed name on pass
    reason: str = ""
    lookups: tuple[str, ...] = ()

    def describe(self) -> str:
        detail = self.name or self.reason
        return f"iprev={self.result} ({self.client_ip}" + (f": {detail})" if detail else ")")


async def check_iprev(client_ip: str, lookup: LookupFunc) -> IprevResult:
    dns_log = DNSLog(lookup)
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return IprevResult("permerror", client_ip, reason="not an IP address")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    shown = str(address)
    answer = await dns_log(address.reverse_pointer, "PTR")
    if answer.status == "error":
        return IprevResult("temperror", shown, reason=answer.error, lookups=tuple(dns_log.lines()))
    if answer.void or not answer.records:
        return IprevResult(
            "permerror", shown, reason="no PTR record", lookups=tuple(dns_log.lines())
        )
    rdtype = "A" if address.version == 4 else "AAAA"
    errors = 0
    for name in answer.records[:MAX_NAMES]:
        forward = await dns_log(name, rdtype)
        if forward.status == "error":
            errors += 1
            continue
        for text in forward.records:
            try:
                if ipaddress.ip_address(text) == address:
                    return IprevResult("pass", shown, name, lookups=tuple(dns_log.lines()))
            except ValueError:
                continue
    if errors:
        return IprevResult(
            "temperror", shown, reason="a forward lookup failed", lookups=tuple(dns_log.lines())
        )
    names = ", ".join(answer.records[:3])
    return IprevResult(
        "fail", shown, reason=f"{names} does not resolve back", lookups=tuple(dns_log.lines())
    )
