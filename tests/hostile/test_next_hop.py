"""A next hop a stranger runs: mail to their domain meets their server, and mailroom's client
(the queue runner's, in the server's process) must not be held by it for ever, nor made to
keep whatever it says. Real sockets on loopback; the hostile server is a few lines of asyncio.

- a server that trickles a reply a byte at a time: before, each byte started the timeout
  again, so the delivery waited for ever; now ``timeout`` is for each reply whole;
- a server that takes the message's first octets and then reads nothing: before, the client
  waited for its write buffer to drain for ever; now it gives up when nothing moved for
  ``timeout``;
- a server whose reply is megabytes: refused past 64 KiB (tests/client/test_sansio.py
  shows the reading is linear).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from mailroom.client import Client
from mailroom.client.errors import ConnectionFailed, ProtocolError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
TIMEOUT = 1.0


async def _against(handler: Handler, message: bytes) -> tuple[BaseException | None, float]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    failure: BaseException | None = None
    try:
        async with Client("127.0.0.1", port, timeout=TIMEOUT, local_hostname="c.test") as client:
            await client.send(message, sender="a@example.test", recipients=["b@example.test"])
    except (ConnectionFailed, ProtocolError) as exc:
        failure = exc
    finally:
        server.close()
    return failure, time.monotonic() - started


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A greeting that never ends, a byte every tenth of a second."""
    writer.write(b"220-")
    for _ in range(600):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.1)
    writer.close()


async def _reads_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers up to DATA's 354, then never reads again."""
    writer.write(b"220 hostile.test ESMTP\r\n")
    for reply in (
        b"250-hostile.test\r\n250 PIPELINING\r\n",
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n",
    ):
        await reader.readline()
        writer.write(reply)
        await writer.drain()
    await asyncio.sleep(60)
    writer.close()


async def _megabytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write((b"220-" + b"x" * 60_000 + b"\r\n") * 100 + b"220 ok\r\n")
    await writer.drain()
    await asyncio.sleep(60)


@pytest.mark.timeout(30)
def test_a_reply_trickled_a_byte_at_a_time_times_out() -> None:
    failure, took = asyncio.run(_against(_trickle, b"Subject: x\r\n\r\nhi\r\n"))
    assert isinstance(failure, ConnectionFailed), failure
    assert "did not answer within 1 seconds" in str(failure)
    assert took < 10 * TIMEOUT  # 60 s of trickle before (and for ever with no end)


@pytest.mark.timeout(30)
def test_a_server_that_reads_nothing_is_given_up() -> None:
    message = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 20_000  # 20 MB
    failure, took = asyncio.run(_against(_reads_nothing, message))
    assert isinstance(failure, ConnectionFailed), failure
    assert "took nothing of the message in 1 seconds" in str(failure)
    assert took < 10 * TIMEOUT


@pytest.mark.timeout(30)
def test_a_reply_of_megabytes_is_refused() -> None:
    failure, _ = asyncio.run(_against(_megabytes, b"Subject: x\r\n\r\nhi\r\n"))
    assert isinstance(failure, ProtocolError), failure
    assert "reply longer than 65536 octets" in str(failure)
