"""Memory of a running ``mailroom serve``: many idle connections, and one very large message.

    python bench/memory.py [--idle 10000] [--message-mb 200]

Prints the server's resident memory (VmRSS, from /proc, all its processes) with N idle sessions
open (each has had its greeting and EHLO), and the growth of its peak resident memory (VmHWM)
while it accepts one message of the given size into the durable Maildir store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import free_port, status_kib

PYTHON = sys.executable


def start_server(data: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "mailroom",
            "serve",
            "--smtp",
            f"127.0.0.1:{port}",
            "--data",
            data,
            "--hostname",
            "bench.test",
            "--log-level",
            "warning",
            "--web",
            "off",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.recv(100)
                return server
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def stop(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


async def open_idle(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    semaphore = asyncio.Semaphore(200)

    async def one() -> None:
        async with semaphore:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.readline()
            writer.write(b"EHLO idle.example.test\r\n")
            while (await reader.readline())[3:4] != b" ":
                pass
            writers.append(writer)

    await asyncio.gather(*(one() for _ in range(count)))
    return writers


def idle_connections(count: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        server = start_server(
            data,
            port,
            "--max-connections",
            str(count + 100),
            "--max-connections-per-ip",
            "0",
            "--store",
            "none",
        )
        try:
            before = status_kib(server.pid, "VmRSS")

            async def run() -> None:
                writers = await open_idle(port, count)
                await asyncio.sleep(1)
                during = status_kib(server.pid, "VmRSS")
                print(
                    f"idle connections: {len(writers)} open; server RSS {before / 1024:.1f} MiB "
                    f"before, {during / 1024:.1f} MiB with them open "
                    f"({(during - before) / len(writers):.1f} KiB each)"
                )
                for writer in writers:
                    writer.close()

            asyncio.run(run())
        finally:
            stop(server)


def large_message(megabytes: int) -> None:
    size = megabytes * 1024 * 1024
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/work")) as data:
        port = free_port()
        server = start_server(data, port, "--max-message-size", str(size * 2))
        try:
            time.sleep(0.5)
            before = status_kib(server.pid, "VmRSS")
            peak_before = status_kib(server.pid, "VmHWM")
            line = b"x" * 998 + b"\r\n"
            chunk = line * 256  # 256 KB
            with socket.create_connection(("127.0.0.1", port)) as sock:
                file = sock.makefile("rb")
                file.readline()
                sock.sendall(b"EHLO big.example.test\r\n")
                while file.readline()[3:4] != b" ":
                    pass
                sock.sendall(
                    b"MAIL FROM:<big@example.test>\r\nRCPT TO:<sink@example.test>\r\nDATA\r\n"
                )
                replies = [file.readline() for _ in range(3)]
                started = time.monotonic()
                sent = 0
                sock.sendall(b"Subject: big\r\n\r\n")
                while sent < size:
                    sock.sendall(chunk)
                    sent += len(chunk)
                sock.sendall(b".\r\n")
                final = file.readline()
                elapsed = time.monotonic() - started
            peak = status_kib(server.pid, "VmHWM")
            stored = list(Path(data, "mail", "catchall", "new").iterdir())
            print(
                f"large message: {sent / 1048576:.0f} MiB in {elapsed:.1f} s "
                f"({sent / 1048576 / elapsed:.0f} MiB/s); replies {[r.strip() for r in replies]}"
                f" then {final.strip()!r}; RSS {before / 1024:.1f} MiB before, peak RSS growth "
                f"{(peak - max(before, peak_before)) / 1024:.1f} MiB; stored file "
                f"{stored[0].stat().st_size / 1048576:.0f} MiB"
                if stored
                else "NOT STORED"
            )
        finally:
            stop(server)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--message-mb", type=int, default=200)
    args = parser.parse_args()
    if args.idle:
        idle_connections(args.idle)
    if args.message_mb:
        large_message(args.message_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
