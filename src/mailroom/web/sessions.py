"""SMTP session transcripts over HTTP, every reply explained: ``GET /api/v1/sessions`` (newest
first; filters ``refused``, ``failed``, ``client``, ``sender``, ``recipient``),
``GET /api/v1/session/{id}`` and ``GET /api/v1/message/{ID}/session``.

Sessions come from memory (the last ``transcripts``, open ones too) and, after a restart or
past that count, from the archive on disk (:mod:`mailroom.activity.transcript_archive`). A
message sent with ``POST /api/v1/send`` has a session too, of the listener ``api``: one
entry that says so, so its Session tab tells where it came from."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailroom.activity.transcript_archive import SessionFilter, session_facts
from mailroom.codes import ExplainError, explain
from mailroom.web.http import error, json_response, query_int, web_context

if TYPE_CHECKING:
    from mailroom.web.context import TranscriptRecord, WebContext

__all__ = ["API_LISTENER", "explained", "routes", "session_of_message"]

API_LISTENER = "api"  # the listener name of a message's "session" when the web API made it
MAX_LIST = 1000


@functools.lru_cache(maxsize=1024)
def explained(reply: str) -> dict[str, Any] | None:
    """``explain(reply).to_dict()``, or None for text that is no reply. Replies repeat across
    sessions (the greeting, 250 Ok), so the answers are kept."""
    try:
        return explain(reply).to_dict()
    except ExplainError:
        return None


def transcript_json(data: dict[str, Any]) -> dict[str, Any]:
    """A transcript's ``to_dict()`` with its list facts and each server reply explained."""
    data = dict(data)
    data.update(session_facts(data))
    for entry in data["entries"]:
        if entry["from"] == "server":
            entry["explanation"] = explained(entry["text"])
    return data


def _summary(transcript: TranscriptRecord) -> dict[str, Any]:
    data = transcript.to_dict()
    summary = {k: v for k, v in data.items() if k != "entries"}
    summary.update(session_facts(data))
    return summary


async def session_of_message(ctx: WebContext, queue_id: str) -> dict[str, Any] | None:
    """The transcript (``to_dict()``) of the session that stored a message, from memory or
    the archive; None when neither has it."""
    transcript = ctx.transcripts.for_message(queue_id)
    if transcript is not None:
        return transcript.to_dict()
    if ctx.archive is None:
        return None
    return await ctx.messages.call(ctx.archive.for_message, queue_id)


async def list_sessions(request: web.Request) -> web.Response:
    ctx = web_context(request)
    log, archive = ctx.transcripts, ctx.archive
    start = query_int(request, "start", 0, 10**6)
    limit = query_int(request, "limit", 50, MAX_LIST)
    query = request.query
    where = SessionFilter(
        refused=query.get("refused", "") not in ("", "0", "false"),
        failed=query.get("failed", "") not in ("", "0", "false"),
        client=query.get("client", ""),
        sender=query.get("sender", ""),
        recipient=query.get("recipient", ""),
    )
    live = [s for s in (_summary(t) for t in log.list(limit=len(log))) if where.matches(s)]
    found: dict[str, dict[str, Any]] = {s["id"]: s for s in live}
    archived_total = 0
    if archive is not None:
        archived_total, archived = await ctx.messages.call(
            archive.list, where, start + limit + len(live)
        )
        for summary in archived:
            found.setdefault(summary["id"], summary)
    # Sessions in memory that were also archived are counted once; the rest of the archive
    # is older than anything in memory.
    in_both = sum(1 for s in live if s["ended"] is not None) if archive is not None else 0
    total = max(len(found), len(live) + archived_total - in_both)
    ordered = sorted(found.values(), key=lambda s: s["started"], reverse=True)
    page = ordered[start : start + limit]
    return json_response({"total": total, "start": start, "count": len(page), "sessions": page})


async def get_session(request: web.Request) -> web.Response:
    ctx = web_context(request)
    session_id = request.match_info["id"]
    transcript = ctx.transcripts.get(session_id)
    data = transcript.to_dict() if transcript is not None else None
    if data is None and ctx.archive is not None:
        data = await ctx.messages.call(ctx.archive.get, session_id)
    if data is None:
        return error(404, f"no session {session_id} (only the last are kept)")
    return json_response(transcript_json(data))


async def message_session(request: web.Request) -> web.Response:
    ctx = web_context(request)
    message_id = request.match_info["id"]
    row = await ctx.messages.call(ctx.messages.get, message_id)
    if row is None:
        return error(404, f"no message {message_id}")
    data = await session_of_message(ctx, row.id)
    if data is None:
        return error(404, f"the session of {row.id} is no longer kept")
    return json_response(transcript_json(data))


def routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/api/v1/sessions", list_sessions)
    add("GET", "/api/v1/session/{id}", get_session)
    add("GET", "/api/v1/message/{id}/session", message_session)
