"""The DNS records a mail domain served by mailroom should publish (``mailroom dns-records``):
MX, SPF, DKIM (each selector whose key is in the data directory), DMARC (``p=none`` to start),
MTA-STS and TLS-RPT placeholders, and the server's own A/AAAA and PTR.

Zone-file text, one section per domain, with comments saying what each record is for and
what to do next. TXT values over 255 octets are split into several strings (RFC 7208 §3.3,
RFC 6376 §3.6.2.2: receivers join them).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping, Sequence

from mailroom.authentication.keys import DKIMKey

__all__ = ["dns_records", "txt"]


def txt(value: str) -> str:
    """A TXT record's data: quoted strings of at most 255 octets."""
    data = value.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return " ".join('"' + c.decode().replace('"', '\\"') + '"' for c in chunks)


def _line(name: str, rtype: str, value: str) -> str:
    return f"{name + '.':<40} IN {rtype:<5} {value}"


def dns_records(
    domains: Sequence[str],
    hostname: str,
    keys: Mapping[str, Sequence[DKIMKey]],
    *,
    addresses: Sequence[str] = (),
    postmaster: str = "postmaster",
    today: datetime.date | None = None,
    mta_sts: bool = False,
    tls_reporting: bool = False,
) -> str:
    """The zone-file lines the mail domains need. ``mta_sts`` and ``tls_reporting``: the
    configuration publishes those (``[mta_sts]``, ``[tls_reporting]``) and their records are
    printed with the transport security records (:mod:`mailroom.tls_publish`), so no
    placeholder is printed here for them."""
    day = today or datetime.date.today()
    host = hostname.lower().rstrip(".")
    out = [
        f"; DNS records for the mail domains of {host} (mailroom dns-records).",
        "; Publish them in each domain's zone; check with: dig TXT _dmarc.DOMAIN",
        "",
    ]
    networks = " ".join(f"ip{ipaddress.ip_address(a).version}:{a}" for a in addresses)
    spf = f"v=spf1 {networks + ' ' if networks else ''}mx -all"
    for domain in domains:
        domain = domain.lower().rstrip(".")
        report = f"mailto:{postmaster}@{domain}"
        out.append(f"; ---- {domain}")
        out.append("; where its mail goes (RFC 5321 §5.1)")
        out.append(_line(domain, "MX", f"10 {host}."))
        out.append("; SPF (RFC 7208): only its MX hosts send its mail; others fail")
        out.append(_line(domain, "TXT", txt(spf)))
        domain_keys = keys.get(domain, ())
        if domain_keys:
            for key in domain_keys:
                out.append(
                    f"; DKIM (RFC 6376{', RFC 8463' if key.algorithm == 'ed25519' else ''})"
                    f": the {key.algorithm} key of selector {key.selector}"
                )
                out.append(_line(key.record_name, "TXT", txt(key.public_record)))
        else:
            out.append(f"; DKIM: no key yet. Make one: mailroom dkim keygen {domain}")
        out.append("; DMARC (RFC 7489): p=none only asks for reports. Once the reports to rua show")
        out.append(";   your own mail passing (SPF or DKIM aligned), move to p=quarantine, then")
        out.append(";   p=reject: only then does forged mail in your name get refused.")
        out.append(_line(f"_dmarc.{domain}", "TXT", txt(f"v=DMARC1; p=none; rua={report}")))
        if not mta_sts:
            out.append("; MTA-STS (RFC 8461), a placeholder: publish it once")
            out.append(f";   https://mta-sts.{domain}/.well-known/mta-sts.txt serves a policy")
            out.append(";   ([mta_sts] in mailroom.toml); change the id whenever it changes.")
            out.append(_line(f"_mta-sts.{domain}", "TXT", txt(f"v=STSv1; id={day:%Y%m%d}01")))
        if not tls_reporting:
            out.append("; TLS-RPT (RFC 8460): where senders report TLS failures to this domain")
            out.append(_line(f"_smtp._tls.{domain}", "TXT", txt(f"v=TLSRPTv1; rua={report}")))
        out.append("")
    out.append(f"; ---- the server {host}")
    if addresses:
        for address in addresses:
            ip = ipaddress.ip_address(address)
            out.append(_line(host, "A" if ip.version == 4 else "AAAA", str(ip)))
        out.append("; reverse DNS (ask whoever gives you the address): receivers check that the")
        out.append(";   address names the host and the host the address (iprev, RFC 8601 §3)")
        for address in addresses:
            out.append(_line(ipaddress.ip_address(address).reverse_pointer, "PTR", f"{host}."))
    else:
        out.append(f"; {host} needs A (and AAAA) records, and each address a PTR record naming")
        out.append(f";   {host}. (set by whoever gives you the address; receivers check it).")
        out.append("; Give the addresses to print them: mailroom dns-records --address 192.0.2.25")
    return "\n".join(out) + "\n"
