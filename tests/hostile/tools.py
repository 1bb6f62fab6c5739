"""What the hostile tests share: a server's memory from /proc, the messages of a data directory,
raw clients (every reply until the server closes; TLS over memory BIOs, so that nothing the
server sends in the clear goes unnoticed), and the two sizes of the long tests."""

from __future__ import annotations

import email
import email.policy
import resource
import socket
import ssl
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.live import LineClient

# Tests that come in two sizes take ``scale``: the quick one runs with every pytest, the long
# one (marked hostile) with ``-m hostile`` or MAILROOM_HOSTILE=1.
SCALES = ["quick", pytest.param("long", marks=pytest.mark.hostile)]

__all__ = [
    "SCALES",
    "TLSClient",
    "all_replies",
    "hwm_mib",
    "parse",
    "raise_open_files",
    "read_reply_raw",
    "rss_mib",
    "stored_files",
    "stored_messages",
    "tmp_files",
    "tree_rss_mib",
]


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _own_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _status_kib(pid: int, field: str) -> int:
    # A supervisor's own memory says nothing of its workers': these numbers were once read
    # from one (mailroom serve starts a worker per CPU), and no bound could fail.
    children = _children(pid)
    assert not children, f"process {pid} has workers {children}: measure a --workers 1 server"
    return _own_kib(pid, field)


def rss_mib(pid: int) -> float:
    """Resident memory of a process now (VmRSS), in MiB."""
    return _status_kib(pid, "VmRSS") / 1024


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and every process under it (a supervisor and its
    workers), in MiB."""
    return _own_kib(pid, "VmRSS") / 1024 + sum(tree_rss_mib(child) for child in _children(pid))


def hwm_mib(pid: int) -> float:
    """The peak resident memory of a process so far (VmHWM), in MiB."""
    return _status_kib(pid, "VmHWM") / 1024


def raise_open_files(wanted: int) -> int:
    """Raise this process's open-files limit towards ``wanted``; the limit it got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def stored_files(data: Path) -> list[Path]:
    """Every message file in every Maildir under ``data/mail`` (new/ and cur/)."""
    mail = data / "mail"
    return sorted(p for sub in ("new", "cur") for p in mail.glob(f"**/{sub}/*") if p.is_file())


def tmp_files(data: Path) -> list[Path]:
    return sorted(p for p in (data / "mail").glob("**/tmp/*") if p.is_file())


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def stored_messages(data: Path) -> list[EmailMessage]:
    return [parse(path.read_bytes()) for path in stored_files(data)]


def all_replies(client: LineClient) -> list[bytes]:
    """Every reply the server sends until it closes the connection."""
    found = []
    while True:
        try:
            reply = client.reply()
        except ConnectionResetError:
            break
        if not reply:
            break
        found.append(reply)
    return found


class TLSClient:
    """TLS over a connected socket with memory BIOs: the bytes the socket brought before the
    handshake must be a TLS record, or the handshake fails (so a plaintext reply the server
    should never have sent is caught)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, early: bytes = b"") -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        if early:
            self.incoming.write(early)
        self._buffer = b""

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._exchange()
        self._send_pending()

    def _send_pending(self) -> None:
        if self.outgoing.pending:
            self.sock.sendall(self.outgoing.read())

    def _exchange(self) -> bool:
        self._send_pending()
        data = self.sock.recv(65536)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._send_pending()

    def reply(self) -> bytes:
        """One whole reply; b"" once the server closed."""
        lines = []
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
                lines.append(line)
                if line[3:4] != b"-":
                    return b"".join(lines)
                continue
            if not self._read_more():
                return b"".join(lines)

    def _read_more(self) -> bool:
        """More decrypted input into the buffer; False once the connection ended."""
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                if not self._exchange():
                    return False
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return False
            if not data:
                return False
            self._buffer += data
            return True

    def command(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.reply()

    def replies_until_closed(self) -> list[bytes]:
        found = []
        while True:
            reply = self.reply()
            if not reply:
                return found
            found.append(reply)


def read_reply_raw(sock: socket.socket) -> tuple[bytes, bytes]:
    """One reply read straight off the socket (no buffered reader that might swallow what
    follows), and whatever else those reads brought, for the caller to account for."""
    data = b""
    while True:
        position = 0
        while True:
            end = data.find(b"\r\n", position)
            if end < 0:
                break
            if data[position + 3 : position + 4] != b"-":
                return data[: end + 2], data[end + 2 :]
            position = end + 2
        chunk = sock.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
