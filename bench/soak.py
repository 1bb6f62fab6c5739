"""Soak: ``mailroom serve`` under a steady, mixed load for a long time.

    python bench/soak.py [--seconds 600] [--rate 100] [--json]

Starts mailroom (a plain/STARTTLS listener and an implicit-TLS one, self-signed certificate,
a password file, a short idle timeout) and starts ``--rate`` client sessions a second, each of
a kind drawn from a fixed mix: good clients (messages of 1 KiB to 1 MiB, pipelined or not,
BDAT, several per session, STARTTLS with AUTH, implicit TLS, no QUIT) and bad ones (SMTP
smuggling, oversized messages, junk commands, floods of NOOPs and of RCPTs, wrong passwords
from an address of their own, clients that vanish mid-message, slowloris, garbage instead of a
TLS handshake).
Every reply is checked against what that client must get; each message has a Message-ID of its
own.

Prints the sessions and messages by kind, the refusals (all expected ones, by code), anything
unexpected, the server's resident memory over time (sampled from /proc) and the check of the
store after the run: every message that got a 250 stored exactly once, nothing else stored,
no internal error in the server's log. Exits 0 when all of that holds and memory stayed flat
(the end no more than max(16 MiB, 15 %) over the level after the warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailroom.loadgen import make_body
from mailroom.policy.credentials import password_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.run import free_port, status_kib

HOST = "127.0.0.1"
BAD_SOURCE = "127.0.0.66"  # wrong passwords come from here: its lockout is its own
USER, PASSWORD = "soak", "soak-password"
MESSAGE_LIMIT = 2 * 1024 * 1024
IDLE_TIMEOUT = 5.0


class Unexpected(Exception):
    """A reply the client of this kind must not get."""


@dataclass
class Run:
    address: tuple[str, int]
    smtps: tuple[str, int]
    tls: ssl.SSLContext
    rng: random.Random
    run_id: str
    sessions: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    refused_ids: list[str] = field(default_factory=list)
    _ids: int = 0

    def message(self, size: int) -> tuple[str, bytes]:
        self._ids += 1
        message_id = f"<{self._ids}.{self.run_id}@soak.test>"
        return message_id, make_body(size, message_id=message_id)


class Client:
    """One session's reader and writer, with the check of every reply."""

    def __init__(
        self, run: Run, kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.run, self.kind, self.reader, self.writer = run, kind, reader, writer

    async def reply(self, *codes: str, refusal: bool = False) -> bytes:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 60)
            if not line:
                raise Unexpected(f"closed, expected {'/'.join(codes)}")
            lines.append(line)
            if line[3:4] != b"-":
                break
        reply = b"".join(lines)
        label = reply[:9].decode("ascii", "replace").strip()
        if not any(label.startswith(code) for code in codes):
            raise Unexpected(f"{label!r} ({reply[:80]!r}), expected {'/'.join(codes)}")
        if refusal or reply[:1] in b"45":
            self.run.refusals[label] += 1
        return reply

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def command(self, line: bytes, *codes: str) -> bytes:
        self.send(line + b"\r\n")
        return await self.reply(*codes)

    async def hung_up(self, after: str) -> None:
        """The server closes without another word (``after`` says what came last)."""
        rest = await asyncio.wait_for(self.reader.read(), 30)
        if rest:
            raise Unexpected(f"after {after}: {rest[:60]!r}")

    async def hello(self, name: bytes = b"soak.example.test") -> None:
        await self.reply("220")
        await self.command(b"EHLO " + name, "250")

    async def starttls(self) -> None:
        await self.command(b"STARTTLS", "220 2.0.0")
        await self.writer.start_tls(self.run.tls, server_hostname=HOST)
        await self.command(b"EHLO soak.example.test", "250")

    async def message(self, size: int, *, pipelined: bool = False) -> None:
        message_id, body = self.run.message(size)
        envelope = [b"MAIL FROM:<soak@example.test>", b"RCPT TO:<sink@example.test>", b"DATA"]
        if pipelined:
            self.send(b"".join(line + b"\r\n" for line in envelope))
            await self.reply("250 2.1.0")
            await self.reply("250 2.1.5")
            await self.reply("354")
        else:
            await self.command(envelope[0], "250 2.1.0")
            await self.command(envelope[1], "250 2.1.5")
            await self.command(envelope[2], "354")
        self.send(body + b".\r\n")
        await self.reply("250 2.0.0")
        self.run.accepted.append(message_id)

    async def quit(self) -> None:
        await self.command(b"QUIT", "221")


async def connect(run: Run, kind: str, *, source: str | None = None, implicit: bool = False):  # type: ignore[no-untyped-def]
    address = run.smtps if implicit else run.address
    reader, writer = await asyncio.open_connection(
        *address,
        ssl=run.tls if implicit else None,
        server_hostname=HOST if implicit else None,
        local_addr=(source, 0) if source else None,
    )
    return Client(run, kind, reader, writer)


# -- the kinds of client ------------------------------------------------------------------------


def plain(size: int, *, pipelined: bool = False) -> Callable[[Client], Awaitable[None]]:
    async def session(client: Client) -> None:
        await client.hello()
        await client.message(size, pipelined=pipelined)
        await client.quit()

    return session


async def several(client: Client) -> None:
    await client.hello()
    for _ in range(5):
        await client.message(2048, pipelined=True)
        await client.command(b"RSET", "250")
    await client.quit()


async def bdat(client: Client) -> None:
    await client.hello()
    message_id, body = client.run.message(4096)
    client.send(
        b"MAIL FROM:<soak@example.test>\r\nRCPT TO:<sink@example.test>\r\n"
        + f"BDAT {len(body)} LAST\r\n".encode()
        + body
    )
    await client.reply("250 2.1.0")
    await client.reply("250 2.1.5")
    await client.reply("250 2.0.0")
    client.run.accepted.append(message_id)
    await client.quit()


async def starttls_auth(client: Client) -> None:
    await client.hello()
    await client.starttls()
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
    await client.command(b"AUTH PLAIN " + token, "235 2.7.0")
    await client.message(4096, pipelined=True)
    await client.quit()


async def implicit_tls(client: Client) -> None:
    await client.hello()
    await client.message(4096)
    await client.quit()


async def no_quit(client: Client) -> None:
    await client.hello()
    await client.message(1024)


async def smuggler(client: Client) -> None:
    await client.hello()
    message_id, body = client.run.message(1024)
    client.send(b"MAIL FROM:<soak@example.test>\r\nRCPT TO:<sink@example.test>\r\nDATA\r\n")
    await client.reply("250")
    await client.reply("250")
    await client.reply("354")
    client.send(
        body + b"\n.\nMAIL FROM:<ceo@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
        b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
    )
    await client.reply("554 5.6.0", refusal=True)
    client.run.refused_ids.append(message_id)
    await client.quit()


async def oversized_declared(client: Client) -> None:
    await client.hello()
    await client.command(
        f"MAIL FROM:<big@example.test> SIZE={MESSAGE_LIMIT + 1}".encode(), "552 5.3.4"
    )
    await client.quit()


async def oversized(client: Client) -> None:
    await client.hello()
    message_id, body = client.run.message(MESSAGE_LIMIT + 100_000)
    client.send(b"MAIL FROM:<big@example.test>\r\nRCPT TO:<sink@example.test>\r\nDATA\r\n")
    for code in ("250", "250", "354"):
        await client.reply(code)
    client.send(body + b".\r\n")
    await client.reply("552 5.3.4")
    client.run.refused_ids.append(message_id)
    await client.quit()


async def junk(client: Client) -> None:
    await client.hello()
    await client.command(b"MAIL FROM:<broken", "501 5.5.2")
    await client.command(b"RCPT TO:<someone@example.test>", "503 5.5.1")
    await client.command(b"DATA", "503 5.5.1")
    await client.command(b"NO\x00OP", "500 5.5.2")
    await client.command(b"XYZZY", "500 5.5.1", "502 5.5.1")
    await client.command(b"NOOP " + b"x" * 5000, "500 5.5.2")
    await client.command(b"MAIL FROM:<j\xc3\xb6rg@example.test>", "550 5.6.7")
    await client.command(b"BDAT x", "501 5.5.4")
    await client.quit()


async def noop_flood(client: Client) -> None:
    """Commands that move no mail, pipelined: answered up to the junk limit (100 with the
    EHLO, the default), then 421 4.7.0 and the server hangs up."""
    await client.hello()
    client.send(b"NOOP\r\n" * 200)
    for _ in range(99):
        await client.reply("250 2.0.0")
    await client.reply("421 4.7.0")
    await client.hung_up("421")


async def rcpt_flood(client: Client) -> None:
    """Recipients past the limit, pipelined: 100 taken (the default max_recipients), the next
    1,000 answered 452 4.5.3 (max_refused_recipients), then 421 4.7.0 and the server hangs
    up; nothing is stored, as no DATA came."""
    await client.hello()
    client.send(
        b"MAIL FROM:<soak@example.test>\r\n"
        + b"".join(b"RCPT TO:<r%d@example.test>\r\n" % n for n in range(1200))
    )
    await client.reply("250 2.1.0")
    for _ in range(100):
        await client.reply("250 2.1.5")
    for _ in range(1000):
        await client.reply("452 4.5.3")
    await client.reply("421 4.7.0")
    await client.hung_up("421")


async def wrong_password(client: Client) -> None:
    await client.hello()
    await client.starttls()
    token = base64.b64encode(f"\0{USER}\0guess{client.run.rng.random()}".encode())
    # 535 while the address has failures to spare, then 454; 421 closes a session that failed
    # too often.
    reply = await client.command(b"AUTH PLAIN " + token, "535 5.7.8", "454 4.7.0", "421 4.7.0")
    if not reply.startswith(b"421"):
        await client.quit()


async def vanish(client: Client) -> None:
    await client.hello()
    message_id, body = client.run.message(8192)
    client.send(b"MAIL FROM:<soak@example.test>\r\nRCPT TO:<sink@example.test>\r\nDATA\r\n")
    for code in ("250", "250", "354"):
        await client.reply(code)
    client.send(body[: len(body) // 2])
    await client.writer.drain()
    client.writer.transport.abort()
    client.run.refused_ids.append(message_id)


async def slowloris(client: Client) -> None:
    await client.reply("220")
    for octet in b"EHLO slowloris.example.test":
        client.send(bytes([octet]))
        line = b""
        try:
            line = await asyncio.wait_for(client.reader.readline(), 1.0)
        except TimeoutError:
            continue
        if line.startswith(b"421 4.4.2"):
            client.run.refusals["421 4.4.2"] += 1
            return
        raise Unexpected(f"{line!r}, expected 421 4.4.2")
    raise Unexpected("the slow client was never timed out")


async def tls_garbage(client: Client) -> None:
    await client.hello()
    await client.command(b"STARTTLS", "220 2.0.0")
    client.send(b"this is not a TLS ClientHello\r\n" * 10)
    # The handshake fails; the server hangs up without a word (there is no channel for one).
    await client.hung_up("a failed handshake")


# (weight, name, session, connect options)
MIX: list[tuple[float, str, Callable[[Client], Awaitable[None]], dict[str, object]]] = [
    (30, "plain 1 KiB", plain(1024), {}),
    (12, "plain 10 KiB", plain(10 * 1024), {}),
    (2, "plain 100 KiB", plain(100 * 1024), {}),
    (0.2, "plain 1 MiB", plain(1024 * 1024), {}),
    (10, "pipelined 2 KiB", plain(2048, pipelined=True), {}),
    (3, "5 messages a session", several, {}),
    (5, "BDAT", bdat, {}),
    (10, "STARTTLS + AUTH", starttls_auth, {}),
    (5, "implicit TLS", implicit_tls, {"implicit": True}),
    (2, "no QUIT", no_quit, {}),
    (3, "bad: smuggling", smuggler, {}),
    (2, "bad: SIZE too big", oversized_declared, {}),
    (0.1, "bad: message too big", oversized, {}),
    (4, "bad: junk commands", junk, {}),
    (1, "bad: NOOP flood", noop_flood, {}),
    (0.5, "bad: RCPT flood", rcpt_flood, {}),
    (3, "bad: wrong password", wrong_password, {"source": BAD_SOURCE}),
    (2, "bad: vanishes mid-message", vanish, {}),
    (0.5, "bad: slowloris", slowloris, {}),
    (1, "bad: garbage for TLS", tls_garbage, {}),
]


async def one_session(run: Run, choice: int) -> None:
    _, name, session, options = MIX[choice]
    run.sessions[name] += 1
    try:
        client = await connect(run, name, **options)  # type: ignore[arg-type]
    except OSError as exc:
        run.unexpected.append(f"{name}: cannot connect: {exc!r}")
        return
    try:
        await session(client)
        run.completed[name] += 1
    except Unexpected as exc:
        run.unexpected.append(f"{name}: {exc}")
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        run.unexpected.append(f"{name}: {type(exc).__name__}: {exc}")
    finally:
        client.writer.transport.abort()


# -- the server ---------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Resident memory of the server: the process and its workers (by default one a CPU; the
    supervisor alone, as this once read, stays flat whatever they do)."""
    return status_kib(pid, "VmRSS") / 1024


def cheap_password_line(user: str, password: str) -> str:
    """A password file line whose argon2 hash costs 8 MiB to check instead of the default
    64 MiB: each check's memory is taken and given back at once, and at the default cost the
    RSS samples would measure whether a check happened to be running, not whether anything
    stays behind. (tests/hostile/test_abuse.py measures the default cost.)"""
    from argon2 import PasswordHasher

    _, _, scram = password_line(user, password).split(":", 2)
    hashed = PasswordHasher(memory_cost=8 * 1024).hash(password)
    return f"{user}:{hashed}:{scram}"


def start_server(
    data: Path, log: Path, transcripts: int | None = None
) -> tuple[subprocess.Popen[bytes], int, int]:
    data.mkdir(parents=True, exist_ok=True)
    passwords = data.parent / "passwords"
    passwords.write_text(cheap_password_line(USER, PASSWORD) + "\n")
    port, smtps = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailroom",
            "serve",
            "--data",
            str(data),
            "--smtp",
            f"{HOST}:{port}",
            "--smtps",
            f"{HOST}:{smtps}",
            "--hostname",
            "soak.test",
            "--tls",
            "self-signed",
            "--auth",
            str(passwords),
            "--max-message-size",
            str(MESSAGE_LIMIT),
            "--max-connections-per-ip",
            "0",
            "--timeout",
            str(IDLE_TIMEOUT),
            "--web",
            "off",
            *(["--transcripts", str(transcripts)] if transcripts is not None else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mailroom serve exited: {log.read_text()}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                if sock.recv(100).startswith(b"220"):
                    return server, port, smtps
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("mailroom serve did not start")


def stop_server(server: subprocess.Popen[bytes]) -> int:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        return server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        return -9


def stored_ids(data: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for sub in ("new", "cur"):
        for path in (data / "mail").glob(f"**/{sub}/*"):
            with path.open("rb") as f:
                head = f.read(8192)
            for line in head.split(b"\r\n"):
                if line.startswith(b"Message-ID: "):
                    found[line[12:].decode()] += 1
                    break
                if not line:
                    found[f"(none: {path.name})"] += 1
                    break
    return found


# -- the run ------------------------------------------------------------------------------------


async def drive(run: Run, seconds: float, rate: float, pid: int, every: float) -> list[float]:
    """Start ``rate`` sessions a second for ``seconds``; sample the server's RSS meanwhile."""
    weights = [weight for weight, *_ in MIX]
    tasks: set[asyncio.Task[None]] = set()
    samples: list[float] = []
    started = time.monotonic()
    next_start = next_sample = started
    while True:
        now = time.monotonic()
        if now - started >= seconds:
            break
        if now >= next_sample:
            samples.append(rss_mib(pid))
            next_sample += every
        if now >= next_start:
            choice = run.rng.choices(range(len(MIX)), weights)[0]
            task = asyncio.ensure_future(one_session(run, choice))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_start += 1 / rate
            continue
        await asyncio.sleep(min(next_start, next_sample) - now)
    if tasks:
        await asyncio.wait(tasks, timeout=IDLE_TIMEOUT * 4 + 60)
    return samples


def memory_report(samples: list[float], every: float) -> dict[str, float]:
    # The level after the warm-up (the transcripts kept for the last --transcripts sessions
    # fill up, the allocator settles): the median of the samples from a fifth to a quarter of
    # the run. A short run must keep fewer transcripts, or they are still filling at its end.
    count = len(samples)
    early = samples[count // 5 : max(count // 4, count // 5 + 1)]
    late = samples[-max(1, count // 20) :]
    start, end = statistics.median(early), statistics.median(late)
    half = samples[count // 2 :]
    slope = 0.0
    if len(half) > 2:
        xs = [i * every / 60 for i in range(len(half))]
        slope = statistics.linear_regression(xs, half).slope
    return {
        "rss_first_mib": round(samples[0], 1),
        "rss_after_warmup_mib": round(start, 1),
        "rss_end_mib": round(end, 1),
        "rss_max_mib": round(max(samples), 1),
        "rss_growth_after_warmup_mib": round(end - start, 1),
        "rss_slope_second_half_mib_per_min": round(slope, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600.0, help="how long (default 600)")
    parser.add_argument("--rate", type=float, default=100.0, help="sessions started a second")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--data", type=Path, help="where the server keeps its data (a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--transcripts",
        type=int,
        help="sessions whose transcripts the server keeps (default: the server's own, 1000; "
        "fewer for a short run, so that they are all filled before the warm-up ends)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailroom-soak-") as temp:
        root = args.data or Path(temp)
        data = root / "data"
        log = root / "serve.log"
        server, port, smtps = start_server(data, log, args.transcripts)
        try:
            tls = ssl.create_default_context(cafile=str(data / "tls" / "self-signed.pem"))
            run = Run((HOST, port), (HOST, smtps), tls, random.Random(args.seed), f"{args.seed}")
            samples = asyncio.run(drive(run, args.seconds, args.rate, server.pid, args.sample))
            idle = rss_mib(server.pid)
        finally:
            status = stop_server(server)
        stored = stored_ids(data)
        text = log.read_text("utf-8", errors="replace")
        internal_errors = text.count("Traceback") + text.count("internal error")
    accepted = set(run.accepted)
    missing = [m for m in run.accepted if m not in stored]
    duplicated = [m for m, n in stored.items() if n > 1]
    extra = [m for m in stored if m not in accepted]
    refused_but_stored = [m for m in run.refused_ids if m in stored]
    elapsed = args.seconds
    memory = memory_report(samples, args.sample)
    memory["rss_idle_after_mib"] = round(idle, 1)
    flat = memory["rss_growth_after_warmup_mib"] <= max(16.0, 0.15 * memory["rss_after_warmup_mib"])
    report = {
        "seconds": round(elapsed, 1),
        "sessions": sum(run.sessions.values()),
        "sessions_per_s": round(sum(run.sessions.values()) / elapsed, 1),
        "messages_accepted": len(run.accepted),
        "messages_per_s": round(len(run.accepted) / elapsed, 1),
        "by_kind": {name: [run.sessions[name], run.completed[name]] for _, name, *_ in MIX},
        "expected_refusals": dict(sorted(run.refusals.items())),
        "unexpected": len(run.unexpected),
        "unexpected_examples": run.unexpected[:10],
        "stored": sum(stored.values()),
        "accepted_not_stored": len(missing),
        "stored_twice": len(duplicated),
        "stored_without_250": len(extra),
        "refused_but_stored": len(refused_but_stored),
        "internal_errors_in_log": internal_errors,
        "server_exit": status,
        **memory,
        "memory_flat": flat,
    }
    ok = (
        not run.unexpected
        and not missing
        and not duplicated
        and not extra
        and not refused_but_stored
        and internal_errors == 0
        and status == 0
        and flat
    )
    report["ok"] = ok
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0 if ok else 1


def print_report(report: dict[str, object]) -> None:
    print(
        f"soak: {report['seconds']} s of load, {report['sessions']} sessions "
        f"({report['sessions_per_s']}/s), {report['messages_accepted']} messages accepted "
        f"({report['messages_per_s']}/s)"
    )
    print("sessions by kind (started, completed as expected):")
    by_kind = report["by_kind"]
    assert isinstance(by_kind, dict)
    for name, (started, completed) in by_kind.items():
        print(f"  {name:<28} {started:>7} {completed:>7}")
    print(f"expected refusals: {report['expected_refusals']}")
    print(f"unexpected: {report['unexpected']} {report['unexpected_examples'] or ''}")
    print(
        f"store: {report['stored']} stored; accepted but not stored "
        f"{report['accepted_not_stored']}, stored twice {report['stored_twice']}, stored "
        f"without a 250 {report['stored_without_250']}, refused but stored "
        f"{report['refused_but_stored']}; internal errors in the log "
        f"{report['internal_errors_in_log']}; server exit {report['server_exit']}"
    )
    print(
        f"server RSS: {report['rss_first_mib']} MiB at start, {report['rss_after_warmup_mib']} "
        f"after warm-up, {report['rss_end_mib']} at the end (max {report['rss_max_mib']}); "
        f"growth after warm-up {report['rss_growth_after_warmup_mib']} MiB, slope over the "
        f"second half {report['rss_slope_second_half_mib_per_min']} MiB/min; "
        f"{report['rss_idle_after_mib']} MiB idle after the run"
    )
    print("OK" if report["ok"] else "FAILED")


if __name__ == "__main__":
    sys.exit(main())
