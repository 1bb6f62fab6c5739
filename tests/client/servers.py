"""Real servers on loopback for the client tests: mailroom itself (in this process, in the
test's event loop or in a thread of its own for the synchronous client) and Postfix's
smtp-sink (a child process, with its soft and hard bounce options)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mailroom import app
from mailroom.config import load_config

T = TypeVar("T")
HOSTNAME = "mx.test"
SMTP_SINK = shutil.which("smtp-sink") or (
    "/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None
)


@dataclass
class Mailroom:
    server: app.Mailroom
    data: Path

    @property
    def smtp(self) -> tuple[str, int]:
        return self._address(implicit=False)

    @property
    def smtps(self) -> tuple[str, int]:
        return self._address(implicit=True)

    def _address(self, *, implicit: bool) -> tuple[str, int]:
        for address, listener in zip(
            self.server.addresses, self.server.config.smtp + self.server.config.smtps, strict=True
        ):
            if listener.implicit_tls == implicit:
                return address
        raise AssertionError("no such listener")

    @property
    def cafile(self) -> Path:
        return self.data / "tls" / "self-signed.pem"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts mailroom's self-signed certificate, and checks the host name (mx.test)."""
        return ssl.create_default_context(cafile=str(self.cafile))

    def stored(self) -> list[bytes]:
        """Every stored message, oldest first, without the trace fields mailroom prepends."""
        # Oldest first by queue id (in the file's name: milliseconds, then a counter), not by
        # modification time: two messages a few milliseconds apart can share a coarse mtime.
        folder = self.data / "mail" / "catchall" / "new"
        files = sorted(folder.iterdir(), key=_queue_id) if folder.is_dir() else []
        return [split_trace(path.read_bytes())[1] for path in files]

    def traces(self) -> list[bytes]:
        folder = self.data / "mail" / "catchall" / "new"
        files = sorted(folder.iterdir(), key=_queue_id) if folder.is_dir() else []
        return [split_trace(path.read_bytes())[0] for path in files]


def split_trace(raw: bytes) -> tuple[bytes, bytes]:
    """Return-Path, Delivered-To…, one folded Received: and the message as sent."""
    lines = raw.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: <"), raw[:200]
    count = 1
    while lines[count].startswith(b"Delivered-To: "):
        count += 1
    assert lines[count].startswith(b"Received: "), raw[:400]
    count += 1
    while lines[count][:1] in (b" ", b"\t"):
        count += 1
    trace = b"".join(line + b"\r\n" for line in lines[:count])
    return trace, raw[len(trace) :]


def mailroom_config(data: Path, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "smtp": "127.0.0.1:0",
        "data": data,
        "hostname": HOSTNAME,
        "shutdown_grace": 1.0,
        "log_level": "warning",
        "web": "off",
    }
    settings.update(overrides)
    return load_config(None, settings)


def with_mailroom(data: Path, body: Callable[[Mailroom], Awaitable[T]], **overrides: Any) -> T:
    """Start mailroom in this thread's new event loop, run ``body``, stop mailroom."""

    async def main() -> T:
        server = app.Mailroom(mailroom_config(data, **overrides))
        await server.start()
        try:
            return await body(Mailroom(server, data))
        finally:
            await server.stop()

    return asyncio.run(main())


@contextlib.contextmanager
def mailroom_in_thread(data: Path, **overrides: Any) -> Iterator[Mailroom]:
    """mailroom in a thread with its own event loop, for clients that block (the synchronous
    wrapper, the command line)."""
    loop = asyncio.new_event_loop()
    server = app.Mailroom(mailroom_config(data, **overrides))
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait()
    if failure:
        raise failure[0]
    try:
        yield Mailroom(server, data)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class SmtpSink:
    port: int
    dumps: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def captured(self) -> list[bytes]:
        """Each captured transaction: smtp-sink's X- headers, its Received:, the message."""
        return [path.read_bytes() for path in sorted(self.dumps.rglob("*")) if path.is_file()]


@contextlib.contextmanager
def smtp_sink(*options: str) -> Iterator[SmtpSink]:
    """Postfix's smtp-sink on a free loopback port, capturing each transaction to a file."""
    assert SMTP_SINK is not None
    # smtp-sink must drop privileges (to nobody) when run as root, and nobody cannot enter
    # pytest's private tmp_path: the dumps go to a directory of their own under /tmp.
    dumps = Path(tempfile.mkdtemp(prefix="mailroom-sink-"))
    dumps.chmod(0o777)
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    port = free_port()
    command = [
        SMTP_SINK,
        *user,
        "-h",
        "sink.test",
        "-d",
        f"{dumps}/%M.",
        *options,
        f"127.0.0.1:{port}",
        "10",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, process)
        yield SmtpSink(port, dumps, process)
    finally:
        process.terminate()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(dumps, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"smtp-sink exited: {error}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("smtp-sink did not start listening")


def _queue_id(path: Path) -> str:
    """A Maildir file's queue id: ``TIME.QUEUEID.HOST,S=SIZE``."""
    return path.name.split(".")[1]
