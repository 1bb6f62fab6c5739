"""Connecting to PostgreSQL: URLs, connection settings, and which errors mean the database is
out of reach (as opposed to a bug in a query).

Every connection mailroom opens says who it is (``application_name``, seen in
``pg_stat_activity``), gives up connecting after :data:`CONNECT_TIMEOUT` seconds, and has TCP
keepalives and a TCP user timeout, so a database host that vanishes (a cable, a crash of its
machine) is noticed in seconds rather than after the kernel's two hours.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from typing import TYPE_CHECKING, Any

from mailroom.settings_types import ConfigError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "CONNECT_TIMEOUT",
    "DatabaseUnavailable",
    "connection_options",
    "is_postgres_url",
    "is_unavailable",
    "redact",
    "require_psycopg",
]

CONNECT_TIMEOUT = 5  # seconds to reach the database before a node says it is unavailable
# libpq's keepalive settings: a silent peer is found dead after about idle + interval * count.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # ms: unacknowledged data this long means the peer is gone
}


class DatabaseUnavailable(Exception):
    """The database cannot be reached (or lost the connection mid-way); nothing was kept."""


def is_postgres_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def require_psycopg() -> Any:
    """The psycopg module, or a ConfigError that says how to install it."""
    try:
        return importlib.import_module("psycopg")
    except ImportError:
        raise ConfigError(
            "a postgresql:// store needs psycopg 3: pip install 'mailroom[postgresql]'"
        ) from None


def connection_options(application: str) -> dict[str, Any]:
    """Keyword arguments for ``psycopg.connect`` (and ``AsyncConnection.connect``)."""
    return {
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": application[:63],
        **KEEPALIVES,
    }


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database is out of reach (refused, lost, shutting down,
    read-only after a failover, too many connections) rather than a query being wrong."""
    import psycopg

    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    sqlstate = getattr(error, "sqlstate", None) or ""
    # 08: connection exception; 57P: operator intervention (shutdown, crash of a backend);
    # 53: insufficient resources; 25006: read-only transaction (a standby after a failover).
    return sqlstate.startswith(("08", "57P", "53")) or sqlstate == "25006"


def close_quietly(conn: psycopg.Connection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):  # already broken: nothing to tell
            conn.close()
