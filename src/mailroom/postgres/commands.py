"""``mailroom db``: the PostgreSQL database of a fleet from the command line.

- ``mailroom db migrate --store URL`` (or ``--config FILE``): apply the schema's migrations
  the database lacks (safe to run from several places at once: they take turns);
- ``mailroom db status``: the versions applied and those still to apply;
- ``mailroom db import-directory --config FILE``: copy the ``domains``, ``[users]`` and
  ``[aliases]`` of a mailroom.toml into the directory tables (replacing what they held).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_db_command"]

ConfigReader = Callable[[Path], Any]


def _url(args: argparse.Namespace, read_config: ConfigReader) -> str | None:
    from mailroom.postgres.connection import is_postgres_url

    url: str | None = args.store
    if url is None and args.config is not None:
        url = read_config(args.config).store
    if url is None or not is_postgres_url(url):
        print(
            "mailroom db: give --store postgresql://USER@HOST/DB, or --config FILE whose "
            "store is one",
            file=sys.stderr,
        )
        return None
    return url


def _cmd_migrate(args: argparse.Namespace, read_config: ConfigReader) -> int:
    from mailroom.postgres.migrate import migrate

    url = _url(args, read_config)
    if url is None:
        return 2
    try:
        applied = migrate(url, say=print)
    except Exception as exc:
        print(f"mailroom db migrate: {exc}", file=sys.stderr)
        return 1
    if not applied:
        print("mailroom db migrate: the schema is up to date")
    return 0


def _cmd_status(args: argparse.Namespace, read_config: ConfigReader) -> int:
    from mailroom.postgres.connection import connection_options, require_psycopg
    from mailroom.postgres.migrate import applied_versions, migrations

    url = _url(args, read_config)
    if url is None:
        return 2
    psycopg = require_psycopg()
    try:
        with psycopg.connect(url, **connection_options("mailroom db status")) as conn:
            have = applied_versions(conn)
    except Exception as exc:
        print(f"mailroom db status: {exc}", file=sys.stderr)
        return 1
    pending = 0
    for migration in migrations():
        state = "applied" if migration.version in have else "pending"
        pending += state == "pending"
        print(f"{migration.version:04d}_{migration.name}: {state}")
    return 1 if pending else 0


def _cmd_import_directory(args: argparse.Namespace, read_config: ConfigReader) -> int:
    from mailroom.postgres.directory import import_directory

    url = _url(args, read_config)
    if url is None:
        return 2
    config = read_config(args.config)
    if config.mail is None:
        print("mailroom db import-directory: the file has no domains", file=sys.stderr)
        return 2
    counts = import_directory(url, config.mail.directory)
    print(
        "mailroom db import-directory: "
        + ", ".join(f"{count} {table}" for table, count in counts.items())
    )
    return 0


def add_db_command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    *,
    read_config: ConfigReader,
) -> None:
    """``mailroom db``; ``read_config(path)`` reads a mailroom.toml (given by the command line,
    which sits above this part)."""
    db = commands.add_parser("db", help="the PostgreSQL database of a fleet (migrate, status)")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    def where(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--store", metavar="URL", help="postgresql://USER@HOST/DB")
        parser.add_argument("--config", type=Path, metavar="FILE", help="a mailroom.toml")

    migrate = actions.add_parser("migrate", help="apply the schema's pending migrations")
    where(migrate)
    migrate.set_defaults(func=lambda args: _cmd_migrate(args, read_config))
    status = actions.add_parser("status", help="which migrations are applied (exit 1: pending)")
    where(status)
    status.set_defaults(func=lambda args: _cmd_status(args, read_config))
    directory = actions.add_parser(
        "import-directory", help="copy a mailroom.toml's domains, users and aliases into it"
    )
    where(directory)
    directory.set_defaults(func=lambda args: _cmd_import_directory(args, read_config))
