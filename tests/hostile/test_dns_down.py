"""DNS that does not answer (down, or a black hole an attacker arranged): the DNS checks of
an mx listener wait at most ``dns_timeout`` seconds in total per command (2 by default). On a
timeout a null-MX check is skipped and the command goes on (a null MX is then found, and the
mail returned, by the queue); the sender domain check (``check_sender_domain``) answers
451 4.1.8, as when DNS cannot tell. Before, every MAIL FROM waited out the resolver's own 5 s."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.testing import SMTPTestServer

CONFIG = """
hostname = "mx.example.test"
domains = ["example.test"]
dns_servers = ["127.0.0.1:{port}"]

[[listeners]]
address = "127.0.0.1:0"
role = "mx"

[users."alice@example.test"]

[policy]
check_null_mx = true
{policy}
"""


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A UDP port that takes DNS queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _server(tmp_path: Path, port: int, policy: str = "") -> SMTPTestServer:
    config = tmp_path / "mailroom.toml"
    config.write_text(CONFIG.format(port=port, policy=policy))
    return SMTPTestServer(tmp_path / "data", config_file=config).start()


def _timed(client: smtplib.SMTP, command: str) -> tuple[tuple[int, bytes], float]:
    started = time.monotonic()
    reply = client.docmd(command)
    return reply, time.monotonic() - started


@pytest.mark.parametrize(("policy", "bound"), [("", 2.0), ("dns_timeout = 0.3", 0.3)])
def test_mail_from_waits_at_most_dns_timeout(
    tmp_path: Path, black_hole: int, policy: str, bound: float
) -> None:
    # The null-MX check alone: the sender domain check has a test of its own below.
    server = _server(tmp_path, black_hole, "check_sender_domain = false\n" + policy)
    try:
        client = smtplib.SMTP(*server.address("mx"), timeout=30)
        client.ehlo("client.example.test")
        waits = []
        for _ in range(2):
            reply, waited = _timed(client, "MAIL FROM:<someone@remote.test>")
            assert reply == (250, b"2.1.0 Ok")  # unknown: not refused
            waits.append(waited)
            assert client.docmd("RSET")[0] == 250
        client.quit()
    finally:
        server.stop()
    # The bound, plus what a busy machine may add; the resolver's own timeout is 5 s.
    assert max(waits) < bound + 1.5, waits


@pytest.mark.parametrize(("policy", "bound"), [("", 2.0), ("dns_timeout = 0.3", 0.3)])
def test_the_sender_domain_check_answers_451_within_dns_timeout(
    tmp_path: Path, black_hole: int, policy: str, bound: float
) -> None:
    """check_sender_domain (on by default on mx listeners) asks DNS whether the sender's domain
    takes mail: the black hole cannot hold MAIL for it either; it cannot tell now: 451 4.1.8."""
    server = _server(tmp_path, black_hole, policy)
    try:
        client = smtplib.SMTP(*server.address("mx"), timeout=30)
        client.ehlo("client.example.test")
        (code, text), waited = _timed(client, "MAIL FROM:<someone@remote.test>")
        assert (code, text[:5]) == (451, b"4.1.8"), text
        # A local sender's domain is not asked about.
        assert client.docmd("MAIL FROM:<alice@example.test>")[0] == 250
        client.quit()
    finally:
        server.stop()
    assert waited < bound + 1.5, waited
