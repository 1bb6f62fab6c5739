"""DKIM signing of what authenticated users send: a signature says its domain takes
responsibility for the message (RFC 6376 §1.2), and one aligned with the From domain passes
DMARC for it. mailroom signs with the keys of the From domain, so a user who owns no address
in a domain must not get its signature by writing that domain into From: alice of
example.test, on a server that is also example.org's, would otherwise send DMARC-passing mail
as anyone at example.org. With ``sender_must_own_address = false`` the operator lets users
send as anyone, and their mail is signed as before."""

from __future__ import annotations

import email
import email.policy
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.authentication.keys import generate_key
from mailroom.testing import SMTPTestServer
from tests.mailserver.conftest import ALICE_PASSWORD, write_config


def message(author: str, subject: str) -> bytes:
    return f"From: {author}\r\nTo: friend@remote.test\r\nSubject: {subject}\r\n\r\nHi!\r\n".encode()


def start(tmp_path: Path, policy: str = "") -> Iterator[SMTPTestServer]:
    data = tmp_path / "data"
    for domain in ("example.test", "example.org"):
        generate_key(data, domain, "rsa-1", "rsa")
    config = write_config(tmp_path / "mailroom.toml", policy=policy)
    server = SMTPTestServer(data, config_file=config).start()
    yield server
    server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SMTPTestServer]:
    yield from start(tmp_path)


@pytest.fixture
def lenient_server(tmp_path: Path) -> Iterator[SMTPTestServer]:
    yield from start(tmp_path, policy="sender_must_own_address = false")


def send_as_alice(server: SMTPTestServer, *messages: bytes) -> None:
    context = ssl.create_default_context(
        cafile=str(Path(server.config.data) / "tls" / "self-signed.pem")
    )
    client = smtplib.SMTP(*server.address("submission"), timeout=10)
    client.starttls(context=context)
    client.login("alice@example.test", ALICE_PASSWORD)
    for data in messages:
        assert client.sendmail("alice@example.test", ["friend@remote.test"], data) == {}
    client.quit()


def signers(server: SMTPTestServer) -> dict[str, list[str]]:
    """The d= of each DKIM-Signature of each queued message, by Subject (remote.test's route
    is a closed port: what was sent waits in the queue as it was signed)."""
    found = {}
    for path in (Path(server.config.data) / "queue" / "active").glob("*.eml"):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        domains = [
            tag.strip()[2:]
            for field in parsed.get_all("DKIM-Signature") or []
            for tag in field.split(";")
            if tag.strip().startswith("d=")
        ]
        found[str(parsed["Subject"])] = domains
    return found


def test_no_signature_of_a_domain_the_user_owns_no_address_in(server: SMTPTestServer) -> None:
    send_as_alice(
        server,
        message("Alice <alice@example.test>", "own"),
        message("Boss <boss@example.org>", "other domain"),
        message("Boss <boss@example.test>", "own domain"),
    )
    assert signers(server) == {
        "own": ["example.test"],
        "other domain": [],
        "own domain": ["example.test"],
    }


def test_a_user_allowed_to_send_as_anyone_is_signed_as_anyone(
    lenient_server: SMTPTestServer,
) -> None:
    send_as_alice(lenient_server, message("Boss <boss@example.org>", "other domain"))
    assert signers(lenient_server) == {"other domain": ["example.org"]}
