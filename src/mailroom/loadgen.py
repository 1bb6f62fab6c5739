"""``mailroom bench-client``: an SMTP load generator.

N messages over C connections, each message of a given size to R recipients, optionally with
PIPELINING (MAIL, RCPT and DATA in one write) or CHUNKING (the whole transaction, BDAT LAST
included, in one write). A message counts only when its end gets a 250. Prints msg/s and
latency percentiles (from MAIL to that 250).

With ``--record FILE`` every message gets a Message-ID of its own, and the file lists, one a
line, the Message-IDs that got their 250: what a server that says 250 must have kept (the
hostile tests kill the server mid-load and look for each of them).

Each connection is a callback-driven state machine rather than a coroutine, so that the load
generator costs less per message than any server it measures.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import cast

__all__ = ["LoadResult", "make_body", "run_load"]


@dataclass
class LoadResult:
    messages: int = 0  # messages that got a 250 at their end
    failed: int = 0  # messages refused (or lost with their connection)
    connect_errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    refusals: dict[str, int] = field(default_factory=dict)
    # Message-IDs of the messages that got their 250 (only when recording)
    accepted_ids: list[str] = field(default_factory=list, repr=False)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> dict[str, object]:
        data = asdict(self)
        del data["latencies"]
        del data["accepted_ids"]
        data["msg_per_s"] = round(self.rate, 1)
        for p in (50, 90, 99):
            data[f"p{p}_ms"] = round(self.percentile(p) * 1000, 2)
        data["mean_ms"] = (
            round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else 0.0
        )
        return data


def make_body(size: int, index: int = 0, message_id: str | None = None) -> bytes:
    """A message of about ``size`` octets: headers, then 76-character lines (no dot-stuffing
    needed: no line starts with a dot). With a ``message_id`` the same arguments always make
    the same bytes, so a test can tell a stored message is whole."""
    if message_id is None:
        message_id = f"<{index}.{time.time_ns()}@bench.test>"
    head = (
        f"From: bench@example.test\r\nTo: sink@example.test\r\n"
        f"Subject: load {index}\r\nMessage-ID: {message_id}\r\n\r\n"
    )
    line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+=\r\n"
    body = bytearray(head.encode())
    while len(body) < size:
        body += line
    return bytes(body[: max(size, len(head))]).rstrip(b"\r\n") + b"\r\n"


class _Connection(asyncio.Protocol):
    def __init__(
        self, plan: _Plan, count: int, result: LoadResult, done: asyncio.Future[None]
    ) -> None:
        self.plan = plan
        self.remaining = count
        self.result = result
        self.done = done
        self.buffer = b""
        self.steps: list[tuple[bytes, int]] = []
        self.step = -1  # -2: greeting, -1: EHLO, then the message's steps, then QUIT
        self.expected = 1
        self.ok = True
        self.started = 0.0
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set on connect
        self.state = "greeting"
        self.message_id = ""  # of the message in progress, when Message-IDs are recorded

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        start = 0
        while True:
            end = buffer.find(b"\r\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 2
            if line[3:4] == b"-":
                continue
            self._reply(line)
        self.buffer = buffer[start:]

    def _reply(self, line: bytes) -> None:
        code = line[:3]
        if self.state == "greeting":
            self.state = "ehlo"
            self.transport.write(b"EHLO bench.example.test\r\n")
            return
        if self.state == "ehlo":
            self._next_message()
            return
        if self.state == "quit":
            self.transport.close()
            return
        if self.state == "rset":
            self._next_message()
            return
        # within a message
        if code[:1] not in (b"2", b"3"):
            if self.ok:
                key = line[:9].decode("ascii", "replace")
                self.result.refusals[key] = self.result.refusals.get(key, 0) + 1
            self.ok = False
        self.expected -= 1
        if self.expected:
            return
        self.step += 1
        if self.step < len(self.steps) and self.ok:
            payload, self.expected = self.steps[self.step]
            self.transport.write(payload)
            return
        if self.step < len(self.steps):
            # Refused midway (a 5xx before DATA's end): reset and go on with the next one.
            self.result.failed += 1
            self.state = "rset"
            self.transport.write(b"RSET\r\n")
            self.expected = 1
            return
        if self.ok and code == b"250":
            self.result.messages += 1
            self.result.latencies.append(time.perf_counter() - self.started)
            if self.message_id:
                self.result.accepted_ids.append(self.message_id)
        else:
            self.result.failed += 1
        self._next_message()

    def _next_message(self) -> None:
        if self.remaining <= 0:
            self.state = "quit"
            self.transport.write(b"QUIT\r\n")
            return
        self.remaining -= 1
        self.state = "message"
        if self.plan.record:
            self.message_id, self.steps = self.plan.unique()
        else:
            self.steps = self.plan.steps
        self.step = 0
        self.ok = True
        self.started = time.perf_counter()
        payload, self.expected = self.steps[0]
        self.transport.write(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state != "quit":
            self.result.failed += self.remaining + (1 if self.state == "message" else 0)
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class _Plan:
    size: int
    recipients: int
    pipelining: bool
    chunking: bool
    record: bool = False
    # A message of the caller's (e.g. DKIM-signed, for the email authentication benchmark)
    # sent every time instead of a generated one, and its envelope sender.
    message: bytes | None = None
    sender: str = "bench@example.test"
    steps: list[tuple[bytes, int]] = field(default_factory=list)
    _run: str = field(default_factory=lambda: secrets.token_hex(6))
    _count: int = 0

    def __post_init__(self) -> None:
        self.steps = self._steps(self.message or make_body(self.size))

    def unique(self) -> tuple[str, list[tuple[bytes, int]]]:
        """A Message-ID never used before, and the steps of a message that carries it."""
        self._count += 1
        message_id = f"<{self._count}.{self._run}@bench.test>"
        return message_id, self._steps(make_body(self.size, message_id=message_id))

    def _steps(self, body: bytes) -> list[tuple[bytes, int]]:
        recipients = self.recipients
        mail = f"MAIL FROM:<{self.sender}>\r\n".encode()
        rcpts = [f"RCPT TO:<sink{i}@example.test>\r\n".encode() for i in range(recipients)]
        if self.chunking:
            bdat = f"BDAT {len(body)} LAST\r\n".encode()
            return [(mail + b"".join(rcpts) + bdat + body, recipients + 2)]
        data_body = body + b".\r\n"
        if self.pipelining:
            return [(mail + b"".join(rcpts) + b"DATA\r\n", recipients + 2), (data_body, 1)]
        return [(mail, 1), *((r, 1) for r in rcpts), (b"DATA\r\n", 1), (data_body, 1)]


async def run_load(
    host: str,
    port: int,
    *,
    messages: int,
    connections: int,
    size: int = 1024,
    recipients: int = 1,
    pipelining: bool = False,
    chunking: bool = False,
    record: bool = False,
    message: bytes | None = None,
    sender: str = "bench@example.test",
) -> LoadResult:
    """With ``record``, each message has a Message-ID of its own, and ``accepted_ids`` of the
    result lists those that got their 250."""
    loop = asyncio.get_running_loop()
    result = LoadResult()
    plan = _Plan(size, recipients, pipelining, chunking, record, message, sender)
    per_connection = [
        messages // connections + (1 if i < messages % connections else 0)
        for i in range(connections)
    ]
    started = time.perf_counter()
    waits = []
    for count in per_connection:
        done: asyncio.Future[None] = loop.create_future()
        try:
            await loop.create_connection(
                partial(_Connection, plan, count, result, done), host, port
            )
        except OSError:
            result.connect_errors += 1
            result.failed += count
            continue
        waits.append(done)
    await asyncio.gather(*waits)
    result.seconds = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="mailroom bench-client", description=__doc__)
    parser.add_argument("--server", default="127.0.0.1:1025", metavar="HOST:PORT")
    parser.add_argument("--messages", "-n", type=int, default=10000)
    parser.add_argument("--connections", "-c", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024, help="octets per message")
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--pipelining", action="store_true")
    parser.add_argument("--chunking", action="store_true", help="BDAT ... LAST")
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="give each message a Message-ID of its own; write those that got 250 to FILE",
    )
    parser.add_argument(
        "--message",
        type=Path,
        metavar="FILE",
        help="send this message (CRLF lines, no line starting with a dot) instead of --size's",
    )
    parser.add_argument("--mail-from", default="bench@example.test", metavar="ADDRESS")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args(argv)
    host, _, port = args.server.rpartition(":")
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    result = asyncio.run(
        run_load(
            host.strip("[]"),
            int(port),
            messages=args.messages,
            connections=args.connections,
            size=args.size,
            recipients=args.recipients,
            pipelining=args.pipelining,
            chunking=args.chunking,
            record=args.record is not None,
            message=args.message.read_bytes() if args.message else None,
            sender=args.mail_from,
        )
    )
    if args.record is not None:
        args.record.write_text("".join(f"{message_id}\n" for message_id in result.accepted_ids))
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{result.messages} messages in {result.seconds:.2f} s: {result.rate:.0f} msg/s; "
            f"latency p50 {summary['p50_ms']} ms, p90 {summary['p90_ms']} ms, "
            f"p99 {summary['p99_ms']} ms; failed {result.failed}"
            + (f" {result.refusals}" if result.refusals else "")
        )
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
