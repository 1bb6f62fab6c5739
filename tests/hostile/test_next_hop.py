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

The server that reads nothing is met on plain TCP and over TLS, with asyncio's event loop and
uvloop's (which the server runs when installed): whether anything moved is read from the
transport's write buffer, and each kind of transport keeps its own. Over asyncio's TLS the
message written whole showed no buffer at all (the TLS layer hands everything to the socket's
transport below it at once), so the client waited for a reply instead and said the server "did
not answer": it is now written in pieces (``client.connection.WRITE_PIECE``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mailroom.client import Client
from mailroom.client.errors import ConnectionFailed, ProtocolError
from mailroom.server.tls import ensure_self_signed

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
TIMEOUT = 1.0


async def _against(
    handler: Handler,
    message: bytes,
    certificate: tuple[Path, Path] | None = None,
    final_timeout: float | None = None,
) -> tuple[BaseException | None, float]:
    """Send ``message`` to a server that ``handler`` plays (over implicit TLS with
    ``certificate``); what failed, and when."""
    server_context = client_context = None
    if certificate is not None:
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(*certificate)
        client_context = ssl.create_default_context(cafile=str(certificate[0]))
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    failure: BaseException | None = None
    client = Client(
        "127.0.0.1",
        port,
        tls="none" if certificate is None else "implicit",
        ssl_context=client_context,
        server_hostname="localhost",
        timeout=TIMEOUT,
        final_timeout=final_timeout,
        local_hostname="c.test",
    )
    try:
        async with client:
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


async def _up_to_354(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Greet, answer EHLO (with PIPELINING), then MAIL, RCPT and DATA in one write."""
    writer.write(b"220 next-hop.test ESMTP\r\n")
    for reply in (
        b"250-next-hop.test\r\n250 PIPELINING\r\n",
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n",
    ):
        await reader.readline()
        writer.write(reply)
        await writer.drain()


async def _reads_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers up to DATA's 354, then never reads again."""
    await _up_to_354(reader, writer)
    await asyncio.sleep(60)
    writer.close()


async def _reads_slowly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A slow link: the message taken a piece at a time, a tenth of a second apart."""
    await _up_to_354(reader, writer)
    tail = b""
    while not tail.endswith(b"\r\n.\r\n"):
        piece = await reader.read(512 * 1024)
        if not piece:
            return
        tail = (tail + piece)[-5:]
        await asyncio.sleep(0.1)
    writer.write(b"250 2.0.0 Ok: queued\r\n")
    await reader.readline()  # QUIT
    writer.write(b"221 2.0.0 Bye\r\n")
    await writer.drain()
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


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_server_that_reads_nothing_is_given_up(tmp_path: Path, tls: bool, loop: str) -> None:
    message = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 20_000  # 20 MB
    certificate = ensure_self_signed(tmp_path / "tls", "localhost") if tls else None
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        failure, took = uvloop.run(_against(_reads_nothing, message, certificate))
    else:
        failure, took = asyncio.run(_against(_reads_nothing, message, certificate))
    assert isinstance(failure, ConnectionFailed), failure
    assert "took nothing of the message in 1 seconds" in str(failure)
    assert took < 10 * TIMEOUT


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_a_server_that_reads_slowly_is_waited_for(tmp_path: Path, tls: bool) -> None:
    """The other side of the drain check: a server that takes the message a little at a time,
    more slowly than ``timeout`` would allow for the whole, still gets all of it. (What the
    kernel's socket buffer still holds after the last write, several MB on loopback, is read
    within the reply's time after the message, ``final_timeout``, as the runner's 10 minutes.)"""
    message = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 8_000  # 8 MB
    certificate = ensure_self_signed(tmp_path / "tls", "localhost") if tls else None
    failure, took = asyncio.run(_against(_reads_slowly, message, certificate, final_timeout=30))
    assert failure is None, failure
    assert took > 2 * TIMEOUT  # it did take longer than one timeout


@pytest.mark.timeout(30)
def test_a_reply_of_megabytes_is_refused() -> None:
    failure, _ = asyncio.run(_against(_megabytes, b"Subject: x\r\n\r\nhi\r\n"))
    assert isinstance(failure, ProtocolError), failure
    assert "reply longer than 65536 octets" in str(failure)
