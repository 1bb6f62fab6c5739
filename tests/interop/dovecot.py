"""Starting a real Dovecot for a test: in the foreground, on loopback ports, from a config
written by the test, with its mail processes as ``nobody`` (Dovecot will not read or deliver
mail as root) over directories ``nobody`` can traverse."""

from __future__ import annotations

import contextlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
MAIL_USER = pwd.getpwnam("nobody")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def traversable_tmpdir(prefix: str) -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are private to root.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def running_dovecot(root: Path, config: str, ports: list[int]) -> Iterator[None]:
    """Run ``dovecot -F`` with ``config`` (written to root/dovecot.conf) until every port in
    ``ports`` answers; stop it afterwards. The test fails with Dovecot's own log if it does
    not start."""
    conf = root / "dovecot.conf"
    conf.write_text(config)
    log = (root / "stderr.log").open("wb")
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    text = (root / "stderr.log").read_text(errors="replace")
                    if (root / "dovecot.log").exists():
                        text += (root / "dovecot.log").read_text(errors="replace")
                    pytest.fail("dovecot did not start: " + text)
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
