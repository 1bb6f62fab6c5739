"""Mailpit's tag endpoints: ``GET /api/v1/tags`` (every tag in use), ``PUT /api/v1/tags``
(``{"IDs": [...], "Tags": [...]}`` sets exactly those tags on those messages; no Tags removes
them all), ``PUT /api/v1/tags/{tag}`` (``{"Name": ...}`` renames) and
``DELETE /api/v1/tags/{tag}`` (takes it off every message; the messages stay).

Tags live in the index (``index.sqlite``, table ``tags``), beside the messages they name, so
they outlast a restart; the store fills them from a message's ``X-Tags`` field as it stores it
(:mod:`mailroom.store.tags` has the rules for a tag's characters)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from aiohttp import web

from mailroom.store.tags import MAX_TAGS, clean_tag, clean_tags
from mailroom.web.http import error, json_response, request_json, web_server

__all__ = ["all_tags", "routes", "set_tags", "tag_counts", "tags_of"]

MAX_IDS = 10_000  # messages one PUT may tag


def all_tags(db: sqlite3.Connection) -> list[str]:
    """Every tag in use, sorted without regard to case."""
    return [r[0] for r in db.execute("SELECT DISTINCT tag FROM tags ORDER BY tag COLLATE NOCASE")]


def tags_of(db: sqlite3.Connection, ids: list[str]) -> dict[str, list[str]]:
    """The tags of each message of ``ids`` (an empty list for one without)."""
    found: dict[str, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        for id_, tag in db.execute(
            f"SELECT id, tag FROM tags WHERE id IN ({', '.join('?' for _ in part)}) "
            "ORDER BY tag COLLATE NOCASE",
            part,
        ):
            found[id_].append(tag)
    return found


def tag_counts(db: sqlite3.Connection) -> dict[str, int]:
    """Each tag with the number of messages that carry it (``/api/v1/info``'s ``Tags``)."""
    return dict(
        db.execute("SELECT tag, COUNT(*) FROM tags GROUP BY tag ORDER BY tag COLLATE NOCASE")
    )


def set_tags(db: sqlite3.Connection, ids: Iterable[str], tags: list[str]) -> list[str]:
    """Give each message of ``ids`` exactly ``tags`` (already clean). A tag that exists on
    another message keeps that spelling. The ids of messages that exist."""
    spelled = {}
    for tag in tags:
        found = db.execute("SELECT tag FROM tags WHERE tag = ? LIMIT 1", (tag,)).fetchone()
        spelled[tag] = found[0] if found else tag
    changed = []
    with db:
        for message_id in ids:
            if db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is None:
                continue
            db.execute("DELETE FROM tags WHERE id = ?", (message_id,))
            db.executemany(
                "INSERT OR IGNORE INTO tags (id, tag) VALUES (?, ?)",
                [(message_id, spelled[tag]) for tag in tags],
            )
            changed.append(message_id)
    return changed


def rename_tag(db: sqlite3.Connection, old: str, new: str) -> int:
    """Rename ``old`` to ``new`` on every message (merging with ``new`` where both are). The
    number of messages that had ``old``."""
    with db:
        ids = [r[0] for r in db.execute("SELECT id FROM tags WHERE tag = ?", (old,))]
        db.execute("DELETE FROM tags WHERE tag = ?", (old,))
        db.executemany(
            "INSERT OR IGNORE INTO tags (id, tag) VALUES (?, ?)", [(i, new) for i in ids]
        )
        db.execute("UPDATE tags SET tag = ? WHERE tag = ?", (new, new))  # one spelling of it
    return len(ids)


def delete_tag(db: sqlite3.Connection, tag: str) -> int:
    with db:
        return db.execute("DELETE FROM tags WHERE tag = ?", (tag,)).rowcount


# -- endpoints -------------------------------------------------------------------------------


async def get_tags(request: web.Request) -> web.Response:
    messages = web_server(request).messages
    if not messages.enabled:
        return json_response([])
    return json_response(await messages.with_db(all_tags))


async def put_tags(request: web.Request) -> web.Response:
    server = web_server(request)
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
    if server.messages.enabled and ids:
        changed = await server.messages.with_db(set_tags, ids, clean_tags(tags))
        await server.events.tagged(changed)
    return web.Response(text="ok")


async def put_tag(request: web.Request) -> web.Response:
    server = web_server(request)
    old = request.match_info["tag"]
    body = await request_json(request)
    new = clean_tag(str(body.get("Name") or ""))
    if not new:
        return error(400, "Name must be a tag of letters, digits, spaces, -, _, . or @")
    if server.messages.enabled:
        await server.messages.with_db(rename_tag, old, new)
        await server.events.tagged(None)
    return web.Response(text="ok")


async def delete_one_tag(request: web.Request) -> web.Response:
    server = web_server(request)
    if server.messages.enabled:
        await server.messages.with_db(delete_tag, request.match_info["tag"])
        await server.events.tagged(None)
    return web.Response(text="ok")


def routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/api/v1/tags", get_tags)
    add("PUT", "/api/v1/tags", put_tags)
    add("PUT", "/api/v1/tags/{tag}", put_tag)
    add("DELETE", "/api/v1/tags/{tag}", delete_one_tag)
