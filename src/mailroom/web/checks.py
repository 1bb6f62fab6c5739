"""Mailpit's checks of one message, in Mailpit's shapes:

- ``GET /api/v1/message/{ID}/html-check``: HTML and CSS support in mail clients
  (:mod:`.htmlcheck`, from caniemail's data);
- ``GET /api/v1/message/{ID}/link-check?follow=true``: each link's HTTP status
  (:mod:`.linkcheck`);
- ``GET /api/v1/message/{ID}/sa-check``: the spam score from spamd or rspamd (:mod:`.spamcheck`).

The HTML check runs in the web's worker thread (it parses the HTML and CSS); the other two wait
on the network, on the event loop, never on the SMTP path.
"""

from __future__ import annotations

from aiohttp import web

from mailroom.web.htmlcheck import check_html
from mailroom.web.http import error, json_response, web_context
from mailroom.web.linkcheck import check_links, extract_links
from mailroom.web.spamcheck import rspamd_check, spamd_check
from mailroom.web.stored import opened_message

__all__ = ["routes"]

SPAM_TIMEOUT = 30.0  # seconds spamd or rspamd may take to score a message


async def html_check(request: web.Request) -> web.Response:
    messages = web_context(request).messages
    _, _, parsed = await opened_message(request)
    if not parsed.html:
        return error(400, "this message has no HTML part")
    return json_response(await messages.call(check_html, parsed.html))


async def link_check(request: web.Request) -> web.Response:
    config = web_context(request).settings.checks
    _, _, parsed = await opened_message(request)
    follow = request.query.get("follow", "").lower() in ("1", "true", "yes")
    urls = extract_links(parsed.html, parsed.text, config.link_check_max_links)
    result = await check_links(
        urls,
        follow=follow,
        timeout=config.link_check_timeout,
        allow_internal=config.allow_internal_http_requests,
    )
    return json_response(result)


async def spam_check(request: web.Request) -> web.Response:
    config = web_context(request).settings.checks
    if config.spamassassin is None and config.rspamd is None:
        return error(400, "no spam checker: start with --spamassassin HOST:PORT or --rspamd URL")
    _, raw, _ = await opened_message(request)
    if config.spamassassin is not None:
        result = await spamd_check(config.spamassassin, raw, SPAM_TIMEOUT)
    else:
        assert config.rspamd is not None
        result = await rspamd_check(config.rspamd, raw, SPAM_TIMEOUT)
    return json_response(result)


def routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/api/v1/message/{id}/html-check", html_check)
    add("GET", "/api/v1/message/{id}/link-check", link_check)
    add("GET", "/api/v1/message/{id}/sa-check", spam_check)
