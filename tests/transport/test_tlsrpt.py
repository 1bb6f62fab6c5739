"""TLS reporting (RFC 8460): the sessions of a day, successes and failures, become the
aggregate report each domain's ``_smtp._tls`` record asks for, checked against a JSON schema
of the RFC's format: by mail through the queue (a gzip'd ``application/tlsrpt+gzip``
attachment in a ``multipart/report``), and as an HTTPS POST to a real server on loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
import gzip
import json
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jsonschema

from mailroom.delivery.tlsrpt import parse_tlsrpt_record
from mailroom.queue.entry import QueueSpool
from tests.delivery.peers import Inbox, queue_message, running, wait_until
from tests.transport.conftest import DNSPeers
from tests.transport.harness import mx, port_of, queue_settings, tls_policy
from tests.transport.tlspeers import Issued, PolicyServer, TestCA, tlsa

RESULT_TYPES = [
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
]
COUNT = {"type": "integer", "minimum": 0}
IP = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
DATE_TIME = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
}
STRINGS = {"type": "array", "items": {"type": "string"}}

# RFC 8460 §4.4 (and §4.3 for the result types), as a JSON schema.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["organization-name", "date-range", "contact-info", "report-id", "policies"],
    "properties": {
        "organization-name": {"type": "string", "minLength": 1},
        "date-range": {
            "type": "object",
            "required": ["start-datetime", "end-datetime"],
            "properties": {"start-datetime": DATE_TIME, "end-datetime": DATE_TIME},
            "additionalProperties": False,
        },
        "contact-info": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$"},
        "report-id": {"type": "string", "minLength": 1},
        "policies": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["policy", "summary"],
                "additionalProperties": False,
                "properties": {
                    "policy": {
                        "type": "object",
                        "required": ["policy-type", "policy-domain"],
                        "additionalProperties": False,
                        "properties": {
                            "policy-type": {"enum": ["tlsa", "sts", "no-policy-found"]},
                            "policy-string": STRINGS,
                            "policy-domain": {"type": "string", "minLength": 1},
                            "mx-host": STRINGS,
                        },
                    },
                    "summary": {
                        "type": "object",
                        "required": [
                            "total-successful-session-count",
                            "total-failure-session-count",
                        ],
                        "additionalProperties": False,
                        "properties": {
                            "total-successful-session-count": COUNT,
                            "total-failure-session-count": COUNT,
                        },
                    },
                    "failure-details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["result-type", "failed-session-count"],
                            "additionalProperties": False,
                            "properties": {
                                "result-type": {"enum": RESULT_TYPES},
                                "sending-mta-ip": IP,
                                "receiving-mx-hostname": {"type": "string"},
                                "receiving-mx-helo": {"type": "string"},
                                "receiving-ip": IP,
                                "failed-session-count": COUNT,
                                "additional-information": {"type": "string"},
                                "failure-reason-code": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def check(report: dict[str, Any]) -> None:
    jsonschema.validate(report, SCHEMA, format_checker=jsonschema.FormatChecker())


def test_the_schema_refuses_what_the_rfc_does_not_allow() -> None:
    good = {
        "organization-name": "mx.a.test",
        "date-range": {
            "start-datetime": "2024-01-01T00:00:00Z",
            "end-datetime": "2024-01-01T23:59:59Z",
        },
        "contact-info": "postmaster@mx.a.test",
        "report-id": "x",
        "policies": [],
    }
    check(good)
    for broken in (
        {
            **good,
            "policies": [
                {
                    "policy": {"policy-type": "dane", "policy-domain": "a"},
                    "summary": {
                        "total-successful-session-count": 0,
                        "total-failure-session-count": 0,
                    },
                }
            ],
        },
        {**good, "date-range": {"start-datetime": "yesterday", "end-datetime": "today"}},
        {k: v for k, v in good.items() if k != "report-id"},
    ):
        try:
            check(broken)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"the schema took {broken}")


def test_tlsrpt_records() -> None:
    assert parse_tlsrpt_record(["v=TLSRPTv1; rua=mailto:a@b.test"]) == ["mailto:a@b.test"]
    assert parse_tlsrpt_record(["v=TLSRPTv1;rua=mailto:a@b.test, https://r.test/x;ext=1"]) == [
        "mailto:a@b.test",
        "https://r.test/x",
    ]
    assert parse_tlsrpt_record(["v=TLSRPTv1; rua=ftp://r.test/"]) == []
    assert parse_tlsrpt_record(["v=TLSRPTv1; rua=mailto:a@b.test", "v=TLSRPTv1; rua=x"]) == []
    assert parse_tlsrpt_record(["v=STSv1; id=1"]) == []


def attachment_json(message: EmailMessage, domain: str = "report.example.test") -> dict[str, Any]:
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "tlsrpt"
    human, machine = message.get_payload()  # type: ignore[misc]
    assert "aggregate TLS report" in human.get_content()
    assert machine.get_content_type() == "application/tlsrpt+gzip"
    filename = machine.get_filename()
    assert filename.startswith(f"mx.a.test!{domain}!") and filename.endswith(".json.gz")
    return json.loads(gzip.decompress(machine.get_content()))


def test_reports_of_a_day_by_mail_and_by_https(
    tmp_path: Path,
    dns_peers: DNSPeers,
    test_ca: TestCA,
    mx_cert: Issued,
    other_cert: Issued,
    policy_cert: Issued,
) -> None:
    spool = QueueSpool(tmp_path / "a")
    # To report.example.test: one DANE success (mx2) ... and a TLSA mismatch (mx) first.
    queue_message(spool, ["bob@report.example.test"])
    # To report.plain.test: MTA-STS testing with an MX outside the policy.
    queue_message(spool, ["carol@report.plain.test"])

    async def main() -> None:
        server = await PolicyServer(policy_cert.context()).start()
        server.policies["report.plain.test"] = (
            "version: STSv1\nmode: testing\nmx: elsewhere.plain.test\nmax_age: 86400\n"
        )
        try:
            async with mx(tmp_path / "b", mx_cert) as b:
                port = port_of(b)
                dns_peers.set(
                    "report.example.test", {"MX": ["10 mx.example.test.", "20 mx2.example.test."]}
                )
                dns_peers.set(
                    f"_{port}._tcp.mx.example.test", {"TLSA": [tlsa(other_cert.certificate)]}
                )
                dns_peers.set(
                    f"_{port}._tcp.mx2.example.test", {"TLSA": [tlsa(mx_cert.certificate)]}
                )
                dns_peers.set("report.plain.test", {"MX": ["10 mx.plain.test."]})
                dns_peers.set("_mta-sts.report.plain.test", {"TXT": ["v=STSv1; id=r1"]})
                dns_peers.set(
                    "_smtp._tls.report.example.test",
                    {"TXT": ["v=TLSRPTv1; rua=mailto:tls-reports@reports.test"]},
                )
                rua = f"https://mta-sts.report.plain.test:{server.port}/tlsrpt"
                dns_peers.set("_smtp._tls.report.plain.test", {"TXT": [f"v=TLSRPTv1; rua={rua}"]})
                inbox = Inbox()
                tls = tls_policy(test_ca, mta_sts_port=server.port)
                settings = queue_settings(dns_peers.address, port, tls)
                async with running(spool, settings, inbox) as runner:
                    await wait_until(lambda: not spool.ids())
                    assert runner.delivered == 2
                    reporter = runner.tls_reporter
                    assert reporter is not None
                    [day] = runner.tls_recorder.days()  # type: ignore[union-attr]
                    outcomes = await reporter.send_day(day)
                    assert outcomes == {
                        "report.example.test": "sent",
                        "report.plain.test": "sent",
                    }
                    # Sent once: the next look finds nothing left to do.
                    assert await reporter.send_day(day) == {}
        finally:
            await server.stop()

        # By mail: handed to the queue for tls-reports@reports.test, from the null sender.
        [(sender, recipients, raw)] = inbox.messages
        assert (sender, recipients) == ("", ["tls-reports@reports.test"])
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        assert message["TLS-Report-Domain"] == "report.example.test"
        assert message["TLS-Report-Submitter"] == "mx.a.test"
        assert message["TLS-Required"] == "No"
        assert message["Subject"].startswith(
            "Report Domain: report.example.test Submitter: mx.a.test Report-ID: <"
        )
        by_mail = attachment_json(message)
        check(by_mail)
        # One TLSA policy for each MX host: the mismatch of mx, the success of mx2.
        by_host = {tuple(p["policy"]["mx-host"]): p for p in by_mail["policies"]}
        assert set(by_host) == {("mx.example.test",), ("mx2.example.test",)}
        bad, good = by_host[("mx.example.test",)], by_host[("mx2.example.test",)]
        assert bad["policy"]["policy-type"] == good["policy"]["policy-type"] == "tlsa"
        usage, selector, mtype, data = tlsa(mx_cert.certificate).split()
        assert good["policy"]["policy-string"] == [f"{usage} {selector} {mtype} {data.upper()}"]
        assert bad["summary"] == {
            "total-successful-session-count": 0,
            "total-failure-session-count": 1,
        }
        assert good["summary"] == {
            "total-successful-session-count": 1,
            "total-failure-session-count": 0,
        }
        [detail] = bad["failure-details"]
        assert detail["result-type"] == "validation-failure"
        assert "TLSA mismatch" in detail["failure-reason-code"]
        assert detail["receiving-ip"] == detail["sending-mta-ip"] == "127.0.0.1"

        # By HTTPS: the gzip'd JSON POSTed as application/tlsrpt+gzip.
        [(content_type, body)] = server.reports
        assert content_type == "application/tlsrpt+gzip"
        by_post = json.loads(gzip.decompress(body))
        check(by_post)
        [sts] = by_post["policies"]
        assert sts["policy"] == {
            "policy-type": "sts",
            "policy-domain": "report.plain.test",
            "policy-string": [
                "version: STSv1",
                "mode: testing",
                "mx: elsewhere.plain.test",
                "max_age: 86400",
            ],
            "mx-host": ["elsewhere.plain.test"],
        }
        assert sts["summary"]["total-failure-session-count"] == 1
        [detail] = sts["failure-details"]
        assert detail["result-type"] == "validation-failure"
        assert detail["receiving-mx-hostname"] == "mx.plain.test"
        assert detail["receiving-ip"] == "127.0.0.1"

    asyncio.run(main())


def test_the_daily_loop_sends_the_days_before_today_once(
    tmp_path: Path, dns_peers: DNSPeers, test_ca: TestCA
) -> None:
    """At start (and after each midnight) the reporter sends what earlier days owe: here a
    day of 2020 kept on disk, for a domain whose rua is by mail."""
    from mailroom.delivery.tlspolicy import ReportPolicy
    from mailroom.delivery.tlsrpt import TLSReporter, TLSReportRecorder
    from mailroom.resolver import Resolver

    dns_peers.set(
        "_smtp._tls.loop.example.test",
        {"TXT": ["v=TLSRPTv1; rua=mailto:reports@loop.example.test"]},
    )
    old = 1577880000.0  # 2020-01-01 12:00 UTC
    past = TLSReportRecorder(tmp_path / "tlsrpt", clock=lambda: old)
    past.success(ReportPolicy("loop.example.test", "no-policy-found"))
    past.save()

    async def main() -> None:
        inbox = Inbox()
        recorder = TLSReportRecorder(tmp_path / "tlsrpt")
        reporter = TLSReporter(
            recorder,
            Resolver([dns_peers.address]),
            hostname="mx.a.test",
            deliver_local=inbox,
            ssl_context=lambda: ssl.create_default_context(cafile=str(test_ca.path)),
        )
        await reporter.start()
        try:
            await wait_until(lambda: inbox.messages)
        finally:
            await reporter.stop()
        [(_, recipients, raw)] = inbox.messages
        assert recipients == ["reports@loop.example.test"]
        message = email.message_from_bytes(raw, policy=email.policy.default)
        report = attachment_json(message, "loop.example.test")
        check(report)
        assert report["date-range"] == {
            "start-datetime": "2020-01-01T00:00:00Z",
            "end-datetime": "2020-01-01T23:59:59Z",
        }
        # Once: a second start finds the day done.
        again = TLSReporter(
            TLSReportRecorder(tmp_path / "tlsrpt"),
            Resolver([dns_peers.address]),
            hostname="mx.a.test",
            deliver_local=inbox,
            ssl_context=ssl.create_default_context,
        )
        assert await again.send_day("2020-01-01") == {}

    asyncio.run(main())
