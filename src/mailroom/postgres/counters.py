"""Counters a fleet shares: greylisting, messages per client address per minute, and AUTH
failures per client address, each a question answered by one statement in PostgreSQL.

They stand in for the in-memory ones of :mod:`mailroom.policy.mailserver` and
:mod:`mailroom.policy.authguard` (same methods, answers awaited), so a client cannot escape a
limit by being sent to another node, and a greylisted triple that retries on another node is
let through there. Each node asks over one connection of its own; a question the database
cannot answer raises, and the session answers ``451 4.3.0`` (the client tries again).

Times are wall-clock seconds (every node's clock; keep them in NTP's step). Rows past their
use are swept out by :meth:`Counters.sweep`, which each node runs every minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from typing import Any

from mailroom.postgres.connection import close_quietly, connection_options, require_psycopg

__all__ = ["Counters", "PgAuthFailures", "PgGreylist", "PgRateLimiter"]

log = logging.getLogger("mailroom.postgres")

SWEEP_INTERVAL = 60.0

GREYLIST = """
INSERT INTO greylist AS g (network, sender, recipient, first_seen, passed)
VALUES (%(network)s, %(sender)s, %(recipient)s, %(now)s, NULL)
ON CONFLICT (network, sender, recipient) DO UPDATE SET
    first_seen = CASE
        WHEN g.passed IS NOT NULL AND g.passed <= %(now)s - %(expiry)s THEN %(now)s
        ELSE g.first_seen END,
    passed = CASE
        WHEN g.passed IS NOT NULL AND g.passed > %(now)s - %(expiry)s THEN %(now)s
        WHEN g.passed IS NULL AND %(now)s - g.first_seen >= %(delay)s THEN %(now)s
        ELSE NULL END
RETURNING first_seen, passed
"""


class Counters:
    """One connection for a node's counter questions (psycopg serializes its users)."""

    def __init__(self, url: str, *, node: str) -> None:
        self.url = url
        self.node = node
        self._conn: Any = None
        self._connecting = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self.greylist_expiry = 36 * 3600.0
        self.greylist_delay = 300.0
        self.auth_window = 600.0
        self.queries = 0

    async def _connection(self) -> Any:
        async with self._connecting:
            if self._conn is None or self._conn.closed:
                psycopg = require_psycopg()
                self._conn = await psycopg.AsyncConnection.connect(
                    self.url,
                    autocommit=True,
                    **connection_options(f"mailroom {self.node} counters"),
                )
            return self._conn

    async def fetchone(self, sql: str, params: Any) -> Any:
        conn = await self._connection()
        self.queries += 1
        try:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone()
        except Exception:
            # A broken connection is made again by the next question.
            if conn.broken or conn.closed:
                self._conn = None
            raise

    async def execute(self, sql: str, params: Any = None) -> None:
        conn = await self._connection()
        try:
            await conn.execute(sql, params)
        except Exception:
            if conn.broken or conn.closed:
                self._conn = None
            raise

    def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep_every_minute())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def _sweep_every_minute(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self.sweep(time.time())
            except Exception as exc:
                log.debug("counters not swept: %s", exc)

    async def sweep(self, now: float) -> None:
        """Forget what no limit looks at any more (any node may do it; it is idempotent)."""
        await self.execute("DELETE FROM rate_counts WHERE minute < %s", (int(now // 60) - 1,))
        await self.execute("DELETE FROM auth_failures WHERE at <= %s", (now - self.auth_window,))
        await self.execute(
            "DELETE FROM greylist WHERE coalesce(passed, first_seen) < %s",
            (now - self.greylist_expiry - self.greylist_delay,),
        )

    def close_sync(self) -> None:
        close_quietly(self._conn)


def _network(ip: str) -> str:
    # As the in-memory greylist: big senders retry from another address of the same network.
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class PgGreylist:
    """RFC 6647 greylisting, fleet-wide (as :class:`mailroom.policy.mailserver.Greylist`)."""

    def __init__(self, counters: Counters, delay: float, expiry: float) -> None:
        self.counters = counters
        self.delay = delay
        self.expiry = expiry
        counters.greylist_delay, counters.greylist_expiry = delay, expiry

    async def check(self, ip: str, sender: str, recipient: str, now: float | None = None) -> float:
        """0 if the triple may pass, else the seconds left to wait."""
        now = time.time() if now is None else now
        first_seen, passed = await self.counters.fetchone(
            GREYLIST,
            {
                "network": _network(ip),
                "sender": sender.lower(),
                "recipient": recipient.lower(),
                "now": now,
                "delay": self.delay,
                "expiry": self.expiry,
            },
        )
        if passed is not None and passed >= now:
            return 0.0
        return max(self.delay - (now - float(first_seen)), 0.001)


class PgRateLimiter:
    """Messages per minute per client address, fleet-wide, over a sliding minute estimated
    from two one-minute counts (the database function ``mailroom_rate_allow``)."""

    def __init__(self, counters: Counters, per_minute: int) -> None:
        self.counters = counters
        self.per_minute = per_minute

    async def allow(self, ip: str, now: float | None = None) -> bool:
        if not self.per_minute:
            return True
        now = time.time() if now is None else now
        row = await self.counters.fetchone(
            "SELECT mailroom_rate_allow(%s, %s, %s)", (ip, now, self.per_minute)
        )
        return bool(row[0])


class PgAuthFailures:
    """Recent AUTH failures by client address, fleet-wide (as
    :class:`mailroom.policy.authguard.AuthFailures`; its clock must be wall-clock time)."""

    def __init__(self, counters: Counters, max_failures: int, window: float) -> None:
        self.counters = counters
        self.max_failures = max_failures
        self.window = window
        counters.auth_window = window

    async def blocked(self, address: str, now: float) -> bool:
        if not self.max_failures:
            return False
        row = await self.counters.fetchone(
            "SELECT count(*) FROM auth_failures WHERE client_ip = %s AND at > %s",
            (address, now - self.window),
        )
        return int(row[0]) >= self.max_failures

    async def record(self, address: str, now: float) -> None:
        if self.max_failures:
            await self.counters.execute(
                "INSERT INTO auth_failures (client_ip, at) VALUES (%s, %s)", (address, now)
            )
