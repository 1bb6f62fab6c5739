"""Real DNS for the email authentication tests: one Knot DNS (authoritative for the test zones)
and one Unbound (the validating resolver mailroom asks) for the whole folder, started by
tests/dnspeers.py. Tests add the records they need with ``knot.set(name, {...})``."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.authentication.keys import DKIMKey, generate_key
from mailroom.resolver import Resolver
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
