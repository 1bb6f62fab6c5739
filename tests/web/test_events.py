"""Live updates over WebSocket: a real client (aiohttp's) on /api/events while mail arrives
over SMTP and the API deletes it."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.live import LiveServer, wait_for
from tests.web.http import Api
from tests.web.mail import plain, send

TIMEOUT = 30


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next event of type ``kind`` (others, such as stats, are passed over)."""
    while True:
        message = await asyncio.wait_for(ws.receive(), TIMEOUT)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        event: dict[str, Any] = json.loads(message.data)
        assert set(event) == {"Type", "Data"}
        if event["Type"] == kind:
            return event


@asynccontextmanager
async def listening(
    live: LiveServer, client: Api
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A WebSocket on /api/events, once the server counts it as a listener."""
    url = client.base + "/api/events"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await asyncio.to_thread(wait_for, lambda: live.mail_server.hub.active)
        yield ws


def test_new_delete_session_and_faults_events(api: tuple[LiveServer, Api]) -> None:
    live, client = api

    async def scenario() -> None:
        async with listening(live, client) as ws:
            queue_id = await asyncio.to_thread(send, live, plain("live one"))
            new = await next_of(ws, "new")
            assert new["Data"]["ID"] == queue_id
            assert new["Data"]["Subject"] == "live one"
            assert new["Data"]["Session"]  # the transcript it came with
            stats = await next_of(ws, "stats")
            assert stats["Data"]["Total"] == 1 and stats["Data"]["Unread"] == 1
            ended = await next_of(ws, "session")
            assert ended["Data"]["messages"] == [queue_id]
            await asyncio.to_thread(client.delete, "/api/v1/messages", {"IDs": [queue_id]})
            deleted = await next_of(ws, "delete")
            assert deleted["Data"] == {"ID": queue_id}
            await asyncio.to_thread(client.post, "/api/v1/faults", {"rule": "ehlo:close"})
            faults = await next_of(ws, "faults")
            assert [r["rule"] for r in faults["Data"]["rules"]] == ["ehlo:close"]
            await asyncio.to_thread(client.delete, "/api/v1/messages")
            await next_of(ws, "truncate")

    asyncio.run(scenario())
    # with no client left the hub has no subscriber, and sessions publish nothing
    wait_for(lambda: not live.mail_server.hub.active)


def test_events_refuse_other_origins(api: tuple[LiveServer, Api]) -> None:
    _, client = api

    async def connect() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(
                    client.base + "/api/events", headers={"Origin": "http://evil.example"}
                ):
                    return 101
            except aiohttp.WSServerHandshakeError as error:
                return error.status

    assert asyncio.run(connect()) == 403


def test_events_need_auth_when_set(web) -> None:  # type: ignore[no-untyped-def]
    live, _ = web(web_auth="u:p")
    url = live.mail_server.web.url + "api/events"

    async def connect(credentials: str | None) -> int:
        headers = {}
        if credentials is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url, headers=headers):
                    return 101
            except aiohttp.WSServerHandshakeError as error:
                return error.status

    assert asyncio.run(connect(None)) == 401
    assert asyncio.run(connect("u:wrong")) == 401
    assert asyncio.run(connect("u:p")) == 101


def test_messages_sent_over_the_api_and_chaos_are_announced(api: tuple[LiveServer, Api]) -> None:
    live, client = api

    async def scenario() -> None:
        async with listening(live, client) as ws:
            body = {"From": {"Email": "app@example.test"}, "Bcc": ["b@example.test"]}
            sent = await asyncio.to_thread(client.post, "/api/v1/send", body)
            new = await next_of(ws, "new")
            assert new["Data"]["ID"] == sent.json()["ID"]
            # its "session" says it came from the web API
            session = await asyncio.to_thread(
                client.json, f"/api/v1/session/{new['Data']['Session']}"
            )
            assert session["listener"] == "api" and session["messages"] == [sent.json()["ID"]]
            assert "POST /api/v1/send from 127.0.0.1" in session["entries"][0]["text"]
            chaos = {"Recipient": {"ErrorCode": 450, "Probability": 50}}
            await asyncio.to_thread(client.put, "/api/v1/chaos", chaos)
            faults = await next_of(ws, "faults")
            assert [r["rule"] for r in faults["Data"]["rules"]] == [
                "rcpt:p=0.5:450 4.0.0 Fault injected (chaos)"
            ]

    asyncio.run(scenario())


def test_a_burst_of_messages_comes_as_every_new_event(api: tuple[LiveServer, Api]) -> None:
    """Messages that arrive together are read in one batch (one query, one count): every one
    still gets its own "new" event, and the last stats count them all."""
    import smtplib

    live, client = api

    def burst() -> list[str]:
        ids = []
        with smtplib.SMTP(*live.smtp, timeout=TIMEOUT) as smtp:
            for n in range(30):
                smtp.ehlo()
                smtp.mail("alice@example.test")
                smtp.rcpt("bob@example.test")
                code, text = smtp.data(f"Subject: burst {n}\r\n\r\nhi\r\n".encode())
                assert code == 250
                ids.append(text.decode().rsplit(" ", 1)[1])
        return ids

    async def scenario() -> None:
        async with listening(live, client) as ws:
            ids = await asyncio.to_thread(burst)
            seen = [(await next_of(ws, "new"))["Data"]["ID"] for _ in ids]
            assert sorted(seen) == sorted(ids)
            while True:
                stats = await next_of(ws, "stats")
                if stats["Data"]["Total"] == 30:
                    break

    asyncio.run(scenario())
