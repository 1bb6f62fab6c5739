"""REQUIRETLS (RFC 8689) end to end with real peers:

- the server offers REQUIRETLS only after STARTTLS, and takes ``MAIL FROM:<...> REQUIRETLS``
  only over TLS;
- a REQUIRETLS message submitted to mailroom A (mail server mode) is relayed to B only over
  DANE-verified TLS, with REQUIRETLS on B's MAIL FROM;
- to a verified MX without REQUIRETLS, or to a domain with no DANE, MTA-STS or DNSSEC: returned
  at once with 5.7.30, the report holding the header only; to a DANE host whose certificate
  fails its TLSA records: returned at once with 5.7.10;
- ``TLS-Required: No``: delivered despite a TLSA mismatch, and not counted in TLS reports.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import ssl
from pathlib import Path

from mailroom.app import Mailroom
from mailroom.config import load_config
from mailroom.policy.credentials import password_line
from mailroom.queue.entry import QueueSpool
from tests.delivery.peers import (
    Inbox,
    commands,
    make_message,
    queue_message,
    recipient_blocks,
    running,
    stored,
    wait_until,
)
from tests.transport.conftest import DNSPeers
from tests.transport.harness import mx, port_of, queue_settings, tls_policy
from tests.transport.tlspeers import Issued, TestCA, tlsa


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_offered_after_starttls_and_taken_only_over_tls(tmp_path: Path, mx_cert: Issued) -> None:
    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            host, port = b.addresses[0]

            def talk() -> None:
                with smtplib.SMTP(host, port, timeout=30) as client:
                    client.ehlo("client.test")
                    assert not client.has_extn("requiretls")
                    code, text = client.docmd("MAIL FROM:<a@client.test> REQUIRETLS")
                    assert (code, text) == (555, b"5.5.4 Unsupported parameter: REQUIRETLS")
                    client.rset()
                    client.starttls(context=_client_context())
                    client.ehlo("client.test")
                    assert client.has_extn("requiretls")
                    code, text = client.docmd("MAIL FROM:<a@client.test> REQUIRETLS=yes")
                    # The parameter takes no value.
                    assert (code, text) == (501, b"5.5.4 Malformed parameter: REQUIRETLS")
                    client.rset()
                    code, _ = client.docmd("MAIL FROM:<a@client.test> REQUIRETLS")
                    assert code == 250
                    client.rcpt("bob@example.test")
                    code, _ = client.data(make_message("required"))
                    assert code == 250

            await asyncio.to_thread(talk)
            [raw] = stored(tmp_path / "b")
            assert b"Subject: required" in raw

    asyncio.run(main())


CONFIG_A = """
hostname = "mx.a.test"
data = "{data}"
tls = "files"
tls_cert = "{cert}"
tls_key = "{key}"
web = "off"
log_level = "warning"
domains = ["a.test"]
dns_servers = ["{dns}"]

[[listeners]]
address = "127.0.0.1:0"
role = "submission"

[users."alice@a.test"]
password = "{hash}"
scram = "{scram}"

[policy]
check_null_mx = false

[queue]
retry_schedule = ["1s"]
mx_port = {mx_port}

[outbound_tls]
ca_file = "{ca}"
"""


def test_a_requiretls_submission_is_relayed_with_requiretls_over_dane(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA, mx_cert: Issued
) -> None:
    password = "alice's long password"
    _, hashed, scram = password_line("alice@a.test", password).split(":", 2)

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            port = port_of(b)
            dns_peers.set("required.example.test", {"MX": ["10 mx.example.test."]})
            dns_peers.set(f"_{port}._tcp.mx.example.test", {"TLSA": [tlsa(mx_cert.certificate)]})
            config = tmp_path / "a.toml"
            config.write_text(
                CONFIG_A.format(
                    data=tmp_path / "a",
                    cert=mx_cert.cert_path,
                    key=mx_cert.key_path,
                    dns=dns_peers.address,
                    hash=hashed,
                    scram=scram,
                    mx_port=port,
                    ca=test_ca.path,
                )
            )
            a = Mailroom(load_config(config))
            await a.start()
            try:
                host, submission = a.addresses[0]

                def submit() -> None:
                    with smtplib.SMTP(host, submission, timeout=30) as client:
                        client.starttls(context=_client_context())
                        client.login("alice@a.test", password)
                        client.sendmail(
                            "alice@a.test",
                            ["bob@required.example.test"],
                            make_message("secret"),
                            mail_options=["REQUIRETLS"],
                        )

                await asyncio.to_thread(submit)
                await wait_until(lambda: stored(tmp_path / "b"), timeout=30)
                await wait_until(lambda: not QueueSpool(tmp_path / "a").ids())
            finally:
                await a.stop()
            [raw] = stored(tmp_path / "b")
            assert b"Subject: secret" in raw
            [session] = commands(b)
            assert session[:3] == ["EHLO mx.a.test", "STARTTLS", "EHLO mx.a.test"]
            [mail] = [c for c in session if c.startswith("MAIL")]
            assert mail.startswith("MAIL FROM:<alice@a.test>") and mail.endswith(" REQUIRETLS")

    asyncio.run(main())


def test_without_a_verified_hop_that_offers_it_requiretls_mail_comes_back_with_5_7_30(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA, mx_cert: Issued
) -> None:
    spool = QueueSpool(tmp_path / "a")
    body = b"The secret body.\r\n"
    message = make_message("secret") + body
    queue_message(spool, ["bob@noreq.example.test"], message=message, requiretls=True)
    queue_message(spool, ["carol@nothing.plain.test"], message=message, requiretls=True)

    async def main() -> None:
        # B is DANE-verified but does not offer REQUIRETLS.
        async with mx(tmp_path / "b", mx_cert, requiretls=False) as b:
            port = port_of(b)
            dns_peers.set("noreq.example.test", {"MX": ["10 mx.example.test."]})
            dns_peers.set(f"_{port}._tcp.mx.example.test", {"TLSA": [tlsa(mx_cert.certificate)]})
            # No DANE (unsigned), no MTA-STS, no DNSSEC for its MX records.
            dns_peers.set("nothing.plain.test", {"MX": ["10 mx.plain.test."]})
            inbox = Inbox()
            settings = queue_settings(dns_peers.address, port, tls_policy(test_ca))
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.bounced == 2 and runner.delivered == 0
            assert stored(tmp_path / "b") == []
            # B was asked, and let go before any MAIL.
            [session] = commands(b)
            assert session[:3] == ["EHLO mx.a.test", "STARTTLS", "EHLO mx.a.test"]
            assert not any(c.startswith("MAIL") for c in session)
            reasons = {}
            for report in inbox.reports:
                [block] = recipient_blocks(report)
                assert (block["Action"], block["Status"]) == ("failed", "5.7.30")
                reasons[block["Final-Recipient"]] = block["Diagnostic-Code"]
                # RFC 8689 §5: the message comes back as its header only.
                returned = report.get_payload()[2]
                assert returned.get_content_type() == "text/rfc822-headers"
                assert b"secret body" not in report.as_bytes()
            assert "does not offer REQUIRETLS" in reasons["rfc822; bob@noreq.example.test"]
            assert (
                "needs a next hop verified by DANE or MTA-STS"
                in (reasons["rfc822; carol@nothing.plain.test"])
            )
            # The reports go to the sender without REQUIRETLS (their own envelope: null sender).
            assert {sender for sender, _, _ in inbox.messages} == {""}

    asyncio.run(main())


def test_a_requiretls_message_whose_tls_fails_comes_back_at_once_with_5_7_10(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA, mx_cert: Issued, other_cert: Issued
) -> None:
    """A DANE host whose certificate matches none of its TLSA records: ordinary mail would
    wait (4.7.5) and be tried again; a REQUIRETLS message is returned at once with 5.7.10
    (RFC 8689 §4.2.1: not retried), its header only, and nothing reaches the host."""
    spool = QueueSpool(tmp_path / "a")
    message = make_message("secret") + b"The secret body.\r\n"
    queue_message(spool, ["bob@tlsfails.example.test"], message=message, requiretls=True)

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            port = port_of(b)
            dns_peers.set("tlsfails.example.test", {"MX": ["10 mx2.example.test."]})
            dns_peers.set(
                f"_{port}._tcp.mx2.example.test", {"TLSA": [tlsa(other_cert.certificate)]}
            )
            inbox = Inbox()
            settings = queue_settings(dns_peers.address, port, tls_policy(test_ca))
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.bounced == 1 and runner.delivered == 0 and runner.deferred == 0
            assert stored(tmp_path / "b") == []
            [session] = commands(b)
            assert not any(c.startswith("MAIL") for c in session)
            [report] = inbox.reports
            [block] = recipient_blocks(report)
            assert (block["Action"], block["Status"]) == ("failed", "5.7.10")
            assert "mx2.example.test" in block["Diagnostic-Code"]
            assert report.get_payload()[2].get_content_type() == "text/rfc822-headers"
            assert b"secret body" not in report.as_bytes()

    asyncio.run(main())


def test_tls_required_no_goes_despite_a_tlsa_mismatch(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA, mx_cert: Issued, other_cert: Issued
) -> None:
    spool = QueueSpool(tmp_path / "a")
    message = b"TLS-Required: No\r\n" + make_message("about your certificate")
    queue_message(spool, ["postmaster@optional.example.test"], message=message)

    async def main() -> None:
        async with mx(tmp_path / "b", mx_cert) as b:
            port = port_of(b)
            dns_peers.set("optional.example.test", {"MX": ["10 mx2.example.test."]})
            dns_peers.set(
                f"_{port}._tcp.mx2.example.test", {"TLSA": [tlsa(other_cert.certificate)]}
            )
            settings = queue_settings(dns_peers.address, port, tls_policy(test_ca))
            async with running(spool, settings) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.delivered == 1
                recorder = runner.tls_recorder
                assert recorder is not None
                assert all(
                    e["policy"]["domain"] != "optional.example.test"
                    for day in recorder.days()
                    for e in recorder.data(day).values()
                )
            [raw] = stored(tmp_path / "b")
            # STARTTLS was still used (RFC 8689 §4.2.2), only not verified.
            assert b"with ESMTPS id" in raw
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert parsed["TLS-Required"] == "No"

    asyncio.run(main())
