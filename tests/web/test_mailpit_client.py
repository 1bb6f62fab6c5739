"""Mailpit's own API client library, unchanged, against mailroom: the npm package mailpit-api
(tests/web/mailpit_client/, pinned by its package-lock.json) run with node. It lists, searches,
reads, marks and deletes messages sent to mailroom over SMTP."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveServer, stored
from tests.web.mail import PDF, plain, rich, send
from tests.web.test_checks import links_server_running

CLIENT = Path(__file__).parent / "mailpit_client"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(not (NODE and NPM), reason="node and npm are not installed")


@pytest.fixture(scope="module")
def mailpit_api() -> Path:
    """The client installed (once) from the lock file."""
    if not (CLIENT / "node_modules" / "mailpit-api" / "package.json").exists():
        assert NPM is not None
        done = subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CLIENT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"npm ci failed: {done.stderr}"
    return CLIENT / "client.mjs"


def run_client(script: Path, base: str, *credentials: str) -> dict[str, Any]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(script), base, *credentials],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_mailpit_client_reads_mailroom(web: Any, mailpit_api: Path) -> None:
    live: LiveServer
    live, client = web(web_auth="mailpit:client-secret")
    first = send(live, plain("An earlier one"))
    report = send(live, rich(), sender="carol@example.test", recipients=["bob@example.test"])
    report_raw = stored(live.data, report)

    out = run_client(mailpit_api, live.mail_server.web.url, "mailpit", "client-secret")

    assert out["info"]["Messages"] == 2
    assert out["info"]["RuntimeStats"]["SMTPAccepted"] == 2
    listed = out["list"]
    assert [m["ID"] for m in listed["messages"]] == [report, first]
    assert listed["total"] == listed["messages_count"] == 2
    found = out["search"]["messages"]
    assert [m["ID"] for m in found] == [report]
    assert out["waited"]["ID"] == report
    message = out["message"]
    assert message["Subject"] == "Quarterly report"
    assert message["From"] == {"Name": "Carol", "Address": "carol@example.test"}
    assert message["Text"] == "The report is attached.\nRegards, Carol\n"
    assert out["latest"]["ID"] == report
    assert out["headers"]["Subject"] == ["Quarterly report"]
    assert out["source"] == report_raw.decode()
    assert out["attachment"] == {"type": "application/pdf", "text": PDF.decode()}
    assert '<h1 id="title">Quarterly report</h1>' in out["html"]
    assert out["text"] == message["Text"]
    assert out["setUnread"] == "ok"
    assert out["afterUnread"]["unread"] == 2  # getMessageSummary had marked it read
    assert out["configuration"]["MessageRelay"]["Enabled"] is True
    assert out["deleted"] == "ok"
    assert [m["ID"] for m in out["afterDelete"]["messages"]] == [first]
    assert out["deletedBySearch"] == "ok"
    assert out["afterSearchDelete"]["messages_count"] == 0
    assert client.get("/api/v1/messages").status == 401  # the client did authenticate
    # sendMessage: captured as if it had come over SMTP, Bcc in the envelope only.
    sent = out["sentMessage"]
    assert sent["ID"] == out["sent"]["ID"]
    assert sent["From"] == {"Name": "The App", "Address": "app@example.test"}
    assert sent["To"] == [{"Name": "A User", "Address": "user@example.test"}]
    assert sent["Bcc"] == [{"Name": "", "Address": "audit@example.test"}]
    assert (sent["Subject"], sent["Text"]) == ("Sent over the API", "Plain words.\n")
    assert sent["HTML"] == "<p>Rich words.</p>\n"
    assert [a["FileName"] for a in sent["Attachments"]] == ["note.txt"]
    captured = email.message_from_bytes(stored(live.data, sent["ID"]), policy=email.policy.SMTP)
    assert captured["X-Campaign"] == "welcome" and captured["Bcc"] is None
    assert captured["Message-ID"].endswith(f"@{live.config.hostname}>") and captured["Date"]
    # Chaos: off at first; then every RCPT fails with the code the client set.
    assert out["chaosBefore"] == {
        "Authentication": {"ErrorCode": 535, "Probability": 0},  # Mailpit's defaults
        "Recipient": {"ErrorCode": 451, "Probability": 0},
        "Sender": {"ErrorCode": 451, "Probability": 0},
    }
    assert out["chaosSet"]["Recipient"] == {"ErrorCode": 550, "Probability": 100}
    assert out["chaosSet"]["Sender"] == {"ErrorCode": 451, "Probability": 0}
    import smtplib

    with smtplib.SMTP(*live.smtp, timeout=10) as smtp:
        smtp.ehlo("client.example.test")
        assert smtp.mail("a@example.test") == (250, b"2.1.0 Ok")
        assert smtp.rcpt("b@example.test") == (550, b"5.0.0 Fault injected (chaos)")


def test_mailpit_client_checks_and_tags(web: Any, mailpit_api: Path, spamd: str) -> None:
    """htmlCheck, linkCheck (plain and followed), spamAssassinCheck (a real spamd) and the tag
    calls of Mailpit's client, against a message whose links a local HTTP server answers."""
    from tests.web.test_checks import _links_message

    with links_server_running() as base:
        live, _ = web(allow_internal_http_requests=True, link_check_timeout=2, spamassassin=spamd)
        queue_id = send(live, _links_message(base))
        out = run_client(CLIENT / "checks.mjs", live.mail_server.web.url, queue_id)
    assert set(out["htmlCheck"]) == {"Warnings", "Platforms", "Total"}
    # p, five a and an img
    assert out["htmlCheck"]["Total"]["Nodes"] == 7 and out["htmlCheck"]["Total"]["Tests"] > 200
    links = {
        link["URL"].removeprefix(base): link["StatusCode"] for link in out["linkCheck"]["Links"]
    }
    assert links == {"/ok": 200, "/moved": 301, "/slow": 0, "/head-refused": 200, "/missing": 404}
    followed = {
        link["URL"].removeprefix(base): link["StatusCode"]
        for link in out["linkCheckFollowed"]["Links"]
    }
    assert followed["/moved"] == 200 and out["linkCheckFollowed"]["Errors"] == 2
    spam = out["spamAssassinCheck"]
    assert spam["Error"] == "" and isinstance(spam["Rules"], list)
    # links to bare IP addresses look like spam to SpamAssassin: it says which rules hit
    assert spam["Score"] == pytest.approx(sum(r["Score"] for r in spam["Rules"]), abs=0.5)
    assert out["setTags"] == "ok" and out["tags"] == ["checked", "Newsletter"]
    assert [m["ID"] for m in out["tagged"]["messages"]] == [queue_id]
    assert (out["renamed"], out["deleted"]) == ("ok", "ok")
    assert out["tagsAfter"] == ["reviewed"] and out["message"]["Tags"] == ["reviewed"]
    assert out["cleared"] == "ok" and out["tagsCleared"] == []
