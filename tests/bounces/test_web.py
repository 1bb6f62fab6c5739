"""A bounce caught by mailroom, seen through the web: ``GET /api/v1/message/{ID}/bounces``
gives its records, and the message view shows them in a panel (headless Chromium); a message
that is no report gives none and shows no panel."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveServer, maildir_files, queue_id_of
from tests.web.http import Api
from tests.web.mail import plain, send

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bounces"


def send_raw(live: LiveServer, raw: bytes) -> str:
    """A report arrives as reports do: from the null reverse-path."""
    with smtplib.SMTP(*live.smtp, timeout=30) as client:
        client.ehlo("mx.example.test")
        client.mail("<>")
        code, reply = client.rcpt("sender@example.test")
        assert code == 250, reply
        code, reply = client.data(raw)
        assert code == 250, reply
    return queue_id_of(reply.decode())


def test_bounce_records_of_a_caught_message(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    queue_id = send_raw(live, (CORPUS / "postfix" / "two-unknown-users.eml").read_bytes())
    found = client.json(f"/api/v1/message/{queue_id}/bounces")
    assert found["ID"] == queue_id and found["Kinds"] == ["bounce"]
    records = {r["recipient"]: r for r in found["Records"]}
    assert set(records) == {"ghost1@receiver.test", "ghost2@receiver.test"}
    ghost = records["ghost1@receiver.test"]
    assert (ghost["reason"], ghost["status"], ghost["bounce_type"]) == (
        "userunknown",
        "5.1.1",
        "hard",
    )
    assert ghost["reason_why"] and ghost["message_id"] == "<two-unknown-users.postfix@bounces.test>"

    ordinary = send(live, plain())
    assert client.json(f"/api/v1/message/{ordinary}/bounces")["Records"] == []
    assert client.get("/api/v1/message/nope/bounces").status == 404
    # Its file gone under the index: 404, as the message's other views say (it was a 500).
    [path] = [p for p in maildir_files(live.data) if f".{ordinary}." in p.name]
    path.unlink()
    gone = client.get(f"/api/v1/message/{ordinary}/bounces")
    assert gone.status == 404 and b"its file is gone" in gone.body
    documented = client.json("/api/v1/openapi.json")
    assert "/api/v1/message/{ID}/bounces" in documented["paths"]
    assert "BounceRecord" in documented["components"]["schemas"]


def test_the_message_view_shows_the_records(
    web: Callable[..., tuple[LiveServer, Api]],
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.web.test_browser import CHROMIUM, TIMEOUT

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    live, _ = web()
    bounce = send_raw(live, (CORPUS / "exim" / "lmtp-over-quota.eml").read_bytes())
    ordinary = send(live, plain())
    base = live.mail_server.web.url.rstrip("/")
    with sync_api.sync_playwright() as playwright:
        browser: Any = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            sync_api.expect.set_options(timeout=TIMEOUT)
            page.goto(f"{base}/#/message/{bounce}")
            panel = page.locator('[data-testid="bounces"]')
            sync_api.expect(panel).to_be_visible()
            row = panel.locator('tr[data-recipient="tiny@lmtp.test"]')
            sync_api.expect(row).to_contain_text("mailboxfull")
            sync_api.expect(row).to_contain_text("5.2.2")
            sync_api.expect(panel).to_contain_text("Bounce")
            page.goto(f"{base}/#/message/{ordinary}")
            sync_api.expect(page.locator("h1")).to_have_text("Hello")
            assert page.locator('[data-testid="bounces"]').is_hidden()
        finally:
            browser.close()
