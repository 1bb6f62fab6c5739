"""The schema in PostgreSQL, as numbered SQL files (``migrations/NNNN_name.sql``), applied in
order by ``mailroom db migrate``.

Each file is applied in a transaction of its own together with its row in
``mailroom_migrations``, so a failing migration leaves the database at the version before it.
A session-level advisory lock keeps two nodes (or two admins) from migrating at once. Nodes do
not migrate by themselves: a node finds the schema older than it needs and refuses to start,
saying to run ``mailroom db migrate`` — in a fleet, the admin decides when the schema moves.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mailroom.postgres.connection import connection_options, redact, require_psycopg

__all__ = ["Migration", "SchemaError", "applied_versions", "check_schema", "migrate", "migrations"]

# pg_advisory_lock key: "mailroom" in ASCII, as a 64-bit integer.
LOCK_KEY = int.from_bytes(b"mailroom", "big") & 0x7FFFFFFFFFFFFFFF
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

TABLE = """
CREATE TABLE IF NOT EXISTS mailroom_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied double precision NOT NULL
)
"""


class SchemaError(Exception):
    """The database's schema is not the one this mailroom needs; the message says what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped, in order."""
    found = []
    for item in resources.files("mailroom.postgres").joinpath("migrations").iterdir():
        match = _NAME.fullmatch(item.name)
        if match is not None:
            found.append(Migration(int(match[1]), match[2], item.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def latest_version() -> int:
    shipped = migrations()
    return shipped[-1].version if shipped else 0


def applied_versions(conn: Any) -> set[int]:
    exists = conn.execute("SELECT to_regclass('mailroom_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM mailroom_migrations")}


def migrate(url: str, *, say: Callable[[str], None] | None = None) -> list[int]:
    """Apply the migrations the database lacks; the versions applied (none: up to date)."""
    psycopg = require_psycopg()
    done: list[int] = []
    with psycopg.connect(url, autocommit=True, **connection_options("mailroom migrate")) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(TABLE)
            have = applied_versions(conn)
            for migration in migrations():
                if migration.version in have:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO mailroom_migrations (version, name, applied) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, time.time()),
                    )
                done.append(migration.version)
                if say is not None:
                    say(f"applied {migration.version:04d}_{migration.name} to {redact(url)}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return done


def check_schema(conn: Any, url: str) -> None:
    """Raise SchemaError unless every shipped migration has been applied (and no newer one,
    which a newer mailroom made: this one would not know its tables)."""
    have = applied_versions(conn)
    shipped = {m.version for m in migrations()}
    missing = sorted(shipped - have)
    if missing:
        raise SchemaError(
            f"the database {redact(url)} lacks schema version(s) "
            f"{', '.join(str(v) for v in missing)}: run `mailroom db migrate --store URL`"
        )
    newer = sorted(v for v in have if v > max(shipped, default=0))
    if newer:
        raise SchemaError(
            f"the database {redact(url)} has schema version {newer[-1]}, newer than this "
            f"mailroom knows ({max(shipped, default=0)}): upgrade this node"
        )
