"""The mail server mode's part of ``mailroom.toml``: domains, users, aliases, listeners with
roles, policy, queue, routes, relay, email authentication and transport security.
``mailroom check-config`` reports each error with the line it is on.

    hostname = "mx.example.test"
    data = "/var/lib/mailroom"
    tls = "self-signed"
    domains = ["example.test"]

    [[listeners]]
    address = "0.0.0.0:25"
    role = "mx"                 # mail for the local domains; no relaying
    [[listeners]]
    address = "0.0.0.0:587"
    role = "submission"         # STARTTLS, then AUTH; authenticated users may relay
    [[listeners]]
    address = "0.0.0.0:465"
    role = "submissions"        # the same over implicit TLS (RFC 8314)

    [users."alice@example.test"]
    password = "$argon2id$..."  # `mailroom passwd alice@example.test`
    quota = "1G"

    [aliases]
    "postmaster@example.test" = "alice@example.test"

    [policy]
    greylisting = false
    block_list = ["192.0.2.0/24"]

    [queue]
    retry_schedule = ["5m", "10m", "20m", "40m", "1h"]
    max_age = "5d"

    [routes]
    "example.net" = "127.0.0.1:2526"

    [local_delivery]
    lmtp = "127.0.0.1:24"       # local users' mail to an LMTP server (Dovecot) via the queue

    [authentication]            # SPF, DKIM, DMARC, ARC, iprev; signing, SRS, ARC sealing
    dmarc = "enforce"           # (mailroom.authentication.settings has every setting)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from mailroom.authentication.settings import AuthenticationSettings, SettingsError
from mailroom.policy.directory import Directory, DirectoryError
from mailroom.policy.mailserver import MailServerRules
from mailroom.queue.settings import QueueSettings, RelayHost
from mailroom.settings_types import parse_duration
from mailroom.submission.burl import BurlSettings
from mailroom.tls_publish import PublishedTLS

__all__ = ["MAIL_SECTIONS", "ROLES", "MailServerConfig", "locate"]

# Top-level keys of mailroom.toml that belong to the mail server mode.
MAIL_SECTIONS = (
    "domains",
    "users",
    "aliases",
    "listeners",
    "policy",
    "queue",
    "routes",
    "relay",
    "local_delivery",
    "outbound_tls",
    "mta_sts",
    "tls_reporting",
    "dns_servers",
    "case_insensitive_local_part",
    "authentication",
    "lists",
    "owned_since",
    "burl",
)
ROLES = ("catcher", "mx", "submission", "submissions")


class MailConfigError(ValueError):
    """An error in the mail server sections; ``key`` names where it is, for locate()."""

    def __init__(self, message: str, key: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class MailServerConfig:
    directory: Directory
    rules: MailServerRules
    queue: QueueSettings
    # username → (argon2 hash, SCRAM secret or None), for AUTH on submission listeners
    credentials: dict[str, tuple[str, str | None]]
    # [local_delivery] lmtp: the LMTP server local users' mail goes to (None: Maildirs)
    lmtp: RelayHost | None = None
    # [authentication]: SPF, DKIM, DMARC, ARC, iprev on mx listeners; signing, SRS, sealing
    authentication: AuthenticationSettings = dataclasses.field(
        default_factory=AuthenticationSettings
    )
    # [mta_sts], [tls_reporting]: what the local domains publish (mailroom.tls_publish)
    published: PublishedTLS | None = None
    # [burl]: the IMAP server BURL fetches from (RFC 4468); None: BURL is not offered
    burl: BurlSettings | None = None

    @classmethod
    def from_toml(cls, data: Mapping[str, Any], *, hostname: str) -> MailServerConfig:
        try:
            directory = Directory.from_config(data)
        except DirectoryError as exc:
            text = str(exc)
            raise MailConfigError(text, exc.key or (text.split(":", 1)[0],)) from None
        if not directory.domains:
            raise MailConfigError(
                "domains: the mail server mode needs at least one local domain", ("domains",)
            )
        rules = _rules(data.get("policy") or {}, hostname)
        try:
            queue = QueueSettings.from_config(data)
        except ValueError as exc:
            text = str(exc)
            section = next(
                (s for s in ("queue", "outbound_tls") if text.startswith(f"[{s}]")), "routes"
            )
            raise MailConfigError(str(exc), (section,)) from None
        minimums = {
            domain: relay.min_priority
            for domain, relay in queue.routes.items()
            if relay.min_priority is not None
        }
        if minimums:
            rules = dataclasses.replace(rules, route_min_priority=minimums)
        lmtp = _local_delivery(data.get("local_delivery"))
        if lmtp is not None:
            for domain in queue.routes:
                if directory.is_local_domain(domain):
                    raise MailConfigError(
                        f"routes: {domain} is a local domain; its mail goes to "
                        "[local_delivery] lmtp",
                        ("routes", domain),
                    )
            rules = dataclasses.replace(rules, local_delivery="lmtp")
            queue = dataclasses.replace(queue, local_lmtp=lmtp, local_domains=directory.domains)
        try:
            authentication = AuthenticationSettings.from_toml(data.get("authentication"))
        except SettingsError as exc:
            where = ("authentication", exc.key) if exc.key else ("authentication",)
            raise MailConfigError(str(exc), where) from None
        if authentication.dkim_required_domains and authentication.dkim == "off":
            raise MailConfigError(
                'authentication: dkim_required_domains needs dkim = "record"',
                ("authentication", "dkim_required_domains"),
            )
        if authentication.srs_domain and not directory.is_local_domain(authentication.srs_domain):
            raise MailConfigError(
                f"authentication: srs_domain {authentication.srs_domain} is not a local domain",
                ("authentication", "srs_domain"),
            )
        credentials = {
            user.address: (user.password_hash, user.scram)
            for user in directory.mailbox_users()
            if user.password_hash
        }
        try:
            published = PublishedTLS.from_config(data, hostname=hostname, domains=directory.domains)
        except ValueError as exc:
            section = "tls_reporting" if str(exc).startswith("[tls_reporting]") else "mta_sts"
            raise MailConfigError(str(exc), (section,)) from None
        burl = None
        if data.get("burl") is not None:
            try:
                burl = BurlSettings.from_config(data["burl"])
            except ValueError as exc:
                raise MailConfigError(str(exc), ("burl",)) from None
        return cls(directory, rules, queue, credentials, lmtp, authentication, published, burl)


def _local_delivery(table: Any) -> RelayHost | None:
    """``[local_delivery]``: ``lmtp = "HOST:PORT"`` (also ``lmtp://HOST:PORT``, or
    ``unix:/PATH`` for a socket, or a table like a route's); absent: Maildirs."""
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise MailConfigError("local_delivery: a table, like [local_delivery]", ("local_delivery",))
    for key in table:
        if key != "lmtp":
            raise MailConfigError(
                f"local_delivery: unknown setting {key!r}", ("local_delivery", key)
            )
    value = table.get("lmtp")
    if value is None or value == "":
        return None
    where = ("local_delivery", "lmtp")
    if not isinstance(value, str | Mapping):
        raise MailConfigError(
            "local_delivery: lmtp is an address: HOST:PORT, lmtp://HOST:PORT or unix:/PATH", where
        )
    try:
        host = RelayHost.parse(value, protocol="lmtp")
    except ValueError as exc:
        raise MailConfigError(f"local_delivery: lmtp: {exc}", where) from None
    if not host.lmtp:
        raise MailConfigError("local_delivery: lmtp speaks LMTP, not SMTP", where)
    return host


def _rules(table: Mapping[str, Any], hostname: str) -> MailServerRules:
    known = {f.name for f in fields(MailServerRules)} - {"hostname", "local_delivery"}
    values: dict[str, Any] = {"hostname": hostname}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise MailConfigError(f"policy: unknown setting {key!r}", ("policy", key))
        if name in ("greylist_delay", "greylist_expiry", "dns_timeout", "flood_window"):
            try:
                value = parse_duration(value)
            except ValueError as exc:
                raise MailConfigError(f"policy: {key}: {exc}", ("policy", key)) from None
        if name in ("block_list", "relay_networks"):
            import ipaddress

            try:
                value = tuple(str(ipaddress.ip_network(n, strict=False)) for n in value)
            except (ValueError, TypeError):
                raise MailConfigError(
                    f"policy: {key}: a list of networks like '192.0.2.0/24'", ("policy", key)
                ) from None
        if name == "dns_timeout" and value <= 0:
            raise MailConfigError("policy: dns_timeout must be positive", ("policy", key))
        if name in ("success_reports", "forward_bounces") and value not in ("trusted", "all"):
            raise MailConfigError(f"policy: {key} is 'trusted' or 'all'", ("policy", key))
        default = getattr(MailServerRules, name, None)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise MailConfigError(f"policy: {key} is true or false", ("policy", key))
        if (
            isinstance(default, int)
            and not isinstance(default, bool)
            and (not isinstance(value, int) or isinstance(value, bool) or value < 0)
        ):
            raise MailConfigError(f"policy: {key} is a whole number, 0 or more", ("policy", key))
        if name == "priority_raisers":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise MailConfigError(
                    'policy: priority_raisers is a list of users (or "*")', ("policy", key)
                )
            value = tuple(value)
        if name == "max_size_by_priority":
            value = _sizes_by_priority(value, key)
        if name == "mt_priority" and value not in ("", "MIXER", "STANAG4406", "NSEP"):
            raise MailConfigError(
                'policy: mt_priority is MIXER, STANAG4406, NSEP (RFC 6710 §9) or "" (off)',
                ("policy", key),
            )
        if name == "vrfy" and value not in ("never", "authenticated"):
            raise MailConfigError("policy: vrfy is 'never' or 'authenticated'", ("policy", key))
        if name == "full_mailbox" and value not in ("temporary", "permanent"):
            raise MailConfigError(
                "policy: full_mailbox is 'temporary' or 'permanent'", ("policy", key)
            )
        values[name] = value
    return MailServerRules(**values)


def _sizes_by_priority(value: Any, key: str) -> dict[int, int]:
    """``{ "-1" = "1M", "0" = "20M" }``: the largest message of that priority and below."""
    from mailroom.settings_types import ConfigError, parse_size

    if not isinstance(value, Mapping):
        raise MailConfigError(f'policy: {key} is a table like {{ "-1" = "1M" }}', ("policy", key))
    found: dict[int, int] = {}
    for priority, size in value.items():
        try:
            number = int(priority)
            if not -9 <= number <= 9:
                raise ValueError(priority)
            found[number] = parse_size(size)
        except (ValueError, ConfigError, TypeError):
            raise MailConfigError(
                f"policy: {key}: {priority!r} = {size!r} is not a priority (-9 to 9) and a size",
                ("policy", key),
            ) from None
    return found


def locate(text: str, key: tuple[str, ...]) -> int | None:
    """The line number (1-based) where ``key`` is set in the TOML ``text``, as best we can
    tell: the section header, then the key inside it."""
    if not key:
        return None
    lines = text.splitlines()
    section, rest = key[0], key[1:]
    start = None
    header = re.compile(rf"^\s*\[{{1,2}}\s*{re.escape(section)}(\s*\]|\.)")
    assignment = re.compile(rf'^\s*"?{re.escape(section)}"?\s*=')
    for number, line in enumerate(lines, start=1):
        if header.match(line) or assignment.match(line):
            start = number
            break
    if start is None:
        return None
    if not rest:
        return start
    # The key as written in TOML: quotes and backslashes inside a quoted key are escaped.
    name = "|".join(
        re.escape(text) for text in {rest[0], rest[0].replace("\\", "\\\\").replace('"', '\\"')}
    )
    # A table of its own: [users."alice@example.test"]
    table = re.compile(rf'^\s*\[{{1,2}}\s*{re.escape(section)}\s*\.\s*"?(?:{name})"?\s*\]')
    for number in range(start, len(lines) + 1):
        if table.match(lines[number - 1]):
            return number
    inner = re.compile(rf'^\s*"?(?:{name})"?\s*=')
    for number in range(start, len(lines) + 1):
        if inner.match(lines[number - 1]):
            return number
    return start
