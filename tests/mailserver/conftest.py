"""A mailroom in the mail server mode, for the tests of this folder: example.test is local,
alice and bob are users (alice with a password), with aliases, a moved user and a catch-all
for the second domain."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailroom.policy.credentials import password_line
from mailroom.testing import SMTPTestServer
from tests.delivery.dnsserver import dns_that_cannot_answer
from tests.live import NO_DNS_CHECKS

ALICE_PASSWORD = "correct horse battery staple"
_ALICE = password_line("alice@example.test", ALICE_PASSWORD).split(":", 2)

CONFIG = (
    """
hostname = "mx.example.test"
tls = "self-signed"
domains = ["example.test", "example.org"]
# Tests never leave the machine: remote mail queued here goes to a closed port on loopback,
# and any DNS lookup asks a name server that answers SERVFAIL.
dns_servers = ["{dns}"]
{server}

[[listeners]]
address = "127.0.0.1:0"
role = "mx"
[[listeners]]
address = "127.0.0.1:0"
role = "submission"

[users."alice@example.test"]
password = "{hash}"
scram = "{scram}"

[users."bob@example.test"]
quota = "{bob_quota}"

[aliases]
"postmaster@example.test" = "alice@example.test"
"team@example.test" = ["alice@example.test", "bob@example.test"]
"carol@example.test" = {{ moved_to = "carol@elsewhere.test" }}
"dave@example.test" = "dave@remote.test"
"@example.org" = "bob@example.test"

[policy]
check_null_mx = false
check_sender_domain = false
{policy}

[routes]
"remote.test" = "127.0.0.1:1"
"elsewhere.test" = "127.0.0.1:1"
"""
    + NO_DNS_CHECKS
)


# The least a mail server needs: its domains and users on one mx listener, nothing else (no
# aliases, so no postmaster alias either), and no check that asks DNS.
MINIMAL_CONFIG = (
    """
hostname = "mx.example.test"
domains = {domains}
dns_servers = ["{dns}"]

[[listeners]]
address = "127.0.0.1:0"
role = "mx"

{users}

[policy]
check_null_mx = false
check_sender_domain = false
"""
    + NO_DNS_CHECKS
)


def write_minimal_config(path: Path, *, domains: list[str], users: list[str]) -> Path:
    path.write_text(
        MINIMAL_CONFIG.format(
            domains=json.dumps(domains, ensure_ascii=False),
            dns=dns_that_cannot_answer(),
            users="\n".join(f'[users."{user}"]' for user in users),
        )
    )
    return path


def write_config(path: Path, *, policy: str = "", bob_quota: str = "0", server: str = "") -> Path:
    path.write_text(
        CONFIG.format(
            dns=dns_that_cannot_answer(),
            hash=_ALICE[1],
            scram=_ALICE[2],
            policy=policy,
            bob_quota=bob_quota,
            server=server,
        )
    )
    return path


@pytest.fixture
def mail_server_factory(tmp_path: Path) -> Iterator[Callable[..., SMTPTestServer]]:
    started: list[SMTPTestServer] = []

    def make(**options: Any) -> SMTPTestServer:
        directory = tmp_path / f"server{len(started)}"
        directory.mkdir()
        config = write_config(directory / "mailroom.toml", **options)
        server = SMTPTestServer(directory / "data", config_file=config)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def mail_server(mail_server_factory: Callable[..., SMTPTestServer]) -> SMTPTestServer:
    return mail_server_factory()
