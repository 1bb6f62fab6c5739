"""A small asyncio IMAP client for one job: log in, URLFETCH one URL (RFC 4467 §3.3), log out.

Only what BURL needs: LOGIN with quoted strings (RFC 3501 §6.2.3), URLFETCH, literals in its
answer, whose size is known before a byte of them is read (so a part too big for the message is
refused without reading it), STARTTLS or implicit TLS. Every failure is an :class:`IMAPError`
that says which kind it was: the server could not be reached, refused the login, or would not
resolve the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from typing import Literal

__all__ = ["IMAPError", "TooBig", "urlfetch"]

MAX_LINE = 64 * 1024
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n?$")


class IMAPError(Exception):
    """``kind``: "unavailable" (no connection, a timeout, the server went away), "login" (the
    server refused the login: no trust relationship), "resolve" (URLFETCH gave nothing)."""

    def __init__(self, kind: Literal["unavailable", "login", "resolve"], text: str) -> None:
        super().__init__(text)
        self.kind = kind
        self.text = text


class TooBig(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"{size} octets")
        self.size = size


def _quoted(text: str) -> bytes:
    if any(c in text for c in "\r\n\0") or not text.isascii():
        raise IMAPError("login", "a login name or password IMAP cannot quote")
    return b'"' + text.replace("\\", "\\\\").replace('"', '\\"').encode("ascii") + b'"'


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.tag = 0

    async def line(self) -> bytes:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise IMAPError("unavailable", "the IMAP server closed the connection") from None
        except asyncio.LimitOverrunError:
            raise IMAPError("unavailable", "the IMAP server sent a line too long") from None
        return line

    async def command(self, text: bytes) -> str:
        self.tag += 1
        tag = f"m{self.tag}".encode()
        self.writer.write(tag + b" " + text + b"\r\n")
        await self.writer.drain()
        return tag.decode()

    async def tagged(self, tag: str) -> tuple[str, str]:
        """Skip untagged lines up to the tagged reply: (OK/NO/BAD, its text)."""
        while True:
            line = (await self.line()).decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(tag + " "):
                status, _, text = line[len(tag) + 1 :].partition(" ")
                return status.upper(), text


async def urlfetch(
    url: str,
    *,
    host: str,
    port: int,
    login: str,
    password: str,
    tls: Literal["none", "starttls", "implicit"] = "none",
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
    limit: int = 0,
) -> bytes:
    """The content ``url`` resolves to on the IMAP server at ``host:port``, fetched as
    ``login``; :class:`IMAPError` or :class:`TooBig` (more than ``limit`` octets, 0: none)."""
    try:
        return await asyncio.wait_for(
            _urlfetch(url, host, port, login, password, tls, ssl_context, limit), timeout
        )
    except TimeoutError:
        raise IMAPError(
            "unavailable", f"no answer from {host}:{port} within {timeout:g}s"
        ) from None


async def _urlfetch(
    url: str,
    host: str,
    port: int,
    login: str,
    password: str,
    tls: str,
    context: ssl.SSLContext | None,
    limit: int,
) -> bytes:
    context = context or ssl.create_default_context()
    try:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context if tls == "implicit" else None, limit=MAX_LINE
        )
    except (OSError, ssl.SSLError) as exc:
        raise IMAPError("unavailable", f"cannot connect to {host}:{port}: {exc}") from None
    conn = _Connection(reader, writer)
    try:
        greeting = await conn.line()
        if not greeting.upper().startswith(b"* OK"):
            raise IMAPError("unavailable", f"the IMAP server greeted {greeting[:80]!r}")
        if tls == "starttls":
            status, text = await conn.tagged(await conn.command(b"STARTTLS"))
            if status != "OK":
                raise IMAPError("unavailable", f"STARTTLS refused: {text}")
            await writer.start_tls(context, server_hostname=host)
        status, text = await conn.tagged(
            await conn.command(b"LOGIN " + _quoted(login) + b" " + _quoted(password))
        )
        if status != "OK":
            raise IMAPError("login", f"the IMAP server refused the login of {login}: {text}")
        tag = await conn.command(b"URLFETCH " + _quoted(url))
        content: bytes | None = None
        while True:
            line = await conn.line()
            if line.startswith(tag.encode() + b" "):
                status, _, text = line.decode("utf-8", "replace")[len(tag) + 1 :].partition(" ")
                if status.upper() != "OK" or content is None:
                    raise IMAPError("resolve", f"URLFETCH gave nothing: {text.strip()}")
                break
            if not line.upper().startswith(b"* URLFETCH "):
                continue
            literal = _LITERAL.search(line)
            if literal is None:
                continue  # "* URLFETCH url NIL": not resolved; the tagged NO/OK follows
            size = int(literal[1])
            if limit and size > limit:
                raise TooBig(size)
            content = await reader.readexactly(size)
            await conn.line()  # the rest of the response line after the literal
        await conn.command(b"LOGOUT")
        return content
    except asyncio.IncompleteReadError:
        raise IMAPError("unavailable", "the IMAP server closed the connection") from None
    except (OSError, ssl.SSLError) as exc:
        raise IMAPError("unavailable", f"the connection to {host}:{port} failed: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
