"""``mailroom queue list|show|retry|delete``: look at the outbound queue and act on it.

The command reads the queue's files directly (every state change is an atomic rename, so a
read never sees half of one). A fleet's node (``store = "postgresql://..."`` in the
``--config`` file) keeps its queue in the database: every action works there, on every node's
entries (:mod:`mailroom.postgres.queue_view`): ``list`` and ``show`` with the node holding
each; ``retry`` and ``delete`` change an entry no node holds in the database, under the lock a
node's claim takes, and ask the node holding one to act on it, with the same output.

To change things the command asks the running server's queue runner through
``<data>/queue/control/`` (see :mod:`mailroom.delivery.control`) and waits for it to act; when
no runner holds ``<data>/queue.lock``, it changes the files itself, under that lock, and the
next ``mailroom serve`` goes on from there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Protocol, TextIO

from mailroom.delivery import control
from mailroom.queue.entry import QueueEntry, QueueRecipient, QueueSpool

__all__ = ["add_queue_command"]

REQUEST_WAIT = 10.0  # seconds for a running runner to pick a request up (it looks every second)


class QueueReader(Protocol):
    """What ``list`` and ``show`` read: a queue directory (:class:`SpoolReader`) or a fleet's
    queue in PostgreSQL (:class:`mailroom.postgres.queue_view.PgQueueView`)."""

    def ids(self) -> list[str]: ...

    def entries(self) -> Iterator[QueueEntry]: ...

    def load(self, queue_id: str) -> QueueEntry | None: ...

    def size(self, queue_id: str) -> int:
        """The queued message's octets (0 if it is gone)."""
        ...

    def held_by(self, queue_id: str) -> str | None:
        """The node working on it now (a fleet's lease holder); None for a directory."""
        ...

    def read_message(self, queue_id: str) -> bytes: ...


class FleetQueue(QueueReader, Protocol):
    """What ``retry`` and ``delete`` do to a fleet's queue in PostgreSQL: each returns the ids
    no node answered for within ``wait`` seconds (:mod:`mailroom.postgres.queue_view`)."""

    where: str

    def running(self) -> int:
        """How many nodes run the queue now."""
        ...

    def retry(self, ids: list[str], *, every: bool, wait: float) -> list[str]: ...

    def delete(self, ids: list[str], *, wait: float) -> list[str]: ...


class SpoolReader:
    """A queue directory, as ``list`` and ``show`` read it."""

    def __init__(self, spool: QueueSpool) -> None:
        self.spool = spool

    def ids(self) -> list[str]:
        return self.spool.ids()

    def entries(self) -> Iterator[QueueEntry]:
        return self.spool.entries()

    def load(self, queue_id: str) -> QueueEntry | None:
        return self.spool.load(queue_id)

    def size(self, queue_id: str) -> int:
        try:
            return self.spool.message_path(queue_id).stat().st_size
        except OSError:
            return 0

    def held_by(self, queue_id: str) -> str | None:
        return None

    def read_message(self, queue_id: str) -> bytes:
        return self.spool.message_path(queue_id).read_bytes()


# Where a mailroom.toml keeps its queue: its data directory, or a fleet's queue in PostgreSQL.
# The command line (mailroom.cli) passes its reader in, so this module, below the
# configuration and beside the PostgreSQL back end, imports neither.
DataDirOf = Callable[[Path], "Path | FleetQueue"]


def _where(args: argparse.Namespace) -> Path | FleetQueue:
    if args.data is not None:
        return Path(args.data)
    if args.config is not None:
        data_dir_of: DataDirOf | None = args.data_dir_of
        if data_dir_of is None:
            raise SystemExit("mailroom queue: --config is not available here; give --data")
        return data_dir_of(args.config)
    return Path("mailroom-data")


def _reader(args: argparse.Namespace) -> QueueReader:
    where = _where(args)
    return SpoolReader(QueueSpool(where)) if isinstance(where, Path) else where


def _acting_on(args: argparse.Namespace) -> QueueSpool | FleetQueue:
    """What ``retry`` and ``delete`` change: a queue directory, or a fleet's queue."""
    where = _where(args)
    return QueueSpool(where) if isinstance(where, Path) else where


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _resolve_ids(spool: QueueSpool | QueueReader, wanted: list[str]) -> tuple[list[str], list[str]]:
    """Full ids for ids or unique prefixes; and the ones that match nothing (or too much)."""
    ids = spool.ids()
    found, missing = [], []
    for text in wanted:
        matches = [i for i in ids if i == text.upper()] or [
            i for i in ids if i.startswith(text.upper())
        ]
        if len(matches) == 1:
            found.append(matches[0])
        else:
            missing.append(text)
    return found, missing


class _Progress:
    """One line on stderr, rewritten in place when stderr is a terminal."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._last = 0.0

    def update(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.live and (force or now - self._last >= 0.1):
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self._last = now

    def done(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()


# -- list and show ---------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    spool = _reader(args)
    entries = list(spool.entries())
    if args.json:
        print(json.dumps([asdict(e) for e in entries], indent=1, ensure_ascii=False))
        return 0
    if not entries:
        print("mailroom queue: the queue is empty")
        return 0
    now = time.time()
    heading = f"{'-Queue ID-':<17} {'-Size-':>9} {'-Arrived-':<19} {'-Next try-':<10}"
    print(heading + " -Sender/Recipient-")
    total = 0
    for entry in entries:
        size = spool.size(entry.id)
        total += size
        arrived = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.created))
        due = entry.next_attempt - now
        next_try = "now" if due <= 0 else f"in {_ago(due)}"
        if not entry.pending:
            next_try = "reporting"
        print(f"{entry.id:<17} {size:>9} {arrived:<19} {next_try:<10} <{entry.sender}>")
        holder = spool.held_by(entry.id)
        if holder is not None:
            print(f"{'':>58} (held by {holder}, its lease)")
        for recipient in entry.recipients:
            mark = {"pending": "", "delivered": " (delivered)", "bounced": " (bounced)"}
            line = f"{'':>58} {recipient.address}{mark.get(recipient.state, '')}"
            print(line)
            if recipient.state == "pending" and recipient.last_reply:
                reply = " ".join(recipient.last_reply.split())
                print(f"{'':>60} ({reply[:100]})")
    pending = sum(len(e.pending) for e in entries)
    print(f"-- {len(entries)} messages, {total} octets, {pending} recipients pending")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    spool = _reader(args)
    found, _ = _resolve_ids(spool, [args.id])
    entry = spool.load(found[0]) if found else None
    if entry is None:
        print(f"mailroom queue show: no queue entry {args.id}", file=sys.stderr)
        return 1
    if args.message:
        try:
            sys.stdout.buffer.write(spool.read_message(entry.id))
        except OSError as exc:
            print(f"mailroom queue show: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.json:
        print(json.dumps(asdict(entry), indent=1, ensure_ascii=False))
        return 0
    _print_entry(entry, spool)
    return 0


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


def _reason(recipient: QueueRecipient) -> str | None:
    """ "mailboxfull at mx.example.com (words 'mailbox full')": the reason where it was said,
    and what decided it."""
    if not recipient.reason:
        return None
    text = recipient.reason
    if recipient.remote_mta:
        text += f" at {recipient.remote_mta}"
    if recipient.reason_why:
        text += f" ({recipient.reason_why})"
    return text


def _print_entry(entry: QueueEntry, spool: QueueReader) -> None:
    now = time.time()
    size = spool.size(entry.id)
    due = entry.next_attempt - now
    print(f"Queue ID:     {entry.id}")
    print(f"Sender:       <{entry.sender}>")
    print(f"Arrived:      {_when(entry.created)} ({_ago(now - entry.created)} ago)")
    print(f"Size:         {size} octets")
    print(f"Attempts:     {entry.attempts}")
    holder = spool.held_by(entry.id)
    if holder is not None:
        print(f"Held by:      {holder} (its lease on the entry)")
    if entry.pending:
        print(f"Next attempt: {'now' if due <= 0 else _when(entry.next_attempt)}")
    for name, value in (
        ("Envelope id", entry.envid),
        ("Return", entry.ret),
        ("Body", entry.body),
        ("Authenticated", entry.auth_user),
        ("Client", entry.client_ip),
    ):
        if value:
            print(f"{name + ':':<13} {value}")
    if entry.smtputf8:
        print("SMTPUTF8:     yes")
    if entry.requiretls:
        print("REQUIRETLS:   yes (relayed only over verified TLS, RFC 8689)")
    for recipient in entry.recipients:
        print()
        print(f"  <{recipient.address}>  {recipient.state}")
        details = (
            ("status", recipient.status),
            ("reason", _reason(recipient)),
            ("remote", recipient.remote_mta),
            ("tls", recipient.tls),
            ("attempts", str(recipient.attempts) if recipient.attempts else None),
            ("last try", _when(recipient.last_attempt) if recipient.last_attempt else None),
            ("notify", ",".join(recipient.notify) if recipient.notify else None),
            ("orcpt", ";".join(recipient.orcpt) if recipient.orcpt else None),
        )
        for name, value in details:
            if value:
                print(f"    {name + ':':<10} {value}")
        if recipient.last_reply:
            for index, line in enumerate(recipient.last_reply.splitlines()):
                print(f"    {'reply:' if index == 0 else '':<10} {line}")


# -- retry and delete ------------------------------------------------------------------------


def _ask_runner(root: Path, action: str, ids: list[str] | None) -> bool:
    """Leave a request for the running runner; whether it took it in time."""
    request = control.submit(root, action, ids)
    deadline = time.monotonic() + REQUEST_WAIT
    while request.exists():
        if time.monotonic() > deadline:
            request.unlink(missing_ok=True)
            return False
        time.sleep(0.05)
    return True


def _cmd_retry(args: argparse.Namespace) -> int:
    spool = _acting_on(args)
    if args.ids:
        ids, missing = _resolve_ids(spool, args.ids)
        for text in missing:
            print(f"mailroom queue retry: no queue entry {text}", file=sys.stderr)
    else:
        ids, missing = spool.ids(), []
    if not ids:
        print("mailroom queue retry: nothing to retry", file=sys.stderr)
        return 1 if missing else 0
    before = {}
    for queue_id in ids:
        entry = spool.load(queue_id)
        if entry is not None:
            before[queue_id] = entry.attempts
    progress = _Progress()
    if isinstance(spool, QueueSpool):
        running, taken = _retry_files(spool, args, before, progress)
        where = str(spool.root)
    else:  # a fleet's queue: due now in the database, or by the node holding the entry
        running = spool.running() > 0
        taken = not spool.retry(list(before), every=not args.ids, wait=REQUEST_WAIT)
        where = spool.where
    if not taken:
        print("mailroom queue retry: the running server did not take the request", file=sys.stderr)
        return 1
    if not running:
        progress.done(
            f"mailroom queue retry: {len(before)} entries due now; no mailroom is running "
            f"the queue in {where}, so they go at its next start"
        )
        return 0
    if args.no_wait:
        print(f"mailroom queue retry: {len(before)} entries due now")
        return 0
    return _watch(spool, before, args.wait, progress)


def _retry_files(
    spool: QueueSpool, args: argparse.Namespace, before: dict[str, int], progress: _Progress
) -> tuple[bool, bool]:
    """``retry`` on a queue directory: whether a runner runs, and whether the request was
    taken (by the runner; or, with none, the entries made due under its lock)."""
    lock = control.RunnerLock.try_acquire(spool.root)
    if lock is not None:
        # No runner: make the entries due now, for the next start of mailroom serve.
        with lock:
            for count, queue_id in enumerate(before, start=1):
                entry = spool.load(queue_id)
                if entry is not None:
                    entry.next_attempt = 0.0
                    spool.save(entry)
                progress.update(f"marking entries due: {count}/{len(before)}")
        return False, True
    return True, _ask_runner(spool.root, "retry", None if not args.ids else list(before))


def _watch(
    spool: QueueSpool | QueueReader, before: dict[str, int], wait: float, progress: _Progress
) -> int:
    """Follow the retried entries until each was attempted once more (or left the queue)."""
    deadline = time.monotonic() + wait
    left = dict(before)
    gone = deferred = 0
    total = len(before)
    while left and time.monotonic() < deadline:
        for queue_id, attempts in list(left.items()):
            entry = spool.load(queue_id)
            if entry is None:
                gone += 1
                del left[queue_id]
            elif entry.attempts > attempts:
                deferred += 1 if entry.pending else 0
                gone += 0 if entry.pending else 1
                del left[queue_id]
        progress.update(
            f"retrying: {total - len(left)}/{total} attempted "
            f"({gone} done, {deferred} deferred again)"
        )
        if left:
            time.sleep(0.1)
    summary = (
        f"mailroom queue retry: {total - len(left)}/{total} attempted: {gone} delivered or "
        f"returned, {deferred} deferred again"
    )
    if left:
        summary += f"; {len(left)} still in progress (see mailroom queue list)"
    progress.done(summary)
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    spool = _acting_on(args)
    ids, missing = _resolve_ids(spool, args.ids)
    for text in missing:
        print(f"mailroom queue delete: no queue entry {text}", file=sys.stderr)
    if not ids:
        return 1
    if not isinstance(spool, QueueSpool):
        return _delete_fleet(spool, ids, missing)
    lock = control.RunnerLock.try_acquire(spool.root)
    if lock is not None:
        with lock:
            for queue_id in ids:
                spool.remove(queue_id)
    elif not _ask_runner(spool.root, "delete", ids):
        print("mailroom queue delete: the running server did not take the request", file=sys.stderr)
        return 1
    remaining = set(spool.ids())
    deleted = [i for i in ids if i not in remaining]
    for queue_id in deleted:
        print(f"{queue_id}: deleted")
    return 0 if len(deleted) == len(ids) and not missing else 1


def _delete_fleet(queue: FleetQueue, ids: list[str], missing: list[str]) -> int:
    """``delete`` on a fleet's queue: in the database, or by the node holding the entry."""
    left = queue.delete(ids, wait=REQUEST_WAIT)
    remaining = set(queue.ids())
    deleted = [i for i in ids if i not in remaining]
    for queue_id in deleted:
        print(f"{queue_id}: deleted")
    if left:
        print("mailroom queue delete: the running server did not take the request", file=sys.stderr)
        return 1
    return 0 if len(deleted) == len(ids) and not missing else 1


def add_queue_command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    data_dir_of: DataDirOf | None = None,
) -> None:
    """``mailroom queue``; ``data_dir_of`` reads the data directory from a ``--config`` file."""
    queue = commands.add_parser(
        "queue",
        help="the outbound queue: list, show, retry, delete",
        description="Look at the outbound queue and act on it. With a server running, retry "
        "and delete go through it (it looks for requests every second); without one, they "
        "change the queue's files for its next start.",
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--data", type=Path, help="the data directory (default mailroom-data)")
    where.add_argument("--config", type=Path, help="take the data directory from mailroom.toml")
    where.set_defaults(data_dir_of=data_dir_of)
    actions = queue.add_subparsers(dest="queue_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", parents=[where], help="every entry and its recipients")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_cmd_list)

    show = actions.add_parser("show", parents=[where], help="one entry in detail")
    show.add_argument("id", help="queue id (a unique prefix will do)")
    show.add_argument("--json", action="store_true")
    show.add_argument("--message", action="store_true", help="print the queued message itself")
    show.set_defaults(func=_cmd_show)

    retry = actions.add_parser(
        "retry", parents=[where], help="try entries now (all without ids), showing progress"
    )
    retry.add_argument("ids", nargs="*", metavar="ID")
    retry.add_argument(
        "--wait", type=float, default=300.0, help="seconds to follow the attempts (300)"
    )
    retry.add_argument("--no-wait", action="store_true", help="ask, and do not follow")
    retry.set_defaults(func=_cmd_retry)

    delete = actions.add_parser("delete", parents=[where], help="remove entries, no report sent")
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.set_defaults(func=_cmd_delete)


def main(argv: list[str]) -> int:  # for tests: ``mailroom queue ARGS`` without the rest
    parser = argparse.ArgumentParser(prog="mailroom")
    add_queue_command(parser.add_subparsers())
    args = parser.parse_args(["queue", *argv])
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)
