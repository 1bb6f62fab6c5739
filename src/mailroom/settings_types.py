"""Plain values that settings are made of, and their parsers: listener addresses
(``HOST:PORT``), sizes (``50M``) and durations (``5m``).

The bottom of the house: it imports nothing of mailroom's, so configuration (``config.py``,
``mailconfig.py``), policy, the queue and the server can all share these types without
importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "Listener",
    "MiB",
    "parse_duration",
    "parse_hostport",
    "parse_size",
]

MiB = 1024 * 1024


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    implicit_tls: bool = False  # SMTPS (RFC 8314): TLS from the first byte
    role: str = "catcher"  # catcher, mx, submission, submissions (see mailroom.roles)
    # MT-PRIORITY (RFC 6710): the lowest priority this listener takes (550 5.7.15 below it)
    min_priority: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "smtps" if self.implicit_tls else "smtp"
        role = f" ({self.role})" if self.role != "catcher" else ""
        return f"{scheme}://{host}:{self.port}{role}"


def parse_hostport(text: str, *, implicit_tls: bool = False) -> Listener:
    """``HOST:PORT``, ``[::1]:PORT`` or ``:PORT`` (all addresses)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"not HOST:PORT: {text!r}")
    return Listener(host or "0.0.0.0", int(port), implicit_tls)


_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1024,
    "KIB": 1024,
    "M": MiB,
    "MB": MiB,
    "MIB": MiB,
    "G": 1024 * MiB,
    "GB": 1024 * MiB,
    "GIB": 1024 * MiB,
}


def parse_size(value: str | int) -> int:
    """``52428800``, ``50M``, ``50MiB``, ``1G``; 0 means no limit."""
    if isinstance(value, int):
        return value
    text = value.strip().upper().replace(" ", "")
    digits = text.rstrip("KMGIB")
    unit = text[len(digits) :]
    if not digits.isdigit() or unit not in _SIZE_UNITS:
        raise ConfigError(f"not a size: {value!r}")
    return int(digits) * _SIZE_UNITS[unit]


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | int | float) -> float:
    """``300``, ``"5m"``, ``"1h"``, ``"5d"`` → seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip().lower()
    if text and text[-1] in _DURATION_UNITS:
        number, unit = text[:-1], _DURATION_UNITS[text[-1]]
    else:
        number, unit = text, 1
    try:
        seconds = float(number) * unit
    except ValueError:
        raise ValueError(f"not a duration: {value!r} (write e.g. 300, '5m', '1h', '5d')") from None
    if seconds < 0:
        raise ValueError(f"a duration is not negative: {value!r}")
    return seconds
