"""Shared peers of the transport security tests: one Knot DNS and one validating Unbound for
the session (records changed live by each test), and a test CA with the receiving MX's
certificate.

Zones: ``example.test`` is DNSSEC-signed (DANE applies to its hosts), ``plain.test`` is not
(MTA-STS and the levels are tested there), and ``_tcp.mx-bogus.example.test`` is signed with a
key Unbound is not told to trust: every TLSA answer in it is bogus (SERVFAIL), while the host's
address records in ``example.test`` are fine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dnspeers import Knot, Unbound
from tests.transport.tlspeers import Issued, TestCA

BOGUS_ZONE = "_tcp.mx-bogus.example.test"
MX_NAMES = [
    "mx.example.test",
    "mx2.example.test",
    "mx-bogus.example.test",
    "mx.plain.test",
    "mx2.plain.test",
]

# Domains of plain.test whose policy host (mta-sts.DOMAIN) the policy server answers for.
POLICY_DOMAINS = [
    "plain.test",
    *(
        f"{name}.plain.test"
        for name in (
            "enforce",
            "testing",
            "outside",
            "huge",
            "slow",
            "moved",
            "html",
            "invalid",
            "untrusted",
            "missing",
            "cached",
            "mismatch",
            "strip",
            "report",
            "required",
        )
    ),
]


BASE_RECORDS: dict[str, dict[str, list[str]]] = {
    **{f"mta-sts.{domain}": {"A": ["127.0.0.1"]} for domain in POLICY_DOMAINS},
    "mx.example.test": {"A": ["127.0.0.1"]},
    "mx2.example.test": {"A": ["127.0.0.1"]},
    "mx-bogus.example.test": {"A": ["127.0.0.1"]},
    "mx.plain.test": {"A": ["127.0.0.1"]},
    "mx2.plain.test": {"A": ["127.0.0.1"]},
    # A host the MX certificate does not name.
    "mx.wrongname.plain.test": {"A": ["127.0.0.1"]},
    BOGUS_ZONE: {"TXT": ["a zone whose signatures Unbound cannot check"]},
}


@dataclass
class DNSPeers:
    knot: Knot
    unbound: Unbound

    @property
    def address(self) -> str:
        return self.unbound.address

    def set(self, name: str, types: dict[str, list[str]]) -> None:
        self.knot.set(name, types)


@pytest.fixture(scope="session")
def dns_peers() -> Iterator[DNSPeers]:
    zones = ["example.test", "plain.test", BOGUS_ZONE]
    with Knot(BASE_RECORDS, zones=zones, signed={"example.test", BOGUS_ZONE}) as knot:
        # A key that signed some other zone, named as if it were the bogus zone's.
        with Knot(
            {"x.other.test": {"A": ["127.0.0.2"]}}, zones=["other.test"], signed={"other.test"}
        ) as other:
            wrong = other.trust_anchors()[0].replace("other.test.", BOGUS_ZONE + ".")
        anchors = [a for a in knot.trust_anchors() if not a.startswith(BOGUS_ZONE + ".")]
        with Unbound(knot, anchors=[*anchors, wrong]) as unbound:
            yield DNSPeers(knot, unbound)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def mx_cert(test_ca: TestCA) -> Issued:
    """The receiving MX's certificate: valid for every MX host name of the zones."""
    return test_ca.issue("mx", MX_NAMES)


@pytest.fixture(scope="session")
def other_cert(test_ca: TestCA) -> Issued:
    return test_ca.issue("other", ["mx.example.test"])


@pytest.fixture(scope="session")
def policy_cert(test_ca: TestCA) -> Issued:
    """The MTA-STS policy host's certificate: mta-sts.DOMAIN for each of POLICY_DOMAINS."""
    return test_ca.issue("policy-host", [f"mta-sts.{d}" for d in POLICY_DOMAINS])


def tls_files(cert: Issued) -> dict[str, object]:
    """Receiver settings for a listener with this certificate."""
    return {"tls": "files", "tls_cert": cert.cert_path, "tls_key": cert.key_path}


def data_dir(tmp_path: Path, name: str) -> Path:
    return tmp_path / name
