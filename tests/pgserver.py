"""A real PostgreSQL server for tests: Debian's ``postgresql`` (15), started with ``initdb`` and
``pg_ctl`` in a temporary directory on a free loopback port, stopped (and its directory removed)
after.

PostgreSQL refuses to run as root. Run as root (as CI runs the tests), the server runs as an
unprivileged user: ``postgres`` (made by the Debian package) if it exists, else ``nobody``,
through ``runuser``; its directory is handed to that user. Run as anyone else, it runs as the
test's own user. ::

    with PostgresServer() as pg:
        url = pg.create_database()        # a fresh database: postgresql://mailroom@127.0.0.1:P/db
        pg.stop()                         # the database goes away (sessions then get 451)
        pg.start()                        # and comes back on the same port

A missing binary fails the test, unless ``MAILROOM_ALLOW_SKIP=1`` is set (never in CI): then it
skips.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

__all__ = ["PostgresServer", "postgres_bin"]

PG_BIN = Path(os.environ.get("MAILROOM_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "mailroom"
_databases = itertools.count(1)


def postgres_bin(name: str) -> str:
    """The path of a PostgreSQL program; fails (or skips, where allowed) when it is absent."""
    path = PG_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    message = f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)"
    if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _service_user() -> str | None:
    """The unprivileged user the server runs as when we are root; None: as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


class PostgresServer:
    """One PostgreSQL cluster for a test session (or one test)."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.user = _service_user()
        self.root = Path(tempfile.mkdtemp(prefix="mailroom-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self.host = "127.0.0.1"
        # Durable as in production (fsync and synchronous_commit stay on): the tests' claims
        # about "250 after commit" are about a real commit.
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "max_connections": "200",
            "shared_buffers": "64MB",
            "log_min_messages": "warning",
            **(settings or {}),
        }
        self.running = False

    # -- running as the service user -------------------------------------------------------

    def _run(self, *argv: str, check: bool = True, timeout: float = 120) -> str:
        command = list(argv)
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                + self.log_tail()
            )
        return done.stdout

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    # -- life ----------------------------------------------------------------------------------

    def init(self) -> None:
        initdb = postgres_bin("initdb")
        self.sockets.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            initdb,
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # the cluster is new and thrown away; its later commits still sync
        )

    def start(self) -> None:
        pg_ctl = postgres_bin("pg_ctl")
        options = " ".join(
            [f"-p {self.port}", f"-k {self.sockets}"]
            + [f"-c {key}={value}" for key, value in self.settings.items()]
        )
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (sessions are ended, a clean shutdown) or ``immediate``
        (as a crash: the next start recovers from the WAL)."""
        if not self.running:
            return
        pg_ctl = postgres_bin("pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
        self.running = False

    def __enter__(self) -> PostgresServer:
        try:
            self.init()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------------

    def url(self, database: str = "postgres", host: str | None = None) -> str:
        return f"postgresql://{SUPERUSER}@{host or self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = name or f"test_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def wait_ready(self, timeout: float = 60) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
