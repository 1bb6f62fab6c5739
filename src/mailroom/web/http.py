"""Small helpers the endpoints share: JSON in and out, query numbers, the web's context."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from mailroom.web.context import WebContext

__all__ = [
    "CONTEXT",
    "WEB_USER",
    "error",
    "json_body_response",
    "json_bytes",
    "json_response",
    "query_int",
    "request_json",
    "web_context",
    "web_user",
]

CONTEXT: web.AppKey[WebContext] = web.AppKey("mailroom")
# The web user a request logged in as (when the web asks for credentials).
WEB_USER: web.RequestKey[str] = web.RequestKey("mailroom.web_user", str)


def json_bytes(data: Any) -> bytes:
    """``data`` as JSON, for :func:`json_body_response` (made in a worker thread when large)."""
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def json_body_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False),
        status=status,
        content_type="application/json",
    )


def error(status: int, message: str) -> web.Response:
    return json_response({"Error": message}, status)


def web_context(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


def web_user(request: web.Request) -> str | None:
    """Who the request logged in as; None when the web asks for no credentials."""
    return request.get(WEB_USER)


def query_int(request: web.Request, name: str, default: int, maximum: int) -> int:
    value = request.query.get(name, "")
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number") from None
    if number < 0:
        raise web.HTTPBadRequest(text=f"{name} must not be negative")
    return min(number, maximum)


# Octets of a JSON body (IDs, a rule, tags: 1 MiB is 50,000 message IDs). The decoder holds
# the interpreter lock, and the event loop that serves SMTP waits for it: eight bodies of
# 60 MiB of "0," took it 35 s and the process 2.6 GB, under the application's own limit
# (64 MiB, for /api/v1/send's attachments, which asks for more).
MAX_JSON = 1024 * 1024


async def request_json(request: web.Request, limit: int = MAX_JSON) -> dict[str, Any]:
    """The JSON object of the request body; {} when there is none; 413 past ``limit`` octets."""
    if not request.can_read_body:
        return {}
    # The octets, not request.text(): that decodes by the charset the client names, and an
    # unknown one, or octets that are not of it, raised past the handler (a 500). JSON is
    # UTF-8 (RFC 8259 §8.1), which json.loads reads from octets; octets that are not UTF-8
    # raise UnicodeDecodeError, a ValueError.
    body = await _read_at_most(request, limit)
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    except RecursionError:  # "[[[[…": nested deeper than the decoder goes
        raise web.HTTPBadRequest(text="the body's JSON nests too deep") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return data


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    """The body, read only while it stays within ``limit`` octets (a declared length past it
    is refused unread; a chunked one once it passes it)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)
