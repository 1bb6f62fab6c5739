"""MTA-STS (RFC 8461): the TXT record and the policy file read as the RFC says; the policy
fetched over HTTPS from a real server on loopback (aiohttp, a certificate of the test CA) with
every bad shape a clear outcome bounded in time and size; and the queue delivering by it:
``enforce`` keeps mail from an MX host outside the policy, ``testing`` delivers and reports.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
from pathlib import Path

import pytest

from mailroom.delivery.mtasts import (
    MTASTS,
    PolicyError,
    PolicyFetchError,
    fetch_policy,
    mx_matches,
    parse_policy,
    parse_txt,
)
from mailroom.queue.entry import QueueSpool
from mailroom.resolver import Resolver
from tests.delivery.peers import queue_message, running, stored, wait_until
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
from tests.transport.tlspeers import (
    Issued,
    PolicyServer,
    TestCA,
    html_policy,
    huge_policy,
    redirecting_policy,
    slow_policy,
)

POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mx.plain.test\r\nmx: *.plain.test\r\nmax_age: 86400\r\n"
)

# -- reading ------------------------------------------------------------------------------------


def test_txt_records() -> None:
    assert parse_txt(["v=STSv1; id=20160831085700Z;"]) == "20160831085700Z"
    assert parse_txt(["v=STSv1;id=abc"]) == "abc"
    assert parse_txt(["v=STSv1; id=abc; ext=value"]) == "abc"
    assert parse_txt(["other text", "v=STSv1; id=abc"]) == "abc"  # others are discarded
    # Not one usable record: no policy (RFC 8461 §3.1).
    assert parse_txt([]) is None
    assert parse_txt(["v=STSv1; id=a", "v=STSv1; id=b"]) is None
    assert parse_txt(["v=STSv1"]) is None  # no id
    assert parse_txt(["v=STSv1; id=" + "a" * 33]) is None  # id of 33 characters
    assert parse_txt(["v=STSv1; id=a-b"]) is None  # id is letters and digits
    assert parse_txt(["v=STSv2; id=abc"]) is None
    assert parse_txt(["v=STSv1; id=abc;; x=y"]) is None  # an empty field in the middle
    assert parse_txt(["v=STSv1; id=abc; bad field"]) is None


def test_policy_files() -> None:
    policy = parse_policy(POLICY)
    assert (policy.mode, policy.mx, policy.max_age) == (
        "enforce",
        ("mx.plain.test", "*.plain.test"),
        86400,
    )
    assert policy.lines[0] == "version: STSv1"
    # LF alone, unknown fields, a repeated field (the first counts), a huge max_age.
    lenient = parse_policy(
        "version: STSv1\nmode: testing\nmode: enforce\nmx: a.test\nfoo: bar\nmax_age: 9999999999\n"
    )
    assert (lenient.mode, lenient.max_age) == ("testing", 31557600)
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 1\n").mx == ()
    bad = {
        "mode: enforce\nmx: a.test\nmax_age: 1\n": "version",
        "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n": "mode",
        "version: STSv1\nmode: enforce\nmx: a.test\n": "max_age",
        "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -5\n": "max_age",
        "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: ²\n": "max_age",
        "version: STSv1\nmode: enforce\nmax_age: 5\n": "no mx",
        "version: STSv1\nmode: enforce\nmx: bad..name\nmax_age: 5\n": "is not a host name",
        "version: STSv1\nmode enforce\n": "not 'key: value'",
        "<html><body>policy</body></html>": "not 'key: value'",
    }
    for text, why in bad.items():
        with pytest.raises(PolicyError, match=why):
            parse_policy(text)


def test_mx_patterns() -> None:
    assert mx_matches("mail.example.com", "MAIL.example.com.")
    assert mx_matches("*.example.com", "mail.example.com")
    assert not mx_matches("*.example.com", "example.com")
    assert not mx_matches("*.example.com", "foo.bar.example.com")
    assert not mx_matches("mail.example.com", "mail.example.net")


# -- fetching ------------------------------------------------------------------------------------


def verifying(test_ca: TestCA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(test_ca.path))
    return context


def test_fetching_policies_of_every_shape(
    dns_peers: DNSPeers, test_ca: TestCA, policy_cert: Issued
) -> None:
    """Each bad policy host gets a clear outcome, bounded: a size limit and a time limit."""

    async def main() -> None:
        server = PolicyServer(policy_cert.context())
        server.policies["enforce.plain.test"] = POLICY
        server.policies["invalid.plain.test"] = "version: STSv1\nmode: sometimes\n"
        server.behaviours["huge.plain.test"] = huge_policy
        server.behaviours["slow.plain.test"] = slow_policy
        server.behaviours["moved.plain.test"] = redirecting_policy
        server.behaviours["html.plain.test"] = html_policy(POLICY)
        await server.start()
        resolver = Resolver([dns_peers.address])
        context = verifying(test_ca)

        async def fetch(domain: str, **options: float) -> str:
            return await fetch_policy(
                domain,
                resolver=resolver,
                ssl_context=context,
                port=server.port,
                **options,  # type: ignore[arg-type]
            )

        try:
            assert parse_policy(await fetch("enforce.plain.test")).mode == "enforce"
            with pytest.raises(PolicyFetchError, match="larger than 65536 octets"):
                await fetch("huge.plain.test")
            with pytest.raises(PolicyFetchError, match="took more than 1 seconds"):
                await fetch("slow.plain.test", timeout=1.0)
            with pytest.raises(PolicyFetchError, match="answered 302, a redirect to"):
                await fetch("moved.plain.test")
            with pytest.raises(PolicyFetchError, match="is text/html, not text/plain"):
                await fetch("html.plain.test")
            with pytest.raises(PolicyFetchError, match="answered HTTP 404, not 200"):
                await fetch("missing.plain.test")
            with pytest.raises(PolicyError, match="mode is 'sometimes'"):
                parse_policy(await fetch("invalid.plain.test"))
            # Only the first request of the redirect: it was not followed.
            assert server.requests.count("mta-sts.moved.plain.test") == 1
            # A certificate no trusted CA issued: a PKIX failure of its own kind.
            with pytest.raises(PolicyFetchError) as failed:
                await fetch_policy(
                    "enforce.plain.test",
                    resolver=resolver,
                    ssl_context=ssl.create_default_context(),
                    port=server.port,
                )
            assert failed.value.result_type == "sts-webpki-invalid"
            assert "is not valid" in str(failed.value)
        finally:
            await server.stop()

    asyncio.run(main())


def test_the_cache_follows_max_age_and_the_id(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA, policy_cert: Issued
) -> None:
    clock = [1_000_000.0]

    async def main() -> None:
        server = PolicyServer(policy_cert.context())
        server.policies["cached.plain.test"] = POLICY
        await server.start()
        resolver = Resolver([dns_peers.address])

        def make() -> MTASTS:
            return MTASTS(
                resolver,
                tmp_path / "cache",
                ssl_context=lambda: verifying(test_ca),
                port=server.port,
                retry_after=300.0,
                clock=lambda: clock[0],
            )

        try:
            sts = make()
            dns_peers.set("_mta-sts.cached.plain.test", {"TXT": ["v=STSv1; id=one"]})
            assert (await sts.lookup("cached.plain.test")).policy is not None
            assert len(server.requests) == 1
            # Same id: from the cache, no fetch (and the cache survives a restart).
            sts = make()
            assert (await sts.lookup("cached.plain.test")).policy is not None
            assert len(server.requests) == 1
            # The TXT record gone: the cached policy still applies (RFC 8461 §3.3).
            dns_peers.set("_mta-sts.cached.plain.test", {})
            assert (await sts.lookup("cached.plain.test")).policy is not None
            # A new id: fetched again.
            server.policies["cached.plain.test"] = POLICY.replace("enforce", "testing")
            dns_peers.set("_mta-sts.cached.plain.test", {"TXT": ["v=STSv1; id=two"]})
            lookup = await sts.lookup("cached.plain.test")
            assert lookup.policy is not None and lookup.policy.mode == "testing"
            assert len(server.requests) == 2
            # A new id whose fetch fails: the cached policy applies, and the failed id is
            # not fetched again within retry_after.
            server.policies.pop("cached.plain.test")
            dns_peers.set("_mta-sts.cached.plain.test", {"TXT": ["v=STSv1; id=three"]})
            lookup = await sts.lookup("cached.plain.test")
            assert lookup.policy is not None and lookup.policy.mode == "testing"
            assert lookup.fetched and lookup.result_type == "sts-policy-fetch-error"
            await sts.lookup("cached.plain.test")
            assert len(server.requests) == 3
            # max_age passed: no policy at all.
            clock[0] += 86401
            assert (await sts.lookup("cached.plain.test")).policy is None
        finally:
            await server.stop()

    asyncio.run(main())


# -- delivering by it ----------------------------------------------------------------------------


def test_enforce_keeps_mail_from_an_mx_outside_the_policy_and_delivers_to_one_inside(
    tmp_path: Path,
    dns_peers: DNSPeers,
    test_ca: TestCA,
    mx_cert: Issued,
    policy_cert: Issued,
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)
    spool = QueueSpool(tmp_path / "a")
    outside = queue_message(spool, ["bob@outside.plain.test"])
    queue_message(spool, ["carol@enforce.plain.test"])

    async def main() -> None:
        server = PolicyServer(policy_cert.context())
        await server.start()
        # Both domains name only mx.plain.test in their policies.
        for domain in ("outside.plain.test", "enforce.plain.test"):
            server.policies[domain] = POLICY.replace("mx: *.plain.test\r\n", "")
            dns_peers.set(f"_mta-sts.{domain}", {"TXT": ["v=STSv1; id=e1"]})
        dns_peers.set("outside.plain.test", {"MX": ["10 mx2.plain.test."]})  # not in it
        dns_peers.set("enforce.plain.test", {"MX": ["10 mx.plain.test."]})
        try:
            async with mx(tmp_path / "b", mx_cert) as b:
                tls = tls_policy(test_ca, mta_sts_port=server.port)
                settings = queue_settings(dns_peers.address, port_of(b), tls)
                async with running(spool, settings) as runner:
                    await wait_until(lambda: len(spool.ids()) == 1)
                    await wait_until(lambda: entry(spool, outside.id).attempts >= 1)
                    [recipient] = entry(spool, outside.id).recipients
                    assert recipient.status == "4.7.5"
                    assert "mx2.plain.test is not an MX host the policy of outside.plain.test" in (
                        recipient.last_reply or ""
                    )
                    assert "not an MX host the policy" in show(spool, outside.id)
                    assert runner.delivered == 1
                [raw] = stored(tmp_path / "b")
                assert b"for <carol@enforce.plain.test>" in raw
        finally:
            await server.stop()

    asyncio.run(main())
    [sent] = [line for line in delivery_lines(caplog) if "status=sent" in line]
    assert "carol@enforce.plain.test" in sent and "/mta-sts," in sent


def test_testing_mode_delivers_and_reports(
    tmp_path: Path,
    dns_peers: DNSPeers,
    test_ca: TestCA,
    mx_cert: Issued,
    policy_cert: Issued,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In testing mode an MX outside the policy and a certificate for another name are
    reported, and the mail goes all the same. What the queue keeps of it (the policy cache,
    the day's report counts) is private like the rest of the data directory (mode 0700 and
    0600, see tests/hostile/test_file_modes.py), even under a careless umask."""
    capture(caplog)
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@testing.plain.test", "carol@mismatch.plain.test"])

    async def main() -> None:
        server = PolicyServer(policy_cert.context())
        await server.start()
        testing = POLICY.replace("enforce", "testing").replace("mx: *.plain.test\r\n", "")
        server.policies["testing.plain.test"] = testing
        server.policies["mismatch.plain.test"] = testing.replace(
            "mx.plain.test", "mx.wrongname.plain.test"
        )
        for domain in ("testing.plain.test", "mismatch.plain.test"):
            dns_peers.set(f"_mta-sts.{domain}", {"TXT": ["v=STSv1; id=t1"]})
        dns_peers.set("testing.plain.test", {"MX": ["10 mx2.plain.test."]})  # outside
        # In the policy, but the MX's certificate does not name it.
        dns_peers.set("mismatch.plain.test", {"MX": ["10 mx.wrongname.plain.test."]})
        try:
            async with mx(tmp_path / "b", mx_cert) as b:
                tls = tls_policy(test_ca, mta_sts_port=server.port)
                settings = queue_settings(dns_peers.address, port_of(b), tls)
                async with running(spool, settings) as runner:
                    await wait_until(lambda: not spool.ids())
                    assert runner.delivered == 2
                    recorder = runner.tls_recorder
                    assert recorder is not None
                    day = recorder.days()[-1]
                    failures = {
                        e["policy"]["domain"]: [
                            (f["result-type"], f["count"]) for f in e["failures"].values()
                        ]
                        for e in recorder.data(day).values()
                        if e["policy"]["kind"] == "sts"
                    }
                    assert failures == {
                        "testing.plain.test": [("validation-failure", 1)],
                        "mismatch.plain.test": [("certificate-host-mismatch", 1)],
                    }
                assert len(stored(tmp_path / "b")) == 2
        finally:
            await server.stop()

    previous = os.umask(0o000)
    try:
        asyncio.run(main())
    finally:
        os.umask(previous)
    kept = [spool.root / "mta-sts", spool.root / "tlsrpt"]
    kept += [path for folder in kept for path in folder.rglob("*")]
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in kept}
    assert list(kept[0].iterdir()) and list(kept[1].glob("*.json")), modes  # both written
    assert modes == {p.name: "0o700" if p.is_dir() else "0o600" for p in kept}
