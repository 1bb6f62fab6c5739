"""Addresses and routing (issue 17), with real DNS (Knot DNS serving the zones, Unbound
resolving them; tests/dnspeers.py) and real sockets: sender domains that take no mail
(553 5.1.8) or cannot be looked up now (451 4.1.8), broken MX records and routes to names that
do not resolve in the reports (4.4.4, 4.3.5), routing loops by Received count and by an MX that
points at this server (5.4.6), a congested queue (451 4.4.5), a local domain without mailboxes
(451 4.3.5, and check-config's warning), LHLO on SMTP (500 5.5.5) and mail floods
(450 4.7.28)."""

from __future__ import annotations

import email
import email.policy
import mailbox
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailroom.testing import SMTPTestServer
from tests.dnspeers import Knot, Unbound, free_port, silent_dns

RECORDS = {
    "withmx.senders.test": {"MX": ["10 mx.senders.test."]},
    "mx.senders.test": {"A": ["127.0.0.1"]},
    "aonly.senders.test": {"A": ["192.0.2.1"]},
    "nothing.senders.test": {"TXT": ["v=spf1 -all"]},
    "nullmx.senders.test": {"MX": ["0 ."]},
    "broken.remote.test": {"MX": ["10 ghost.remote.test."]},
    "loop.remote.test": {"MX": ["10 self.remote.test."]},
    "self.remote.test": {"A": ["127.0.0.1"]},
    "void.remote.test": {"MX": ["10 zero.remote.test."]},
    "zero.remote.test": {"A": ["0.0.0.0"]},
    # The server's own names and the routed domains: every name the server may look up is in a
    # zone of Knot's, so Unbound never looks further (no test asks the Internet).
    "example.test": {"MX": ["10 mx.example.test."]},
    "mx.example.test": {"A": ["127.0.0.1"]},
    "far.test": {"A": ["192.0.2.2"]},
    "misrouted.test": {"A": ["192.0.2.3"]},
    "empty.test": {"A": ["192.0.2.4"]},
}
ZONES = ["senders.test", "remote.test", "example.test", "far.test", "misrouted.test", "empty.test"]


@pytest.fixture(scope="module")
def resolver() -> Iterator[Unbound]:
    with Knot(RECORDS, zones=ZONES) as knot, Unbound(knot) as unbound:
        yield unbound


CONFIG = """
hostname = "mx.example.test"
domains = ["example.test", "empty.test"]
dns_servers = ["{dns}"]

[[listeners]]
address = "127.0.0.1:{port}"
role = "mx"

[users."alice@example.test"]

[policy]
relay_networks = ["127.0.0.1/32"]
{policy}

[queue]
mx_port = {port}
retry_schedule = ["1s"]
delay_warning = "1s"

[routes]
"far.test" = "127.0.0.1:1"
"misrouted.test" = "nowhere.remote.test:25"
"""


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., SMTPTestServer]]:
    started: list[SMTPTestServer] = []

    def make(dns: str, policy: str = "") -> SMTPTestServer:
        directory = tmp_path / f"server{len(started)}"
        directory.mkdir()
        config = directory / "mailroom.toml"
        config.write_text(CONFIG.format(dns=dns, port=free_port(), policy=policy))
        server = SMTPTestServer(directory / "data", config_file=config)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


def _client(server: SMTPTestServer) -> smtplib.SMTP:
    client = smtplib.SMTP(*server.address("mx"), timeout=30)
    client.ehlo("client.remote.test")
    return client


def _reports(
    server: SMTPTestServer, count: int, timeout: float = 30
) -> list[email.message.Message]:
    """The reports in alice's Maildir, once there are ``count``."""
    folder = Path(server.config.data) / "mail" / "example.test" / "alice"
    deadline = time.monotonic() + timeout
    while True:
        found = []
        if folder.exists():
            box = mailbox.Maildir(folder, create=False)
            found = [
                email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in box
            ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _words(report: email.message.Message) -> str:
    """The report's text with its lines unfolded, for looking for phrases in it."""
    return " ".join(report.as_string().split())


def _status(report: email.message.Message) -> list[tuple[str, str]]:
    """(Action, Status) of each recipient of a delivery status notification."""
    text = report.as_bytes().decode("utf-8", "replace")
    blocks = text.split("Final-Recipient:")[1:]
    out = []
    for block in blocks:
        fields = dict(
            line.split(":", 1) for line in block.splitlines() if ":" in line and line[:1].isalpha()
        )
        out.append((fields["Action"].strip(), fields["Status"].strip()))
    return out


@pytest.mark.parametrize(
    "sender, reply",
    [
        ("a@withmx.senders.test", (250, b"2.1.0 Ok")),
        ("a@aonly.senders.test", (250, b"2.1.0 Ok")),  # no MX: its address is an implicit MX
        (
            "a@nothing.senders.test",
            (553, b"5.1.8 <a@nothing.senders.test>: Sender address rejected: Domain not found"),
        ),
        (
            "a@gone.senders.test",
            (553, b"5.1.8 <a@gone.senders.test>: Sender address rejected: Domain not found"),
        ),
        (
            "a@nullmx.senders.test",
            (
                550,
                b"5.7.27 <a@nullmx.senders.test>: Sender domain has a null MX and does not "
                b"accept mail",
            ),
        ),
        ("", (250, b"2.1.0 Ok")),  # the null sender of a bounce has no domain to check
    ],
)
def test_sender_domains_that_take_no_mail(
    resolver: Unbound,
    server_factory: Callable[..., SMTPTestServer],
    sender: str,
    reply: tuple[int, bytes],
) -> None:
    server = server_factory(resolver.address)
    client = _client(server)
    assert client.mail(sender) == reply
    client.quit()


def test_a_sender_domain_dns_cannot_answer_for_now(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    with silent_dns() as dns:
        server = server_factory(dns)
        client = _client(server)
        assert client.mail("a@withmx.senders.test") == (
            451,
            b"4.1.8 <a@withmx.senders.test>: Sender address rejected: Domain lookup failed, try "
            b"again later",
        )
        client.quit()


def test_a_broken_mx_is_reported_as_unable_to_route(
    resolver: Unbound, server_factory: Callable[..., SMTPTestServer]
) -> None:
    server = server_factory(resolver.address)
    client = _client(server)
    client.sendmail("alice@example.test", ["bob@broken.remote.test"], b"Subject: x\r\n\r\nhi\r\n")
    client.quit()
    [report] = _reports(server, 1)
    assert report["Subject"] == "Delayed Mail (still being retried)"
    assert _status(report) == [("delayed", "4.4.4")]
    assert "no address for the MX hosts of broken.remote.test" in _words(report)


def test_an_mx_whose_addresses_no_mail_can_go_to(
    resolver: Unbound, server_factory: Callable[..., SMTPTestServer]
) -> None:
    server = server_factory(resolver.address)
    client = _client(server)
    client.sendmail("alice@example.test", ["bob@void.remote.test"], b"Subject: x\r\n\r\nhi\r\n")
    client.quit()
    [report] = _reports(server, 1)
    assert _status(report) == [("delayed", "4.4.0")]
    assert "no address mail can go to: zero.remote.test (0.0.0.0)" in _words(report)


def test_a_route_to_a_name_that_does_not_resolve_is_our_configuration(
    resolver: Unbound, server_factory: Callable[..., SMTPTestServer]
) -> None:
    server = server_factory(resolver.address)
    client = _client(server)
    client.sendmail("alice@example.test", ["bob@misrouted.test"], b"Subject: x\r\n\r\nhi\r\n")
    client.quit()
    [report] = _reports(server, 1)
    assert _status(report) == [("delayed", "4.3.5")]
    assert "relay host nowhere.remote.test not found" in _words(report)


def test_an_mx_that_points_at_this_server_is_a_routing_loop(
    resolver: Unbound, server_factory: Callable[..., SMTPTestServer]
) -> None:
    """loop.remote.test is not local, but its MX, self.remote.test, is 127.0.0.1 on the port
    this server listens on: mail for it would come straight back."""
    server = server_factory(resolver.address)
    client = _client(server)
    client.sendmail("alice@example.test", ["bob@loop.remote.test"], b"Subject: x\r\n\r\nhi\r\n")
    client.quit()
    [report] = _reports(server, 1)
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert _status(report) == [("failed", "5.4.6")]
    assert "loops back to myself (self.remote.test is its best MX" in _words(report)


def test_too_many_received_fields_is_a_routing_loop(
    resolver: Unbound, server_factory: Callable[..., SMTPTestServer]
) -> None:
    server = server_factory(resolver.address)
    hop = b"Received: from a.test by b.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    client = _client(server)
    assert not client.sendmail(
        "a@withmx.senders.test", ["alice@example.test"], hop * 100 + b"Subject: ok\r\n\r\nhi\r\n"
    )
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail(
            "a@withmx.senders.test",
            ["alice@example.test"],
            hop * 101 + b"Subject: looped\r\n\r\nhi\r\n",
        )
    assert (refused.value.smtp_code, refused.value.smtp_error) == (
        554,
        b"5.4.6 Error: too many hops (101 Received header fields): routing loop",
    )
    client.quit()


def test_a_congested_queue_takes_no_more(
    resolver: Unbound, server_factory: Callable[..., SMTPTestServer]
) -> None:
    server = server_factory(resolver.address, "max_queued_messages = 1")
    client = _client(server)
    client.sendmail("alice@example.test", ["x@far.test"], b"Subject: 1\r\n\r\nhi\r\n")
    assert client.mail("alice@example.test")[0] == 250
    assert client.rcpt("y@far.test") == (
        451,
        b"4.4.5 Error: mail system congested (1 messages queued), try again later",
    )
    # Local mail does not go through the queue: it is still taken.
    assert client.rcpt("alice@example.test")[0] == 250
    client.quit()


def test_a_local_domain_without_mailboxes(
    resolver: Unbound, server_factory: Callable[..., SMTPTestServer]
) -> None:
    server = server_factory(resolver.address)
    client = _client(server)
    assert client.mail("a@withmx.senders.test")[0] == 250
    assert client.rcpt("anyone@empty.test") == (
        451,
        b"4.3.5 <anyone@empty.test>: Recipient address rejected: empty.test is a local domain "
        b"without mailboxes; this server is misconfigured, try again later",
    )
    client.quit()


def test_check_config_warns_of_what_cannot_work(resolver: Unbound, tmp_path: Path) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text(
        CONFIG.format(dns=resolver.address, port=free_port(), policy="")
        + '\n[aliases]\n"team@example.test" = ["alice@example.test", "ghost@example.test"]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if ": warning: " in line]
    assert [w.split(": warning: ", 1)[1] for w in warnings] == [
        "domains: empty.test has no users, aliases, lists or catch-all: every recipient there "
        "will get 451 4.3.5 (system incorrectly configured)",
        "aliases: team@example.test: member <ghost@example.test> does not exist: its mail will "
        "get 450 4.2.4 (mailing list expansion problem)",
        "routes: misrouted.test: nowhere.remote.test does not resolve: its mail will wait in the "
        "queue with 4.3.5 (system incorrectly configured)",
    ]


def test_lhlo_on_an_smtp_listener_is_the_wrong_protocol(
    resolver: Unbound, server_factory: Callable[..., SMTPTestServer]
) -> None:
    server = server_factory(resolver.address)
    client = smtplib.SMTP(*server.address("mx"), timeout=30)
    assert client.docmd("LHLO client.remote.test") == (
        500,
        b"5.5.5 Error: LHLO is LMTP (RFC 2033); this server speaks SMTP, say EHLO",
    )
    assert client.ehlo("client.remote.test")[0] == 250
    client.quit()


def test_a_flood_of_near_identical_messages_from_many_senders(
    resolver: Unbound, server_factory: Callable[..., SMTPTestServer]
) -> None:
    """A subscription bomb: list servers all over ask alice to confirm a subscription she never
    asked for; each copy has its own list name, token and link."""
    server = server_factory(resolver.address, "flood_senders = 2\nflood_window = 600")
    client = _client(server)

    def confirm(number: int) -> bytes:
        return (
            f"Subject: Please confirm your subscription {number}\r\n\r\n"
            f"Someone subscribed you. Confirm: https://list{number}.test/c?t={number:08x}abcdef\r\n"
            f"Your code is {number * 7919}.\r\n"
        ).encode()

    for number in (1, 2):
        assert not client.sendmail(
            f"list{number}@withmx.senders.test", ["alice@example.test"], confirm(number)
        )
    with pytest.raises(smtplib.SMTPDataError) as flood:
        client.sendmail("list3@withmx.senders.test", ["alice@example.test"], confirm(3))
    assert (flood.value.smtp_code, flood.value.smtp_error) == (
        450,
        b"4.7.28 Error: mail flood detected: 3 similar messages to <alice@example.test> from "
        b"different senders, try again later",
    )
    # A different letter from another sender is not part of the flood.
    assert not client.sendmail(
        "friend@withmx.senders.test", ["alice@example.test"], b"Subject: lunch?\r\n\r\nNoon?\r\n"
    )
    client.quit()
    assert len(server.messages) == 3
