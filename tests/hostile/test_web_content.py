"""The web API against content an outsider controls (a message's attachment names) and
requests any local page could make: an attachment name ending in a backslash keeps the
Content-Disposition header well-formed; a search of 1,000+ terms is refused with a 400 that
says why (SQLite's expression depth gave a 500); the OpenAPI document does not tell any web
page that a mailroom runs here (no ``Access-Control-Allow-Origin: *``); connections past
``web_max_connections`` get 503, and SMTP goes on."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import urllib.request
import warnings
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from tests.live import LiveServer, wait_for


def _get(url: str, **headers: str) -> tuple[int, Any, bytes]:
    async def fetch() -> tuple[int, Any, bytes]:
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
            return r.status, r.headers, await r.read()

    return asyncio.run(fetch())


def _web(serve) -> tuple[LiveServer, str]:
    live: LiveServer = serve(web="127.0.0.1:0")
    assert live.mail_server.web is not None
    return live, live.mail_server.web.url


def _send(live: LiveServer, message: EmailMessage) -> None:
    with smtplib.SMTP(*live.smtp, timeout=10) as client:
        client.send_message(message, "a@example.test", ["b@example.test"])


@pytest.mark.parametrize("name", ["evil\\", 'qu"ote\\', "tab\there\\", "naïve\\"])
def test_attachment_name_ending_in_backslash(serve, name: str) -> None:
    live, url = _web(serve)
    message = EmailMessage()
    message["Subject"] = "attachment"
    message.set_content("see attached")
    message.add_attachment(b"payload", maintype="application", subtype="octet-stream")
    # Set by hand: the email package would refuse to write such a name itself.
    [attachment] = message.iter_attachments()
    del attachment["Content-Disposition"]
    attachment["Content-Disposition"] = 'attachment; filename="{}"'.format(
        name.replace("\\", "\\\\").replace('"', '\\"')
    )
    _send(live, message)
    status, _, body = wait_for(lambda: _get(url + "api/v1/message/latest"))
    assert status == 200
    [part] = json.loads(body)["Attachments"]
    assert part["FileName"] == name
    status, headers, data = _get(url + f"api/v1/message/latest/part/{part['PartID']}")
    assert status == 200 and data == b"payload"
    value = headers["Content-Disposition"]
    # Read as a browser reads it (RFC 6266: filename* wins), with aiohttp's parser, which
    # warns of a malformed header and gives up on it.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kind, params = parse_content_disposition(value)
    assert kind == "attachment", value
    assert set(params) == {"filename", "filename*"}, value  # nothing swallowed by a quote
    assert content_disposition_filename(params, "filename") == name, value
    plain = params["filename"]
    assert plain.isascii() and "\\" not in plain and '"' not in plain


def test_a_search_of_many_terms_is_refused_with_a_reason(serve) -> None:
    live, url = _web(serve)
    _send(live, EmailMessage())
    query = " ".join(f"w{n}" for n in range(1000))
    for method, path, body in (
        ("GET", "api/v1/search?query=" + query, None),
        ("GET", "api/v1/search?query=" + " ".join(["from:x"] * 1000), None),
        ("DELETE", "api/v1/search?query=" + query, None),
        ("PUT", "api/v1/messages", {"Read": True, "Search": " ".join(["x"] * 20_000)}),
    ):
        status, headers, answer = _request(method, url + path, body)
        assert status == 400, (method, path[:40], answer[:200])
        assert "application/json" in headers["Content-Type"]
        assert b"terms" in json.loads(answer)["Error"].encode()
    # Under the cap it answers.
    status, _, _ = _get(url + "api/v1/search?query=" + " ".join(f"w{n}" for n in range(100)))
    assert status == 200


def _request(method: str, url: str, body: Any) -> tuple[int, Any, bytes]:
    async def fetch() -> tuple[int, Any, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, json=body) as response,
        ):
            return response.status, response.headers, await response.read()

    return asyncio.run(fetch())


def test_the_openapi_document_is_not_readable_by_other_sites(serve) -> None:
    _, url = _web(serve)
    status, headers, body = _get(url + "api/v1/openapi.json", Origin="https://evil.example")
    assert status == 200 and body.startswith(b"{")
    assert "Access-Control-Allow-Origin" not in headers


def test_a_part_whose_content_type_is_no_media_type_is_served_as_text(serve) -> None:
    """A Content-Type with a control character went into the part's response header, which
    aiohttp refuses to write: the connection was dropped without an answer, a traceback
    logged; a quote in one went into the data: URI of a cid: image, inside its attribute.
    RFC 2045 §5.2: such a type is taken as text/plain."""
    live, url = _web(serve)
    raw = (
        b"From: a@example.test\r\nTo: b@example.test\r\nSubject: types\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=B\r\n\r\n"
        b'--B\r\nContent-Type: text/html\r\n\r\n<img src="cid:i@x">\r\n'
        b'--B\r\nContent-Type: image/x"onerror="alert(1)"\r\nContent-ID: <i@x>\r\n\r\nimg\r\n'
        b"--B\r\nContent-Type: a/b\x7f\r\nContent-Disposition: attachment\r\n\r\ndel\r\n"
        b"--B--\r\n"
    )
    with smtplib.SMTP(*live.smtp, timeout=10) as client:
        client.sendmail("a@example.test", ["b@example.test"], raw)
    status, _, body = wait_for(lambda: _get(url + "api/v1/message/latest"))
    message = json.loads(body)
    [attachment] = message["Attachments"]
    assert (attachment["PartID"], attachment["ContentType"]) == ("3", "text/plain")
    status, headers, data = _get(url + "api/v1/message/latest/part/3")
    assert (status, headers["Content-Type"], data) == (200, "text/plain", b"del")
    # The image that is no image is text (of the body), and none of its type is in the HTML.
    assert message["Inline"] == [] and message["Text"] == "img"
    status, _, view = _get(url + f"view/{message['ID']}.html")
    assert status == 200 and b"onerror" not in view


def test_web_connections_past_the_limit_get_503_and_smtp_goes_on(serve) -> None:
    """Web connections that send half a header and then nothing were neither counted nor
    closed (for an hour): 20,000 of them took every file descriptor of the process, and SMTP
    clients were dropped unanswered. Past web_max_connections a connection is told 503 and
    closed; SMTP answers as ever."""
    live: LiveServer = serve(web="127.0.0.1:0", web_max_connections=5)
    web = live.mail_server.web
    assert web is not None and web.address is not None
    held = []
    for _ in range(5):
        client = socket.create_connection(web.address, timeout=10)
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
        held.append(client)
    wait_for(lambda: web.connections == 5)
    with socket.create_connection(web.address, timeout=10) as sixth:
        # A request sent at once, as a browser sends it: the 503 still reaches the client
        # (closed at once, its request arriving after the close would reset the connection).
        sixth.sendall(b"POST /api/v1/faults HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sixth.sendall(b"Content-Length: 100000\r\n\r\n" + b"a" * 100_000)
        answer = b""
        while chunk := sixth.recv(4096):
            answer += chunk
    assert answer == (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 57\r\nConnection: close\r\n\r\n"
        b"mailroom: too many web connections (web_max_connections)\n"
    )
    with smtplib.SMTP(*live.smtp, timeout=10) as smtp:
        assert smtp.noop() == (250, b"2.0.0 Ok")
    held.pop().close()
    wait_for(lambda: web.connections == 4)
    with urllib.request.urlopen(web.url + "livez", timeout=10) as response:
        assert response.read() == b"ok"
    for client in held:
        client.close()
