"""A catcher fleet: three nodes on one database show one inbox. Mail sent to node A is in node
C's API and reaches node C's WebSocket clients (LISTEN/NOTIFY); a deletion on node B reaches
them too."""

from __future__ import annotations

import asyncio
import json
import smtplib
import urllib.error
import urllib.request
from email import policy
from email.message import EmailMessage

import aiohttp

from tests.fleet import fleet
from tests.live import queue_id_of

__all__ = ["fleet"]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def _send(address: tuple[str, int], subject: str) -> str:
    message = EmailMessage()
    message["From"] = "alice@example.test"
    message["To"] = "bob@example.test"
    message["Subject"] = subject
    message.set_content("One inbox for the fleet.\n")
    with smtplib.SMTP(*address, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        code, text = client.data(message.as_bytes(policy=policy.SMTP))
    assert code == 250, text
    return queue_id_of(text)


async def _next_event(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict:
    while True:
        frame = await asyncio.wait_for(ws.receive_json(), timeout=30)
        if frame["Type"] == kind:
            return frame


def test_mail_to_node_a_shows_in_node_c_api_and_websocket(fleet, pg_url) -> None:
    a = fleet("a", "127.0.0.2", pg_url, web=True)
    b = fleet("b", "127.0.0.3", pg_url, web=True)
    c = fleet("c", "127.0.0.4", pg_url, web=True)

    async def scenario() -> tuple[dict, dict, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(c.web_url.replace("http://", "ws://") + "/api/events") as ws,
        ):
            await asyncio.sleep(0.5)  # node C's hub subscribes when the socket is open
            queue_id = await asyncio.to_thread(_send, a.smtp, "sent to node A")
            new = await _next_event(ws, "new")
            await asyncio.to_thread(
                lambda: urllib.request.urlopen(
                    urllib.request.Request(
                        b.web_url + "/api/v1/messages",
                        data=json.dumps({"IDs": [queue_id]}).encode(),
                        method="DELETE",
                        headers={"Content-Type": "application/json"},
                    ),
                    timeout=30,
                ).read()
            )
            deleted = await _next_event(ws, "delete")
            return new, deleted, queue_id

    # Node C's API sees what node A stored.
    new, deleted, queue_id = asyncio.run(scenario())
    assert new["Data"]["ID"] == queue_id
    assert new["Data"]["Subject"] == "sent to node A"
    assert deleted["Data"] == {"ID": queue_id}
    second = _send(a.smtp, "still there")
    listing = _get(c.web_url + "/api/v1/messages")
    assert [m["ID"] for m in listing["messages"]] == [second]
    message = _get(f"{c.web_url}/api/v1/message/{second}")
    assert message["Subject"] == "still there"
    assert "One inbox for the fleet." in message["Text"]
    with urllib.request.urlopen(f"{b.web_url}/api/v1/message/{second}/raw", timeout=30) as raw:
        assert b"Subject: still there" in raw.read()


def _request(method: str, url: str, body: dict | None = None) -> dict | None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text and text != b"ok" else None


def _rcpt(address: tuple[str, int], recipient: str) -> tuple[int, bytes]:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("alice@example.test")
        return client.rcpt(recipient)


def test_fault_rules_and_transcripts_are_the_fleets(fleet, pg_url) -> None:
    from tests.live import wait_for

    a = fleet("a", "127.0.0.2", pg_url, web=True)
    c = fleet("c", "127.0.0.4", pg_url, web=True)
    # A rule added through node A's API fires on node C.
    rule = _request(
        "POST", a.web_url + "/api/v1/faults", {"rule": "rcpt:*@bounce.test:550 5.1.1 No such user"}
    )
    assert rule is not None and rule["id"] >= 1_000_000
    wait_for(lambda: _rcpt(c.smtp, "x@bounce.test")[0] == 550, timeout=10)
    assert _rcpt(c.smtp, "x@fine.test")[0] == 250
    listed = _request("GET", c.web_url + "/api/v1/faults")
    assert [r["rule"] for r in listed["rules"]] == ["rcpt:*@bounce.test:550 5.1.1 No such user"]
    # Removed on node C: gone from node A as well.
    _request("DELETE", f"{c.web_url}/api/v1/faults/{rule['id']}")
    wait_for(lambda: _rcpt(a.smtp, "x@bounce.test")[0] == 250, timeout=10)

    # The session that stored a message on node A, read through node C.
    queue_id = _send(a.smtp, "whose session")
    session = wait_for(
        lambda: _try_get(f"{c.web_url}/api/v1/message/{queue_id}/session"), timeout=15
    )
    commands = [e["text"] for e in session["entries"] if e["from"] == "client"]
    assert "mail FROM:<alice@example.test>" in commands  # as smtplib wrote it
    assert session["messages"] == [queue_id]


def _try_get(url: str) -> dict | None:
    try:
        return _get(url)
    except urllib.error.HTTPError:
        return None


def test_tags_are_the_fleets(fleet, pg_url) -> None:
    a = fleet("a", "127.0.0.2", pg_url, web=True)
    c = fleet("c", "127.0.0.4", pg_url, web=True)
    message = EmailMessage()
    message["From"] = "alice@example.test"
    message["To"] = "bob@example.test"
    message["Subject"] = "tagged as sent"
    message["X-Tags"] = "Invoice, customer-42"
    message.set_content("Tags.\n")
    with smtplib.SMTP(*a.smtp, timeout=30) as client:
        refused = client.sendmail(
            "alice@example.test", ["bob@example.test"], message.as_bytes(policy=policy.SMTP)
        )
    assert refused == {}
    tagged = _get(c.web_url + "/api/v1/messages")["messages"][0]
    assert sorted(tagged["Tags"]) == ["Invoice", "customer-42"]
    other = _send(a.smtp, "untagged")
    # Tags set through node C, searched through node A; one tag whatever its case.
    _request("PUT", c.web_url + "/api/v1/tags", {"IDs": [other], "Tags": ["invoice", "urgent"]})
    found = _get(a.web_url + "/api/v1/search?query=tag:INVOICE")
    assert sorted(m["ID"] for m in found["messages"]) == sorted([tagged["ID"], other])
    assert _get(a.web_url + "/api/v1/tags") == ["customer-42", "Invoice", "urgent"]
    _request("DELETE", c.web_url + "/api/v1/tags/Invoice")
    assert _get(a.web_url + "/api/v1/tags") == ["customer-42", "urgent"]
