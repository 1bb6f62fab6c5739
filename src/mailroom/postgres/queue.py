"""The outbound queue a fleet shares, with leases: any node delivers any entry, no two at once,
and a dead node's entries are taken over by the others.

A node's runner works only on entries it holds a lease on (``lease_owner``, ``lease_until`` in
database time). :class:`PgQueue` gives the runner the queue's methods
(:class:`~mailroom.queue.entry.QueueStore`) and keeps its leases:

- **claim**: every second, and at once when this node's store queues something, it takes due
  entries nobody holds (or whose lease ran out) with ``FOR UPDATE SKIP LOCKED``, so nodes
  claiming at the same moment take different entries; then wakes the runner for them;
- **renew**: every ``lease / 3`` seconds, one statement extends the lease of everything it holds;
  an entry whose lease is gone (another node took it after this one could not renew) is
  dropped from the runner (``forget``);
- **save**: each recipient's outcome is written as the remote server gives it, only while the
  lease is ours (``WHERE lease_owner = me``); the runner saves after every reply to the end of
  data, before anything else, so a node that dies leaves every acknowledged recipient recorded;
- **no transaction without a safe lease**: the message is read for a transaction only while at
  least a third of the lease is left, so a node cut off from the database stops sending long
  before another node may take the entry over.

A node that dies loses its leases at expiry; another node then delivers what was not settled.
Only a reply the dead node got but had not yet written (the moment between a 250 and its
COMMIT) is sent again — RFC 5321 §6.1's duplicate, never a loss.

``mailroom queue retry|delete`` (:mod:`mailroom.postgres.queue_view`) acts on an entry nobody
holds in the database itself, under the same row locks and lease test as a claim; an entry a
node holds it asks that node for, on the ``mailroom_queue`` channel (:meth:`PgQueue.request`):
the node's runner acts as on a file queue's request (a round in flight finishes its
transaction; a deleted entry gets nothing more) and answers on ``mailroom_queue_done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from mailroom.filemodes import private_dir
from mailroom.postgres.connection import (
    close_quietly,
    connection_options,
    is_unavailable,
    require_psycopg,
)
from mailroom.queue.entry import QueueEntry

__all__ = ["QUEUE_CHANNEL", "QUEUE_DONE_CHANNEL", "LeaseLost", "PgQueue"]

log = logging.getLogger("mailroom.delivery")

LEASE = 60.0  # seconds a claim holds an entry without renewal
CLAIM_INTERVAL = 1.0  # seconds between looks for due entries nobody holds
CLAIM_BATCH = 100  # entries taken in one claim
MAX_HELD = 1000  # entries one node holds at most (the runner's rounds are bounded too)

# `mailroom queue retry|delete` asks the node holding an entry on QUEUE_CHANNEL
# ({"request", "action", "ids"}: ids null for every entry held); the node answers on
# QUEUE_DONE_CHANNEL ({"request", "owner", "action", "ids"}: the ids it acted on).
QUEUE_CHANNEL = "mailroom_queue"
QUEUE_DONE_CHANNEL = "mailroom_queue_done"
# A runner's application_name (pg_stat_activity): how the command knows a node runs the queue.
RUNNER_APPLICATION = "mailroom queue runner "

DB_NOW = "extract(epoch FROM clock_timestamp())"
CLAIM = f"""
UPDATE queue_entries q SET lease_owner = %(me)s, lease_until = {DB_NOW} + %(lease)s
FROM (
    SELECT id FROM queue_entries
    WHERE next_attempt <= %(now)s
      AND (lease_owner IS NULL OR lease_until < {DB_NOW})
      AND NOT (id = ANY(%(skip)s))
    ORDER BY next_attempt
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) due
WHERE q.id = due.id
RETURNING q.id, q.state
"""
RENEW = f"""
UPDATE queue_entries SET lease_until = {DB_NOW} + %(lease)s
WHERE lease_owner = %(me)s AND id = ANY(%(ids)s)
RETURNING id
"""


class LeaseLost(Exception):
    """This node no longer holds (or may soon lose) the lease on an entry: nothing more is
    sent or saved for it from here."""


class Runner(Protocol):
    def wake(self, ids: list[str]) -> None: ...

    def forget(self, ids: list[str]) -> None: ...

    def readmit(self, queue_id: str) -> bool: ...

    def retry_now(self, ids: list[str] | None = None) -> list[str]: ...

    async def delete(self, ids: list[str]) -> list[str]: ...


class PgQueue:
    head_on_loop = False  # read_head is a database round trip: run in a worker thread

    def __init__(self, url: str, *, owner: str, root: Path, lease: float = LEASE) -> None:
        self.url = url
        self.owner = owner  # unique per running node: "<node>/<pid>.<random>"
        self.root = root
        self.lease = lease
        self.runner: Runner | None = None
        self._psycopg = require_psycopg()
        self._conn: Any = None
        self._conn_lock = threading.Lock()
        self._held: dict[str, QueueEntry] = {}
        self._safe_until: dict[str, float] = {}  # monotonic: send only before this
        self._forgotten: dict[str, float] = {}  # lost leases, and when they were lost
        self._claim_now = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._requests: set[asyncio.Task[None]] = set()
        # counters
        self.claimed = 0
        self.renewals = 0
        self.lost = 0

    # -- the connection (a blocking one, used from worker threads and, briefly, the loop) ------

    def _run(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._conn_lock:
            try:
                if self._conn is None:
                    self._conn = self._psycopg.connect(
                        self.url,
                        autocommit=True,
                        **connection_options(f"{RUNNER_APPLICATION}{self.owner}"),
                    )
                cursor = self._conn.execute(sql, params)
                return cursor.fetchall() if cursor.description is not None else []
            except Exception as exc:
                if is_unavailable(exc):
                    close_quietly(self._conn)
                    self._conn = None
                raise

    # -- the QueueStore methods the runner calls ----------------------------------------------

    def ensure(self) -> PgQueue:
        private_dir(self.root)
        return self

    def ids(self) -> list[str]:
        return sorted(self._held)

    def has(self, queue_id: str) -> bool:
        return queue_id in self._held

    def load(self, queue_id: str) -> QueueEntry | None:
        return self._held.get(queue_id)

    def entries(self) -> Iterator[QueueEntry]:
        return iter([])  # nothing at start: the claims bring entries as they are due

    def save(self, entry: QueueEntry) -> None:
        rows = self._run(
            "UPDATE queue_entries SET state = %s, next_attempt = %s, "
            f"updated = {DB_NOW} WHERE id = %s AND lease_owner = %s RETURNING id",
            (entry.to_json().decode(), entry.next_attempt, entry.id, self.owner),
        )
        if not rows:
            self._lose([entry.id])
            raise LeaseLost(f"{entry.id}: another node holds it now; its state is not saved")

    def remove(self, queue_id: str) -> None:
        # Every recipient is final and reported: the entry goes, and with it the message when
        # nothing but the queue kept it (relayed mail), as the file queue deletes its files.
        self._run(
            "WITH gone AS (DELETE FROM queue_entries WHERE id = %s AND lease_owner = %s "
            "RETURNING id) DELETE FROM messages WHERE id IN (SELECT id FROM gone) "
            "AND mailbox = '(queue)'",
            (queue_id, self.owner),
        )
        self._held.pop(queue_id, None)
        self._safe_until.pop(queue_id, None)

    def read_message(self, queue_id: str) -> bytes:
        if self._safe_until.get(queue_id, 0.0) <= time.monotonic():
            raise LeaseLost(f"{queue_id}: the lease is not safely held; not sending")
        header = self._run("SELECT header FROM queue_entries WHERE id = %s", (queue_id,))
        chunks = self._run(
            "SELECT chunk FROM message_bodies WHERE id = %s ORDER BY seq", (queue_id,)
        )
        if not header:
            raise LeaseLost(f"{queue_id}: no longer queued")
        return bytes(header[0][0]) + b"".join(bytes(c[0]) for c in chunks)

    def read_head(self, queue_id: str, size: int) -> bytes:
        rows = self._run(
            "SELECT q.header, b.chunk FROM queue_entries q LEFT JOIN message_bodies b "
            "ON b.id = q.id AND b.seq = 0 WHERE q.id = %s",
            (queue_id,),
        )
        if not rows:
            raise FileNotFoundError(f"{queue_id}: no longer queued")
        header, first = rows[0]
        return (bytes(header) + bytes(first or b""))[:size]

    # -- leases ------------------------------------------------------------------------------------

    def claim_soon(self, ids: list[str] | None = None) -> None:
        """The store queued something (its ``on_queued``): look for due entries now."""
        self._claim_now.set()

    def claim(self) -> list[str]:
        """Take due entries nobody holds; the ids taken (blocking)."""
        room = MAX_HELD - len(self._held)
        if room <= 0:
            return []
        now = time.time()
        asked = time.monotonic()
        rows = self._run(
            CLAIM,
            {
                "me": self.owner,
                "lease": self.lease,
                "now": now,
                "skip": list(self._forgotten),
                "limit": min(room, CLAIM_BATCH),
            },
        )
        taken = []
        for queue_id, state in rows:
            data = state if isinstance(state, dict) else json.loads(state)
            self._held[queue_id] = QueueEntry.from_json(json.dumps(data).encode())
            self._safe_until[queue_id] = asked + self.lease * 2 / 3
            taken.append(queue_id)
        self.claimed += len(taken)
        return taken

    def renew(self) -> list[str]:
        """Extend every lease held; the ids whose lease was lost (blocking)."""
        held = list(self._held)
        if not held:
            return []
        asked = time.monotonic()
        kept = {
            row[0] for row in self._run(RENEW, {"me": self.owner, "lease": self.lease, "ids": held})
        }
        self.renewals += 1
        for queue_id in kept:
            self._safe_until[queue_id] = asked + self.lease * 2 / 3
        lost = [queue_id for queue_id in held if queue_id not in kept]
        self._lose(lost)
        return lost

    def _lose(self, ids: list[str]) -> None:
        for queue_id in ids:
            if self._held.pop(queue_id, None) is not None:
                self.lost += 1
                log.warning("%s: lease lost; another node delivers it now", queue_id)
            self._safe_until.pop(queue_id, None)
            self._forgotten[queue_id] = time.time()
        if ids and self.runner is not None and self._loop is not None:
            # Called from worker threads: the runner is told in its own loop.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.runner.forget, list(ids))

    async def release_all(self) -> None:
        """At a clean stop: let the other nodes take what this one held at once."""
        held = list(self._held)
        if held:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    self._run,
                    "UPDATE queue_entries SET lease_owner = NULL, lease_until = NULL "
                    "WHERE lease_owner = %s AND id = ANY(%s)",
                    (self.owner, held),
                )
        self._held.clear()

    # -- requests of `mailroom queue retry|delete` ------------------------------------------------

    def request(self, payload: str) -> None:
        """A request on :data:`QUEUE_CHANNEL` (called in the loop by the node's listener): act
        on the entries of it this node holds, then answer on :data:`QUEUE_DONE_CHANNEL`."""
        try:
            data = json.loads(payload)
            action, token, ids = data["action"], str(data["request"]), data.get("ids")
        except (ValueError, KeyError, TypeError):
            return
        if self.runner is None or action not in ("retry", "delete"):
            return
        mine = sorted(self._held) if ids is None else [i for i in ids if i in self._held]
        if mine:
            task = asyncio.ensure_future(self._act(token, action, mine))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

    async def _act(self, token: str, action: str, ids: list[str]) -> None:
        assert self.runner is not None
        if action == "retry":
            done = self.runner.retry_now(ids)
            log.info("queue: retry requested for %d entries", len(done))
        else:
            done = await self.runner.delete(ids)
        answer = json.dumps({"request": token, "owner": self.owner, "action": action, "ids": done})
        try:
            await asyncio.to_thread(
                self._run, "SELECT pg_notify(%s, %s)", (QUEUE_DONE_CHANNEL, answer)
            )
        except Exception as exc:  # the command asks again, or finds the entries gone
            log.warning("queue: %s request not answered: %s", action, exc)

    # -- the tasks ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.ensure_future(self._claiming()),
            asyncio.ensure_future(self._renewing()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.release_all()
        with self._conn_lock:
            close_quietly(self._conn)
            self._conn = None

    async def _claiming(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._claim_now.wait(), CLAIM_INTERVAL)
            self._claim_now.clear()
            # An entry whose lease was lost long ago may be taken again, once no round of it
            # runs here any more.
            now = time.time()
            for queue_id, lost_at in list(self._forgotten.items()):
                if now - lost_at > 10 * self.lease and (
                    self.runner is None or self.runner.readmit(queue_id)
                ):
                    del self._forgotten[queue_id]
            try:
                taken = await asyncio.to_thread(self.claim)
            except Exception as exc:
                log.debug("queue: no claim: %s", exc)
                continue
            if taken and self.runner is not None:
                self.runner.wake(taken)

    async def _renewing(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await asyncio.to_thread(self.renew)
            except Exception as exc:
                log.warning("queue: leases not renewed: %s", exc)
