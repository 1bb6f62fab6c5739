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
from tests.hostile.tools import SCALES, raise_open_files, tree_rss_mib
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


class SlowCrowd:
    """The slow clients as a whole: how many hang on now, and how every connection ended.

    A slow client the server times out comes back (connects again and dribbles again) until
    :attr:`done` is set, so the crowd hangs on beside the load however long the load takes on
    a busy machine: whether they were there is read from these counts, not from a race
    between a fixed timeout and the load's duration."""

    def __init__(self, address: tuple[str, int], count: int) -> None:
        self.address = address
        self.count = count
        self.hanging = 0  # connections in the slow part now (greeted, dribbling)
        self.arrived: set[int] = set()  # the clients that have hung on at least once
        self.all_arrived = asyncio.Event()
        self.done = asyncio.Event()
        self.endings: list[bytes] = []  # every connection's last line from the server
        self.arrival = 0.0  # seconds until each had hung on once

    async def client(self, n: int, kind: str, semaphore: asyncio.Semaphore) -> None:
        while not self.done.is_set():
            started = asyncio.Event()
            async with semaphore:  # connecting (not hanging on) is what the semaphore paces
                connection = asyncio.ensure_future(slowloris(self.address, kind, 1.0, started))
                waiting = asyncio.ensure_future(started.wait())
                await asyncio.wait([connection, waiting], return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
            if started.is_set():
                self.hanging += 1
                self.arrived.add(n)
                if len(self.arrived) == self.count:
                    self.all_arrived.set()
            try:
                lines = await connection
            finally:
                if started.is_set():
                    self.hanging -= 1
            self.endings.append(lines[-1] if lines else b"")


async def slowloris_and_load(
    address: tuple[str, int], count: int, messages: int
) -> tuple[SlowCrowd, LoadResult, list[float]]:
    """``count`` slow clients, half in a command and half in message data; once each has hung
    on, a normal load beside them. The crowd, the load, and the share of the crowd hanging on,
    sampled every 50 ms while the load ran."""
    crowd = SlowCrowd(address, count)
    arrival = time.monotonic()
    semaphore = asyncio.Semaphore(200)
    clients = [
        asyncio.ensure_future(crowd.client(n, "data" if n % 2 else "command", semaphore))
        for n in range(count)
    ]
    arrived = asyncio.ensure_future(crowd.all_arrived.wait())
    await asyncio.wait([arrived, *clients], return_when=asyncio.FIRST_COMPLETED)
    for client in clients:
        if client.done():
            client.result()  # a client that failed says why
    crowd.arrival = time.monotonic() - arrival
    # All of them hang on (or have, and come back); a normal load runs beside them.
    shares: list[float] = []

    async def sample() -> None:
        while True:
            shares.append(crowd.hanging / count)
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(sample())
    try:
        load = await run_load(*address, messages=messages, connections=20, size=1024, record=True)
    finally:
        sampler.cancel()
        crowd.done.set()  # each slow client ends with the connection it holds now
    await asyncio.gather(*clients)
    return crowd, load, shares


@pytest.mark.parametrize("scale", SCALES)
def test_slowloris_does_not_starve_others_and_is_timed_out(tmp_path: Path, scale: str) -> None:
    long = scale == "long"
    count = 3000 if long else 1000
    messages = 20_000 if long else 2000
    # The slow clients come back when they are timed out (SlowCrowd), so the timeout need not
    # outlast the load: it has to be long next to a client's reconnection (the long run's
    # 3,000 come back in bigger waves), and short enough that the test waits little for the
    # last of them once the load is done.
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
        before = tree_rss_mib(server.process.pid)
        started = time.monotonic()
        crowd, load, shares = asyncio.run(slowloris_and_load(address, count, messages))
        elapsed = time.monotonic() - started
        during = tree_rss_mib(server.process.pid)
        # The normal clients got every message through while the slow ones hung on: most of
        # the crowd, on average over the load, whatever the load's duration.
        assert (load.messages, load.failed, load.refusals) == (messages, 0, {})
        assert shares, "the load ended before the crowd was looked at"
        hanging = sum(shares) / len(shares)
        assert hanging > 0.5, f"only {hanging:.0%} of the slow clients hung on beside the load"
        # Each slow connection was given 421 4.4.2 and closed; none ended otherwise.
        endings = Counter(crowd.endings)
        assert set(endings) == {TIMED_OUT} and endings[TIMED_OUT] >= count, endings
        print(
            f"\n{count} slowloris clients: normal load {alone.rate:.0f} msg/s alone, "
            f"{load.rate:.0f} msg/s beside them (p99 {load.percentile(99) * 1000:.1f} ms, "
            f"{hanging:.0%} of them hanging on on average, all there after "
            f"{crowd.arrival:.1f} s); {endings[TIMED_OUT]} slow "
            f"connections, all timed out with 421 4.4.2, within {elapsed:.1f} s; "
            f"server RSS (all its processes) {before:.0f} MiB before, {during:.0f} MiB after"
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
        # Places freed are taken again, one by one, until the server is full once more; then a
        # flood from many addresses is turned away whole. (The server learns of the 50 closes
        # when its loop reads their EOFs, at a moment the client cannot see: counting the free
        # places from the client's side raced with that on a loaded machine.)
        for writer in held[:50]:
            writer.close()
        held = held[50:]

        async def admitted() -> bool:
            lines, writers = await connect_all(address, ["127.0.0.3"])
            if lines == [GREETING]:
                held.extend(writers)
                return True
            writers[0].close()
            return False

        deadline = time.monotonic() + 20
        while len(held) < 100:
            if not await admitted():
                assert time.monotonic() < deadline, f"only {len(held)} places taken again"
                await asyncio.sleep(0.05)
        lines, writers = await connect_all(address, sources[:500])
        assert Counter(lines) == {FULL: 500}
        for writer in held + writers:
            writer.close()

    try:
        asyncio.run(run())
    finally:
        assert server.terminate() == 0, server.stderr
