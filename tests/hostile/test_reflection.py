"""Reflection through delivery reports: an unauthenticated client on the mx listener forges the
sender (a victim elsewhere) and asks for reports. By default mailroom sends none to such a
sender: no success report (NOTIFY=SUCCESS) and no bounce of mail an alias forwards off-site.
Authenticated clients, relay_networks and senders in the local domains still get theirs; the
settings ``success_reports`` and ``forward_bounces`` = "all" restore reports to anyone."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailroom.testing import SMTPTestServer
from tests.delivery.dnsserver import dns_that_cannot_answer

CONFIG = """
hostname = "mx.example.test"
domains = ["example.test"]
dns_servers = ["{dns}"]

[[listeners]]
address = "127.0.0.1:0"
role = "mx"

[users."alice@example.test"]
[users."bob@example.test"]

[aliases]
"dave@example.test" = "dave@remote.test"

[policy]
check_null_mx = false
# No DNS here (a server that answers SERVFAIL): the sender domain check would answer 451 4.1.8.
check_sender_domain = false
{policy}

[queue]
retry_schedule = ["1s"]

[routes]
"remote.test" = "127.0.0.1:{port}"
"victim.test" = "127.0.0.1:{port}"
"""


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[SMTPTestServer]:
    """The rest of the world: takes mail for victim.test; dave@remote.test does not exist."""
    server = SMTPTestServer(tmp_path / "elsewhere").start()
    server.fail("rcpt", "550 5.1.1 No such user", match="*@remote.test")
    yield server
    server.stop()


@pytest.fixture
def mx(tmp_path: Path, elsewhere: SMTPTestServer) -> Iterator[Callable[..., SMTPTestServer]]:
    started: list[SMTPTestServer] = []

    def start(policy: str = "") -> SMTPTestServer:
        config = tmp_path / "mailroom.toml"
        config.write_text(
            CONFIG.format(dns=dns_that_cannot_answer(), port=elsewhere.port, policy=policy)
        )
        server = SMTPTestServer(tmp_path / "data", config_file=config).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _send(server: SMTPTestServer, sender: str, recipient: str, notify: str | None) -> None:
    client = smtplib.SMTP(*server.address("mx"), timeout=10)
    client.ehlo("client.victim.test")
    options = [f"NOTIFY={notify}"] if notify else []
    assert client.mail(sender)[0] == 250
    assert client.rcpt(recipient, options)[0] == 250
    assert client.data(b"Subject: hello\r\n\r\nhello\r\n")[0] == 250
    client.quit()


def _reports_to(server: SMTPTestServer, user: str) -> list[bytes]:
    box = Path(server.config.data) / "mail" / "example.test" / user / "new"
    return [p.read_bytes() for p in box.iterdir()] if box.is_dir() else []


def _wait(condition: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _reflected(elsewhere: SMTPTestServer) -> list[str]:
    """Reports that reached the victim: messages from the null sender to victim.test."""
    return [
        m.recipients[0]
        for m in elsewhere.messages
        if m.sender == "" and m.recipients[0].endswith("@victim.test")
    ]


def test_no_success_report_to_a_forged_sender(mx, elsewhere: SMTPTestServer) -> None:
    server = mx()
    # The attack: a forged external sender asks for a success report.
    _send(server, "victim@victim.test", "alice@example.test", "SUCCESS")
    # A local sender who asks gets hers (the sync point: the queue has run by then).
    _send(server, "bob@example.test", "alice@example.test", "SUCCESS")
    _wait(lambda: any(b"delivered" in r.lower() for r in _reports_to(server, "bob")))
    assert len(_reports_to(server, "alice")) == 2  # both messages were delivered
    time.sleep(1.0)  # anything queued for the victim would be on its way by now
    assert _reflected(elsewhere) == []


def test_no_bounce_of_a_failed_forward_to_a_forged_sender(mx, elsewhere) -> None:
    server = mx()
    _send(server, "victim@victim.test", "dave@example.test", None)
    # A local sender's forward that fails is returned to her (the sync point).
    _send(server, "bob@example.test", "dave@example.test", None)
    _wait(lambda: any(b"5.1.1" in r for r in _reports_to(server, "bob")))
    time.sleep(1.0)
    assert _reflected(elsewhere) == []


def test_all_restores_reports_to_anyone(mx, elsewhere: SMTPTestServer) -> None:
    server = mx('success_reports = "all"\nforward_bounces = "all"')
    _send(server, "victim@victim.test", "alice@example.test", "SUCCESS")
    _send(server, "victim2@victim.test", "dave@example.test", None)
    _wait(lambda: len(_reflected(elsewhere)) == 2)
    assert sorted(_reflected(elsewhere)) == ["victim2@victim.test", "victim@victim.test"]
