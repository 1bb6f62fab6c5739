"""The directory of the mail server mode (domains, users, aliases) read from PostgreSQL, so a
user added on one node receives and authenticates on all of them.

Each node keeps the whole directory in memory, as the configuration file's tables are kept:
every RCPT and AUTH is answered from memory, never with a query. The copy is read again when a
change notification comes (triggers on the three tables NOTIFY ``mailroom_directory`` as the
change commits) and, in any case, every ``cache`` seconds (for queries over the admin's own
tables, which send no notification). A read that fails (the database is down, a row is bad)
keeps the copy there was; a node that never read one refuses to begin transactions (the store
gate's 421/451) rather than say "no such user".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from mailroom.policy.directory import Directory
from mailroom.postgres.connection import (
    close_quietly,
    connection_options,
    redact,
    require_psycopg,
)

__all__ = ["DIRECTORY_CHANNEL", "DirectoryReader", "import_directory", "read_directory"]

log = logging.getLogger("mailroom.postgres")

DIRECTORY_CHANNEL = "mailroom_directory"
DEBOUNCE = 0.05  # seconds: a burst of changes (an import) is read once


def read_directory(
    conn: Any, queries: tuple[str, str, str], *, fold_local_part: bool
) -> tuple[Directory, dict[str, tuple[str, str | None]]]:
    """The directory the three queries give, and the users who may AUTH (address ->
    (argon2 hash, SCRAM secret)). Raises DirectoryError for a row the configuration file
    would not accept either."""
    domains_query, users_query, aliases_query = queries
    domains = sorted(str(row[0]).lower().rstrip(".") for row in conn.execute(domains_query))
    users: dict[str, dict[str, Any]] = {}
    for address, password, scram, quota in conn.execute(users_query):
        entry: dict[str, Any] = {"quota": int(quota or 0)}
        if password:
            entry["password"] = password
        if scram:
            entry["scram"] = scram
        users[str(address)] = entry
    aliases: dict[str, Any] = {}
    for address, target, moved_to in conn.execute(aliases_query):
        if moved_to:
            aliases[str(address)] = {"moved_to": str(moved_to)}
            continue
        targets = aliases.setdefault(str(address), [])
        if isinstance(targets, list) and target:
            targets.append(str(target))
    conn.commit()
    # Primary domain: the configuration file's first domain; here the first by name.
    directory = Directory.from_config(
        {
            "domains": domains,
            "users": users,
            "aliases": aliases,
            "case_insensitive_local_part": fold_local_part,
        }
    )
    credentials = {
        user.address: (user.password_hash, user.scram)
        for user in directory.mailbox_users()
        if user.password_hash
    }
    return directory, credentials


class DirectoryReader:
    """Reads the directory, now and whenever told or due; hands each new copy to
    ``on_change(directory, credentials)`` in the event loop."""

    def __init__(
        self,
        url: str,
        *,
        node: str,
        queries: tuple[str, str, str],
        cache: float,
        fold_local_part: bool,
        on_change: Callable[[Directory, dict[str, tuple[str, str | None]]], None],
    ) -> None:
        self.url = url
        self.node = node
        self.queries = queries
        self.cache = cache
        self.fold_local_part = fold_local_part
        self.on_change = on_change
        self.loaded = False  # a copy was read at least once
        self.reads = 0
        self.last_read = 0.0
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()
        self._lock = asyncio.Lock()

    def _read(self) -> tuple[Directory, dict[str, tuple[str, str | None]]]:
        if self._conn is None:
            self._conn = require_psycopg().connect(
                self.url, **connection_options(f"mailroom {self.node} directory")
            )
        try:
            return read_directory(self._conn, self.queries, fold_local_part=self.fold_local_part)
        except BaseException:
            close_quietly(self._conn)
            self._conn = None
            raise

    async def refresh(self) -> bool:
        """Read the directory now; False (the old copy kept) if that failed."""
        async with self._lock:
            try:
                directory, credentials = await asyncio.to_thread(self._read)
            except Exception as exc:
                log.error("directory not read from %s: %s", redact(self.url), exc)
                return False
            self.on_change(directory, credentials)
            self.loaded = True
            self.reads += 1
            self.last_read = time.monotonic()
            return True

    def changed(self, payload: str = "") -> None:
        """A change notification (or a reconnection): read again soon."""
        self._wanted.set()

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(close_quietly, self._conn)
        self._conn = None

    async def _run(self) -> None:
        while True:
            # Due at the cache's end, or sooner while no copy was ever read.
            timeout = self.cache if self.loaded else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), timeout)
            await asyncio.sleep(DEBOUNCE)
            self._wanted.clear()
            await self.refresh()


def import_directory(url: str, directory: Directory) -> dict[str, int]:
    """Replace the directory tables' rows with ``directory`` (a configuration file's), in one
    transaction; how many rows each table got."""
    psycopg = require_psycopg()
    with psycopg.connect(url, **connection_options("mailroom import-directory")) as conn:
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("DELETE FROM aliases")
            cursor.execute("DELETE FROM users")
            cursor.execute("DELETE FROM domains")
            cursor.executemany(
                "INSERT INTO domains (name) VALUES (%s)", [(d,) for d in sorted(directory.domains)]
            )
            cursor.executemany(
                "INSERT INTO users (address, password, scram, quota) VALUES (%s, %s, %s, %s)",
                [(u.address, u.password_hash, u.scram, u.quota) for u in directory.mailbox_users()],
            )
            rows = [
                (address, target, None)
                for address, targets in directory.aliases.items()
                for target in targets
            ] + [(address, None, moved) for address, moved in directory.moved.items()]
            cursor.executemany(
                "INSERT INTO aliases (address, target, moved_to) VALUES (%s, %s, %s)", rows
            )
        return {
            "domains": len(directory.domains),
            "users": len(directory.users),
            "aliases": len(rows),
        }
