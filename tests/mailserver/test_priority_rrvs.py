"""MT-PRIORITY (RFC 6710) and RRVS (RFC 7293) on the mail server's listeners, over real sockets
with smtplib, and passed on by the queue to a next hop: a second mailroom that offers both, and
Postfix's smtp-sink, which offers neither."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailroom.testing import SMTPTestServer
from tests.client.servers import SMTP_SINK, smtp_sink
from tests.delivery.dnsserver import dns_that_cannot_answer

CONFIG = """
hostname = "mx.example.test"
domains = ["example.test", "example.org"{domains}]
dns_servers = ["{dns}"]

[[listeners]]
address = "127.0.0.1:0"
role = "mx"
[[listeners]]
address = "127.0.0.1:0"
role = "mx"
min_priority = 1

[users."alice@example.test"]
[users."bob@example.test"]
[users."carol@example.org"]
{users}

[owned_since]
"alice@example.test" = 2022-01-01T00:00:00Z
"example.org" = 2023-01-01

[policy]
check_null_mx = false
check_sender_domain = false
{policy}

[queue]
retry_schedule = ["1s"]
delay_warning = "0"

[routes]
"far.test" = "127.0.0.1:1"
"urgent.test" = {{ address = "127.0.0.1:1", min_priority = 3 }}
{routes}
"""


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., SMTPTestServer]]:
    started: list[SMTPTestServer] = []

    def make(
        policy: str = "", routes: str = "", domains: str = "", users: str = ""
    ) -> SMTPTestServer:
        directory = tmp_path / f"server{len(started)}"
        directory.mkdir()
        config = directory / "mailroom.toml"
        config.write_text(
            CONFIG.format(
                dns=dns_that_cannot_answer(),
                policy=policy,
                routes=routes,
                domains=domains,
                users=users,
            )
        )
        server = SMTPTestServer(directory / "data", config_file=config)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


def _client(server: SMTPTestServer, role: str = "mx") -> smtplib.SMTP:
    client = smtplib.SMTP(*server.address(role), timeout=30)
    client.ehlo("client.remote.test")
    return client


def test_both_extensions_are_offered(server_factory: Callable[..., SMTPTestServer]) -> None:
    client = _client(server_factory())
    assert client.has_extn("mt-priority") and client.esmtp_features["mt-priority"] == "MIXER"
    assert client.has_extn("rrvs")
    client.quit()


@pytest.mark.parametrize(
    "params, reply",
    [
        (["MT-PRIORITY=0"], (250, b"2.1.0 Ok")),
        (["MT-PRIORITY=-3"], (250, b"2.1.0 Ok")),
        (
            ["MT-PRIORITY=5"],
            (
                250,
                b"2.3.6 0 Requested priority was changed: only trusted senders may raise the "
                b"priority above 0",
            ),
        ),
        (["MT-PRIORITY=10"], (501, b"5.5.4 Malformed parameter: MT-PRIORITY")),
        (["MT-PRIORITY=-0"], (501, b"5.5.4 Malformed parameter: MT-PRIORITY")),
        (["MT-PRIORITY"], (501, b"5.5.4 Malformed parameter: MT-PRIORITY")),
    ],
)
def test_who_may_ask_for_which_priority(
    server_factory: Callable[..., SMTPTestServer], params: list[str], reply: tuple[int, bytes]
) -> None:
    client = _client(server_factory())
    assert client.mail("someone@remote.test", params) == reply
    client.quit()


def test_trusted_senders_may_raise_the_priority(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    client = _client(server_factory('relay_networks = ["127.0.0.1/32"]'))
    assert client.mail("someone@remote.test", ["MT-PRIORITY=5"]) == (250, b"2.1.0 Ok")
    client.quit()


def test_a_listener_and_a_route_with_a_minimum_priority(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = server_factory('relay_networks = ["127.0.0.1/32"]')
    # The second mx listener takes priority 1 and above (min_priority = 1).
    strict = smtplib.SMTP("127.0.0.1", server.server.addresses[1][1], timeout=30)
    strict.ehlo("client.remote.test")
    assert strict.mail("someone@remote.test") == (
        550,
        b"5.7.15 Priority level is too low: this listener (mx) takes priority 1 and above",
    )
    assert strict.mail("someone@remote.test", ["MT-PRIORITY=1"]) == (250, b"2.1.0 Ok")
    strict.quit()
    # A route with a minimum (urgent.test: 3) refuses lower priorities at RCPT.
    client = _client(server)
    assert client.mail("alice@example.test", ["MT-PRIORITY=2"])[0] == 250
    assert client.rcpt("x@urgent.test") == (
        550,
        b"5.7.15 Priority level is too low: the route to urgent.test takes priority 3 and above",
    )
    assert client.rcpt("x@far.test") == (250, b"2.1.5 Ok")
    client.rset()
    assert client.mail("alice@example.test", ["MT-PRIORITY=3"])[0] == 250
    assert client.rcpt("x@urgent.test") == (250, b"2.1.5 Ok")
    client.quit()


def test_sizes_by_priority(server_factory: Callable[..., SMTPTestServer]) -> None:
    client = _client(server_factory('max_size_by_priority = { "-1" = "1K" }'))
    assert client.mail("someone@remote.test", ["MT-PRIORITY=-2", "SIZE=5000"]) == (
        552,
        b"5.7.16 Message is too big for the specified priority -2: at most 1024 octets",
    )
    assert client.mail("someone@remote.test", ["MT-PRIORITY=-1"])[0] == 250
    assert client.rcpt("alice@example.test")[0] == 250
    code, text = client.data(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 30)
    assert (code, text) == (
        552,
        b"5.7.16 Message is too big for the specified priority -1: at most 1024 octets",
    )
    # Priority 0 has no limit of its own.
    assert not client.sendmail(
        "someone@remote.test", ["alice@example.test"], b"Subject: big\r\n\r\n" + b"x\r\n" * 800
    )
    client.quit()


def test_low_priorities_wait_while_the_queue_is_busy(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = server_factory('relay_networks = ["127.0.0.1/32"]\nlow_priority_queue_limit = 1')
    client = _client(server)
    client.sendmail("alice@example.test", ["x@far.test"], b"Subject: 1\r\n\r\nhi\r\n")
    assert client.mail("alice@example.test", ["MT-PRIORITY=-1"]) == (
        451,
        b"4.7.15 Priority level is too low while the queue is busy (1 messages): try again later",
    )
    assert client.mail("alice@example.test", ["MT-PRIORITY=0"])[0] == 250
    client.quit()


@pytest.mark.parametrize(
    "recipient, rrvs, reply",
    [
        ("alice@example.test", "2022-06-01T00:00:00Z", (250, b"2.1.5 Ok")),
        (
            "alice@example.test",
            "2021-06-01T00:00:00Z",
            (
                550,
                b"5.7.17 <alice@example.test>: Recipient address rejected: mailbox owner has "
                b"changed",
            ),
        ),
        # The same moment in another offset: still before alice's mailbox was hers.
        (
            "alice@example.test",
            "2022-01-01T00:59:59+01:00",
            (
                550,
                b"5.7.17 <alice@example.test>: Recipient address rejected: mailbox owner has "
                b"changed",
            ),
        ),
        ("alice@example.test", "2022-01-01T01:00:00+01:00", (250, b"2.1.5 Ok")),
        (
            "carol@example.org",
            "2022-06-01T00:00:00Z",
            (
                550,
                b"5.7.18 <carol@example.org>: Recipient address rejected: domain owner has changed",
            ),
        ),
        ("carol@example.org", "2023-06-01T00:00:00Z;C", (250, b"2.1.5 Ok")),
        ("bob@example.test", "2022-06-01T00:00:00Z;C", (250, b"2.1.5 Ok")),
        ("bob@example.test", "2022-06-01T00:00:00Z", (250, b"2.1.5 Ok")),
        (
            "bob@example.test",
            "2022-06-01T00:00:00Z;R",
            (
                550,
                b"5.7.19 <bob@example.test>: Recipient address rejected: RRVS test cannot be "
                b"completed: no owned-since time is recorded for the mailbox",
            ),
        ),
        ("bob@example.test", "2022-06-01", (501, b"5.5.4 Malformed parameter: RRVS")),
        ("bob@example.test", "2022-06-01T00:00:00Z;X", (501, b"5.5.4 Malformed parameter: RRVS")),
    ],
)
def test_rrvs_at_rcpt(
    server_factory: Callable[..., SMTPTestServer],
    recipient: str,
    rrvs: str,
    reply: tuple[int, bytes],
) -> None:
    client = _client(server_factory())
    assert client.mail("someone@remote.test")[0] == 250
    assert client.rcpt(recipient, [f"RRVS={rrvs}"]) == reply
    client.quit()


def require(binary: str | None, what: str) -> None:
    """A real peer that is missing fails the test, unless MAILROOM_ALLOW_SKIP=1 says a
    developer's machine may skip it (CI never sets it)."""
    if binary is None:
        if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
            pytest.skip(f"{what} is not installed")
        pytest.fail(f"{what} is not installed (MAILROOM_ALLOW_SKIP=1 skips instead)")


def _reports(server: SMTPTestServer, user: str, count: int) -> list[email.message.Message]:
    folder = Path(server.config.data) / "mail" / "example.test" / user
    deadline = time.monotonic() + 30
    while True:
        found = []
        if folder.exists():
            found = [
                email.message_from_bytes(m.as_bytes(), policy=email.policy.default)
                for m in mailbox.Maildir(folder, create=False)
            ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _commands(server: SMTPTestServer) -> list[str]:
    return [
        entry["text"]
        for transcript in server.transcripts
        for entry in transcript["entries"]
        if entry["from"] == "client"
    ]


def test_rrvs_and_priority_are_passed_on_to_a_next_hop_that_offers_them(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    """A mailroom relays to another mailroom whose mx listener offers both: the next hop gets
    MT-PRIORITY on MAIL and RRVS on RCPT, and makes the test itself."""
    receiver = server_factory(
        domains=', "example.com"',
        users='[users."dave@example.com"]\n[users."erin@example.com"]',
    )
    host, port = receiver.address("mx")
    relay = server_factory(
        'relay_networks = ["127.0.0.1/32"]', routes=f'"example.com" = "{host}:{port}"'
    )
    client = _client(relay)
    assert client.mail("alice@example.test", ["MT-PRIORITY=4"])[0] == 250
    assert client.rcpt("dave@example.com", ["RRVS=2021-06-01T00:00:00Z;R"])[0] == 250
    assert client.rcpt("erin@example.com")[0] == 250
    assert client.data(b"Subject: passed on\r\n\r\nhi\r\n")[0] == 250
    client.quit()
    deadline = time.monotonic() + 30
    commands: list[str] = []
    while time.monotonic() < deadline:
        commands = _commands(receiver)
        if any(c.startswith("RCPT TO:<erin@example.com>") for c in commands):
            break
        time.sleep(0.1)
    mail = next(c for c in commands if c.startswith("MAIL FROM:<alice@example.test>"))
    rcpt = next(c for c in commands if c.startswith("RCPT TO:<dave@example.com>"))
    assert "MT-PRIORITY=4" in mail.split()
    assert rcpt.split()[2:] == ["RRVS=2021-06-01T00:00:00Z;R"]
    # dave's mailbox has no recorded owner: the receiver refused him (;R), the relay reports it.
    [report] = _reports(relay, "alice", 1)
    text = " ".join(report.as_string().split())
    assert "Final-Recipient: rfc822; dave@example.com Action: failed Status: 5.7.19" in text


def test_rrvs_to_a_next_hop_without_it(server_factory: Callable[..., SMTPTestServer]) -> None:
    """smtp-sink offers no RRVS: ";R" returns the message with 5.7.19, ";C" goes on without."""
    require(SMTP_SINK, "smtp-sink (Debian package postfix)")
    with smtp_sink() as sink:
        relay = server_factory(
            'relay_networks = ["127.0.0.1/32"]', routes=f'"sink.test" = "127.0.0.1:{sink.port}"'
        )
        client = _client(relay)
        assert client.mail("alice@example.test")[0] == 250
        assert client.rcpt("strict@sink.test", ["RRVS=2021-06-01T00:00:00Z;R"])[0] == 250
        assert client.rcpt("lenient@sink.test", ["RRVS=2021-06-01T00:00:00Z;C"])[0] == 250
        assert client.data(b"Subject: rrvs\r\n\r\nhi\r\n")[0] == 250
        client.quit()
        [report] = _reports(relay, "alice", 1)
        text = " ".join(report.as_string().split())
        assert "Final-Recipient: rfc822; strict@sink.test Action: failed Status: 5.7.19" in text
        assert "lenient@sink.test" not in text.split("Final-Recipient")[-1]
        deadline = time.monotonic() + 30
        while not sink.captured() and time.monotonic() < deadline:
            time.sleep(0.1)
        [received] = sink.captured()
        assert b"lenient@sink.test" in received and b"strict@sink.test" not in received
