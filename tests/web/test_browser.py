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

from tests.live import wait_for
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
    expect(frame_element).to_have_attribute(
        "sandbox", "allow-popups allow-popups-to-escape-sandbox"
    )
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


SIZES = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


def _fill_with_mail(live: Any, client: Any) -> dict[str, str]:
    """A realistic mix: a rich HTML newsletter with a remote image and links, a plain message
    with a URL, a tagged one, a refused session, one sent over the web API."""
    from tests.web.mail import PIXEL

    ids = {"rich": send(live, rich(), sender="carol@example.test")}
    base = live.mail_server.web.url.rstrip("/")
    news = plain("Weekly news", f"Read it online: {base}/livez\n", **{"X_Tags": "newsletter"})
    news.add_alternative(
        '<html><body><h1 style="display:flex">Weekly news</h1>'
        f'<p><a id="online" href="{base}/livez">Read it online</a></p>'
        '<img id="remote" src="http://images.example.test/banner.png">'
        '<video src="clip.mp4"></video></body></html>',
        subtype="html",
    )
    news.add_attachment(PIXEL, maintype="image", subtype="png", filename="banner.png")
    ids["news"] = send(live, news)
    ids["plain"] = send(live, plain("Plain words", f"See {base}/readyz for the status.\n"))
    with smtplib.SMTP(*live.smtp, timeout=30) as smtp:
        smtp.ehlo("refused.example.test")
        smtp.mail("app@example.test")
        smtp.rcpt("nobody@bounce.test")
    sent = client.post(
        "/api/v1/send",
        {
            "From": {"Email": "app@example.test"},
            "To": [{"Email": "user@example.test"}],
            "Subject": "From the API",
            "Text": "Made over HTTP.",
        },
    )
    ids["api"] = sent.json()["ID"]
    return ids


def test_every_view_at_phone_and_desktop_sizes(web: Any, browser: Any) -> None:
    """Layout at 390 and 1440 px, keyboard navigation, links in a page of their own, remote
    content on request, tags, the checks' views and the sessions list; a screenshot of each
    view at each size into build/screenshots (make screenshots)."""
    expect = sync_api.expect
    expect.set_options(timeout=TIMEOUT)
    live, client = web(faults=("rcpt:*@bounce.test:550 5.1.1 No such user",))
    ids = _fill_with_mail(live, client)
    base = live.mail_server.web.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, viewport in SIZES.items():
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))

        def shot(view: str, page: Any = page, name: str = name) -> None:
            page.screenshot(path=str(SCREENSHOTS / f"{view}-{name}.png"))

        page.goto(base)
        expect(page.locator("tr[data-id]")).to_have_count(4)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"the list is {width} px wide at {name} size"
        search = page.locator("#search-input").bounding_box()
        assert search is not None and search["width"] >= 0.6 * min(viewport["width"], 560)
        assert search["x"] + search["width"] <= viewport["width"]
        expect(page.locator(f'tr[data-id="{ids["news"]}"] .tag').first).to_have_text("newsletter")
        expect(
            page.locator(f'tr[data-id="{ids["rich"]}"] .unread-dot')
        ).to_be_visible()  # never opened
        shot("messages")

        # the keyboard alone opens a message: j moves, Enter opens
        page.locator("body").press("j")
        expect(page.locator(f'tr[data-id="{ids["api"]}"]')).to_be_focused()
        page.keyboard.press("j")
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Plain words")
        link = page.locator(".text-body a")
        expect(link).to_have_attribute("rel", "noopener noreferrer")
        shot("message-text")
        page.keyboard.press("u")
        expect(page.locator("h1")).to_have_text("Messages")

        # the newsletter: its link opens a page of its own, without an opener
        page.locator(f'tr[data-id="{ids["news"]}"] a.subject').click()
        expect(page.locator("h1")).to_have_text("Weekly news")
        frame = page.frame_locator("iframe.html-view")
        with context.expect_page() as popup_info:
            frame.locator("#online").click()
        popup = popup_info.value
        popup.wait_for_load_state()
        assert popup.url.endswith("/livez") and popup.evaluate("window.opener") is None
        popup.close()
        expect(frame.locator("h1")).to_have_text("Weekly news")  # the message stays
        expect(page.locator(".attachments img")).to_have_count(1)
        shot("message-html")
        page.click("[data-testid=load-remote]")
        expect(page.locator("iframe.html-view")).to_have_attribute(
            "src", f"/view/{ids['news']}.html?remote=1"
        )
        page.click("button[data-width='375px']")
        shot("message-phone-preview")

        # tags: edit in the message view
        page.click("[data-testid=edit-tags]")
        page.fill("#tags-input", "newsletter, read later")
        page.keyboard.press("Enter")
        expect(page.locator('td[data-field="Tags"] .tag')).to_have_text(
            ["newsletter", "read later"]
        )

        # the checks
        page.click("button[data-tab=html-check]")
        expect(page.locator("ul.warnings li[data-slug=html-video]")).to_be_visible()
        shot("html-check")
        page.click("button[data-tab=link-check]")
        page.click("[data-testid=run-link-check]")
        expect(page.locator("table.links td.url")).to_have_count(2)
        shot("link-check")

        # an API-sent message says so
        page.goto(f"{base}#/message/{ids['api']}")
        expect(page.locator('td[data-field="Came from"]')).to_contain_text("web API")
        page.click("button[data-tab=session]")
        expect(page.locator("main")).to_contain_text("Sent with the web API")

        # sessions: the refused one shows its 550, coloured, with its sender and recipient
        page.goto(f"{base}#/sessions")
        refused = page.locator("tr[data-id]", has_text="refused.example.test")
        expect(refused.locator("td.worst")).to_have_text("550 5.1.1 No such user")
        expect(refused.locator("td.worst")).to_have_class(sync_api_re("c5"))
        expect(refused).to_contain_text("nobody@bounce.test")
        expect(page.locator("tr[data-id]").first.locator("td").first).to_have_text(
            sync_api_re(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
        )
        shot("sessions")
        page.check("#only-failed")
        expect(page.locator("tr[data-id]")).to_have_count(1)
        refused.click()
        expect(page.locator("[data-testid=transcript]")).to_contain_text("550 5.1.1")
        shot("session")
        page.goto(f"{base}#/faults")
        expect(page.locator("table.faults tbody tr")).to_have_count(1)
        shot("faults")
        page.goto(f"{base}#/explain?q=550%205.1.1")
        expect(page.locator(".card").first).to_contain_text("550")
        shot("explain")

        # the dark theme, and the shortcuts' help
        page.click("#theme")
        page.click("#theme")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        page.goto(f"{base}#/")
        expect(page.locator("tr[data-id]")).to_have_count(4)
        shot("messages-dark")
        page.keyboard.press("?")
        expect(page.locator("#shortcuts")).to_contain_text("Keyboard shortcuts")
        shot("shortcuts")
        page.keyboard.press("Escape")
        assert not errors, errors
        context.close()


def test_a_web_page_cannot_send_mail_through_the_browser(web: Any, browser: Any) -> None:
    """A page of any site posts a text/plain form to the SMTP port (browsers refuse 25, 465 and
    587, not 1025): its body is SMTP commands, one a line. The session ends at the request line
    with 421 4.7.0, before the headers could be answered as unknown commands and the body run
    as a transaction. (Chromium sends some 20 header lines, as many as max_bad_commands allows
    by default; a browser that sends fewer, or a server that allows more, ran the body.)"""
    live, client = web(max_bad_commands=50)
    host, port = live.smtp
    smuggled = (
        "\nEHLO page.example\nMAIL FROM:<ceo@example.test>\nRCPT TO:<victim@example.test>\n"
        "DATA\nSubject: sent by a web page\n\nhello\n.\nQUIT\n"
    )
    page = browser.new_page()
    page.set_content(
        f'<form method="post" enctype="text/plain" action="http://{host}:{port}/">'
        '<textarea name="a"></textarea></form>'
    )
    page.eval_on_selector("textarea", "(area, text) => { area.value = text }", smuggled)
    page.eval_on_selector("form", "form => form.submit()")
    [session] = wait_for(lambda: client.json("/api/v1/sessions")["sessions"])
    wait_for(lambda: client.json(f"/api/v1/session/{session['id']}")["ended"])
    texts = [e["text"] for e in client.json(f"/api/v1/session/{session['id']}")["entries"]]
    assert any(t.startswith("POST / HTTP/1.1") for t in texts), texts
    assert any("421 4.7.0" in t and "an HTTP request is not SMTP" in t for t in texts), texts
    assert not any(t.startswith("MAIL FROM") for t in texts), texts
    assert client.json("/api/v1/messages")["messages"] == []
