"""Exim as a real next hop for a test: started in the foreground on a free loopback port from a
configuration the test writes, taking mail into its spool and delivering nothing (queue_only).

Exim's Debian package conflicts with postfix (whose smtp-sink other tests use), so it is not
installed: ``.ci/run`` fetches its .debs with ``apt-get download`` and unpacks them where
tests/bounces/mtas.py finds them (``EXIM_ROOT``, /opt/mailroom-exim; ``MAILROOM_EXIM_ROOT``
points elsewhere), and this file runs the same binary as a receiver. Exim looks up its
compiled-in user, ``Debian-exim``, at start; ``with_exim_user`` (tests/bounces/mtas.py) answers
that from files of the test's own, bind-mounted in a mount namespace of Exim's, so nothing on
the machine changes. A test that needs Exim fails when it is missing, unless
MAILROOM_ALLOW_SKIP=1 (never set in CI).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bounces.mtas import EXIM, EXIM_ROOT, with_exim_user


def require_exim() -> None:
    missing = [] if EXIM.exists() else [f"{EXIM} (.ci/run unpacks Exim into {EXIM_ROOT})"]
    if os.geteuid() != 0:
        missing.append("root (Exim takes -C configurations from root only)")
    if missing:
        if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
            pytest.skip("Exim cannot run here: " + "; ".join(missing))
        pytest.fail("Exim cannot run here: " + "; ".join(missing))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    """One message in Exim's spool: its envelope and the message as Exim would deliver it."""

    sender: str
    recipients: list[str]
    header: bytes
    body: bytes

    @property
    def message(self) -> bytes:
        return self.header + b"\n" + self.body


@dataclass
class Exim:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.directory / "mainlog"
        return path.read_text(errors="replace") if path.exists() else ""

    def received(self) -> list[Received]:
        found = []
        spool = self.directory / "spool" / "input"
        for header_file in sorted(spool.glob("*-H")) if spool.exists() else []:
            data_file = header_file.with_name(header_file.name[:-2] + "-D")
            if not data_file.exists():
                continue
            found.append(_parse_spool(header_file.read_bytes(), data_file.read_bytes()))
        return found

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.received()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def _parse_spool(header_file: bytes, data_file: bytes) -> Received:
    """Exim's -H file: user, ids, <sender>, options, recipients, a blank line, then each
    header line as "NNNc text" (NNN its length, c a flag, "*" for one Exim removed)."""
    lines = header_file.split(b"\n")
    sender = lines[2].strip(b"<>").decode()
    blank = lines.index(b"", 3)
    # The recipients are the lines before the blank one, after the line that counts them.
    count_line = next(
        k for k in range(blank - 1, 2, -1) if lines[k].isdigit() and int(lines[k]) == blank - 1 - k
    )
    recipients = [line.decode().split(" ")[0] for line in lines[count_line + 1 : blank]]
    index = blank
    rest = b"\n".join(lines[index + 1 :])
    header = bytearray()
    position = 0
    field = re.compile(rb"(\d{3,})(.) ")
    while position < len(rest):
        match = field.match(rest, position)
        if match is None:
            break
        length = int(match[1])
        start = match.end()
        if match[2] != b"*":
            header += rest[start : start + length]
        position = start + length
    body = data_file.split(b"\n", 1)[1]  # the first line is "<id>-D"
    return Received(sender, recipients, bytes(header), body)


_CONFIG = """
exim_user = nobody
exim_group = nogroup
keep_environment =
spool_directory = {dir}/spool
log_file_path = {dir}/%slog
pid_file_path = {dir}/exim.pid
primary_hostname = exim.example.test
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
queue_only = true
accept_8bitmime = {eightbitmime}
smtputf8_advertise_hosts = {smtputf8}
chunking_advertise_hosts = {chunking}
tls_advertise_hosts =
pipelining_advertise_hosts = *
dsn_advertise_hosts = *
acl_smtp_rcpt = accept_all

begin acl
accept_all:
  accept

begin routers
everyone:
  driver = accept
  transport = keep

begin transports
keep:
  driver = appendfile
  file = {dir}/mbox
  user = nobody
"""


@contextlib.contextmanager
def running_exim(
    *, eightbitmime: bool = True, smtputf8: bool = True, chunking: bool = False
) -> Iterator[Exim]:
    require_exim()
    directory = Path(tempfile.mkdtemp(prefix="mailroom-exim-"))
    nobody = pwd.getpwnam("nobody")
    try:
        (directory / "spool").mkdir()
        for path in (directory, directory / "spool"):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        # Exim reads its configuration only if root owns it (and it is not world-writable).
        config = directory / "exim.conf"
        port = _free_port()
        config.write_text(
            _CONFIG.format(
                dir=directory,
                port=port,
                eightbitmime="true" if eightbitmime else "false",
                smtputf8="*" if smtputf8 else "",
                chunking="*" if chunking else "",
            )
        )
        os.chown(config, 0, 0)
        config.chmod(0o644)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        output = (directory / "stderr.log").open("wb")
        process = subprocess.Popen(
            with_exim_user([str(EXIM), "-C", str(config), "-bdf"], directory),
            stdout=output,
            stderr=output,
            env=env,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    text = (directory / "stderr.log").read_text(errors="replace")
                    pytest.fail(f"exim did not start: {text}")
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline:
                    pytest.fail("exim did not start listening")
                time.sleep(0.05)
            yield Exim(port, directory, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            output.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
