"""Real DNS for the email authentication tests: one Knot DNS (authoritative for the test zones)
and one Unbound (the validating resolver mailroom asks) for the whole folder, started by
tests/dnspeers.py. Tests add the records they need with ``knot.set(name, {...})``."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailroom.authentication.keys import DKIMKey, generate_key
from mailroom.resolver import Resolver
from mailroom.testing import SMTPTestServer
from tests.authentication.servers import ALICE, CONFIG
from tests.dnspeers import KNOTD, UNBOUND, Knot, Unbound

ZONES = [
    "example.test",
    "example.org",
    "forwarder.test",
    "sender.test",
    "list.test",
    "127.in-addr.arpa",
    "ip6.arpa",
]
RECORDS = {
    "example.test": {"MX": ["10 mx.example.test."], "TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    "mx.example.test": {"A": ["127.0.0.1"]},
    "1.0.0.127.in-addr.arpa": {"PTR": ["mx.example.test."]},
    # 127.0.0.2 claims a name that does not resolve back to it.
    "2.0.0.127.in-addr.arpa": {"PTR": ["liar.example.org."]},
    "liar.example.org": {"A": ["127.0.0.9"]},
}


def _need(binary: str) -> None:
    if not (shutil.which(binary) or os.path.exists(binary)):
        if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
            pytest.skip(f"{binary} is not installed")
        pytest.fail(f"{binary} is not installed (.ci/run installs it)")


@pytest.fixture(scope="session")
def knot() -> Iterator[Knot]:
    _need(KNOTD)
    with Knot(RECORDS, zones=ZONES) as server:
        yield server


@pytest.fixture(scope="session")
def unbound(knot: Knot) -> Iterator[Unbound]:
    _need(UNBOUND)
    with Unbound(knot) as resolver:
        yield resolver


@pytest.fixture
def resolver(unbound: Unbound) -> Resolver:
    """mailroom's resolver, pointed at the test's Unbound (a fresh cache for each test)."""
    return Resolver([unbound.address], timeout=3.0)


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dkim-keys")


def publish(knot: Knot, key: DKIMKey) -> None:
    knot.set(key.record_name, {"TXT": [key.public_record]})


@pytest.fixture(scope="session")
def sender_keys(knot: Knot, key_dir: Path) -> list[DKIMKey]:
    """An RSA-2048 and an ed25519 key for sender.test, published."""
    keys = [
        generate_key(key_dir, "sender.test", "rsa1", "rsa"),
        generate_key(key_dir, "sender.test", "ed1", "ed25519"),
    ]
    for key in keys:
        publish(knot, key)
    return keys


@pytest.fixture(scope="module")
def records(knot: Knot) -> None:
    """DMARC and SPF of the domains the server tests send as."""
    knot.set("sender.test", {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]})
    knot.set("_dmarc.sender.test", {"TXT": ["v=DMARC1; p=reject"]})
    knot.set("example.org", {"TXT": ["v=spf1 -all"]})
    knot.set("_dmarc.example.org", {"TXT": ["v=DMARC1; p=quarantine"]})
    knot.set("_dmarc.example.test", {"TXT": ["v=DMARC1; p=reject"]})


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SMTPTestServer]:
    """A mail catcher where the server's remote mail goes (routes remote.test, sender.test)."""
    server = SMTPTestServer(tmp_path / "sink").start()
    yield server
    server.stop()


@pytest.fixture
def make_server(
    tmp_path: Path, unbound: Unbound, sink: SMTPTestServer, records: None
) -> Iterator[Callable[..., SMTPTestServer]]:
    started: list[SMTPTestServer] = []

    def make(
        authentication: str = "",
        *,
        dns: str | None = None,
        keys: bool = False,
        routes: str = "",
        policy: str = "",
    ) -> SMTPTestServer:
        directory = tmp_path / f"mailroom{len(started)}"
        directory.mkdir()
        if keys:
            generate_key(directory / "data", "example.test", "rsa-1", "rsa")
            generate_key(directory / "data", "example.test", "ed-1", "ed25519")
        config = directory / "mailroom.toml"
        config.write_text(
            CONFIG.format(
                dns=dns or unbound.address,
                hash=ALICE[1],
                scram=ALICE[2],
                sink=sink.port,
                routes=routes,
                policy=policy,
                authentication=authentication,
            )
        )
        server = SMTPTestServer(directory / "data", config_file=config).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
