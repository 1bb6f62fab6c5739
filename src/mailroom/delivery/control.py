"""How ``mailroom queue`` reaches the running server's queue runner, and knows whether one runs.

- ``<data>/queue.lock``: the runner holds an exclusive ``flock`` on it for as long as it runs
  (beside the queue, not in it: the queue holds mail only). The kernel drops the lock when the
  process dies (even by ``kill -9``), so a command that can take the lock knows no runner is
  alive, and works on the files itself while holding it.
- ``<data>/queue/control/<action>.<unique>``: a request to the running runner, one queue id a
  line (none: every entry). The command writes it (to a temporary name, then renamed into
  place); the runner looks every second, acts, and deletes it. ``retry`` makes entries due now;
  ``delete`` removes entries without a report.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mailroom.filemodes import FILE_MODE, private_dir

__all__ = ["QueueBusy", "Request", "RunnerLock", "pending_requests", "submit"]

ACTIONS = ("retry", "delete")


class QueueBusy(OSError):
    """Another process runs this queue."""


def lock_path(root: Path) -> Path:
    return root.parent / f"{root.name}.lock"


def control_dir(root: Path) -> Path:
    return root / "control"


class RunnerLock:
    """The runner's claim on a queue directory (an exclusive flock)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, root: Path) -> RunnerLock | None:
        private_dir(root.parent)
        fd = os.open(lock_path(root), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return cls(fd)

    @classmethod
    async def acquire(cls, root: Path, timeout: float = 10.0) -> RunnerLock:
        """The lock, waiting up to ``timeout`` for a ``mailroom queue`` command that holds it
        for a moment; QueueBusy if another runner has it."""
        deadline = time.monotonic() + timeout
        while True:
            lock = cls.try_acquire(root)
            if lock is not None:
                return lock
            if time.monotonic() > deadline:
                raise QueueBusy(f"another mailroom is running the queue in {root}")
            await asyncio.sleep(0.1)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunnerLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def runner_alive(root: Path) -> bool:
    """Whether a runner holds the queue (a moment's check: the answer may change at once)."""
    if not lock_path(root).exists():
        return False
    lock = RunnerLock.try_acquire(root)
    if lock is None:
        return True
    lock.release()
    return False


@dataclass(frozen=True)
class Request:
    path: Path
    action: str
    ids: list[str] | None  # None: every entry

    def done(self) -> None:
        self.path.unlink(missing_ok=True)


def submit(root: Path, action: str, ids: list[str] | None) -> Path:
    """Leave a request for the runner; its path (gone once the runner has acted on it)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown queue request {action!r}")
    folder = control_dir(root)
    private_dir(folder)
    name = f"{action}.{uuid.uuid4().hex}"
    tmp = folder / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="ascii") as request:
        request.write("".join(f"{queue_id}\n" for queue_id in ids or []))
    final = folder / name
    os.replace(tmp, final)
    return final


def pending_requests(root: Path) -> list[Request]:
    """Requests waiting in ``control/``, oldest first."""
    folder = control_dir(root)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        action, dot, _ = path.name.partition(".")
        if not dot or action not in ACTIONS:
            continue
        try:
            text = path.read_text("ascii", errors="replace")
            mtime = path.stat().st_mtime
        except OSError:
            continue
        ids = [line.strip() for line in text.splitlines() if line.strip()]
        found.append((mtime, Request(path, action, ids or None)))
    return [request for _, request in sorted(found, key=lambda item: item[0])]
