"""``GET /api/v1/message/{ID}/bounces``: a caught message read as a bounce (mailroom.bounces):
one record per failed recipient with its reason and evidence, or none when the message is no
report. The message view shows them in a panel."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

import mailroom.bounces
from mailroom.mimeshape import MimeLimits
from mailroom.web.http import json_response, web_context
from mailroom.web.stored import message_file

__all__ = ["message_bounces", "routes"]


def _records(raw: bytes, source: str, limits: MimeLimits) -> tuple[list[dict[str, Any]], str]:
    """The message's records, or none and why it was not read."""
    try:
        records = mailroom.bounces.parse(raw, source, limits)
    except mailroom.bounces.MessageTooComplex as exc:
        return [], str(exc)
    return [record.to_dict() for record in records], ""


async def message_bounces(request: web.Request) -> web.Response:
    row, raw = await message_file(request)
    # Parsing a large message takes a while: not on the event loop.
    limits = web_context(request).settings.mime_limits  # as the message view
    records, note = await asyncio.get_running_loop().run_in_executor(
        None, _records, raw, row.id, limits
    )
    kinds = sorted({r["kind"] for r in records})
    answer: dict[str, Any] = {"ID": row.id, "Kinds": kinds, "Records": records}
    if note:
        answer["Note"] = note
    return json_response(answer)


def routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/message/{id}/bounces", message_bounces)
