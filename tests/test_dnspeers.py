"""The real DNS peers of tests/dnspeers.py answer as the tests of SPF, DKIM, DMARC, DANE and
MTA-STS need: authoritative data, live changes, big TXT records over TCP, DNSSEC validation
(AD on signed zones, SERVFAIL on a broken chain), and a server that never answers."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from tests.dnspeers import Knot, Unbound, silent_dns

RECORDS = {
    "example.test": {"MX": ["10 mx.example.test."], "TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    "mx.example.test": {"A": ["127.0.0.1"]},
    "big.example.org": {"TXT": ["x" * 60000]},
}


@pytest.fixture(scope="module")
def knot():
    with Knot(RECORDS, zones=["example.test", "example.org"], signed={"example.test"}) as server:
        yield server


@pytest.fixture(scope="module")
def unbound(knot):
    with Unbound(knot) as resolver:
        yield resolver


def _texts(message) -> list[str]:
    return [
        rdata.to_text()
        for rrset in message.answer
        if rrset.rdtype != dns.rdatatype.RRSIG
        for rdata in rrset
    ]


def test_signed_answers_are_validated(unbound):
    answer = unbound.query("mx.example.test", "A")
    assert _texts(answer) == ["127.0.0.1"]
    assert answer.flags & dns.flags.AD


def test_unsigned_answers_are_not_marked_authentic(unbound):
    answer = unbound.query("ns.example.org", "A")
    assert _texts(answer) == ["127.0.0.1"]
    assert not answer.flags & dns.flags.AD


def test_a_big_txt_record_arrives_whole_through_the_resolver(unbound):
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = unbound.port
    import asyncio

    answer = asyncio.run(resolver.resolve("big.example.org", "TXT"))
    assert b"".join(answer[0].strings) == b"x" * 60000


def test_records_change_while_running(knot, unbound):
    knot.set("new.example.test", {"TXT": ["v=DMARC1; p=reject"]})
    answer = unbound.query("new.example.test", "TXT")
    assert _texts(answer) == ['"v=DMARC1; p=reject"']
    assert answer.flags & dns.flags.AD
    knot.set("new.example.test", {})
    assert unbound.query("new.example.test", "TXT").rcode() == dns.rcode.NXDOMAIN


def test_a_wrong_trust_anchor_makes_signed_answers_bogus(knot):
    with Knot(
        {"x.other.test": {"A": ["127.0.0.2"]}}, zones=["other.test"], signed={"other.test"}
    ) as other:
        # A real key, but not the one that signed example.test: its every answer is bogus.
        wrong = other.trust_anchors()[0].replace("other.test.", "example.test.")
    with Unbound(knot, anchors=[wrong]) as resolver:
        answer = resolver.query("mx.example.test", "A")
        assert answer.rcode() == dns.rcode.SERVFAIL
        assert not answer.answer
        # The unsigned zone is untouched.
        assert _texts(resolver.query("ns.example.org", "A")) == ["127.0.0.1"]


def test_a_silent_server_times_out():
    with silent_dns() as address:
        resolver = dns.asyncresolver.Resolver(configure=False)
        host, port = address.split(":")
        resolver.nameservers = [host]
        resolver.port = int(port)
        resolver.lifetime = 0.5
        import asyncio

        with pytest.raises(dns.exception.Timeout):
            asyncio.run(resolver.resolve("example.test", "A"))
