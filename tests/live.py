"""Running mailroom for tests that talk to it over loopback: in this process (the server's event
loop in a background thread, so blocking clients such as smtplib work from the test), or as a
``mailroom serve`` subprocess; and reading back what it stored."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import mailbox
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailroom.app import Mailroom
from mailroom.config import load_config

HOSTNAME = "mx.test"
QUEUED_REPLY = re.compile(r"\A250 2\.0\.0 Ok: queued as (?P<id>[0-9A-Z]{16})\r\n\Z")
QUEUED_TEXT = re.compile(r"\A2\.0\.0 Ok: queued as (?P<id>[0-9A-Z]{16})\Z")
QUEUED_SWAKS = re.compile(r"^<[-~]  250 2\.0\.0 Ok: queued as (?P<id>[0-9A-Z]{16})$", re.MULTILINE)
SMTPS_LINE = re.compile(r"mailroom: SMTP on (?P<addresses>\S.*), data in ")
STARTUP_TIMEOUT = 30.0


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until ``condition()`` is true; its value, or AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(interval)


# -- in this process ---------------------------------------------------------------------------


class LiveServer:
    """A Mailroom (the composition root) running on its own event loop in a background thread."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self.config = load_config(None, overrides)
        self.loop = asyncio.new_event_loop()
        self.server: Mailroom | None = None
        self._thread = threading.Thread(target=self._run, name="mailroom-test-server", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = Mailroom(self.config)
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def start(self) -> LiveServer:
        self._thread.start()
        self._ready.wait(STARTUP_TIMEOUT)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        assert self.server is not None
        future = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
        try:
            future.result(timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the server's loop and return its result."""
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(function())
            except BaseException as exc:
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return result.result(timeout=30)

    @property
    def mail_server(self) -> Mailroom:
        assert self.server is not None
        return self.server

    def _address(self, implicit_tls: bool) -> tuple[str, int]:
        listeners = self.config.smtp + self.config.smtps
        for listener, (host, port) in zip(listeners, self.mail_server.addresses, strict=True):
            if listener.implicit_tls == implicit_tls:
                return str(host), int(port)
        raise LookupError("no such listener")

    @property
    def smtp(self) -> tuple[str, int]:
        return self._address(False)

    @property
    def smtps(self) -> tuple[str, int]:
        return self._address(True)

    @property
    def data(self) -> Path:
        return self.config.data


# The [authentication] table of a test mail server with no DNS of its own: the checks that
# ask DNS are off (tests/authentication runs them against a real DNS server). It opens a TOML
# table, so it goes last in a configuration.
NO_DNS_CHECKS = """
[authentication]
spf = "off"
dkim = "off"
dmarc = "off"
iprev = "off"
arc = "off"
"""


def server_overrides(data: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "data": data,
        "smtp": "127.0.0.1:0",
        "hostname": HOSTNAME,
        "shutdown_grace": 2.0,
    }
    if overrides.get("tls") == "self-signed" or "smtps" in overrides:
        settings["tls"] = "self-signed"
    settings["web"] = "off"  # on by default, on a fixed port: tests that want it ask
    settings.update(overrides)
    return settings


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``serve(**settings)``: a running in-process server with its data in tmp_path/data."""
    started: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        data = tmp_path / f"data{len(started) or ''}"
        live = LiveServer(server_overrides(data, overrides))
        started.append(live)
        return live.start()

    yield start
    for live in started:
        live.stop()


@pytest.fixture(autouse=True)
def client_timeouts() -> Iterator[None]:
    """Clients that wait for a reply that never comes fail instead of hanging the run."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    yield
    socket.setdefaulttimeout(previous)


# -- as a subprocess -------------------------------------------------------------------------


def mailroom_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailroom", *args]


def serve_that_fails(data: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``mailroom serve`` on ``data`` that is to stop at start (a bad or full data directory):
    its exit status and output, and never a traceback."""
    done = subprocess.run(
        mailroom_command(
            "serve", "--data", str(data), "--smtp", "127.0.0.1:0", "--web", "off", "--workers", "1"
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def run_cli(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> bytes:
    """Run ``mailroom ARGS``; its stdout. Fails the test on a non-zero exit."""
    done = subprocess.run(
        mailroom_command(*args), input=stdin, capture_output=True, timeout=60, cwd=cwd
    )
    assert done.returncode == 0, (args, done.returncode, done.stderr.decode(errors="replace"))
    return done.stdout


class ServeProcess:
    """``mailroom serve`` in a subprocess, its stderr in a file."""

    def __init__(self, args: list[str], log: Path, cwd: Path | None = None) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            mailroom_command("serve", *args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
            cwd=cwd,
        )
        self.addresses: list[tuple[str, int]] = []

    def wait_started(self) -> ServeProcess:
        def started() -> re.Match[str] | None:
            if self.process.poll() is not None:
                raise AssertionError(f"mailroom serve exited: {self.stderr}")
            return SMTPS_LINE.search(self.stderr)

        match = wait_for(started, timeout=STARTUP_TIMEOUT)
        for item in match["addresses"].split(", "):
            host, _, port = item.split(" (")[0].rpartition(":")  # "HOST:PORT (implicit TLS)"
            self.addresses.append((host, int(port)))
        return self

    @property
    def stderr(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    @property
    def smtp(self) -> tuple[str, int]:
        return self.addresses[0]

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log_file.close()


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """``serve_process(*flags)``: ``mailroom serve --data tmp_path/data --smtp 127.0.0.1:0
    --hostname mx.test FLAGS``, started; or with ``bare=True``, exactly ``mailroom serve
    FLAGS`` in ``cwd``."""
    started: list[ServeProcess] = []

    def start(*flags: str, bare: bool = False, cwd: Path | None = None) -> ServeProcess:
        args = list(flags)
        if not bare:
            args = [
                "--data",
                str(tmp_path / "data"),
                "--smtp",
                "127.0.0.1:0",
                "--hostname",
                HOSTNAME,
                "--web",
                "off",
                *args,
            ]
        process = ServeProcess(args, tmp_path / f"serve{len(started)}.log", cwd=cwd)
        started.append(process)
        return process.wait_started()

    yield start
    for process in started:
        process.kill()


# -- what was stored -----------------------------------------------------------------------------


def queue_id_of(reply: bytes | str) -> str:
    """The queue id in ``250 2.0.0 Ok: queued as ID``: a whole reply line, the text smtplib and
    aiosmtplib give (without the code), or the line of a swaks transcript that holds it."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    for pattern in (QUEUED_REPLY, QUEUED_TEXT, QUEUED_SWAKS):
        match = pattern.search(text)
        if match:
            return match["id"]
    raise AssertionError(f"no queue id in {reply!r}")


def split_trace(raw: bytes) -> tuple[bytes, bytes]:
    """The trace header fields mailroom prepends (Return-Path, Delivered-To…, one Received),
    and the rest: the message as the client sent it."""
    lines = raw.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: <"), raw[:200]
    count = 1
    while lines[count].startswith(b"Delivered-To: "):
        count += 1
    assert lines[count].startswith(b"Received: from "), raw[:400]
    count += 1
    while lines[count][:1] in (b" ", b"\t"):
        count += 1
    trace = b"".join(line + b"\r\n" for line in lines[:count])
    assert raw.startswith(trace)
    return trace, raw[len(trace) :]


def maildir_files(data: Path, sub: str = "new", mailbox_name: str = "catchall") -> list[Path]:
    folder = data / "mail" / mailbox_name / sub
    return sorted(folder.iterdir()) if folder.is_dir() else []


def stored(data: Path, queue_id: str) -> bytes:
    """The stored file of ``queue_id``, found with the stdlib's Maildir reader (which also
    checks the layout: tmp, new and cur)."""
    box = mailbox.Maildir(data / "mail" / "catchall", factory=None, create=False)
    matches = [key for key in box.keys() if f".{queue_id}." in key]  # noqa: SIM118 (iterating a Mailbox yields messages)
    assert len(matches) == 1, (queue_id, box.keys())
    key = matches[0]
    assert (data / "mail" / "catchall" / "new" / key).is_file()
    message = box.get_message(key)
    assert message.get_subdir() == "new"
    raw = box.get_bytes(key)
    with box.get_file(key) as f:
        assert f.read() == raw
    return raw


def assert_stored(
    data: Path,
    queue_id: str,
    message: bytes,
    *,
    sender: str,
    recipients: list[str],
    hostname: str = HOSTNAME,
) -> bytes:
    """The message lies in the catch-all Maildir byte for byte after the trace fields, which
    name the envelope and the queue id; the stored file, whole."""
    raw = stored(data, queue_id)
    trace, rest = split_trace(raw)
    assert rest == message
    text = trace.decode("utf-8")
    assert text.startswith(f"Return-Path: <{sender}>\r\n")
    delivered = re.findall(r"^Delivered-To: (.*)\r$", text, re.MULTILINE)
    assert delivered == recipients
    assert f"by {hostname} (mailroom) with " in text
    assert f" id {queue_id}" in text
    assert not maildir_files(data, "tmp")
    return raw


def cli_list(data: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(run_cli("list", "--data", str(data), "--json"))
    return rows


def assert_listed(data: Path, queue_id: str, raw: bytes, **fields: Any) -> dict[str, Any]:
    """``mailroom list`` names the message, ``mailroom show`` prints its file; its index row."""
    text = run_cli("list", "--data", str(data)).decode("utf-8")
    assert re.search(rf"^{queue_id}\s", text, re.MULTILINE), text
    rows = {row["id"]: row for row in cli_list(data)}
    row = rows[queue_id]
    for name, value in fields.items():
        assert row[name] == value, (name, row[name], value)
    assert row["size"] == len(raw)
    assert run_cli("show", queue_id, "--data", str(data)) == raw
    assert run_cli("show", queue_id[:12], "--data", str(data)) == raw
    return row


def tls_context(data: Path) -> ssl.SSLContext:
    """A client context that trusts exactly the server's self-signed certificate, and checks
    it names the address we connect to."""
    context = ssl.create_default_context(cafile=str(data / "tls" / "self-signed.pem"))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


# -- raw sockets -----------------------------------------------------------------------------


class LineClient:
    """A hand-driven SMTP client: exact bytes out, replies in."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """One whole reply (all its lines); b"" if the server closed first."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                return b"".join(lines)
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    def command(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """The server closed the connection (nothing more to read)."""
        return self.file.read() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def free_port(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
