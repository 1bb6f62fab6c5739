"""DANE (RFC 7672, RFC 6698): the TLSA records of an MX host, DNSSEC-validated by a real Unbound
in front of a real Knot, decide whether the queue hands it mail.

- a matching DANE-EE or DANE-TA record: delivered, recorded as verified by ``dane``;
- a TLSA mismatch: not delivered, retried with 4.7.5, returned at expiry saying so;
- a bogus TLSA answer (a zone whose signatures do not validate): that host is not used;
- records of every malformed shape: unusable, so TLS is mandatory but unauthenticated;
- the ``dane`` level without TLSA records: not delivered (``dane-required``).

And the pure part: which records are usable, and matching chains of the test CA.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mailroom.delivery import dane
from mailroom.queue.entry import QueueSpool
from mailroom.resolver import TLSARecordData
from tests.delivery.peers import (
    Inbox,
    commands,
    queue_message,
    recipient_blocks,
    running,
    stored,
    wait_until,
)
from tests.transport.conftest import BOGUS_ZONE, DNSPeers
from tests.transport.harness import (
    capture,
    delivery_lines,
    entry,
    mx,
    port_of,
    queue_settings,
    show,
    tls_policy,
)
from tests.transport.tlspeers import Issued, TestCA, tlsa


def record(text: str) -> TLSARecordData:
    usage, selector, mtype, data = text.split()
    return TLSARecordData(int(usage), int(selector), int(mtype), bytes.fromhex(data))


def der(cert) -> bytes:  # type: ignore[no-untyped-def]
    return cert.public_bytes(serialization.Encoding.DER)


# -- the pure part -------------------------------------------------------------------------------


def test_usable_and_unusable_records(mx_cert: Issued) -> None:
    good = record(tlsa(mx_cert.certificate))
    assert dane.unusable_reason(good) is None
    shapes = {
        "0 1 1 " + "ab" * 32: "PKIX",
        "1 1 1 " + "ab" * 32: "PKIX",
        "4 1 1 " + "ab" * 32: "unknown certificate usage 4",
        "255 1 1 " + "ab" * 32: "unknown certificate usage 255",
        "3 2 1 " + "ab" * 32: "unknown selector 2",
        "3 1 3 " + "ab" * 32: "unknown matching type 3",
        "3 1 1 " + "ab" * 31: "31 octets (32 expected)",
        "3 1 2 " + "ab" * 63: "63 octets (64 expected)",
        "3 0 0 " + "ab" * 20: "no DER certificate",
        "3 1 0 " + "ab" * 20: "no DER public key",
    }
    for text, why in shapes.items():
        reason = dane.unusable_reason(record(text))
        assert reason is not None and why in reason, (text, reason)
    assert dane.unusable_reason(TLSARecordData(3, 1, 0, b"")) == "no certificate association data"
    assert dane.usable_records([good, record("0 1 1 " + "ab" * 32)]) == [good]


def test_matching_chains_of_the_test_ca(test_ca: TestCA, mx_cert: Issued) -> None:
    chain = [der(c) for c in mx_cert.chain]
    names = ["mx.example.test", "example.test"]
    for usage, selector, mtype in [(3, 1, 1), (3, 0, 1), (3, 1, 2), (3, 0, 0), (3, 1, 0)]:
        verdict = dane.verify_chain(
            chain, [record(tlsa(mx_cert.certificate, usage, selector, mtype))], names
        )
        assert verdict.ok and "DANE-EE" in verdict.reason
    # DANE-TA: the intermediate is in the chain; the server's certificate chains to it.
    ta = record(tlsa(test_ca.intermediate, 2, 0, 1))
    assert dane.verify_chain(chain, [ta], names).ok
    assert dane.verify_chain(chain, [record(tlsa(test_ca.intermediate, 2, 1, 1))], names).ok
    # ... and must name the MX host (or the domain).
    wrong = dane.verify_chain(chain, [ta], ["mx.elsewhere.test"])
    assert not wrong.ok and wrong.result_type == "certificate-host-mismatch"
    # The root is not in the chain the server sends: no anchor to match.
    root = dane.verify_chain(chain, [record(tlsa(test_ca.root, 2, 0, 1))], names)
    assert not root.ok and "matches none of the 1 usable TLSA record" in root.reason
    # A record of another certificate.
    other = test_ca.issue("unrelated", ["mx.example.test"])
    mismatch = dane.verify_chain(chain, [record(tlsa(other.certificate))], names)
    assert not mismatch.ok and mismatch.reason.startswith("TLSA mismatch")
    assert dane.verify_chain([], [ta], names).reason == "the server presented no certificate"


def test_dane_ee_ignores_names_and_dates_dane_ta_does_not(test_ca: TestCA) -> None:
    expired = test_ca.issue("expired", ["somewhere.else.test"], expired=True)
    chain = [der(c) for c in expired.chain]
    # RFC 7672 §3.1.1: DANE-EE checks neither the name nor the validity period.
    assert dane.verify_chain(chain, [record(tlsa(expired.certificate))], ["mx.example.test"]).ok
    verdict = dane.verify_chain(
        chain, [record(tlsa(test_ca.intermediate, 2, 0, 1))], ["somewhere.else.test"]
    )
    assert not verdict.ok and verdict.result_type == "certificate-expired"
    assert "has expired" in verdict.reason


# -- with real peers -----------------------------------------------------------------------------


def test_a_dane_match_is_delivered_and_recorded_as_dane(
    tmp_path: Path,
    dns_peers: DNSPeers,
    test_ca: TestCA,
    mx_cert: Issued,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@dane-ee.example.test", "carol@dane-ta.example.test"])

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            port = port_of(b)
            dns_peers.set("dane-ee.example.test", {"MX": ["10 mx.example.test."]})
            dns_peers.set("dane-ta.example.test", {"MX": ["10 mx2.example.test."]})
            dns_peers.set(f"_{port}._tcp.mx.example.test", {"TLSA": [tlsa(mx_cert.certificate)]})
            ta = tlsa(test_ca.intermediate, 2, 0, 1)
            dns_peers.set(f"_{port}._tcp.mx2.example.test", {"TLSA": [ta]})
            settings = queue_settings(dns_peers.address, port, tls_policy(test_ca))
            async with running(spool, settings) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.delivered == 2
                recorder = runner.tls_recorder
                assert recorder is not None
                day = next(iter(recorder.days()))
                counts = {
                    e["policy"]["domain"]: (e["policy"]["kind"], e["success"], e["failures"])
                    for e in recorder.data(day).values()
                }
                assert counts["dane-ee.example.test"] == ("tlsa", 1, {})
                assert counts["dane-ta.example.test"] == ("tlsa", 1, {})
            raws = stored(tmp_path / "b")
            assert len(raws) == 2
            for raw in raws:
                # The receiver's Received field: the TLS of the hop.
                assert b"with ESMTPS id" in raw
                assert b"(using TLSv1.3 with cipher " in raw

    asyncio.run(main())
    lines = delivery_lines(caplog)
    assert len(lines) == 2
    for line in lines:
        assert "status=sent" in line
        assert "tls=TLSv1.3/" in line and line.split("tls=")[1].split(",")[0].endswith("/dane")


def test_a_tlsa_mismatch_is_not_delivered_then_returned_at_expiry(
    tmp_path: Path,
    dns_peers: DNSPeers,
    test_ca: TestCA,
    mx_cert: Issued,
    other_cert: Issued,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)
    spool = QueueSpool(tmp_path / "a")
    queued = queue_message(spool, ["bob@mismatch.example.test"])

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            port = port_of(b)
            dns_peers.set("mismatch.example.test", {"MX": ["10 mx.example.test."]})
            # The record names another certificate than the one the MX presents.
            dns_peers.set(f"_{port}._tcp.mx.example.test", {"TLSA": [tlsa(other_cert.certificate)]})
            inbox = Inbox()
            settings = queue_settings(dns_peers.address, port, tls_policy(test_ca), max_age=600.0)
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: entry(spool, queued.id).attempts >= 2)
                # Retried, never delivered; the queue says why.
                pending = entry(spool, queued.id)
                [recipient] = pending.recipients
                assert recipient.state == "pending" and recipient.status == "4.7.5"
                assert "TLSA mismatch" in (recipient.last_reply or "")
                text = show(spool, queued.id)
                assert "status:    4.7.5" in text and "TLSA mismatch" in text
                assert runner.delivered == 0
            assert stored(tmp_path / "b") == []
            # The MX saw us come, start TLS and go: no MAIL.
            for session in commands(b):
                assert session[:3] == ["EHLO mx.a.test", "STARTTLS", "EHLO mx.a.test"]
                assert not any(c.startswith("MAIL") for c in session)
            # At expiry: returned, the report saying exactly what failed.
            expiring = queue_settings(dns_peers.address, port, tls_policy(test_ca), max_age=0.5)
            async with running(spool, expiring, inbox):
                await wait_until(lambda: not spool.ids())
            [report] = inbox.reports
            [block] = recipient_blocks(report)
            assert (block["Action"], block["Status"]) == ("failed", "4.7.5")
            assert block["Diagnostic-Code"].startswith("X-Mailroom; mx.example.test[127.0.0.1]")
            assert "TLSA mismatch" in block["Diagnostic-Code"]
            assert "TLSA mismatch" in report.get_payload()[0].get_content()

    asyncio.run(main())
    assert any(
        "status=deferred" in line and "TLSA mismatch" in line for line in delivery_lines(caplog)
    )


def test_a_bogus_tlsa_answer_keeps_mail_from_that_host(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA, mx_cert: Issued
) -> None:
    spool = QueueSpool(tmp_path / "a")
    queued = queue_message(spool, ["bob@bogus.example.test"])

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            port = port_of(b)
            dns_peers.set("bogus.example.test", {"MX": ["10 mx-bogus.example.test."]})
            # In the zone Unbound cannot validate: SERVFAIL for the TLSA query.
            dns_peers.set(f"_{port}.{BOGUS_ZONE}", {"TLSA": [tlsa(mx_cert.certificate)]})
            settings = queue_settings(dns_peers.address, port, tls_policy(test_ca))
            async with running(spool, settings) as runner:
                await wait_until(lambda: entry(spool, queued.id).attempts >= 1)
                [recipient] = entry(spool, queued.id).recipients
                assert recipient.status == "4.7.5"
                assert "TLSA lookup of" in (recipient.last_reply or "")
                assert "SERVFAIL" in (recipient.last_reply or "")
                assert runner.delivered == 0
            # Not even connected to.
            assert commands(b) == []

    asyncio.run(main())


UNUSABLE_SHAPES = [
    "0 1 1 " + "ab" * 32,  # PKIX-TA: not for SMTP
    "1 0 1 " + "ab" * 32,  # PKIX-EE
    "4 1 1 " + "ab" * 32,  # unknown usage
    "255 255 255 00",  # every field unknown
    "3 2 1 " + "ab" * 32,  # unknown selector
    "3 1 7 " + "ab" * 32,  # unknown matching type
    "3 1 1 " + "ab" * 16,  # a SHA-256 digest cut short
    "3 1 2 " + "ab" * 32,  # a SHA-512 digest of SHA-256's length
    "3 0 0 " + "00" * 40,  # "full" data that is no certificate
    "2 1 0 " + "30" * 12,  # a "full" key that is no key
]


def test_tlsa_records_of_every_malformed_shape(
    tmp_path: Path,
    dns_peers: DNSPeers,
    test_ca: TestCA,
    mx_cert: Issued,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each domain's MX host (the domain itself, an implicit MX) publishes one bad shape: the
    records are unusable, so TLS is mandatory but unauthenticated (RFC 7672 §2.2), and each
    is counted as tlsa-invalid. One more mixes a bad record with a good one: DANE."""
    capture(caplog)
    spool = QueueSpool(tmp_path / "a")
    domains = [f"shape{n}.example.test" for n in range(len(UNUSABLE_SHAPES))]
    queue_message(spool, [f"bob@{d}" for d in [*domains, "mixed.example.test"]])

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            port = port_of(b)
            for domain, shape in zip(domains, UNUSABLE_SHAPES, strict=True):
                dns_peers.set(domain, {"A": ["127.0.0.1"]})
                dns_peers.set(f"_{port}._tcp.{domain}", {"TLSA": [shape]})
            dns_peers.set("mixed.example.test", {"A": ["127.0.0.1"]})
            dns_peers.set(
                f"_{port}._tcp.mixed.example.test",
                {"TLSA": [UNUSABLE_SHAPES[2], tlsa(mx_cert.certificate)]},
            )
            settings = queue_settings(dns_peers.address, port, tls_policy(test_ca))
            async with running(spool, settings) as runner:
                await wait_until(lambda: not spool.ids(), timeout=60)
                assert runner.delivered == len(domains) + 1
                recorder = runner.tls_recorder
                assert recorder is not None
                day = recorder.days()[-1]
                invalid = {
                    e["policy"]["domain"]
                    for e in recorder.data(day).values()
                    for f in e["failures"].values()
                    if f["result-type"] == "tlsa-invalid"
                }
                assert invalid == set(domains)
            assert len(stored(tmp_path / "b")) == len(domains) + 1

    asyncio.run(main())
    verified = {
        line.split("to=<bob@")[1].split(">")[0]: line.split("tls=")[1]
        .split(",")[0]
        .rsplit("/", 1)[1]
        for line in delivery_lines(caplog)
    }
    assert verified == {**dict.fromkeys(domains, "none"), "mixed.example.test": "dane"}


def test_the_dane_level_without_tlsa_records_does_not_deliver(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA, mx_cert: Issued
) -> None:
    spool = QueueSpool(tmp_path / "a")
    queued = queue_message(spool, ["bob@no-tlsa.example.test"])

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            dns_peers.set("no-tlsa.example.test", {"MX": ["10 mx2.example.test."]})
            dns_peers.set(f"_{port_of(b)}._tcp.mx2.example.test", {})
            policy = tls_policy(test_ca, policy={"no-tlsa.example.test": "dane"})
            settings = queue_settings(dns_peers.address, port_of(b), policy)
            async with running(spool, settings):
                await wait_until(lambda: entry(spool, queued.id).attempts >= 1)
            [recipient] = entry(spool, queued.id).recipients
            assert recipient.status == "4.7.5"
            assert "DANE is required for no-tlsa.example.test" in (recipient.last_reply or "")
            assert stored(tmp_path / "b") == []

    asyncio.run(main())
