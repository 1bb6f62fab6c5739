"""Complex MIME against the web: a 5 MB message of 50,000 parts and 1,000 nested multiparts.

Before: the first held the web's worker thread for 30-76 s a request and stalled the SMTP
event loop for seconds (checksums and JSON were built on it); the second answered 500
(RecursionError) on every per-message endpoint, ``/raw`` included. Now a message is measured
before it is parsed; past ``web_max_mime_parts`` or ``web_max_mime_depth`` it is shown as its
source with a note that says why; ``/raw`` never parses; parsing, checksums and JSON run in
the web's worker thread, never on the event loop; a parsed message is kept for the next
request. The load version (SMTP replies timed while the web serves these messages) is
``test_mime_under_load.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
from typing import Any

import aiohttp
import pytest

from mailroom.mimeshape import MimeLimits, measure
from mailroom.web.mime import parse_message
from tests.hostile.mimebombs import deep, wide
from tests.live import LiveServer, queue_id_of

# Generous: on the code before this fix the 50,000-part message took 30-76 s a request.
CLIENT_TIMEOUT = 20


def _get(url: str) -> tuple[int, Any]:
    async def fetch() -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as r:
            body = await r.read()
            kind = r.headers.get("Content-Type", "")
            return r.status, json.loads(body) if "json" in kind else body

    return asyncio.run(fetch())


def _store(live: LiveServer, raw: bytes) -> str:
    with smtplib.SMTP(*live.smtp, timeout=60) as client:
        client.ehlo("client.example.test")
        client.mail("bomb@example.test")
        client.rcpt("victim@example.test")
        code, reply = client.data(raw)
    assert code == 250, reply
    return queue_id_of(reply.decode())


ENDPOINTS = [
    "api/v1/message/{id}",
    "api/v1/message/{id}/headers",
    "api/v1/message/{id}/raw",
    "api/v1/message/{id}/part/1",
    "api/v1/message/{id}/session",
    "api/v1/message/{id}/bounces",
    "view/{id}.html",
    "view/{id}.txt",
    "api/v1/messages",
    "api/v1/search?query=bottom",
    "api/v1/search?query=has:attachment",
]


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("deep", deep(1000), "more than 50 levels deep"),
        ("wide", wide(50_000, 5_000_000), "more than 1000 parts"),
    ],
    ids=["1000 deep", "50000 parts"],
)
def test_no_endpoint_fails_and_the_message_shows_as_source(
    serve, kind: str, raw: bytes, reason: str
) -> None:
    live: LiveServer = serve(web="127.0.0.1:0")
    message_id = _store(live, raw)
    url = live.mail_server.web.url
    answers = {path: _get(url + path.format(id=message_id)) for path in ENDPOINTS}
    for path, (status, _) in answers.items():
        assert status in (200, 404), (path, status)  # never 500
    status, message = answers["api/v1/message/{id}"]
    assert status == 200
    assert message["Subject"] == kind
    assert message["From"] == {"Name": "", "Address": "bomb@example.test"}
    note = message["Mailroom"]["ShownAsSource"]
    assert note is not None and reason in note
    assert message["Text"].startswith("Return-Path: <bomb@example.test>\n")
    assert message["Attachments"] == [] and message["HTML"] == ""
    # The source, byte for byte, and never parsed: the stored file after the trace fields.
    status, source = answers["api/v1/message/{id}/raw"]
    assert status == 200 and source.endswith(raw)
    assert answers["api/v1/message/{id}/headers"][1]["Subject"] == [kind]
    status, text = answers["api/v1/message/{id}/part/1"]
    assert status == 404 and reason.encode() in text
    assert answers["view/{id}.txt"][0] == 200
    # The bounce panel reads no further than the view (before: RecursionError, a 500).
    status, bounces = answers["api/v1/message/{id}/bounces"]
    assert status == 200 and bounces["Records"] == [] and reason in bounces["Note"]
    status, listing = answers["api/v1/messages"]
    assert listing["messages"][0]["ID"] == message_id
    assert reason in listing["messages"][0]["Snippet"]


def test_within_the_limits_a_message_is_parsed(serve) -> None:
    live: LiveServer = serve(web="127.0.0.1:0", web_max_mime_parts=200, web_max_mime_depth=10)
    url = live.mail_server.web.url
    inside = _store(live, wide(200, 100_000))
    status, message = _get(url + f"api/v1/message/{inside}")
    assert status == 200 and message["Mailroom"]["ShownAsSource"] is None
    assert len(re.findall(r"p\d{7} ", message["Text"])) == 200
    outside = _store(live, wide(201, 100_000))
    _, message = _get(url + f"api/v1/message/{outside}")
    assert "more than 200 parts" in message["Mailroom"]["ShownAsSource"]
    shallow = _store(live, deep(10))
    _, message = _get(url + f"api/v1/message/{shallow}")
    assert message["Mailroom"]["ShownAsSource"] is None and message["Text"] == "the bottom"
    status, bounces = _get(url + f"api/v1/message/{shallow}/bounces")
    assert status == 200 and bounces["Records"] == [] and "Note" not in bounces


def test_a_message_is_parsed_once_while_it_is_looked_at(serve) -> None:
    live: LiveServer = serve(web="127.0.0.1:0")
    message_id = _store(live, wide(500, 500_000))
    messages = live.mail_server.web.messages
    first = asyncio.run_coroutine_threadsafe(
        messages.call(messages.open, message_id), live.loop
    ).result(30)
    second = asyncio.run_coroutine_threadsafe(
        messages.call(messages.open, message_id), live.loop
    ).result(30)
    assert first is not None and second is not None
    assert first[2] is second[2]  # the same parsed message, not parsed again


# -- the measure, on its own -----------------------------------------------------------------


def test_measure_counts_parts_and_nesting() -> None:
    limits = MimeLimits(max_parts=0, max_depth=0)
    assert measure(b"Subject: x\r\n\r\nplain", limits).parts == 0
    shape = measure(wide(30, 10_000), limits)
    assert (shape.parts, shape.depth) == (30, 1)
    shape = measure(deep(40), limits)
    assert (shape.parts, shape.depth) == (40, 40)
    # A message inside a message part counts, and so do its parts.
    enclosed = (
        b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n"
        b"Content-Type: message/rfc822\r\n\r\n"
        b'Content-Type: multipart/alternative; boundary="in ner"\r\n\r\n'
        b"--in ner\r\nContent-Type: text/plain\r\n\r\na\r\n--in ner\r\n\r\nb\r\n--in ner--\r\n"
        b"--outer\r\nContent-Type: text/plain\r\n\r\nc\r\n--outer--\r\n"
    )
    shape = measure(enclosed, limits)
    assert (shape.parts, shape.depth) == (4, 3)
    assert parse_message(enclosed).note is None  # within the limits: parsed


def test_measure_stops_at_the_limits() -> None:
    assert measure(wide(11, 10_000), MimeLimits(max_parts=10)).too_complex is not None
    assert measure(wide(10, 10_000), MimeLimits(max_parts=10)).too_complex is None
    assert measure(deep(6), MimeLimits(max_depth=5)).too_complex is not None
    assert measure(deep(5), MimeLimits(max_depth=5)).too_complex is None
