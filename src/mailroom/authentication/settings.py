"""The ``[authentication]`` section of ``mailroom.toml``: which checks run on mx listeners,
which are enforced and how, their time budgets, and outbound signing, SRS and ARC sealing.

    [authentication]
    spf = "record"                    # off | record | enforce
    spf_enforce_domains = []          # MAIL FROM domains whose SPF fail is refused anyway
    spf_enforce_local_domains = true  # a MAIL FROM in a local domain whose SPF fails: refused
    dkim = "record"                   # off | record
    dkim_required_domains = []        # From domains that must have an aligned passing signature
    dmarc = "enforce"                 # off | record | enforce (reject refused, quarantine: Junk)
    iprev = "record"                  # off | record | require
    arc = "record"                    # off | record
    trusted_arc_sealers = []          # forwarders whose ARC seal can stand in for a DMARC pass
    quarantine_folder = ".Junk"       # the Maildir++ folder of DMARC quarantine
    spf_timeout = "20s"               # each check's time budget: then 4.7.x, never a pass
    sign = true                       # DKIM-sign local domains' outgoing mail (keys in <data>/dkim)
    srs = true                        # rewrite the sender of mail forwarded off-site
    arc_seal = true                   # ARC-seal mail forwarded off-site

Every setting has a default; an unknown key or a bad value is an error that names the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from mailroom.settings_types import parse_duration

# The octets of a header section DKIM and ARC verify: a larger one is not verified (DKIM
# neutral, ARC none, with the reason), a bound on the work a stranger's header makes. Postfix
# keeps no more of one (header_size_limit, 102,400). (dkimpy's own reader took time with the
# square of a long fold, 6.7 s for 1.3 MB; mailroom reads for it in linear time:
# dkimpy_reading.py.)
MAX_HEADER_SIZE = 102_400

__all__ = ["MAX_HEADER_SIZE", "AuthenticationSettings", "SettingsError"]

_MODES = {
    "spf": ("off", "record", "enforce"),
    "dkim": ("off", "record"),
    "dmarc": ("off", "record", "enforce"),
    "iprev": ("off", "record", "require"),
    "arc": ("off", "record"),
}
_DOMAIN_LISTS = ("spf_enforce_domains", "dkim_required_domains", "trusted_arc_sealers")
_TIMEOUTS = ("spf_timeout", "dkim_timeout", "dmarc_timeout", "iprev_timeout", "arc_timeout")


class SettingsError(ValueError):
    """A setting of [authentication] that cannot be used; ``key`` names it."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class AuthenticationSettings:
    # -- on the way in (mx listeners) --
    spf: str = "record"
    spf_enforce_domains: tuple[str, ...] = ()
    # A stranger's MAIL FROM in one of this server's own domains, from an address that
    # domain's SPF record says fail for, is refused even with spf = "record": the record is
    # the operator's own word, and such a forgery would reach local users as if from one.
    spf_enforce_local_domains: bool = True
    dkim: str = "record"
    dkim_required_domains: tuple[str, ...] = ()
    dkim_max_signatures: int = 5
    # Octets of a header section DKIM and ARC read; a larger one is not verified.
    max_header_size: int = MAX_HEADER_SIZE
    dmarc: str = "enforce"
    iprev: str = "record"
    arc: str = "record"
    trusted_arc_sealers: tuple[str, ...] = ()
    quarantine_folder: str = ".Junk"
    # The name in Authentication-Results (RFC 8601 §2.5); empty: the server's hostname.
    authserv_id: str = ""
    # Time budgets, seconds. RFC 7208 §4.6.4 asks at least 20 for SPF.
    spf_timeout: float = 20.0
    dkim_timeout: float = 10.0
    dmarc_timeout: float = 10.0
    iprev_timeout: float = 10.0
    arc_timeout: float = 10.0
    # -- on the way out --
    sign: bool = True
    srs: bool = True
    srs_domain: str = ""  # empty: the first local domain
    arc_seal: bool = True

    @property
    def any_inbound(self) -> bool:
        return any(getattr(self, name) != "off" for name in _MODES)

    def enforces_spf(self, domain: str) -> bool:
        return self.spf == "enforce" or (
            self.spf != "off" and domain.lower().rstrip(".") in self.spf_enforce_domains
        )

    @classmethod
    def from_toml(cls, table: Mapping[str, Any] | None) -> AuthenticationSettings:
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise SettingsError("authentication: a table, like [authentication]", "")
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in known:
                raise SettingsError(f"authentication: unknown setting {key!r}", key)
            if name in _MODES:
                text = value if isinstance(value, str) else ("record" if value is True else "off")
                if text not in _MODES[name]:
                    raise SettingsError(
                        f"authentication: {key} is one of {', '.join(_MODES[name])}", key
                    )
                value = text
            elif name in _DOMAIN_LISTS:
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise SettingsError(f"authentication: {key} is a list of domains", key)
                value = tuple(v.strip().lower().rstrip(".") for v in value)
            elif name in _TIMEOUTS:
                try:
                    value = parse_duration(value)
                except (ValueError, TypeError, AttributeError) as exc:
                    raise SettingsError(f"authentication: {key}: {exc}", key) from None
                if value <= 0:
                    raise SettingsError(f"authentication: {key} must be positive", key)
            elif name in ("sign", "srs", "arc_seal", "spf_enforce_local_domains"):
                if not isinstance(value, bool):
                    raise SettingsError(f"authentication: {key} is true or false", key)
            elif name == "max_header_size":
                if not isinstance(value, int) or isinstance(value, bool) or not value >= 1024:
                    raise SettingsError(
                        f"authentication: {key} is a number of octets, 1024 or more", key
                    )
            elif name == "dkim_max_signatures":
                if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 50:
                    raise SettingsError(f"authentication: {key} is a number from 1 to 50", key)
            elif name == "quarantine_folder":
                if (
                    not isinstance(value, str)
                    or not value.startswith(".")
                    or "/" in value
                    or value in (".", "..")
                ):
                    raise SettingsError(
                        f"authentication: {key} is a Maildir++ folder name like '.Junk'", key
                    )
            elif name in ("authserv_id", "srs_domain"):
                if not isinstance(value, str) or any(c in value for c in ' ;()"\r\n'):
                    raise SettingsError(f"authentication: {key} is a domain name", key)
                value = value.lower().rstrip(".")
            values[name] = value
        return cls(**values)
