"""``GET /api/v1/message/{ID}/bounces``: a caught message read as a bounce (mailroom.bounces):
one record per failed recipient with its reason and evidence, or none when the message is no
report. The message view shows them in a panel."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

import mailroom.bounces
from mailroom.web.http import error, json_response, web_context

__all__ = ["message_bounces", "routes"]


def _records(raw: bytes, source: str) -> list[dict[str, Any]]:
    return [record.to_dict() for record in mailroom.bounces.parse(raw, source)]


async def message_bounces(request: web.Request) -> web.Response:
    messages = web_context(request).messages
    message_id = request.match_info["id"]
    row = await messages.call(messages.get, message_id)
    if row is None:
        return error(404, f"no message {message_id}")
    raw = await messages.call(messages.raw, row)
    # Parsing a large message takes a while: not on the event loop.
    records = await asyncio.get_running_loop().run_in_executor(None, _records, raw, row.id)
    kinds = sorted({r["kind"] for r in records})
    return json_response({"ID": row.id, "Kinds": kinds, "Records": records})


def routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/message/{id}/bounces", message_bounces)
