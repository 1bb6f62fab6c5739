"""Fault rules a whole fleet applies: kept in the ``fault_rules`` table, so a rule added
through any node's web API (or its Mailpit Chaos triggers) fires on every node.

:class:`SharedFaultRules` is what the web changes rules through (the same methods as the
fault injector): each change is one transaction, whose trigger notifies ``mailroom_faults``;
every node, this one included, then reads the table again into its injector. A node's own
rules (``--fault``) stay its own. Counts are a node's own too: ``times=N`` lets a rule fire N
times on each node, and ``every=N`` counts each node's sessions.

Changes are made with a blocking query on the event loop: they come from people (the web API,
a test), rarely, and each is one short statement; a node whose database is down answers them
with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from mailroom.activity.hub import Hub
from mailroom.policy.faults import FaultError, FaultInjector, FaultRule, parse_rule
from mailroom.postgres.connection import close_quietly, connection_options, require_psycopg

__all__ = ["FAULTS_CHANNEL", "SharedFaultRules"]

log = logging.getLogger("mailroom.postgres")

FAULTS_CHANNEL = "mailroom_faults"


class SharedFaultRules:
    def __init__(self, url: str, *, node: str, injector: FaultInjector, hub: Hub) -> None:
        self.url = url
        self.node = node
        self.injector = injector
        self.hub = hub
        self._psycopg = require_psycopg()
        self._conn: Any = None
        self._reloads: set[asyncio.Task[None]] = set()

    @property
    def rules(self) -> list[FaultRule]:
        return self.injector.rules

    def _db(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self._psycopg.connect(
                self.url, autocommit=True, **connection_options(f"mailroom {self.node} faults")
            )
        return self._conn

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None

    # -- reading the table ---------------------------------------------------------------------

    def load(self) -> None:
        """Read the fleet's rules into this node's injector (a blocking query)."""
        try:
            rows = self._db().execute("SELECT id, rule, origin FROM fault_rules ORDER BY id")
            found = rows.fetchall()
        except Exception:
            self.close()
            raise
        rules = []
        for rule_id, text, origin in found:
            try:
                rule = parse_rule(text)
            except FaultError as exc:
                log.error("fault rule %d in the database cannot be read: %s", rule_id, exc)
                continue
            rule.id, rule.origin = int(rule_id), origin
            rules.append(rule)
        self.injector.load_shared(rules)

    async def reload(self, payload: str = "") -> None:
        """After a change notification: read the table, tell this node's live views."""
        try:
            await asyncio.to_thread(self.load)
        except Exception as exc:
            log.error("fault rules not read: %s", exc)
            return
        if self.hub.active:
            self.hub.publish("faults", {"rules": [r.to_dict() for r in self.rules]})

    def changed(self, payload: str) -> None:
        task = asyncio.ensure_future(self.reload(payload))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    # -- changing it (the web API's FaultRules) ------------------------------------------------

    def add(self, rule: FaultRule | str) -> FaultRule:
        if isinstance(rule, str):
            rule = parse_rule(rule)
        row = (
            self._db()
            .execute(
                "INSERT INTO fault_rules (rule, origin) VALUES (%s, %s) RETURNING id",
                (rule.describe(), rule.origin),
            )
            .fetchone()
        )
        self.load()  # at once here; the other nodes on the notification
        return next((r for r in self.rules if r.id == row[0]), rule)

    def remove(self, rule_id: int) -> bool:
        if not any(r.id == rule_id and r.shared for r in self.rules):
            return self.injector.remove(rule_id)  # a rule of this node's own
        deleted = self._db().execute("DELETE FROM fault_rules WHERE id = %s", (rule_id,)).rowcount
        self.load()
        return bool(deleted)

    def clear(self) -> None:
        self._db().execute("DELETE FROM fault_rules")
        self.injector.clear()
        self.load()

    def replace(self, old: Callable[[FaultRule], bool], new: list[FaultRule]) -> None:
        """In one transaction: no node sees the set half changed."""
        gone = [r.id for r in self.rules if r.shared and old(r)]
        local = [r.id for r in self.rules if not r.shared and old(r)]
        db = self._db()
        with db.transaction(), db.cursor() as cursor:
            cursor.execute("DELETE FROM fault_rules WHERE id = ANY(%s)", (gone,))
            cursor.executemany(
                "INSERT INTO fault_rules (rule, origin) VALUES (%s, %s)",
                [(rule.describe(), rule.origin) for rule in new],
            )
        for rule_id in local:
            self.injector.remove(rule_id)
        with contextlib.suppress(Exception):
            self.load()
