"""The same messages judged by OpenDMARC (Debian opendmarc) and by mailroom, on the same DNS
records: what OpenDMARC judges a DMARC fail, mailroom judges a fail, and what it passes,
mailroom passes.

OpenDMARC does not check SPF or DKIM itself: it trusts Authentication-Results. It is given
pyspf's SPF result and OpenDKIM's DKIM result (both independent of mailroom); mailroom checks
everything on its own. (OpenDMARC's test mode takes its envelope sender as
postmaster@example.org whatever the message, so it never finds SPF aligned: the cases here pass
by DKIM or fail; SPF alignment is checked against the RFC in test_dmarc_arc_iprev.py.) OpenDMARC asks DNS only through /etc/resolv.conf, so it runs in network
and mount namespaces of the test's own (opendmarc_inner.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dns.resolver
import publicsuffixlist
import pytest
import spf as pyspf

from mailroom.authentication.checks import SessionChecks
from mailroom.authentication.settings import AuthenticationSettings
from mailroom.authentication.signing import sign
from tests.authentication.conftest import run
from tests.authentication.peers import OpenDKIM, need

HERE = Path(__file__).resolve().parent
CLIENT = "127.0.0.1"


def message(author: str) -> bytes:
    return (
        f"From: {author}\r\nTo: bob@example.test\r\nSubject: judged twice\r\n"
        "Date: Sat, 05 Dec 2026 09:00:00 +0000\r\nMessage-ID: <dmarc@test>\r\n\r\nHello.\r\n"
    ).encode()


@pytest.fixture(scope="module")
def cases(knot, sender_keys):
    knot.set("sender.test", {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]})
    knot.set("_dmarc.sender.test", {"TXT": ["v=DMARC1; p=reject"]})
    knot.set("ok.sender.test", {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]})
    knot.set("_dmarc.ok.sender.test", {"TXT": ["v=DMARC1; p=reject"]})
    knot.set("example.org", {"TXT": ["v=spf1 -all"]})
    knot.set("_dmarc.example.org", {"TXT": ["v=DMARC1; p=quarantine"]})
    knot.set("forwarder.test", {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]})
    signed = message("alice@sender.test")
    return [
        # (name, MAIL FROM, message, the DMARC result both must give)
        ("forged, p=reject", "ceo@sender.test", message("ceo@sender.test"), "fail"),
        ("DKIM aligned", "bounce@forwarder.test", sign(signed, sender_keys) + signed, "pass"),
        ("p=quarantine", "news@example.org", message("news@example.org"), "fail"),
        ("SPF pass, not aligned", "x@forwarder.test", message("ceo@sender.test"), "fail"),
        ("no DMARC record", "x@forwarder.test", message("x@forwarder.test"), "none"),
    ]


def _pyspf(sender: str, unbound_port: int) -> str:
    saved = dns.resolver.default_resolver
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], unbound_port
    dns.resolver.default_resolver = resolver
    try:
        result, _ = pyspf.check2(CLIENT, sender, "client.test", querytime=10)
    finally:
        dns.resolver.default_resolver = saved
    return str(result)


def _opendmarc(knot, messages: list[bytes]) -> list[dict]:
    need("/usr/sbin/opendmarc")
    if os.geteuid() != 0:
        if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
            pytest.skip("OpenDMARC's namespaces need root")
        pytest.fail("OpenDMARC's test runs in namespaces of its own: it needs root (CI is)")
    job = {
        "records": {name: types for name, types in knot.records.items()},
        "zones": knot.zones,
        "trusted": "checks.test",
        "psl": str(Path(publicsuffixlist.__file__).parent / "public_suffix_list.dat"),
        "messages": [m.decode() for m in messages],
    }
    result = subprocess.run(
        ["unshare", "--net", "--mount", "--fork", sys.executable, str(HERE / "opendmarc_inner.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_opendmarc_and_mailroom_agree(cases, knot, unbound, resolver):
    opendkim = OpenDKIM(unbound.port)
    try:
        inputs = []
        for _, sender, data, _ in cases:
            spf = _pyspf(sender, unbound.port)
            dkim = opendkim.verify(data).split(";", 1)[1].strip()
            header = f"Authentication-Results: checks.test; spf={spf} smtp.mailfrom={sender}"
            if dkim != "none":  # OpenDKIM's "none": no signature, nothing to add
                header += ";\r\n\t" + "\r\n".join(dkim.splitlines())
            inputs.append(header.encode() + b"\r\n" + data)
    finally:
        opendkim.close()
    verdicts = _opendmarc(knot, inputs)
    for (name, sender, data, expected), verdict in zip(cases, verdicts, strict=True):
        refused = (verdict["reply"] or [""])[0] == "550"  # RejectFailures: no header then
        found = re.search(r"dmarc=(\w+)", " ".join(verdict["results"]))
        theirs = "fail" if refused else (found.group(1) if found else "none")
        assert theirs == expected, (name, verdict)
        checks = SessionChecks(
            AuthenticationSettings(), resolver.lookup, client_ip=CLIENT, receiver="mx"
        )

        async def judge(checks=checks, sender=sender, data=data):
            checks.mail_from(sender, "client.test")
            return await checks.message(data)

        ours = run(judge())
        assert ours.dmarc is not None and ours.dmarc.result == expected, (name, ours.lines())
        # Where OpenDMARC refuses (RejectFailures), mailroom's policy refuses (550 5.7.26).
        assert (ours.dmarc.disposition == "reject") == refused, name
