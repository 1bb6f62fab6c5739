"""Slow clients and floods against ``mailroom serve``. A thousand slowloris clients (one byte
every second, in a command or in message data) do not starve the others: a normal load still
gets all its mail through while they hang on, and each of them is given 421 4.4.2 once the
idle timeout passes without progress. Connections beyond --max-connections or
--max-connections-per-ip get 421 4.7.0 at once in place of the greeting, never a hang."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from mailroom.loadgen import LoadResult, run_load
from tests.hostile.tools import SCALES, raise_open_files, rss_mib
from tests.live import HOSTNAME, ServeProcess

TIMED_OUT = f"421 4.4.2 {HOSTNAME} Error: timeout exceeded, closing connection\r\n".encode()
GREETING = f"220 {HOSTNAME} ESMTP mailroom\r\n".encode()
FULL = f"421 4.7.0 {HOSTNAME} Error: too many connections, try again later\r\n".encode()


def too_many_from(address: str) -> bytes:
    return f"421 4.7.0 {HOSTNAME} Error: too many connections from {address}\r\n".encode()


def start(tmp_path: Path, *flags: str) -> ServeProcess:
    return ServeProcess(
        [
            "--data",
            str(tmp_path / "data"),
            "--smtp",
            "127.0.0.1:0",
            "--hostname",
            HOSTNAME,
            "--web",
            "off",
            "--log-level",
            "warning",
            *flags,
        ],
        tmp_path / "serve.log",
    ).wait_started()


def open_files(count: int) -> None:
    """Enough file descriptors here for ``count`` clients (the server raises its own)."""
    wanted = 2 * count + 512
    got = raise_open_files(wanted)
    if got < wanted:
        pytest.skip(f"needs {wanted} open files, the hard limit allows {got}")


async def read_all(reader: asyncio.StreamReader) -> list[bytes]:
    lines = []
    while True:
        try:
            line = await reader.readline()
        except ConnectionError:
            break
        if not line:
            break
        lines.append(line)
    return lines


async def slowloris(
    address: tuple[str, int], kind: str, interval: float, started: asyncio.Event
) -> list[bytes]:
    """One byte every ``interval`` seconds: in an EHLO line that never ends, or in the data
    of a message; until the server hangs up. Every line the server sent."""
    reader, writer = await asyncio.open_connection(*address)
    replies = [await reader.readline()]
    if kind == "data":
        writer.write(b"EHLO slow.example.test\r\n")
        while (line := await reader.readline())[3:4] == b"-":
            pass
        writer.write(b"MAIL FROM:<slow@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        replies += [line] + [await reader.readline() for _ in range(3)]
        dribble = b"Subject: slow\r\n\r\n" + b"s" * 10_000
    else:
        dribble = b"EHLO slowloris.example.test" + b"x" * 10_000
    reading = asyncio.ensure_future(read_all(reader))
    started.set()
    for octet in dribble:
        if reading.done():
            break
        try:
            writer.write(bytes([octet]))
        except ConnectionError:
            break
        await asyncio.sleep(interval)
    replies += await reading
    writer.close()
    return replies


async def slowloris_and_load(
    address: tuple[str, int], count: int, messages: int
) -> tuple[list[list[bytes]], LoadResult, float]:
    started = [asyncio.Event() for _ in range(count)]
    semaphore = asyncio.Semaphore(200)

    async def one(n: int) -> list[bytes]:
        async with semaphore:
            connected = asyncio.ensure_future(
                slowloris(address, "data" if n % 2 else "command", 1.0, started[n])
            )
            await started[n].wait()
        return await connected

    clients = [asyncio.ensure_future(one(n)) for n in range(count)]
    await asyncio.gather(*(event.wait() for event in started))
    # All of them hang on now; a normal load runs beside them.
    load = await run_load(*address, messages=messages, connections=20, size=1024, record=True)
    still_hanging = sum(1 for c in clients if not c.done())
    return await asyncio.gather(*clients), load, still_hanging / count


@pytest.mark.parametrize("scale", SCALES)
def test_slowloris_does_not_starve_others_and_is_timed_out(tmp_path: Path, scale: str) -> None:
    long = scale == "long"
    count = 3000 if long else 1000
    messages = 20_000 if long else 2000
    # Longer than the load beside the slow clients takes, so that they still hang on when it
    # ends: on a 2-core machine, connecting 3,000 slow clients and then sending 20,000 messages
    # beside them outlasted a 10 s timeout (the quick run's 2,000 took 1-2 s).
    timeout = "40" if long else "5"
    open_files(count)
    server = start(
        tmp_path,
        "--timeout",
        timeout,
        "--max-connections",
        str(count + 100),
        "--max-connections-per-ip",
        "0",
    )
    try:
        address = server.smtp
        alone = asyncio.run(run_load(*address, messages=messages, connections=20, size=1024))
        assert (alone.messages, alone.failed) == (messages, 0)
        before = rss_mib(server.process.pid)
        started = time.monotonic()
        transcripts, load, hanging = asyncio.run(slowloris_and_load(address, count, messages))
        elapsed = time.monotonic() - started
        during = rss_mib(server.process.pid)
        # The normal clients got every message through while the slow ones hung on.
        assert (load.messages, load.failed, load.refusals) == (messages, 0, {})
        assert hanging > 0.5, "the slow clients were gone before the load ran"
        # Each slow client was given 421 4.4.2 and the connection closed.
        endings = Counter(lines[-1] if lines else b"" for lines in transcripts)
        assert endings == {TIMED_OUT: count}, endings
        print(
            f"\n{count} slowloris clients: normal load {alone.rate:.0f} msg/s alone, "
            f"{load.rate:.0f} msg/s beside them (p99 {load.percentile(99) * 1000:.1f} ms); "
            f"all {count} timed out with 421 4.4.2 within {elapsed:.1f} s; "
            f"server RSS {before:.0f} MiB before, {during:.0f} MiB after"
        )
    finally:
        assert server.terminate() == 0, server.stderr


async def connect_all(
    address: tuple[str, int], sources: list[str]
) -> tuple[list[bytes], list[asyncio.StreamWriter]]:
    """Connect once from each source address at the same time; each first line (or b"" if
    the server closed without one)."""

    async def one(source: str) -> tuple[bytes, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(*address, local_addr=(source, 0))
        return await asyncio.wait_for(reader.readline(), 15), writer

    results = await asyncio.gather(*(one(source) for source in sources))
    return [line for line, _ in results], [writer for _, writer in results]


@pytest.mark.parametrize("scale", SCALES)
def test_connection_floods_get_421_at_the_greeting(tmp_path: Path, scale: str) -> None:
    flood = 3000 if scale == "long" else 1000
    open_files(flood)
    server = start(tmp_path, "--max-connections", "100", "--max-connections-per-ip", "60")
    address = server.smtp

    async def run() -> None:
        held: list[asyncio.StreamWriter] = []
        # One address up to its limit, and one more from it.
        lines, writers = await connect_all(address, ["127.0.0.1"] * 61)
        held += [w for line, w in zip(lines, writers, strict=True) if line == GREETING]
        assert Counter(lines) == {GREETING: 60, too_many_from("127.0.0.1"): 1}
        # Another address fills the server; then everyone is turned away.
        lines, writers = await connect_all(address, ["127.0.0.2"] * 40)
        held += writers
        assert Counter(lines) == {GREETING: 40}
        sources = [f"127.0.{1 + n // 250}.{1 + n % 250}" for n in range(flood)]
        lines, writers = await connect_all(address, sources)
        assert Counter(lines) == {FULL: flood}
        for writer in writers:
            writer.close()
        # Places freed are taken again; a flood from many addresses is cut at the limit.
        for writer in held[:50]:
            writer.close()
        await asyncio.sleep(0)

        held = held[50:]

        async def admitted() -> bool:
            lines, writers = await connect_all(address, ["127.0.0.3"])
            if lines == [GREETING]:
                held.extend(writers)
                return True
            writers[0].close()
            return False

        deadline = time.monotonic() + 10
        while not await admitted():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        free = 100 - len(held)
        lines, writers = await connect_all(address, sources[:500])
        assert Counter(lines) == {GREETING: free, FULL: 500 - free}
        for writer in held + writers:
            writer.close()

    try:
        asyncio.run(run())
    finally:
        assert server.terminate() == 0, server.stderr
