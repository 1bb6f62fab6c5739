"""The levels of the outbound TLS policy against a real MX, and an attacker in the middle:
a loopback proxy that strips STARTTLS from the MX's EHLO reply. Under ``encrypt``, DANE and
MTA-STS (enforce) nothing goes in the clear (4.7.4, retried); under ``may`` it does, which is
why the others exist. ``verify`` checks the certificate's name (4.7.5); ``none`` never
starts TLS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailroom.queue.entry import QueueSpool
from tests.delivery.peers import commands, queue_message, running, stored, wait_until
from tests.transport.conftest import DNSPeers
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
from tests.transport.tlspeers import Issued, PolicyServer, StripStartTLS, TestCA, tlsa

POLICY = "version: STSv1\nmode: enforce\nmx: mx.plain.test\nmax_age: 86400\n"


def test_starttls_stripped_in_the_middle_nothing_goes_in_the_clear(
    tmp_path: Path,
    dns_peers: DNSPeers,
    test_ca: TestCA,
    mx_cert: Issued,
    policy_cert: Issued,
) -> None:
    spool = QueueSpool(tmp_path / "a")
    by_level = {
        "encrypt": queue_message(spool, ["bob@strip-encrypt.plain.test"]),
        "dane": queue_message(spool, ["bob@strip-dane.example.test"]),
        "mta-sts": queue_message(spool, ["bob@strip.plain.test"]),
        "may": queue_message(spool, ["bob@strip-may.plain.test"]),
    }

    async def main() -> None:
        server = await PolicyServer(policy_cert.context()).start()
        server.policies["strip.plain.test"] = POLICY
        try:
            async with mx(tmp_path / "b", mx_cert) as b:
                proxy = await StripStartTLS(("127.0.0.1", port_of(b))).start()
                try:
                    for domain in (
                        "strip-encrypt.plain.test",
                        "strip.plain.test",
                        "strip-may.plain.test",
                    ):
                        dns_peers.set(domain, {"MX": ["10 mx.plain.test."]})
                    dns_peers.set("_mta-sts.strip.plain.test", {"TXT": ["v=STSv1; id=s1"]})
                    dns_peers.set("strip-dane.example.test", {"MX": ["10 mx.example.test."]})
                    # The TLSA records name the MX's certificate, at the port connected to.
                    dns_peers.set(
                        f"_{proxy.port}._tcp.mx.example.test",
                        {"TLSA": [tlsa(mx_cert.certificate)]},
                    )
                    tls = tls_policy(
                        test_ca,
                        mta_sts_port=server.port,
                        policy={
                            "strip-encrypt.plain.test": "encrypt",
                            "strip-may.plain.test": "may",
                        },
                    )
                    settings = queue_settings(dns_peers.address, proxy.port, tls)
                    async with running(spool, settings):
                        await wait_until(lambda: len(spool.ids()) == 3)
                        for level in ("encrypt", "dane", "mta-sts"):
                            queued = by_level[level]
                            await wait_until(lambda q=queued: entry(spool, q.id).attempts >= 1)
                            [recipient] = entry(spool, queued.id).recipients
                            assert recipient.state == "pending", level
                            assert recipient.status == "4.7.4", level
                            assert "does not offer STARTTLS" in (recipient.last_reply or "")
                            assert "4.7.4" in show(spool, queued.id)
                    assert proxy.stripped >= 4
                finally:
                    await proxy.stop()
                # Only the may-level message arrived, and in the clear.
                [raw] = stored(tmp_path / "b")
                assert b"for <bob@strip-may.plain.test>" in raw
                assert b"with ESMTP id" in raw
                mails = [c for s in commands(b) for c in s if c.startswith("MAIL")]
                assert len(mails) == 1
        finally:
            await server.stop()

    asyncio.run(main())


def test_verify_checks_the_certificate_name(
    tmp_path: Path,
    dns_peers: DNSPeers,
    test_ca: TestCA,
    mx_cert: Issued,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)
    spool = QueueSpool(tmp_path / "a")
    wrong = queue_message(spool, ["bob@verify-wrong.plain.test"])
    queue_message(spool, ["carol@verify-right.plain.test"])

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            dns_peers.set("verify-wrong.plain.test", {"MX": ["10 mx.wrongname.plain.test."]})
            dns_peers.set("verify-right.plain.test", {"MX": ["10 mx2.plain.test."]})
            tls = tls_policy(
                test_ca,
                policy={"verify-wrong.plain.test": "verify", "verify-right.plain.test": "verify"},
            )
            async with running(spool, queue_settings(dns_peers.address, port_of(b), tls)):
                await wait_until(lambda: len(spool.ids()) == 1)
                await wait_until(lambda: entry(spool, wrong.id).attempts >= 1)
                [recipient] = entry(spool, wrong.id).recipients
                assert recipient.status == "4.7.5"
                assert "certificate name mismatch" in (recipient.last_reply or "")
                assert "mx.wrongname.plain.test" in (recipient.last_reply or "")
            [raw] = stored(tmp_path / "b")
            assert b"for <carol@verify-right.plain.test>" in raw

    asyncio.run(main())
    [sent] = [line for line in delivery_lines(caplog) if "status=sent" in line]
    assert "/pkix," in sent


def test_none_never_starts_tls(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA, mx_cert: Issued
) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@level-none.plain.test"])

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            dns_peers.set("level-none.plain.test", {"MX": ["10 mx.plain.test."]})
            tls = tls_policy(test_ca, default="none")
            async with running(spool, queue_settings(dns_peers.address, port_of(b), tls)):
                await wait_until(lambda: not spool.ids())
            [session] = commands(b)
            assert "STARTTLS" not in session
            [raw] = stored(tmp_path / "b")
            assert b"with ESMTP id" in raw

    asyncio.run(main())
