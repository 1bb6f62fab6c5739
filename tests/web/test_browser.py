"""End to end in a real browser: headless Chromium (Debian's), driven by Playwright with the
system browser, against mailroom in this process. Mail sent over SMTP appears in the open list
without a reload; the message view shows the HTML sandboxed with remote content blocked; a
fault rule set in the UI is hit by the next SMTP session, and its transcript explains it.

Screenshots of the list and of a message go to build/screenshots/ (or $MAILROOM_SCREENSHOTS)
for a person to look at; they are not committed.
"""

from __future__ import annotations

import os
import shutil
import smtplib
from collections.abc import Iterator
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from tests.web.mail import plain, rich, send

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

SCREENSHOTS = Path(
    os.environ.get(
        "MAILROOM_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "screenshots"
    )
)
TIMEOUT = 15_000  # ms for the browser to show what it should


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],  # Playwright gives each launch a fresh, empty profile of its own
        )
        try:
            yield browser
        finally:
            browser.close()


def test_mail_appears_live_opens_and_a_fault_rule_set_in_the_ui_is_hit(
    web: Any, browser: Any
) -> None:
    expect = sync_api.expect
    expect.set_options(timeout=TIMEOUT)
    live, _ = web()
    base = live.mail_server.web.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page = browser.new_page(viewport={"width": 1280, "height": 860})
    answered: list[str] = []
    page.on("response", lambda response: answered.append(response.url))
    blocked: dict[str, str] = {}
    page.on("requestfailed", lambda request: blocked.update({request.url: request.failure or ""}))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(base)
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("main")).to_contain_text("No messages yet")

    # mail sent over SMTP shows up in the open page, which is not reloaded
    queue_id = send(live, rich(), sender="carol@example.test")
    row = page.locator(f'tr[data-id="{queue_id}"]')
    expect(row).to_contain_text("Quarterly report")
    expect(row).to_contain_text("Carol")
    expect(row).to_contain_text("The report is attached.")
    send(live, plain("A second one", "Hello again.\n"))
    expect(page.locator("tr[data-id]")).to_have_count(2)
    expect(page.locator("#unread")).to_have_text("2")
    page.screenshot(path=str(SCREENSHOTS / "message-list.png"))

    # search
    page.fill("#search-input", "has:attachment")
    page.press("#search-input", "Enter")
    expect(page.locator("tr[data-id]")).to_have_count(1)
    expect(page.locator("h1")).to_have_text("Search results")

    # open it: the HTML, sandboxed, without its script or its tracking image
    row.click()
    expect(page.locator("h1")).to_have_text("Quarterly report")
    expect(page.locator('td[data-field="From"]')).to_have_text("Carol <carol@example.test>")
    frame_element = page.locator("iframe.html-view")
    expect(frame_element).to_have_attribute("sandbox", "")
    frame = page.frame_locator("iframe.html-view")
    expect(frame.locator("#title")).to_have_text("Quarterly report")  # the script did not run
    expect(frame.locator("#chart")).to_have_attribute("src", sync_api_re("^data:image/png;base64,"))
    page.screenshot(path=str(SCREENSHOTS / "message-view.png"))
    # the tracking image was never fetched: the view's policy blocked it
    assert not [url for url in answered if "tracker.example.test" in url]
    tracker = "http://tracker.example.test/open.gif"
    wait_in(page, lambda: tracker in blocked)
    assert blocked[tracker] == "csp", blocked

    page.click("button[data-tab=text]")
    expect(page.locator(".tab-body pre")).to_have_text("The report is attached.\nRegards, Carol\n")
    page.click("button[data-tab=headers]")
    expect(page.locator(".tab-body")).to_contain_text("Delivered-To")
    page.click("button[data-tab=source]")
    expect(page.locator(".tab-body pre.source")).to_contain_text(
        "Return-Path: <carol@example.test>"
    )
    page.click("button[data-tab=attachments]")
    expect(page.locator(".tab-body a")).to_have_text(["report.pdf", "chart.png"])
    page.click("button[data-tab=session]")
    transcript = page.locator("[data-testid=transcript]")
    expect(transcript).to_contain_text("MAIL FROM:<carol@example.test>", ignore_case=True)
    expect(transcript).to_contain_text(f"250 2.0.0 Ok: queued as {queue_id}")
    expect(transcript.locator("details.why").first).to_contain_text("Service ready")

    # set a fault rule in the UI
    page.click('a[data-nav="faults"]')
    page.fill("#fault-rule", "rcpt:550 4.1.1 mismatched")
    page.click("form button[type=submit]")
    expect(page.locator("[role=alert]")).to_contain_text("4.1.1")
    page.fill("#fault-rule", "rcpt:*@bounce.test:550 5.1.1 No such user")
    page.click("form button[type=submit]")
    expect(page.locator("table.faults tbody tr")).to_have_count(1)
    expect(page.locator("#fault-count")).to_have_text("1")

    # the next SMTP session hits it
    with smtplib.SMTP(*live.smtp, timeout=30) as client:
        client.ehlo("app.example.test")
        client.mail("app@example.test")
        assert client.rcpt("someone@bounce.test") == (550, b"5.1.1 No such user")
        assert client.rcpt("someone@example.test")[0] == 250
        code, _ = client.data(plain("Partly bounced").as_bytes(policy=SMTP))
        assert code == 250

    # and its transcript, in the UI, shows the rule firing and explains the reply
    page.click('a[data-nav="sessions"]')
    session_row = page.locator("tr[data-id]").first
    expect(session_row).to_contain_text("app.example.test")
    session_row.click()
    transcript = page.locator("[data-testid=transcript]")
    expect(transcript).to_contain_text(
        "fault rule 1 fired: rcpt:*@bounce.test:550 5.1.1 No such user"
    )
    refusal = transcript.locator(".entry.server", has_text="550 5.1.1 No such user")
    expect(refusal.locator("summary")).to_contain_text("Bad destination mailbox address")
    refusal.locator("summary").click()
    expect(refusal.locator("dl")).to_contain_text("RFC 5321")

    # explain any code
    page.click('a[data-nav="explain"]')
    page.fill("#explain-input", "421 4.7.0 Try again later")
    page.click("main form button[type=submit]")
    expect(page.locator(".card").first).to_contain_text("Transient Negative Completion")
    expect(page.locator("main")).to_contain_text("retry later")

    # delete from the UI
    page.click('a[data-nav="messages"]')
    expect(page.locator("tr[data-id]")).to_have_count(3)
    page.locator(f'tr[data-id="{queue_id}"]').click()
    expect(page.locator("h1")).to_have_text("Quarterly report")
    page.click("[data-testid=delete-message]")
    expect(page.locator("h1")).to_have_text("Messages")
    expect(page.locator("tr[data-id]")).to_have_count(2)
    assert not errors, errors


def sync_api_re(pattern: str) -> Any:
    import re

    return re.compile(pattern)


def wait_in(page: Any, condition: Any) -> None:
    """Wait for ``condition`` while the browser's events keep coming in."""
    for _ in range(TIMEOUT // 50):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {condition}")
