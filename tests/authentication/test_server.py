"""Email authentication in a running mailroom: an mx listener checks real mail against real DNS
(Knot behind Unbound), refuses with the catalogue's replies, quarantines, writes
Authentication-Results; a submission listener signs; forwards leave with SRS and an ARC seal,
and bounces to SRS addresses come back."""

from __future__ import annotations

import email
import email.policy
import smtplib
import time
from pathlib import Path

from mailroom.authentication.arc import verify_chain
from mailroom.authentication.dkim import verify_message
from mailroom.authentication.signing import sign
from mailroom.resolver import Resolver
from tests.authentication.conftest import publish, run
from tests.authentication.servers import PASSWORD, message, send
from tests.client.servers import smtp_sink
from tests.dnspeers import silent_dns
from tests.interop.test_downgrade_peers import require_sink, sink_message


def test_forged_mail_as_a_reject_domain_gets_550_5_7_26(make_server):
    server = make_server()
    code, reply = send(server, "ceo@sender.test", "bob@example.test", message("ceo@sender.test"))
    assert (code, reply[:6]) == (550, b"5.7.26")
    assert b"sender.test asks receivers to reject" in reply
    assert server.messages == []
    notes = [e["text"] for e in server.transcripts[-1]["entries"] if e["from"] == "info"]
    assert any("spf=fail" in n for n in notes)
    assert any("dmarc=fail" in n for n in notes)
    assert any('spf DNS: TXT sender.test -> "v=spf1 ip4:192.0.2.1 -all"' in n for n in notes)
    assert any("dmarc DNS: TXT _dmarc.sender.test" in n for n in notes)


def test_a_from_hidden_in_nested_comments_is_still_refused(make_server):
    """Before: email.utils recursed on the "(" until RecursionError, and the server answered
    451 (try again) to a forgery it should refuse."""
    server = make_server()
    forged = "\r\n ".join(["(" * 900] * 6) + " ceo@sender.test"  # lines under 998 octets
    code, reply = send(server, "ceo@sender.test", "bob@example.test", message(forged))
    assert (code, reply[:6]) == (550, b"5.7.26")
    assert server.messages == []


def test_signed_mail_is_stored_with_one_authentication_results(make_server, sender_keys):
    server = make_server()
    forged = (
        b"Authentication-Results: mx.example.test; dmarc=pass header.from=sender.test\r\n"
        b"Authentication-Results: other.test; spf=pass\r\n"
    )
    body = message("alice@sender.test", extra=forged)
    code, reply = send(
        server, "alice@sender.test", "bob@example.test", sign(body, sender_keys) + body
    )
    assert code == 250, reply
    [stored] = server.messages
    results = stored.message.get_all("Authentication-Results")
    ours = [r for r in results if r.startswith("mx.example.test")]
    assert len(ours) == 1
    assert "dkim=pass header.d=sender.test" in ours[0] and "dmarc=pass" in ours[0]
    assert "spf=fail" in ours[0] and "iprev=pass" in ours[0]
    assert any(r.startswith("other.test") for r in results)
    # The Authentication-Results comes after our Received (trace first, then the results).
    names = [
        line.split(b":")[0] for line in stored.raw.split(b"\r\n") if line and line[:1] not in b" \t"
    ]
    assert names.index(b"Received") < names.index(b"Authentication-Results")


def test_quarantine_goes_to_the_junk_folder(make_server):
    server = make_server()
    code, _ = send(server, "news@example.org", "bob@example.test", message("news@example.org"))
    assert code == 250
    [stored] = server.messages
    junk = Path(server.config.data) / "mail" / "example.test" / "bob" / ".Junk"
    assert list((junk / "new").iterdir())
    assert (junk / "maildirfolder").exists()
    assert "dmarc=fail" in stored.message["Authentication-Results"]


def test_enforced_spf_refuses_at_mail(make_server):
    server = make_server('spf = "enforce"')
    code, reply = send(server, "ceo@sender.test", "bob@example.test", b"")
    assert (code, reply[:6]) == (550, b"5.7.23")
    assert b"SPF of sender.test does not allow 127.0.0.1" in reply


def test_a_stranger_sending_as_a_local_domain_its_spf_fails_for_is_refused_at_mail(make_server):
    """With spf = "record" (the default), a local domain's own SPF record still decides for a
    stranger's MAIL FROM in that domain: example.test allows 127.0.0.1 only, so a client at
    127.0.0.3 posing as alice is refused, where taken it would reach bob and leave by any
    forwarding alias with alice's address as the sender."""
    server = make_server()
    forged = message("alice@example.test")
    code, reply = send(server, "alice@example.test", "bob@example.test", forged, source="127.0.0.3")
    assert (code, reply[:6]) == (550, b"5.7.23")
    assert b"SPF of example.test does not allow 127.0.0.3" in reply
    # From where the record allows, as any other sender, and another domain's fail is recorded.
    assert send(server, "alice@example.test", "bob@example.test", forged)[0] == 250
    other = message("carol@example.org")
    assert send(server, "carol@example.org", "bob@example.test", other)[0] == 250
    # Turned off, the forgery passes MAIL (DMARC, p=reject for example.test, then refuses it).
    server = make_server("spf_enforce_local_domains = false")
    code, reply = send(server, "alice@example.test", "bob@example.test", forged, source="127.0.0.3")
    assert (code, reply[:6]) == (550, b"5.7.26")


def test_enforced_spf_with_a_broken_record_or_silent_dns_gets_x_7_24(make_server, knot):
    """RFC 7208 §8.6, §8.7 and RFC 7372 §3.2: an SPF record in error is 550 5.7.24, a check
    that cannot be completed (DNS does not answer) 451 4.7.24."""
    knot.set("sender.test", {"TXT": ["v=spf1 ip4:127.0.0.1 -all", "v=spf1 +all"]})
    try:
        server = make_server('spf = "enforce"')
        code, reply = send(server, "ceo@sender.test", "bob@example.test", b"")
        assert (code, reply[:6]) == (550, b"5.7.24")
        assert b"SPF record of sender.test is in error" in reply
    finally:
        knot.set("sender.test", {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]})
    with silent_dns() as address:
        server = make_server('spf = "enforce"\nspf_timeout = 1', dns=address)
        code, reply = send(server, "ceo@sender.test", "bob@example.test", b"")
    assert (code, reply[:6]) == (451, b"4.7.24")
    assert b"could not be completed" in reply


def test_required_iprev_refuses_a_client_whose_reverse_dns_lies(make_server):
    server = make_server('iprev = "require"')
    code, reply = send(server, "x@example.org", "bob@example.test", b"", source="127.0.0.2")
    assert (code, reply[:6]) == (550, b"5.7.25")
    code, _ = send(server, "ceo@sender.test", "bob@example.test", b"", source="127.0.0.1")
    assert code != 550 or b"5.7.25" not in _


def test_a_domain_that_requires_dkim(make_server, knot, sender_keys):
    knot.set("sender.test", {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]})  # DMARC passes by SPF
    try:
        server = make_server('dkim_required_domains = ["sender.test"]')
        unsigned = message("alice@sender.test")
        code, reply = send(server, "alice@sender.test", "bob@example.test", unsigned)
        assert (code, reply[:6]) == (550, b"5.7.20")
        import dkim

        rsa = sender_keys[0]
        sha1 = dkim.sign(
            unsigned,
            rsa.selector.encode(),
            rsa.domain.encode(),
            rsa.private,
            signature_algorithm=b"rsa-sha1",
            include_headers=[b"from", b"to"],
        )
        code, reply = send(server, "alice@sender.test", "bob@example.test", sha1 + unsigned)
        assert (code, reply[:6]) == (550, b"5.7.21")
        assert b"rsa-sha1" in reply
    finally:
        knot.set("sender.test", {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]})


def test_dns_that_never_answers_gets_451_within_the_budget(make_server):
    with silent_dns() as address:
        server = make_server(
            "spf_timeout = 1\ndkim_timeout = 1\ndmarc_timeout = 1\niprev_timeout = 1\narc_timeout = 1",
            dns=address,
        )
        started = time.monotonic()
        code, reply = send(
            server, "ceo@sender.test", "bob@example.test", message("ceo@sender.test")
        )
        elapsed = time.monotonic() - started
    assert (code, reply[:6]) == (451, b"4.7.26")
    assert elapsed < 15
    assert server.messages == []


def test_submission_is_signed_and_verifies(make_server, knot, sink, unbound):
    server = make_server(keys=True)
    for key in server.server.authentication.keys["example.test"]:
        publish(knot, key)
    host, port = server.address("submission")
    with smtplib.SMTP(host, port, timeout=30) as client:
        client.starttls()
        client.login("alice@example.test", PASSWORD)
        client.sendmail(
            "alice@example.test", ["carol@remote.test"], message("Alice <alice@example.test>")
        )
    [received] = sink.wait_for_messages(1, timeout=30)
    assert received.recipients == ["carol@remote.test"]
    results, _ = run(verify_message(received.raw, Resolver([unbound.address]).lookup))
    assert [(r.result, r.algorithm) for r in results] == [
        ("pass", "rsa-sha256"),
        ("pass", "ed25519-sha256"),
    ]
    assert "auth=pass smtp.auth=alice@example.test" in received.message["Authentication-Results"]


def test_a_message_converted_for_its_next_hop_leaves_with_signatures_that_verify(
    make_server, knot, unbound
):
    """Signed at submission, then converted by the queue for a hop without 8BITMIME (Postfix's
    smtp-sink, which does not offer it with -8): the body the signatures were made over is
    not the one that leaves, so the queue signs again after converting (RFC 6376 §5.3). What
    arrives is 7-bit and every DKIM signature verifies."""
    require_sink()
    text = "Grüße aus Köln: 5 € für den Kaffee.\r\n"
    eight_bit = (
        "From: Alice <alice@example.test>\r\nTo: dave@seven.test\r\nSubject: Kaffee\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\nMessage-ID: <kaffee@example.test>\r\n\r\n" + text
    ).encode()
    with smtp_sink("-8") as seven_bit:
        server = make_server(keys=True, routes=f'"seven.test" = "127.0.0.1:{seven_bit.port}"')
        for key in server.server.authentication.keys["example.test"]:
            publish(knot, key)
        host, port = server.address("submission")
        with smtplib.SMTP(host, port, timeout=30) as client:
            client.starttls()
            client.login("alice@example.test", PASSWORD)
            client.sendmail(
                "alice@example.test", ["dave@seven.test"], eight_bit, mail_options=["BODY=8BITMIME"]
            )
        deadline = time.monotonic() + 30
        while not seven_bit.captured():
            assert time.monotonic() < deadline, "nothing reached smtp-sink"
            time.sleep(0.1)
        [capture] = seven_bit.captured()
    # smtp-sink writes the message with LF line ends; on the wire they were CRLF.
    arrived = sink_message(capture).replace(b"\n", b"\r\n")
    assert arrived.isascii(), "a hop without 8BITMIME got 8-bit octets"
    parsed = email.message_from_bytes(arrived, policy=email.policy.default)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n")
    assert len(parsed.get_all("DKIM-Signature")) == 2  # made again, not added to
    results, _ = run(verify_message(arrived, Resolver([unbound.address]).lookup))
    assert [(r.result, r.algorithm) for r in results] == [
        ("pass", "rsa-sha256"),
        ("pass", "ed25519-sha256"),
    ]


BOUNCE = b"From: MAILER-DAEMON@forwarder.test\r\nSubject: Undelivered\r\n\r\nsorry\r\n"


def forwarded_with_srs(server, sink, unbound, sender: str, data: bytes):  # type: ignore[no-untyped-def]
    """``data`` from ``sender`` to fwd@example.test (an alias of carol@remote.test), taken,
    and as the sink got it: sent on with an SRS address of example.test that stands for
    ``sender``. Returns the message and the result of its ARC chain."""
    code, reply = send(server, sender, "fwd@example.test", data)
    assert code == 250, reply
    [forwarded] = sink.wait_for_messages(1, timeout=30)
    assert forwarded.recipients == ["carol@remote.test"]
    assert forwarded.sender.startswith("SRS0=") and forwarded.sender.endswith("@example.test")
    local, _, domain = sender.rpartition("@")
    assert forwarded.sender.split("=", 4)[3:] == [domain, f"{local}@example.test"]
    arc, _ = run(verify_chain(forwarded.raw, Resolver([unbound.address]).lookup))
    return forwarded, arc


def test_a_forward_leaves_with_srs_and_an_arc_seal_and_its_bounce_comes_back(
    make_server, knot, sink, sender_keys, unbound
):
    server = make_server(keys=True, authentication='trusted_arc_sealers = ["example.test"]')
    for key in server.server.authentication.keys["example.test"]:
        publish(knot, key)
    body = message("alice@sender.test")
    forwarded, arc = forwarded_with_srs(
        server, sink, unbound, "alice@sender.test", sign(body, sender_keys) + body
    )
    assert arc.result == "pass" and arc.trusted_pass(["example.test"]) is not None
    # The next hop bounces it to the SRS address: it goes back to the original sender.
    sink.clear()
    code, reply = send(server, "", forwarded.sender, BOUNCE)
    assert code == 250, reply
    [returned] = sink.wait_for_messages(1, timeout=30)
    assert returned.recipients == ["alice@sender.test"]
    # A made-up SRS address is an unknown user.
    code, reply = send(server, "", "SRS0=xxxx=AA=sender.test=alice@example.test", BOUNCE)
    assert code == 550


def test_a_strangers_mail_with_a_local_sender_is_forwarded_with_srs_too(
    make_server, knot, sink, unbound
):
    """A stranger's message with a sender in a local domain (here SPF lets 127.0.0.1 send as
    example.test, and the From aligns: it passes every check) that an alias forwards off-site
    leaves with an SRS sender and an ARC seal, as any stranger's does: sent on with
    <alice@example.test>, the next server's SPF check would pass for example.test from this
    server for mail no one here vouched for. Its bounce comes back to alice."""
    server = make_server(keys=True)
    for key in server.server.authentication.keys["example.test"]:
        publish(knot, key)
    data = message("alice@example.test")
    forwarded, arc = forwarded_with_srs(server, sink, unbound, "alice@example.test", data)
    assert arc.result == "pass"
    sink.clear()
    code, reply = send(server, "", forwarded.sender, BOUNCE)
    assert code == 250, reply
    mailbox = Path(server.config.data) / "mail" / "example.test" / "alice" / "new"
    assert len(list(mailbox.iterdir())) == 1
    assert sink.messages == []


def test_a_bounce_to_an_srs_address_passes_the_checks_any_recipient_does(
    make_server, knot, sink, sender_keys, unbound
):
    """The bounce's RCPT is routed back to the address it stands for, then checked as any
    other recipient's: with greylisting on, a stranger's first bounce is greylisted (it had
    been taken at once, past greylisting, rate limits and the queue's congestion check)."""
    server = make_server(policy="greylisting = true\ngreylist_delay = 3600")
    for key in server.server.authentication.keys.get("example.test", ()):
        publish(knot, key)
    body = message("alice@sender.test")
    bob = send(server, "alice@sender.test", "bob@example.test", sign(body, sender_keys) + body)
    assert bob[0] == 450  # greylisting is on for strangers
    srs = server.server.authentication.srs
    assert srs is not None
    bounce_address = srs.forward("alice@sender.test")
    code, reply = send(server, "", bounce_address, BOUNCE)
    assert (code, reply[:6]) == (450, b"4.7.1 "), reply
    assert bounce_address.encode() in reply
    assert sink.messages == []


def test_a_large_message_keeps_its_body_and_gets_its_header(make_server, sender_keys, unbound):
    # Over the store's 1 MiB in memory: the message is spilled to a file as it arrives, and its
    # new header section (Authentication-Results) is written before a kernel copy of the rest.
    server = make_server()
    body = message("alice@sender.test") + b"".join(
        f"line {i:07d} of a long message\r\n".encode() for i in range(80_000)
    )
    signed = sign(body, sender_keys) + body
    assert len(signed) > 2 * 1024 * 1024
    code, reply = send(server, "alice@sender.test", "bob@example.test", signed)
    assert code == 250, reply
    [stored] = server.messages
    assert stored.raw.endswith(signed[signed.index(b"\r\n\r\n") :])
    assert "dkim=pass" in stored.message["Authentication-Results"]
    # The stored copy still verifies: nothing of the signed message changed.
    results, _ = run(verify_message(stored.raw, Resolver([unbound.address]).lookup))
    assert [r.result for r in results] == ["pass", "pass"]


def test_a_tls_report_is_dkim_signed_once_by_the_authentication_signer(make_server, knot, unbound):
    """RFC 8460 §3: receivers ignore TLS reports by mail without a DKIM signature of the
    reporting domain. The composition root gives the queue's TLS reporter email
    authentication's signer, and stores its mail without signing it again."""
    from mailroom.delivery.tlsrpt import ReportPolicy

    server = make_server(keys=True)
    mailroom = server.server
    for key in mailroom.authentication.keys["example.test"]:
        publish(knot, key)
    reporter = mailroom.runner.tls_reporter
    assert reporter is not None and reporter.sign == mailroom.authentication.sign_own
    # A day's session to a domain that asks for reports at a local mailbox.
    knot.set("_smtp._tls.reports.list.test", {"TXT": ["v=TLSRPTv1; rua=mailto:bob@example.test"]})
    reporter.recorder.success(ReportPolicy("reports.list.test", "no-policy-found"))
    [day] = reporter.recorder.days()
    assert server._call(reporter.send_day(day)) == {"reports.list.test": "sent"}
    [stored] = server.wait_for_messages(1, timeout=30)
    assert stored.recipients == ["bob@example.test"]
    assert stored.message["TLS-Report-Domain"] == "reports.list.test"
    results, _ = run(verify_message(stored.raw, Resolver([unbound.address]).lookup))
    # Signed with both keys of example.test (the organizational domain of the report's
    # From, noreply-tlsrpt@mx.example.test), once each: inject did not sign it again.
    assert sorted((r.result, r.algorithm, r.domain) for r in results) == [
        ("pass", "ed25519-sha256", "example.test"),
        ("pass", "rsa-sha256", "example.test"),
    ]
