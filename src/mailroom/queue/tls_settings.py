"""The outbound TLS policy's settings: ``[outbound_tls]`` and ``[outbound_tls.policy]`` of
``mailroom.toml``.

    [outbound_tls]
    default = "auto"              # auto, none, may, encrypt, verify, dane, mta-sts
    ca_file = "/etc/mailroom/private-ca.pem"   # trusted besides the system's CAs
    mta_sts_timeout = "60s"
    mta_sts_max_size = 65536

    [outbound_tls.policy]         # exceptions, by recipient domain
    "partner.example" = "dane"
    "legacy.example" = "may"

The levels, like Postfix's ``smtp_tls_security_level``: ``none`` (no TLS), ``may`` (STARTTLS
when offered, no certificate check, plain text when the handshake fails), ``encrypt`` (TLS
required, no certificate check), ``verify`` (TLS required, a certificate from a trusted CA for
the MX host name), ``dane`` (DNSSEC-validated TLSA records required for every MX host, and a
matching certificate: RFC 7672), ``mta-sts`` (the domain's MTA-STS policy required and enforced:
RFC 8461), and ``auto``: DANE for an MX host with DNSSEC-validated TLSA records, else the
domain's MTA-STS policy as it says (enforce or testing), else ``may``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailroom.settings_types import parse_duration

__all__ = ["LEVELS", "TLSPolicySettings"]

LEVELS = ("auto", "none", "may", "encrypt", "verify", "dane", "mta-sts")
_DURATIONS = ("mta_sts_timeout", "mta_sts_retry_after", "report_delay", "report_retry")
_INTEGERS = ("mta_sts_max_size", "mta_sts_port", "report_max_attempts")
_STRINGS = ("ca_file", "report_organization", "report_contact", "report_from")
_BOOLEANS = ("trust_remote_dnssec", "reports")


@dataclass(frozen=True)
class TLSPolicySettings:
    default: str = "auto"
    policy: dict[str, str] = field(default_factory=dict)  # recipient domain → level
    # Certificates (PEM) trusted besides the system's CAs, for verify, MTA-STS (SMTP and the
    # policy fetch) and TLS reports over HTTPS: a private PKI, or a test CA.
    ca_file: str | None = None
    # DANE needs DNSSEC answers the path to the resolver cannot have changed: the AD bit is
    # believed only from a resolver on this host, unless this says the path is trusted.
    trust_remote_dnssec: bool = False
    # RFC 8461 §3.3: the policy fetch's limits (its suggestions), and the wait before a failed
    # fetch is tried again for the same policy id.
    mta_sts_timeout: float = 60.0
    mta_sts_max_size: int = 64 * 1024
    mta_sts_retry_after: float = 300.0
    mta_sts_port: int = 443  # the port policy hosts are reached on (another only for tests)
    # TLS reporting (RFC 8460): record each session's TLS outcome per policy domain, and send
    # each day's report to the domains that publish an _smtp._tls record.
    reports: bool = True
    report_organization: str | None = None  # default: the hostname
    report_contact: str | None = None  # default: postmaster@hostname
    report_from: str | None = None  # the report's From: default: noreply-tlsrpt@hostname
    report_delay: float = 3600.0  # after midnight UTC, a random wait up to this long (§4.1)
    report_retry: float = 3600.0  # between attempts at a report that failed
    report_max_attempts: int = 24  # §5.5: retried for up to a day

    def level_for(self, domain: str) -> str:
        return self.policy.get(domain.lower().rstrip("."), self.default)

    @classmethod
    def from_config(cls, table: Any) -> TLSPolicySettings:
        """``[outbound_tls]``; raises ValueError naming the setting at fault."""
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise ValueError("[outbound_tls]: a table, like [outbound_tls]")
        values: dict[str, Any] = {}
        for key, value in table.items():
            name = key.replace("-", "_")
            if name == "default":
                values["default"] = _level(value, "default")
            elif name == "policy":
                if not isinstance(value, Mapping):
                    raise ValueError("[outbound_tls]: policy is a table of domain = level")
                values["policy"] = {
                    str(domain).lower().rstrip("."): _level(level, f"policy {domain!r}")
                    for domain, level in value.items()
                }
            elif name in _DURATIONS:
                try:
                    values[name] = parse_duration(value)
                except ValueError as exc:
                    raise ValueError(f"[outbound_tls]: {key}: {exc}") from None
            elif name in _INTEGERS:
                if not isinstance(value, int) or value < 0:
                    raise ValueError(f"[outbound_tls]: {key} is a number, 0 or more")
                values[name] = value
            elif name in _STRINGS:
                values[name] = str(value)
            elif name in _BOOLEANS:
                if not isinstance(value, bool):
                    raise ValueError(f"[outbound_tls]: {key} is true or false")
                values[name] = value
            else:
                raise ValueError(f"[outbound_tls]: unknown setting {key!r}")
        return cls(**values)


def _level(value: Any, where: str) -> str:
    level = str(value).lower()
    if level not in LEVELS:
        raise ValueError(f"[outbound_tls]: {where} is {value!r}, not one of {', '.join(LEVELS)}")
    return level
