"""What mailroom publishes about its own transport security, for the senders that deliver to
its domains: an MTA-STS policy (RFC 8461) served at
``https://mta-sts.DOMAIN/.well-known/mta-sts.txt``, the TXT records that announce it and ask
for TLS reports (RFC 8460), and TLSA records for DANE (RFC 7672) of the listeners' key.

    [mta_sts]
    mode = "enforce"              # enforce, testing or none
    mx = ["mx.example.org"]       # default: the hostname
    max_age = "7d"
    listen = "0.0.0.0:443"        # optional: serve the policy over HTTPS here (else the web UI
                                  # answers it, behind a TLS proxy of yours)

    [tls_reporting]
    rua = ["mailto:tlsrpt@example.org"]

:func:`tls_dns_records` lists the records to publish; ``mailroom dns-records``
(:mod:`mailroom.dns_commands`) prints them with the email authentication records. The policy
``id`` is a digest of the policy, so it changes whenever the policy does. This module reads no
configuration: it is given the values (``mailconfig.py`` parses the sections into
:class:`PublishedTLS`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailroom.settings_types import parse_duration

__all__ = ["PublishedTLS", "tls_dns_records"]

MTA_STS_PATH = "/.well-known/mta-sts.txt"
_MODES = ("enforce", "testing", "none")


@dataclass(frozen=True)
class PublishedTLS:
    domains: frozenset[str]
    mode: str | None = None  # None: no MTA-STS policy published
    mx: tuple[str, ...] = ()
    max_age: int = 7 * 86400
    listen: str | None = None  # "HOST:PORT" of an HTTPS listener for the policy
    rua: tuple[str, ...] = ()  # where TLS reports about mail to us go

    @property
    def policy(self) -> str:
        """The policy file (RFC 8461 §3.2), CRLF-separated."""
        lines = ["version: STSv1", f"mode: {self.mode}"]
        lines += [f"mx: {host}" for host in self.mx]
        lines.append(f"max_age: {self.max_age}")
        return "\r\n".join(lines) + "\r\n"

    @property
    def policy_id(self) -> str:
        """Changes with the policy (RFC 8461 §3.1: up to 32 letters and digits)."""
        return hashlib.sha256(self.policy.encode()).hexdigest()[:20]

    def policy_for_host(self, host: str) -> str | None:
        """The policy to serve for a request to ``host`` (``mta-sts.DOMAIN[:port]``)."""
        if self.mode is None:
            return None
        name = host.strip().lower()
        if name.count(":") == 1:
            name = name.partition(":")[0]  # the port of a Host header
        domain = name.rstrip(".").removeprefix("mta-sts.")
        if name.startswith("mta-sts.") and domain in self.domains:
            return self.policy
        return None

    @classmethod
    def from_config(
        cls, data: Mapping[str, Any], *, hostname: str, domains: Iterable[str]
    ) -> PublishedTLS:
        """``[mta_sts]`` and ``[tls_reporting]``; ValueError names the setting at fault."""
        values: dict[str, Any] = {"domains": frozenset(d.lower() for d in domains)}
        table = data.get("mta_sts")
        if table is not None:
            if not isinstance(table, Mapping):
                raise ValueError("[mta_sts]: a table, like [mta_sts]")
            unknown = set(table) - {"mode", "mx", "max_age", "listen"}
            if unknown:
                raise ValueError(f"[mta_sts]: unknown setting {sorted(unknown)[0]!r}")
            mode = str(table.get("mode", "enforce"))
            if mode not in _MODES:
                raise ValueError("[mta_sts]: mode is enforce, testing or none")
            mx = table.get("mx", [hostname])
            if isinstance(mx, str) or not all(isinstance(h, str) and h for h in mx):
                raise ValueError("[mta_sts]: mx is a list of host names (or *.domain)")
            try:
                max_age = int(parse_duration(table.get("max_age", 7 * 86400)))
            except ValueError as exc:
                raise ValueError(f"[mta_sts]: max_age: {exc}") from None
            if not 0 <= max_age <= 31557600:
                raise ValueError("[mta_sts]: max_age is at most a year (RFC 8461 §3.2)")
            values.update(mode=mode, mx=tuple(h.lower() for h in mx), max_age=max_age)
            if table.get("listen"):
                values["listen"] = str(table["listen"])
        reporting = data.get("tls_reporting")
        if reporting is not None:
            if not isinstance(reporting, Mapping) or set(reporting) - {"rua"}:
                raise ValueError('[tls_reporting]: only rua = ["mailto:...", "https://..."]')
            rua = reporting.get("rua", [])
            rua = [rua] if isinstance(rua, str) else list(rua)
            for uri in rua:
                if not str(uri).lower().startswith(("mailto:", "https://")):
                    raise ValueError(f"[tls_reporting]: rua {uri!r} is not mailto: or https:")
            values["rua"] = tuple(str(u) for u in rua)
        return cls(**values)


def _tlsa(certificate: Path) -> str | None:
    """``3 1 1 <SHA-256 of the key>``: DANE-EE of the listeners' key, the record RFC 7671 §8
    recommends (it survives a renewal that keeps the key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    except (OSError, ValueError):
        return None
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return f"3 1 1 {hashlib.sha256(spki).hexdigest()}"


def tls_dns_records(
    published: PublishedTLS | None, *, hostname: str, certificate: Path | None
) -> list[str]:
    """The transport security records to publish, zone-file lines with comments: for what
    ``published`` says (``[mta_sts]``, ``[tls_reporting]``), and TLSA records of the key of
    ``certificate`` (the listeners') for its MX hosts (``hostname`` by default)."""
    if published is None:
        return []
    records: list[str] = []
    for domain in sorted(published.domains):
        if published.mode is not None:
            records.append(f'_mta-sts.{domain}. IN TXT "v=STSv1; id={published.policy_id}"')
            records.append(
                f"; mta-sts.{domain} must reach an HTTPS server with a certificate for that "
                "name that serves /.well-known/mta-sts.txt (mailroom does: [mta_sts] listen)"
            )
        if published.rua:
            records.append(
                f'_smtp._tls.{domain}. IN TXT "v=TLSRPTv1; rua={",".join(published.rua)}"'
            )
    tlsa = _tlsa(certificate) if certificate is not None else None
    if tlsa is not None:
        hosts = published.mx if published.mx else (hostname,)
        for host in hosts:
            if not host.startswith("*."):
                records.append(f"_25._tcp.{host}. IN TLSA {tlsa}")
        records.append("; TLSA records count only in a DNSSEC-signed zone (RFC 7672)")
    return records
