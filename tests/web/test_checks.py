"""Tags, the checks of a message (HTML, links, spam), sessions kept across a restart and
SMTPUTF8 headers, over the HTTP API. The link check asks a local HTTP server; the spam check a
real spamd started here on loopback."""

from __future__ import annotations

import contextlib
import http.server
import smtplib
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTPUTF8
from pathlib import Path
from typing import Any

import pytest

from mailroom.activity.transcript_archive import SessionFilter
from tests.live import wait_for
from tests.web.http import Api
from tests.web.mail import plain, rich, send

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def test_tags_from_x_tags_the_api_and_search_outlive_a_restart(web: Any, tmp_path: Path) -> None:
    data = tmp_path / "kept"
    live, client = web(data=data)
    tagged = send(
        live, plain("Invoice 42", **{"X_Tags": "invoice, Customer 42, invoice, bad/char"})
    )
    other = send(live, plain("Hello"))
    listed = client.json("/api/v1/messages")
    by_id = {m["ID"]: m for m in listed["messages"]}
    assert by_id[tagged]["Tags"] == ["bad char", "Customer 42", "invoice"]
    assert by_id[other]["Tags"] == []
    assert client.json("/api/v1/tags") == ["bad char", "Customer 42", "invoice"]

    # PUT sets exactly the tags given; a tag that exists keeps its spelling
    assert client.put("/api/v1/tags", {"IDs": [other], "Tags": ["INVOICE", "urgent"]}).text == "ok"
    assert client.json(f"/api/v1/message/{other}")["Tags"] == ["invoice", "urgent"]
    found = client.json("/api/v1/search?query=tag:invoice")
    assert {m["ID"] for m in found["messages"]} == {tagged, other}
    assert [m["ID"] for m in client.json("/api/v1/search?query=tag:urgent")["messages"]] == [other]
    assert [
        m["ID"] for m in client.json("/api/v1/search?query=tag:%22customer%2042%22")["messages"]
    ] == [tagged]
    assert client.json("/api/v1/search?query=-is:tagged")["messages_count"] == 0
    assert client.json("/api/v1/info")["Tags"] == {
        "bad char": 1,
        "Customer 42": 1,
        "invoice": 2,
        "urgent": 1,
    }
    # rename and delete, everywhere
    assert client.put("/api/v1/tags/urgent", {"Name": "later"}).status == 200
    assert client.delete("/api/v1/tags/bad%20char").status == 200
    assert client.json("/api/v1/tags") == ["Customer 42", "invoice", "later"]
    assert client.put("/api/v1/tags", {"IDs": [other], "Tags": [1]}).status == 400

    # send's Tags travel as X-Tags
    sent = client.post(
        "/api/v1/send",
        {
            "From": {"Email": "app@example.test"},
            "To": [{"Email": "u@example.test"}],
            "Tags": ["api"],
        },
    ).json()
    assert client.json(f"/api/v1/message/{sent['ID']}")["Tags"] == ["api"]

    live.stop()
    live, client = web(data=data)
    assert client.json(f"/api/v1/message/{other}")["Tags"] == ["invoice", "later"]
    assert client.json("/api/v1/tags") == ["api", "Customer 42", "invoice", "later"]


def test_headers_of_an_smtputf8_message(api: tuple[Any, Api]) -> None:
    live, client = api
    message = EmailMessage(policy=SMTPUTF8)
    message["From"] = "Jörg <jörg@exämple.test>"
    message["To"] = "bob@example.test"
    message["Subject"] = "Grüße"
    message.set_content("Hallo\n")
    with smtplib.SMTP(*live.smtp, timeout=30) as smtp:
        smtp.send_message(message)  # with SMTPUTF8, as smtplib sees it is needed
    [summary] = client.json("/api/v1/messages")["messages"]
    headers = client.get(f"/api/v1/message/{summary['ID']}/headers")
    assert headers.status == 200
    assert headers.json()["Subject"] == ["Grüße"]
    assert headers.json()["From"] == ["Jörg <jörg@exämple.test>"]
    assert client.json(f"/api/v1/message/{summary['ID']}")["From"]["Address"] == "jörg@exämple.test"


def test_html_check_in_mailpits_shape(api: tuple[Any, Api]) -> None:
    live, client = api
    message = plain("Styled")
    message.add_alternative(
        "<!doctype html><html><head><style>@media (prefers-color-scheme: dark) "
        "{ .box:hover { color: #fff } }</style></head><body>"
        '<div class="box" style="display:flex; background-image: linear-gradient(red, blue)">'
        '<video src="clip.mp4"></video><form><input type="checkbox"></form>'
        '<img src="pic.webp"></div></body></html>',
        subtype="html",
    )
    queue_id = send(live, message)
    result = client.json(f"/api/v1/message/{queue_id}/html-check")
    assert set(result) == {"Warnings", "Platforms", "Total"}
    slugs = {w["Slug"] for w in result["Warnings"]}
    assert {
        "html-video",
        "html-form",
        "html-input-checkbox",
        "css-display-flex",
        "css-linear-gradient",
        "css-at-media-prefers-color-scheme",
        "css-pseudo-class-hover",
        "image-webp",
    } <= slugs
    video = next(w for w in result["Warnings"] if w["Slug"] == "html-video")
    assert video["URL"] == "https://www.caniemail.com/features/html-video/"
    assert video["Category"] == "html" and video["Score"]["Found"] == 1
    score = video["Score"]
    assert abs(score["Supported"] + score["Partial"] + score["Unsupported"] - 100) < 0.01
    gmail = [r for r in video["Results"] if r["Family"] == "gmail"]
    assert gmail and {r["Support"] for r in gmail} <= {"yes", "no", "partial"}
    assert "Gmail" in result["Platforms"]["desktop-webmail"]
    total = result["Total"]
    assert total["Nodes"] >= 6 and total["Tests"] > 200
    assert 0 <= total["Unsupported"] <= 100 and total["Supported"] < 100
    # a message without HTML
    assert client.get(f"/api/v1/message/{send(live, plain())}/html-check").status == 400


class _Handler(http.server.BaseHTTPRequestHandler):
    release = threading.Event()

    def do_HEAD(self) -> None:
        if self.path == "/ok":
            self.send_response(200)
        elif self.path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/ok")
        elif self.path == "/head-refused":
            self.send_response(405)
        elif self.path == "/slow":
            self.release.wait(60)  # longer than the check waits: it must time out
            return
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/head-refused" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def links_server_running() -> Iterator[str]:
    """A local HTTP server for the links of :func:`_links_message`; its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Handler.release.set()
        server.shutdown()
        server.server_close()
        _Handler.release.clear()


@pytest.fixture
def links_server() -> Iterator[str]:
    with links_server_running() as base:
        yield base


def _links_message(base: str) -> EmailMessage:
    message = plain("Links", f"Text link: {base}/missing.\nAgain <{base}/ok>\n")
    message.add_alternative(
        f'<p><a href="{base}/ok">ok</a> <a href="{base}/moved">moved</a> '
        f'<a href="{base}/slow">slow</a> <a href="{base}/head-refused">head</a> '
        f'<a href="mailto:x@example.test">mail</a> <img src="{base}/missing"></p>',
        subtype="html",
    )
    return message


def test_link_check_with_internal_requests_allowed(web: Any, links_server: str) -> None:
    live, client = web(allow_internal_http_requests=True, link_check_timeout=2)
    queue_id = send(live, _links_message(links_server))
    result = client.json(f"/api/v1/message/{queue_id}/link-check")
    statuses = {link["URL"].removeprefix(links_server): link for link in result["Links"]}
    assert list(statuses) == ["/ok", "/moved", "/slow", "/head-refused", "/missing"]
    assert (statuses["/ok"]["StatusCode"], statuses["/ok"]["Status"]) == (200, "OK")
    assert statuses["/moved"]["StatusCode"] == 301  # not followed unless asked
    assert statuses["/head-refused"]["StatusCode"] == 200  # GET after HEAD's 405
    assert (statuses["/missing"]["StatusCode"], statuses["/missing"]["Status"]) == (
        404,
        "Not Found",
    )
    assert (statuses["/slow"]["StatusCode"], statuses["/slow"]["Status"]) == (0, "timed out")
    assert result["Errors"] == 2
    followed = client.json(f"/api/v1/message/{queue_id}/link-check?follow=true")
    moved = next(link for link in followed["Links"] if link["URL"].endswith("/moved"))
    assert moved["StatusCode"] == 200


def test_link_check_refuses_internal_addresses_by_default(web: Any, links_server: str) -> None:
    live, client = web()
    queue_id = send(live, _links_message(links_server))
    result = client.json(f"/api/v1/message/{queue_id}/link-check")
    assert {(link["StatusCode"], link["Status"]) for link in result["Links"]} == {
        (451, "Blocked private/reserved address")
    }
    assert result["Errors"] == 5


def test_spam_check_with_spamd(web: Any, spamd: str) -> None:
    live, client = web(spamassassin=spamd)
    assert client.json("/api/v1/webui")["SpamAssassin"] is True
    ham = send(live, plain("Lunch", "Shall we meet at noon?\n"))
    result = client.json(f"/api/v1/message/{ham}/sa-check")
    assert set(result) == {"IsSpam", "Score", "Rules", "Error"}
    assert result["Error"] == "" and result["IsSpam"] is False
    assert isinstance(result["Rules"], list) and all(
        set(rule) == {"Name", "Score", "Description"} for rule in result["Rules"]
    )
    spam = send(live, plain("Offer", f"{GTUBE}\n"))
    result = client.json(f"/api/v1/message/{spam}/sa-check")
    assert result["IsSpam"] is True and result["Score"] >= 5
    gtube = next(rule for rule in result["Rules"] if rule["Name"] == "GTUBE")
    assert gtube["Score"] >= 5 and "Unsolicited Bulk Email" in gtube["Description"]


def test_spam_check_without_a_checker_and_with_one_that_is_down(web: Any) -> None:
    live, client = web()
    queue_id = send(live, plain())
    assert client.get(f"/api/v1/message/{queue_id}/sa-check").status == 400
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    live, client = web(spamassassin=f"127.0.0.1:{port}")
    queue_id = send(live, plain())
    result = client.json(f"/api/v1/message/{queue_id}/sa-check")
    assert result["Rules"] is None and "connection refused" in result["Error"]


def test_sessions_are_kept_across_a_restart_with_their_worst_reply(
    web: Any, tmp_path: Path
) -> None:
    data = tmp_path / "kept"
    live, client = web(data=data, faults=("rcpt:*@bounce.test:550 5.1.1 No such user",))
    queue_id = send(live, rich())
    with smtplib.SMTP(*live.smtp, timeout=30) as smtp:
        smtp.ehlo("refused.example.test")
        smtp.mail("app@example.test")
        assert smtp.rcpt("someone@bounce.test")[0] == 550
    wait_for(lambda: client.json("/api/v1/sessions")["total"] == 2)
    [refused] = client.json("/api/v1/sessions?refused=1")["sessions"]
    assert refused["worst_reply"] == "550 5.1.1 No such user"  # not the 221 it ended with
    assert refused["senders"] == ["app@example.test"]
    assert refused["recipients"] == ["someone@bounce.test"]
    assert client.json("/api/v1/sessions?failed=1")["total"] == 1
    assert client.json("/api/v1/sessions?recipient=bob@")["sessions"][0]["messages"] == [queue_id]
    mode = (data / "transcripts.sqlite").stat().st_mode & 0o777
    assert mode == 0o600, oct(mode)

    live.stop()
    live, client = web(data=data, transcripts=5)
    session = client.json(f"/api/v1/message/{queue_id}/session")
    assert session["messages"] == [queue_id]
    assert any("queued as" in e["text"] for e in session["entries"])
    assert client.json(f"/api/v1/message/{queue_id}")["Mailroom"]["Origin"] == "smtp"
    listed = client.json("/api/v1/sessions")
    assert listed["total"] == 2
    assert [s["worst_reply"][:3] for s in listed["sessions"]] == ["550", "250"]
    assert client.json(f"/api/v1/session/{refused['id']}")["id"] == refused["id"]


def test_transcripts_stored_are_bounded_by_count(web: Any) -> None:
    live, client = web(transcripts_stored=3, transcripts=2)
    for _ in range(6):
        with smtplib.SMTP(*live.smtp, timeout=30) as smtp:
            smtp.noop()
    archive = live.mail_server.transcripts.archive
    wait_for(lambda: client.json("/api/v1/sessions")["total"] >= 6 or archive.flush(1))
    assert archive.flush(30)
    archive.prune()  # the writer prunes once a minute; here, now
    total, kept = archive.list(SessionFilter(), 100)
    assert total == 3 and len(kept) == 3
