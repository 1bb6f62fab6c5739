"""Mailpit's tag endpoints: ``GET /api/v1/tags`` (every tag in use), ``PUT /api/v1/tags``
(``{"IDs": [...], "Tags": [...]}`` sets exactly those tags on those messages; no Tags removes
them all), ``PUT /api/v1/tags/{tag}`` (``{"Name": ...}`` renames) and
``DELETE /api/v1/tags/{tag}`` (takes it off every message; the messages stay).

Tags live in the index (``index.sqlite``, table ``tags``), beside the messages they name, so
they outlast a restart; the store fills them from a message's ``X-Tags`` field as it stores it
(:mod:`mailroom.store.tags` has the rules for a tag's characters and the queries)."""

from __future__ import annotations

from aiohttp import web

from mailroom.store.tags import (
    MAX_TAGS,
    clean_tag,
    clean_tags,
)
from mailroom.web.events import event_stream
from mailroom.web.http import error, json_response, request_json, web_context

__all__ = ["routes"]

MAX_IDS = 10_000  # messages one PUT may tag


# -- endpoints -------------------------------------------------------------------------------


async def get_tags(request: web.Request) -> web.Response:
    messages = web_context(request).messages
    if not messages.enabled:
        return json_response([])
    return json_response(await messages.call(messages.all_tags))


async def put_tags(request: web.Request) -> web.Response:
    messages = web_context(request).messages
    body = await request_json(request)
    ids, tags = body.get("IDs") or [], body.get("Tags") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return error(400, "IDs must list message IDs")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return error(400, "Tags must list tag names")
    if len(ids) > MAX_IDS:
        return error(400, f"at most {MAX_IDS} IDs in one request")
    if len(tags) > MAX_TAGS:
        return error(400, f"at most {MAX_TAGS} tags on a message")
    if messages.enabled and ids:
        changed = await messages.call(messages.set_tags, ids, clean_tags(tags))
        await event_stream(request).tagged(changed)
    return web.Response(text="ok")


async def put_tag(request: web.Request) -> web.Response:
    messages = web_context(request).messages
    old = request.match_info["tag"]
    body = await request_json(request)
    new = clean_tag(str(body.get("Name") or ""))
    if not new:
        return error(400, "Name must be a tag of letters, digits, spaces, -, _, . or @")
    if messages.enabled:
        await messages.call(messages.rename_tag, old, new)
        await event_stream(request).tagged(None)
    return web.Response(text="ok")


async def delete_one_tag(request: web.Request) -> web.Response:
    messages = web_context(request).messages
    if messages.enabled:
        await messages.call(messages.delete_tag, request.match_info["tag"])
        await event_stream(request).tagged(None)
    return web.Response(text="ok")


def routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/api/v1/tags", get_tags)
    add("PUT", "/api/v1/tags", put_tags)
    add("PUT", "/api/v1/tags/{tag}", put_tag)
    add("DELETE", "/api/v1/tags/{tag}", delete_one_tag)
