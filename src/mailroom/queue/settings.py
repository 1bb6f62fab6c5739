"""The outbound queue's settings (``[queue]``, ``[routes]`` and ``[relay]`` of
``mailroom.toml``), named and with Postfix-like defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["QueueSettings", "RelayHost", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float) -> float:
    """``300``, ``"5m"``, ``"1h"``, ``"5d"`` → seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip().lower()
    if text and text[-1] in _UNITS:
        number, unit = text[:-1], _UNITS[text[-1]]
    else:
        number, unit = text, 1
    try:
        seconds = float(number) * unit
    except ValueError:
        raise ValueError(f"not a duration: {value!r} (write e.g. 300, '5m', '1h', '5d')") from None
    if seconds < 0:
        raise ValueError(f"a duration is not negative: {value!r}")
    return seconds


@dataclass(frozen=True)
class RelayHost:
    """A host to hand mail to instead of the recipient domain's MX (a smarthost, or a static
    route like Postfix's transport map)."""

    host: str
    port: int = 25
    tls: str = "opportunistic"  # none, opportunistic (STARTTLS when offered), starttls, implicit
    username: str | None = None
    password: str | None = None
    verify: bool = True  # check the relay's certificate (a route to 127.0.0.1 rarely has one)
    cafile: str | None = None

    @classmethod
    def parse(cls, value: str | Mapping[str, Any]) -> RelayHost:
        if isinstance(value, str):
            value = {"address": value}
        address = str(value.get("address", ""))
        host, sep, port = address.rpartition(":")
        if address.startswith("["):
            host, _, port = address[1:].partition("]:")
            sep = ":"
        if not sep or not port.isdigit():
            host, port = address, "25"
        if not host:
            raise ValueError("a relay host needs an address: HOST[:PORT]")
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
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    dns_servers: tuple[str, ...] = ()  # empty: the system's resolver
    routes: dict[str, RelayHost] = field(default_factory=dict)  # domain → host
    smarthost: RelayHost | None = None
    helo_name: str | None = None  # default: the server's hostname
    mx_port: int = 25  # the port MX hosts are reached on (another only for tests and labs)
    # A bounce returns the message whole (RET=FULL, the default) up to this size; larger
    # messages come back as their header only (Postfix: bounce_size_limit).
    bounce_size_limit: int = 1024 * 1024

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> QueueSettings:
        queue = dict(data.get("queue") or {})
        values: dict[str, Any] = {}
        if "retry_schedule" in queue:
            values["retry_schedule"] = tuple(parse_duration(v) for v in queue.pop("retry_schedule"))
        for key in ("max_age", "delay_warning", "connect_timeout", "command_timeout"):
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
        return cls(**values)

    def retry_after(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        schedule = self.retry_schedule or (3600.0,)
        return schedule[min(attempts, len(schedule)) - 1] if attempts > 0 else 0.0
