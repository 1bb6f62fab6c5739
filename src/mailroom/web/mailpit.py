"""The endpoints Mailpit clients use, under ``/api/v1``, answering in Mailpit's shapes: list
and search messages, one message, its source, headers and parts, delete, mark read,
release, info; ``/view/{ID}.html`` and ``.txt``, and ``/view/latest``.

Deviations are additions only: a message carries a ``Mailroom`` object with the envelope and
the SMTP session it came in, and ``release`` may name the server to send to.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailroom import __version__
from mailroom.web.events import event_stream
from mailroom.web.http import (
    error,
    json_body_response,
    json_bytes,
    json_response,
    query_int,
    request_json,
    web_context,
)
from mailroom.web.messages import MessageRow, bcc_of, created, list_item, sender_of
from mailroom.web.mime import ParsedMessage, addresses, readable_text
from mailroom.web.release import release
from mailroom.web.search import Query, SearchError, parse_query
from mailroom.web.sessions import API_LISTENER, session_of_message
from mailroom.web.stored import message_file, no_message, rendered_message

if TYPE_CHECKING:
    from mailroom.web.context import WebContext

__all__ = ["message_json", "routes"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 5000
# The HTML of a message runs with no scripts, no network and no plugins; inline images are
# data: URIs already (see mime.ParsedMessage.safe_html).
# "sandbox" keeps it so even when /view/ is opened in a tab of its own, not in the UI's frame.
# Links open in a new browsing context of their own (a <base target> in front of the HTML; the
# HTML standard makes such links noopener), which the sandbox lets escape it, so a clicked link
# is a page of its own rather than an error page in place of the message.
VIEW_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "media-src data:; frame-ancestors 'self'; form-action 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)
# ?remote=1, when a person asks for it: images, styles and fonts from the network too (the
# tracking pixels with them); still no scripts, no forms.
VIEW_POLICY_REMOTE = (
    "default-src 'none'; img-src data: http: https:; style-src 'unsafe-inline' http: https:; "
    "font-src data: http: https:; media-src data: http: https:; frame-ancestors 'self'; "
    "form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
)
NEW_TAB = '<base target="_blank">'
# A tag's attributes and a List-Unsubscribe link end at the next "<" too: "[^>]*" from each
# "<" of a run went on to the end of the text (a message of "<link " repeated took 44 s to
# show; a List-Unsubscribe of "<" likewise).
_REMOTE = re.compile(
    r"""(?:\bsrc|\bbackground|\bsrcset|<link\b[^<>]*\bhref)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|url\(\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)
_LINK = re.compile(r"<([^<>]+)>")
# A charset name as a part gives it, fit for a Content-Type (IANA's names; nothing to quote)
_CHARSET = re.compile(r"[a-z0-9][a-z0-9._:+-]*")
# Attachments a browser shows itself, opened in a tab of their own with ?inline=1.
INLINE_TYPES = frozenset(
    {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"}
)


def _ids(body: dict[str, Any]) -> list[str] | None:
    ids = body.get("IDs") or body.get("ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise web.HTTPBadRequest(text="IDs must be a list of message IDs")
    return ids


# -- listing and searching -------------------------------------------------------------------


async def list_messages(request: web.Request) -> web.Response:
    ctx = web_context(request)
    start = query_int(request, "start", 0, 10**9)
    limit = query_int(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    tags = await _all_tags(ctx)
    return json_body_response(await ctx.messages.call(_page, ctx, None, start, limit, tags))


async def search(request: web.Request) -> web.Response:
    ctx = web_context(request)
    start = query_int(request, "start", 0, 10**9)
    limit = query_int(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    try:
        query = _query(request, request.query.get("query", ""))
    except SearchError as exc:
        return error(400, str(exc))
    tags = await _all_tags(ctx)
    return json_body_response(await ctx.messages.call(_page, ctx, query, start, limit, tags))


def _query(request: web.Request, text: str) -> Query:
    """The search ``text`` read into SQL (SearchError: the caller answers 400)."""
    limit = web_context(request).settings.max_search_terms
    return parse_query(text, request.query.get("tz"), max_terms=limit)


def _page(ctx: WebContext, query: Query | None, start: int, limit: int, tags: list[str]) -> bytes:
    """One page of the listing as JSON, made in the worker thread (the address fields of up
    to MAX_LIMIT messages are parsed for it)."""
    counts, rows = ctx.messages.page(query, start, limit)
    return json_bytes(_listing(counts, rows, start, tags))


async def _all_tags(ctx: WebContext) -> list[str]:
    if not ctx.messages.enabled:
        return []
    return await ctx.messages.call(ctx.messages.all_tags)


def _listing(
    counts: dict[str, int], rows: list[MessageRow], start: int, tags: list[str]
) -> dict[str, Any]:
    return {
        "total": counts["total"],
        "unread": counts["unread"],
        "count": len(rows),
        "messages_count": counts["count"],
        "messages_unread": counts["unread_count"],
        "start": start,
        "tags": tags,
        "messages": [list_item(row) for row in rows],
    }


async def delete_messages(request: web.Request) -> web.Response:
    ctx = web_context(request)
    ids = _ids(await request_json(request))
    deleted = await ctx.messages.call(ctx.messages.delete, ids if ids else None)
    await event_stream(request).deleted(deleted, everything=not ids)
    return web.Response(text="ok")


async def delete_search(request: web.Request) -> web.Response:
    ctx = web_context(request)
    text = request.query.get("query", "")
    if not text.strip():
        return error(400, "no search query")
    try:
        query = _query(request, text)
    except SearchError as exc:
        return error(400, str(exc))
    messages = ctx.messages
    ids = await messages.call(messages.matching_ids, query)
    deleted = await messages.call(messages.delete, ids)
    await event_stream(request).deleted(deleted)
    return web.Response(text="ok")


async def set_read(request: web.Request) -> web.Response:
    ctx = web_context(request)
    body = await request_json(request)
    read = body.get("Read", body.get("read", False))
    if not isinstance(read, bool):
        return error(400, "Read must be true or false")
    ids = _ids(body)
    messages = ctx.messages
    text = body.get("Search") or ""
    if ids:
        await messages.call(messages.set_read, ids, read)
    elif text:
        try:
            query = _query(request, str(text))
        except SearchError as exc:
            return error(400, str(exc))
        await messages.call(
            messages.set_read, await messages.call(messages.matching_ids, query), read
        )
    else:
        await messages.call(messages.set_read, None, read)
    await event_stream(request).stats()
    return web.Response(text="ok")


# -- one message -----------------------------------------------------------------------------


def message_json(
    row: MessageRow, parsed: ParsedMessage, session: dict[str, Any] | None
) -> dict[str, Any]:
    """Mailpit's ``Message``, with mailroom's envelope and session under ``Mailroom``
    (``session``: the transcript of the session that stored it, if still kept; for a message
    shown as its source, ``ShownAsSource`` says why)."""
    unsubscribe = parsed.header("List-Unsubscribe")
    return {
        "ID": row.id,
        "MessageID": parsed.header("Message-ID").strip().strip("<>"),
        "From": sender_of(parsed.header("From")),
        "To": addresses(parsed.header("To")),
        "Cc": addresses(parsed.header("Cc")),
        "Bcc": bcc_of(row),
        "ReplyTo": addresses(parsed.header("Reply-To")),
        "ReturnPath": row.sender,
        "Subject": parsed.header("Subject"),
        "ListUnsubscribe": {
            "Header": unsubscribe,
            "Links": _LINK.findall(unsubscribe),
            "Errors": "",
            "HeaderPost": parsed.header("List-Unsubscribe-Post"),
        },
        "Date": parsed.date() or created(row.received),
        "Tags": row.tags,
        "Username": row.auth_user or "",
        # An HTML-only message's Text is its HTML's readable text, as Mailpit gives it.
        "Text": parsed.text or readable_text(parsed.html),
        "HTML": parsed.html,
        "Size": row.size,
        "Inline": [part.summary() for part in parsed.inline],
        "Attachments": [part.summary() for part in parsed.attachments],
        # mailroom's: the HTML would load something from the network (blocked unless asked)
        "RemoteContent": has_remote_content(parsed.html),
        "Mailroom": {
            "Received": created(row.received),
            "Sender": row.sender,
            "Recipients": row.recipients,
            "ClientIP": row.client_ip,
            "Helo": row.helo,
            "TLS": row.tls,
            "AuthUser": row.auth_user,
            "Mailbox": row.mailbox,
            "Session": session["id"] if session is not None else None,
            # "smtp", or "api" for a message posted to /api/v1/send; None when unknown
            "Origin": (
                None
                if session is None
                else "api"
                if session["listener"] == API_LISTENER
                else "smtp"
            ),
            "ShownAsSource": parsed.note,
        },
    }


async def get_message(request: web.Request) -> web.Response:
    ctx = web_context(request)
    messages = ctx.messages
    row = await messages.call(messages.get, request.match_info["id"])
    if row is None:
        raise no_message(request.match_info["id"])
    session = await session_of_message(ctx, row.id)
    body = await rendered_message(
        request, lambda row, parsed: json_bytes(message_json(row, parsed, session))
    )
    if not row.read:
        # Viewing a message marks it read, as in Mailpit.
        await messages.call(messages.set_read, [row.id], True)
        await event_stream(request).stats()
    return json_body_response(body)


async def get_headers(request: web.Request) -> web.Response:
    body = await rendered_message(request, lambda row, parsed: json_bytes(parsed.headers()))
    return json_body_response(body)


async def get_raw(request: web.Request) -> web.Response:
    """The stored file as it is: read, never parsed."""
    row, raw = await message_file(request)
    if request.query.get("dl"):
        # The .eml a mail program opens: a message of its own type (RFC 2046 §5.2.1).
        response = web.Response(body=raw, content_type="message/rfc822")
        response.headers["Content-Disposition"] = f'attachment; filename="{row.id}.eml"'
    else:
        response = web.Response(body=raw, content_type="text/plain", charset="utf-8")
    response.headers["Content-Security-Policy"] = "sandbox"
    return response


async def get_part(request: web.Request) -> web.Response:
    wanted = request.match_info["part"]

    def part_of(row: MessageRow, parsed: ParsedMessage) -> tuple[bytes, str, str | None, str] | str:
        part = parsed.parts.get(wanted)
        if part is None:
            return parsed.note or "no such part"
        served = part.content_type
        if served.startswith("text/"):
            # The part's octets, so their charset: without one a browser reads text as
            # windows-1252 (a UTF-8 .txt opened in a tab showed "GrÃ¼ÃŸe")
            charset = part.part.get_content_charset() or ""
            if _CHARSET.fullmatch(charset):
                served += f"; charset={charset}"
        return part.payload(), served, part.disposition, part.filename

    found = await rendered_message(request, part_of)
    if isinstance(found, str):
        raise web.HTTPNotFound(text=found)
    payload, served_type, part_disposition, filename = found
    content_type = served_type.partition(";")[0]
    response = web.Response(body=payload)
    response.headers["Content-Type"] = served_type
    # A part is shown as a document of its own, never as a page of this origin.
    response.headers["Content-Security-Policy"] = "sandbox"
    disposition = "inline" if part_disposition == "inline" else "attachment"
    if request.query.get("inline") and content_type in INLINE_TYPES:
        # Opened in a tab of its own (?inline=1): shown by the browser, not downloaded.
        disposition = "inline"
        if content_type == "application/pdf":
            # Chrome's PDF viewer does not run in a sandboxed document; nothing else of this
            # origin is reachable from it (no scripts, no frames, no connections).
            response.headers["Content-Security-Policy"] = (
                "default-src 'none'; object-src 'self'; plugin-types application/pdf"
            )
    response.headers["Content-Disposition"] = content_disposition(disposition, filename)
    return response


def content_disposition(disposition: str, filename: str) -> str:
    """A Content-Disposition value for a name the message's sender chose (RFC 6266): the
    name itself in ``filename*`` (RFC 8187, every octet outside the safe set encoded), and an
    ASCII stand-in in ``filename`` for old clients, where a quote, a backslash, a control or a
    non-ASCII character becomes ``_`` (so nothing can end the quoted string early)."""
    if not filename:
        return disposition
    from urllib.parse import quote

    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def view_latest(request: web.Request) -> web.Response:
    """Mailpit's shortcut: the newest message (of those ``?query=`` finds) opened in the UI,
    or the list when there is none."""
    ctx = web_context(request)
    text = request.query.get("query", "")
    try:
        query = _query(request, text) if text.strip() else None
    except SearchError as exc:
        return error(400, str(exc))
    _, rows = await ctx.messages.call(ctx.messages.page, query, 0, 1)
    raise web.HTTPFound(f"/#/message/{rows[0].id}" if rows else "/")


async def view_html(request: web.Request) -> web.Response:
    def html_of(row: MessageRow, parsed: ParsedMessage) -> str | None:
        return parsed.safe_html() if parsed.html else None

    markup = await rendered_message(request, html_of)
    if markup is None:
        raise web.HTTPNotFound(text="this message has no HTML part")
    remote = request.query.get("remote", "") in ("1", "true")
    body = NEW_TAB + markup
    response = web.Response(text=body, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = VIEW_POLICY_REMOTE if remote else VIEW_POLICY
    return response


def has_remote_content(html: str) -> bool:
    """Whether the HTML names something on the network to load (an image, a style sheet)."""
    return _REMOTE.search(html) is not None


async def view_text(request: web.Request) -> web.Response:
    text = await rendered_message(request, lambda row, parsed: parsed.text)
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


# -- about the server ------------------------------------------------------------------------


async def info(request: web.Request) -> web.Response:
    ctx = web_context(request)
    messages = ctx.messages
    total, unread = await messages.call(messages.counts)
    size = await messages.call(messages.database_size)
    metrics = ctx.metrics
    refused = sum(
        count
        for (stage, _), count in metrics.refusals.items()
        if stage in ("END_OF_DATA", "BDAT", "RCPT", "MAIL")
    )
    return json_response(
        {
            "Version": __version__,
            "LatestVersion": "",
            "Database": ctx.settings.database,
            "DatabaseSize": size,
            "Messages": total,
            "Unread": unread,
            "Tags": await messages.call(messages.tag_counts),
            "RuntimeStats": {
                "Uptime": int(time.time() - metrics.started),
                "Memory": _memory(),
                "MessagesDeleted": messages.deleted,
                "SMTPAccepted": metrics.messages_accepted,
                "SMTPAcceptedSize": metrics.message_bytes,
                "SMTPRejected": refused,
                "SMTPIgnored": 0,
            },
        }
    )


def _memory() -> int:
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


async def webui(request: web.Request) -> web.Response:
    ctx = web_context(request)
    target = ctx.settings.release_smtp
    return json_response(
        {
            "Label": ctx.settings.hostname,
            "MessageRelay": {
                "Enabled": True,
                "SMTPServer": f"{target.host}:{target.port}" if target else "",
                "ReturnPath": "",
                "AllowedRecipients": "",
                "BlockedRecipients": "",
                "OverrideFrom": "",
                "PreserveMessageIDs": True,
                "RecipientAllowlist": "",
            },
            "SpamAssassin": ctx.settings.checks.spamassassin is not None
            or ctx.settings.checks.rspamd is not None,
            "ChaosEnabled": True,
            "DuplicatesIgnored": False,
            "HideDeleteAllButton": False,
        }
    )


def routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/api/v1/messages", list_messages)
    add("PUT", "/api/v1/messages", set_read)
    add("DELETE", "/api/v1/messages", delete_messages)
    add("GET", "/api/v1/search", search)
    add("DELETE", "/api/v1/search", delete_search)
    add("GET", "/api/v1/message/{id}", get_message)
    add("GET", "/api/v1/message/{id}/headers", get_headers)
    add("GET", "/api/v1/message/{id}/raw", get_raw)
    add("GET", "/api/v1/message/{id}/part/{part}", get_part)
    add("POST", "/api/v1/message/{id}/release", release)
    add("GET", "/api/v1/info", info)
    add("GET", "/api/v1/webui", webui)
    add("GET", "/view/latest", view_latest)
    add("GET", r"/view/{id}.html", view_html)
    add("GET", r"/view/{id}.txt", view_text)
