"""Two mailroom instances on loopback, configured as mail servers (issue 5): A (mx.a.test) relays
for its authenticated user alice to B (mx.example.test), found by a static route or as the MX of
example.test served by a DNS server the test starts on 127.0.0.1.

- delivered: the message reaches bob's Maildir at B;
- an unknown user at B: the bounce (an RFC 3464 report) lands in alice's Maildir at A;
- B answering 451 for a while: A retries on its schedule and delivers;
- kill -9 of A (``mailroom serve --config``) with a full queue: after a restart nothing is lost
  and nothing is delivered twice (counted by Message-ID at B).
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import signal
import smtplib
import socket
import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailroom.policy.credentials import password_line
from mailroom.queue.entry import QueueSpool
from mailroom.testing import SMTPTestServer
from tests.delivery.dnsserver import DNSServer
from tests.live import NO_DNS_CHECKS, ServeProcess, wait_for

ALICE_PASSWORD = "alice's long password"
_ALICE = password_line("alice@a.test", ALICE_PASSWORD).split(":", 2)

CONFIG_A = """
hostname = "mx.a.test"
data = "{data}"
tls = "self-signed"
web = "off"
log_level = "info"
domains = ["a.test"]
{dns_servers}

[[listeners]]
address = "127.0.0.1:0"
role = "submission"

[users."alice@a.test"]
password = "{hash}"
scram = "{scram}"

[policy]
check_null_mx = false
check_sender_domain = false

[queue]
retry_schedule = ["1s"]
mx_port = {mx_port}
{queue}

[routes]
{routes}
"""

CONFIG_B = (
    """
hostname = "mx.example.test"
data = "{data}"
tls = "self-signed"
web = "off"
log_level = "warning"
domains = ["example.test"]
faults = {faults}

[[listeners]]
address = "127.0.0.1:{port}"
role = "mx"

[users."bob@example.test"]

[policy]
check_null_mx = false
check_sender_domain = false
"""
    + NO_DNS_CHECKS
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def config_a(
    directory: Path,
    *,
    route_port: int | None = None,
    dns: str | None = None,
    mx_port: int = 25,
    queue: str = "",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "a.toml"
    path.write_text(
        CONFIG_A.format(
            data=directory / "data",
            hash=_ALICE[1],
            scram=_ALICE[2],
            dns_servers=f'dns_servers = ["{dns}"]' if dns else "",
            mx_port=mx_port,
            queue=queue,
            routes=f'"example.test" = "127.0.0.1:{route_port}"' if route_port else "",
        )
    )
    return path


def config_b(directory: Path, *, port: int = 0, faults: list[str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "b.toml"
    path.write_text(
        CONFIG_B.format(data=directory / "data", port=port, faults=toml_list(faults or []))
    )
    return path


def instance(config: Path, hostname: str) -> SMTPTestServer:
    return SMTPTestServer(
        config.parent / "data",
        {"hostname": hostname, "log_level": "warning", "web": "off"},
        config_file=config,
    ).start()


@pytest.fixture
def started() -> Iterator[list[SMTPTestServer]]:
    servers: list[SMTPTestServer] = []
    yield servers
    for server in reversed(servers):
        server.stop()


def message(n: int | str = 1, to: str = "bob@example.test") -> bytes:
    return (
        f"From: Alice <alice@a.test>\r\nTo: {to}\r\nSubject: message {n}\r\n"
        f"Message-ID: <m{n}@a.test>\r\n\r\nHello number {n}.\r\n"
    ).encode()


def submit(address: tuple[str, int], recipients: list[str], messages: list[bytes]) -> None:
    """alice sends through A's submission listener: STARTTLS, AUTH, then the messages."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(*address, timeout=30) as client:
        client.starttls(context=context)
        client.login("alice@a.test", ALICE_PASSWORD)
        for data in messages:
            assert client.sendmail("alice@a.test", recipients, data) == {}


def maildir(data: Path, address: str) -> list[bytes]:
    user, _, domain = address.partition("@")
    folder = data / "mail" / domain / user
    if not all((folder / sub).is_dir() for sub in ("tmp", "new", "cur")):
        return []  # not made yet, or being made (its three directories come one by one)
    box = mailbox.Maildir(folder, factory=None, create=False)
    return [box.get_bytes(key) for key in box.keys()]  # noqa: SIM118


def message_ids(data: Path, address: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for raw in maildir(data, address):
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        found[str(parsed["Message-ID"])] += 1
    return found


def queue_ids(data: Path) -> list[str]:
    return QueueSpool(data).ids()


def test_relayed_for_an_authenticated_user_by_static_route(
    tmp_path: Path, started: list[SMTPTestServer]
) -> None:
    b = instance(config_b(tmp_path / "b"), "mx.example.test")
    started.append(b)
    b_port = b.address("mx")[1]
    a = instance(config_a(tmp_path / "a", route_port=b_port), "mx.a.test")
    started.append(a)

    submit(a.address("submission"), ["bob@example.test"], [message("routed")])
    [raw] = wait_for(lambda: maildir(b.config.data, "bob@example.test"), timeout=30)
    wait_for(lambda: not queue_ids(a.config.data))
    # B's trace fields, then A's Received (authenticated, over TLS), then the message.
    assert raw.startswith(b"Return-Path: <alice@a.test>\r\nDelivered-To: bob@example.test\r\n")
    assert b"by mx.example.test (mailroom) with ESMTPS" in raw  # A -> B: STARTTLS
    assert b"(Authenticated sender: alice@a.test)" in raw
    assert b"by mx.a.test (mailroom) with ESMTPSA" in raw
    assert raw.endswith(message("routed"))
    assert a.server.runner.delivered == 1


def test_relayed_to_the_mx_found_in_dns(tmp_path: Path, started: list[SMTPTestServer]) -> None:
    records = {
        "example.test": {"MX": ["10 mx.example.test."]},
        "mx.example.test": {"A": ["127.0.0.1"]},
    }
    with DNSServer(records) as dns:
        b = instance(config_b(tmp_path / "b"), "mx.example.test")
        started.append(b)
        config = config_a(tmp_path / "a", dns=dns.address, mx_port=b.address("mx")[1])
        a = instance(config, "mx.a.test")
        started.append(a)
        submit(a.address("submission"), ["bob@example.test"], [message("by-mx")])
        wait_for(lambda: message_ids(b.config.data, "bob@example.test"), timeout=30)
        wait_for(lambda: not queue_ids(a.config.data))
        assert dns.queries[("example.test.", "MX")] >= 1
    assert message_ids(b.config.data, "bob@example.test") == Counter({"<mby-mx@a.test>": 1})


def test_unknown_user_at_b_bounces_to_the_sender_at_a(
    tmp_path: Path, started: list[SMTPTestServer]
) -> None:
    b = instance(config_b(tmp_path / "b"), "mx.example.test")
    started.append(b)
    a = instance(config_a(tmp_path / "a", route_port=b.address("mx")[1]), "mx.a.test")
    started.append(a)

    submit(
        a.address("submission"),
        ["bob@example.test", "nobody@example.test"],
        [message("half", to="bob@example.test, nobody@example.test")],
    )
    [bounce] = wait_for(lambda: maildir(a.config.data, "alice@a.test"), timeout=30)
    wait_for(lambda: not queue_ids(a.config.data))
    assert len(maildir(b.config.data, "bob@example.test")) == 1
    # The report was stored at A for its local user, from the null reverse-path.
    assert bounce.startswith(b"Return-Path: <>\r\nDelivered-To: alice@a.test\r\n")
    report = email.message_from_bytes(bounce, policy=email.policy.default)
    assert report["From"] == "Mail Delivery System <MAILER-DAEMON@mx.a.test>"
    assert report.get_content_type() == "multipart/report"
    human, status, returned = report.get_payload()
    assert "nobody@example.test" in human.get_content()
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.a.test"
    assert per_recipient["Final-Recipient"] == "rfc822; nobody@example.test"
    assert (per_recipient["Action"], per_recipient["Status"]) == ("failed", "5.1.1")
    assert per_recipient["Remote-MTA"] == "dns; 127.0.0.1"
    assert per_recipient["Diagnostic-Code"] == (
        "smtp; 550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown"
    )
    assert per_recipient["X-Mailroom-Reason"] == "userunknown"
    assert returned.get_payload()[0]["Message-ID"] == "<mhalf@a.test>"


def test_b_answering_451_for_a_while_then_a_delivers(
    tmp_path: Path, started: list[SMTPTestServer]
) -> None:
    faults = ["rcpt:times=3:451 4.3.0 try later"]
    b = instance(config_b(tmp_path / "b", faults=faults), "mx.example.test")
    started.append(b)
    a = instance(config_a(tmp_path / "a", route_port=b.address("mx")[1]), "mx.a.test")
    started.append(a)

    submit(a.address("submission"), ["bob@example.test"], [message("patient")])
    wait_for(lambda: maildir(b.config.data, "bob@example.test"), timeout=60)
    wait_for(lambda: not queue_ids(a.config.data))
    runner: Any = a.server.runner
    assert (runner.deferred, runner.delivered, runner.bounced) == (3, 1, 0)
    assert maildir(a.config.data, "alice@a.test") == []  # no report: it got there


def start_a_process(config: Path, log: Path) -> ServeProcess:
    return ServeProcess(["--config", str(config)], log).wait_started()


def kill_9(process: ServeProcess) -> None:
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(timeout=30)
    process.kill()  # closes the log file


def test_kill_9_with_a_full_queue_loses_and_repeats_nothing(
    tmp_path: Path, started: list[SMTPTestServer]
) -> None:
    count = 40
    b_port = free_port()
    config = config_a(tmp_path / "a", route_port=b_port)
    a_data = tmp_path / "a" / "data"

    # B is down: every message A takes waits in its queue.
    a = start_a_process(config, tmp_path / "a1.log")
    try:
        submit(a.smtp, ["bob@example.test"], [message(n) for n in range(count)])
        assert len(queue_ids(a_data)) == count
        wait_for(lambda: "status=deferred" in a.stderr, timeout=30)
    finally:
        kill_9(a)
    assert len(queue_ids(a_data)) == count

    # B is up; A again, after its kill -9.
    b = instance(config_b(tmp_path / "b", port=b_port), "mx.example.test")
    started.append(b)
    a = start_a_process(config, tmp_path / "a2.log")
    try:
        wait_for(lambda: not queue_ids(a_data), timeout=120)
    finally:
        a.terminate()
    assert message_ids(b.config.data, "bob@example.test") == Counter(
        {f"<m{n}@a.test>": 1 for n in range(count)}
    )


def test_kill_9_while_delivering_loses_nothing(
    tmp_path: Path, started: list[SMTPTestServer]
) -> None:
    count = 200
    # B takes a moment over each message, so that A is surely killed halfway.
    b = instance(config_b(tmp_path / "b", faults=["eod:delay=0.02"]), "mx.example.test")
    started.append(b)
    # One connection, so at most one message is between B's reply and A's saving it.
    config = config_a(
        tmp_path / "a", route_port=b.address("mx")[1], queue="max_per_destination = 1"
    )
    a_data = tmp_path / "a" / "data"

    a = start_a_process(config, tmp_path / "a1.log")
    try:
        submit(a.smtp, ["bob@example.test"], [message(n) for n in range(count)])
        # Killed while B has some of the messages and A still has others.
        wait_for(lambda: len(maildir(b.config.data, "bob@example.test")) >= 20, timeout=60)
    finally:
        kill_9(a)
    delivered_before = len(maildir(b.config.data, "bob@example.test"))
    queued = len(queue_ids(a_data))
    assert queued > 0, "the kill came too late to test anything: raise count"
    assert delivered_before + queued >= count

    a = start_a_process(config, tmp_path / "a2.log")
    try:
        wait_for(lambda: not queue_ids(a_data), timeout=120)
    finally:
        a.terminate()
    ids = message_ids(b.config.data, "bob@example.test")
    assert set(ids) == {f"<m{n}@a.test>" for n in range(count)}  # nothing lost
    # A message is sent again only if A died between B's reply to its end of data and A's
    # saving that reply: with one connection, one message at most.
    repeated = [mid for mid, seen in ids.items() if seen > 1]
    assert len(repeated) <= 1, repeated
    assert all(ids[mid] == 2 for mid in repeated)
