"""``POST /api/v1/message/{ID}/release``: send a stored message on.

In the catcher (Mailpit's feature), to an SMTP server: ``{"To": [...]}``, optionally ``"From"``
(the envelope sender; the original one by default) and ``"Server"`` (``HOST:PORT``; the
``release_smtp`` setting by default). Its mail is test mail and its web, on loopback, is its
user's own.

In the mail server mode the same request would send anything, as anyone, anywhere, around
submission's AUTH and sender checks; so there a release goes only through the server's own
routing (local mailboxes, the queue and its routes or relay), always as the logged-in web
user's own address (a web user named by an address in a local domain; the directory says
which addresses are theirs), and never to a ``Server`` named in the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailroom.protocol.syntax import AddressError, parse_mailbox
from mailroom.web.http import error, json_response, request_json, web_context, web_user
from mailroom.web.mime import strip_trace
from mailroom.web.stored import message_file

if TYPE_CHECKING:
    from mailroom.web.context import Inject, Senders, WebContext

__all__ = ["release"]


async def release(request: web.Request) -> web.Response:
    ctx = web_context(request)
    body = await request_json(request)
    recipients = body.get("To")
    if not recipients or not isinstance(recipients, list):
        return error(400, "To must list at least one recipient")
    if not all(isinstance(r, str) and _is_address(r) for r in recipients):
        return error(400, "To must list email addresses")
    if ctx.submit is not None:
        assert ctx.senders is not None
        return await _through_the_queue(request, ctx, ctx.submit, ctx.senders, body, recipients)
    return await _to_a_server(request, ctx, body, recipients)


def _is_address(text: str) -> bool:
    try:
        parse_mailbox(text, utf8=True)
    except AddressError:
        return False
    return True


async def _through_the_queue(
    request: web.Request,
    ctx: WebContext,
    submit: Inject,
    directory: Senders,
    body: dict[str, Any],
    recipients: list[str],
) -> web.Response:
    """The mail server mode: as the web user's own address, through local delivery and the
    queue, like a submission."""
    if body.get("Server"):
        return error(
            400,
            "a mail server releases only through its own queue and routes: Server is not taken",
        )
    user = web_user(request)
    if user is None or not _is_address(user) or not directory.is_local(user):
        return error(
            403,
            f"release sends as your own address: web user {user!r} has none (name web users "
            "by their address in a local domain)",
        )
    owned = directory.addresses_of(user)
    sender = body.get("From")
    if sender is None:
        sender = directory.key(user)
    if not isinstance(sender, str) or not directory.may_send_as(user, sender, owned):
        return error(403, f"From: {user} may send only as {', '.join(sorted(owned))}")
    row, raw = await message_file(request)
    queue_id = await submit(sender, list(recipients), strip_trace(raw))
    return json_response({"Queued": queue_id, "From": sender, "To": recipients, "Of": row.id})


async def _to_a_server(
    request: web.Request, ctx: WebContext, body: dict[str, Any], recipients: list[str]
) -> web.Response:
    """The catcher: to ``Server`` or ``release_smtp``, over SMTP."""
    from mailroom.client import SendError
    from mailroom.settings_types import ConfigError, parse_hostport

    target = ctx.settings.release_smtp
    if body.get("Server"):
        try:
            target = parse_hostport(str(body["Server"]))
        except ConfigError as exc:
            return error(400, f"Server: {exc}")
    if target is None:
        return error(400, "no SMTP server to release to: set release_smtp or give Server")
    row, raw = await message_file(request)
    sender = body.get("From")
    if sender is None:
        sender = row.sender
    if not isinstance(sender, str) or (sender and not _is_address(sender)):
        # The null sender is a sender too; anything else is an address or the client's error
        # (not the next hop's: 400, not 502).
        return error(400, "From must be an address")
    try:
        result = await ctx.release(
            strip_trace(raw),
            host=target.host,
            port=target.port,
            sender=sender,
            recipients=recipients,
            local_hostname=ctx.settings.hostname,
            timeout=60,
        )
    except SendError as exc:
        reply = getattr(exc, "reply", None)
        return json_response(
            {"Error": str(exc), "Reply": str(reply) if reply is not None else None}, 502
        )
    except (OSError, ValueError) as exc:
        return json_response({"Error": str(exc), "Reply": None}, 502)
    if "application/json" not in request.headers.get("Accept", ""):
        return web.Response(text="ok")
    return json_response(
        {
            "Server": f"{target.host}:{target.port}",
            "Replies": {r.address: str(r.reply) for r in result.recipients},
            "Delivered": [r.address for r in result.delivered],
        }
    )
