"""The outbound queue's settings (``[queue]``, ``[routes]``, ``[relay]`` and
``[outbound_tls]`` of ``mailroom.toml``), named and with Postfix-like defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailroom.queue.tls_settings import TLSPolicySettings
from mailroom.settings_types import parse_duration

__all__ = ["LMTP_PORT", "QueueSettings", "RelayHost", "parse_duration"]

LMTP_PORT = 24  # what Dovecot's and Cyrus's LMTP examples use; RFC 2033 names no port
_RELAY_KEYS = {
    "address",
    "protocol",
    "tls",
    "username",
    "password",
    "verify",
    "cafile",
    "min_priority",
}


@dataclass(frozen=True)
class RelayHost:
    """A host to hand mail to instead of the recipient domain's MX (a smarthost, or a static
    route like Postfix's transport map), over SMTP or LMTP (RFC 2033: a mail store such as
    Dovecot's LMTP server), on ``host:port`` or on the unix socket ``socket``."""

    host: str
    port: int = 25
    tls: str = "opportunistic"  # none, opportunistic (STARTTLS when offered), starttls, implicit
    username: str | None = None
    password: str | None = None
    verify: bool = True  # check the relay's certificate (a route to 127.0.0.1 rarely has one)
    cafile: str | None = None
    protocol: str = "smtp"  # or "lmtp"
    socket: str | None = None  # a unix socket's path (host and port are then unused)
    # MT-PRIORITY (RFC 6710): the lowest priority this route takes; lower: 550 5.7.15 at RCPT
    min_priority: int | None = None

    @property
    def lmtp(self) -> bool:
        return self.protocol == "lmtp"

    @property
    def name(self) -> str:
        """How logs and destinations name it: ``127.0.0.1:24``, ``[::1]:25``, ``unix:PATH``."""
        if self.socket is not None:
            return f"unix:{self.socket}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, value: str | Mapping[str, Any], *, protocol: str | None = None) -> RelayHost:
        """``"HOST[:PORT]"``, ``"[IPv6]:PORT"``, ``"lmtp://HOST[:PORT]"``, ``"smtp://…"``,
        ``"unix:/PATH"`` or ``"/PATH"`` (a unix socket), or a table with ``address`` and
        ``protocol``, ``tls``, ``username``, ``password``, ``verify``, ``cafile``.
        ``protocol`` is the default when neither the address nor the table names one."""
        if isinstance(value, str):
            value = {"address": value}
        unknown = set(value) - _RELAY_KEYS
        if unknown:
            raise ValueError(f"unknown setting {sorted(unknown)[0]!r}")
        minimum = value.get("min_priority")
        if minimum is not None and (
            not isinstance(minimum, int) or isinstance(minimum, bool) or not -9 <= minimum <= 9
        ):
            raise ValueError("min_priority is a priority from -9 to 9 (RFC 6710)")
        address = str(value.get("address", "")).strip()
        scheme, sep, rest = address.partition("://")
        if sep:
            if scheme.lower() not in ("smtp", "lmtp"):
                raise ValueError(f"{scheme}:// is not a protocol mailroom speaks (smtp, lmtp)")
            address, scheme = rest, scheme.lower()
        else:
            scheme = ""
        named = str(value.get("protocol", "")).lower()
        if named and named not in ("smtp", "lmtp"):
            raise ValueError("protocol is smtp or lmtp")
        if named and scheme and named != scheme:
            raise ValueError(f"the address says {scheme}, protocol says {named}")
        kind = named or scheme or protocol or "smtp"

        socket_path: str | None = None
        if address.startswith("unix:"):
            socket_path = address[len("unix:") :]
        elif address.startswith("/"):
            socket_path = address
        if socket_path is not None:
            if not socket_path.startswith("/"):
                raise ValueError("a unix socket needs an absolute path: unix:/PATH")
            tls = str(value.get("tls", "none"))
            if tls != "none":
                raise ValueError("a unix socket takes no TLS (tls = 'none')")
            return cls(
                "localhost",
                0,
                "none",
                value.get("username"),
                value.get("password"),
                bool(value.get("verify", True)),
                value.get("cafile"),
                kind,
                socket_path,
                minimum,
            )

        default_port = str(LMTP_PORT if kind == "lmtp" else 25)
        host, sep, port = address.rpartition(":")
        if address.startswith("["):
            host, _, port = address[1:].partition("]:")
            sep = ":"
            if not port:
                host, port = address[1:].rstrip("]"), default_port
        if not sep or not port.isdigit():
            host, port = address, default_port
        if not host:
            raise ValueError("a relay host needs an address: HOST[:PORT]")
        if kind == "lmtp" and int(port) == 25:
            raise ValueError("LMTP must not be spoken on port 25 (RFC 2033 §5)")
        tls = str(value.get("tls", "opportunistic"))
        if tls not in ("none", "opportunistic", "starttls", "implicit"):
            raise ValueError("tls is none, opportunistic, starttls or implicit")
        return cls(
            host,
            int(port),
            tls,
            value.get("username"),
            value.get("password"),
            bool(value.get("verify", True)),
            value.get("cafile"),
            kind,
            min_priority=minimum,
        )


@dataclass(frozen=True)
class QueueSettings:
    # When to try again after a temporary failure, counted from the first attempt: like
    # Postfix, from 5 minutes backing off to about an hour, then hourly; give up after 5 days.
    retry_schedule: tuple[float, ...] = (300.0, 600.0, 1200.0, 2400.0, 3600.0)
    max_age: float = 5 * 86400.0
    delay_warning: float = 4 * 3600.0  # 0: no delay warnings
    max_connections: int = 50  # outbound connections at once
    max_per_destination: int = 5  # outbound connections at once to one domain
    # RFC 5321 §4.5.3.2's timeouts, as Postfix keeps them: the TCP connection (Postfix's
    # smtp_connect_timeout), each reply from the greeting on (5 minutes, the RFC's for the
    # greeting, MAIL and RCPT), and the reply after the message (10 minutes: the server is
    # delivering it, and giving up then delivers it twice; smtp_data_done_timeout).
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    data_done_timeout: float = 600.0
    dns_servers: tuple[str, ...] = ()  # empty: the system's resolver
    routes: dict[str, RelayHost] = field(default_factory=dict)  # domain → host
    smarthost: RelayHost | None = None
    # [local_delivery] lmtp: mail for the local domains goes to this LMTP server (the mail
    # server mode fills these in; the queue never decides what is local itself).
    local_lmtp: RelayHost | None = None
    local_domains: frozenset[str] = frozenset()
    helo_name: str | None = None  # default: the server's hostname
    mx_port: int = 25  # the port MX hosts are reached on (another only for tests and labs)
    # A bounce returns the message whole (RET=FULL, the default) up to this size; larger
    # messages come back as their header only (Postfix: bounce_size_limit).
    bounce_size_limit: int = 1024 * 1024
    # [outbound_tls]: how MX hosts' TLS is checked (DANE, MTA-STS, levels per domain), TLS
    # reports (RFC 8460); see mailroom.queue.tls_settings.
    tls: TLSPolicySettings = field(default_factory=TLSPolicySettings)

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> QueueSettings:
        queue = dict(data.get("queue") or {})
        values: dict[str, Any] = {}
        if "retry_schedule" in queue:
            values["retry_schedule"] = tuple(parse_duration(v) for v in queue.pop("retry_schedule"))
        for key in (
            "max_age",
            "delay_warning",
            "connect_timeout",
            "command_timeout",
            "data_done_timeout",
        ):
            if key in queue:
                values[key] = parse_duration(queue.pop(key))
        for key in ("max_connections", "max_per_destination", "mx_port", "bounce_size_limit"):
            if key in queue:
                values[key] = int(queue.pop(key))
        if "helo_name" in queue:
            values["helo_name"] = str(queue.pop("helo_name"))
        if queue:
            raise ValueError(f"[queue]: unknown setting {next(iter(queue))!r}")
        if data.get("dns_servers"):
            values["dns_servers"] = tuple(str(s) for s in data["dns_servers"])
        routes = data.get("routes") or {}
        values["routes"] = {
            str(domain).lower(): RelayHost.parse(target) for domain, target in routes.items()
        }
        relay = data.get("relay")
        if relay:
            values["smarthost"] = RelayHost.parse(relay)
        values["tls"] = TLSPolicySettings.from_config(data.get("outbound_tls"))
        return cls(**values)

    def retry_after(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        schedule = self.retry_schedule or (3600.0,)
        return schedule[min(attempts, len(schedule)) - 1] if attempts > 0 else 0.0
