"""DMARC, ARC and iprev against real DNS, and the Authentication-Results header they make."""

from __future__ import annotations

import pytest

from mailroom.authentication.arc import verify_chain
from mailroom.authentication.checks import Results, SessionChecks, from_fields
from mailroom.authentication.dkim import DKIMResult
from mailroom.authentication.dmarc import (
    author_domains,
    evaluate,
    organizational_domain,
    parse_record,
)
from mailroom.authentication.iprev import check_iprev
from mailroom.authentication.keys import generate_key
from mailroom.authentication.results import authentication_results, remove_claimed
from mailroom.authentication.settings import AuthenticationSettings
from mailroom.authentication.signing import arc_seal, sign
from mailroom.authentication.spf import SPFResult
from mailroom.header_section import header_length
from tests.authentication.conftest import publish, run

FROM = b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nbody\r\n"


def spf(result: str, domain: str) -> SPFResult:
    return SPFResult(result, "mailfrom", domain, f"x@{domain}", "192.0.2.1")  # type: ignore[arg-type]


def dkim_pass(domain: str) -> DKIMResult:
    return DKIMResult("pass", domain=domain, selector="s", algorithm="rsa-sha256")


# -- DMARC --------------------------------------------------------------------------------------


def test_organizational_domains_come_from_the_public_suffix_list():
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organizational_domain("mail.sender.test") == "sender.test"
    assert organizational_domain("com") == "com"


def test_record_parsing():
    record = parse_record("v=DMARC1; p=reject; sp=none; pct=50; adkim=s")
    assert record is not None
    assert (record.policy, record.subdomain_policy, record.percent, record.adkim, record.aspf) == (
        "reject",
        "none",
        50,
        "s",
        "r",
    )
    assert parse_record("v=DMARC1; p=bogus") is None
    assert parse_record("v=DMARC1; p=bogus; rua=mailto:r@x.test").policy == "none"  # type: ignore[union-attr]
    assert parse_record("p=reject; v=DMARC1") is None
    # not a number (str.isdigit is true of "²", which int refuses): the default, 100
    assert parse_record("v=DMARC1; p=reject; pct=²").percent == 100  # type: ignore[union-attr]


@pytest.fixture
def dmarc_records(knot):
    knot.set("_dmarc.sender.test", {"TXT": ["v=DMARC1; p=reject; sp=quarantine"]})
    knot.set("_dmarc.example.org", {"TXT": ["v=DMARC1; p=quarantine; pct=0"]})
    knot.set("_dmarc.list.test", {"TXT": ["v=DMARC1; p=reject; aspf=s"]})


def test_aligned_passes(resolver, dmarc_records):
    result, lookups = run(
        evaluate(["alice@sender.test"], spf("pass", "bounces.sender.test"), [], resolver.lookup)
    )
    assert (result.result, result.aligned_by) == ("pass", "spf bounces.sender.test")
    result, _ = run(
        evaluate(
            ["alice@sender.test"],
            spf("fail", "x.test"),
            [dkim_pass("sender.test")],
            resolver.lookup,
        )
    )
    assert result.result == "pass"
    assert any("_dmarc.sender.test" in line for line in lookups)


def test_unaligned_fails_with_the_policy(resolver, dmarc_records):
    result, _ = run(
        evaluate(
            ["alice@sender.test"],
            spf("pass", "other.test"),
            [dkim_pass("other.test")],
            resolver.lookup,
        )
    )
    assert (result.result, result.policy, result.disposition) == ("fail", "reject", "reject")


def test_subdomain_policy_and_strict_alignment(resolver, dmarc_records):
    result, _ = run(evaluate(["a@news.sender.test"], None, [], resolver.lookup))
    assert (result.result, result.policy) == ("fail", "quarantine")
    result, _ = run(evaluate(["a@list.test"], spf("pass", "bounce.list.test"), [], resolver.lookup))
    assert result.result == "fail"  # aspf=s: a subdomain does not align


def test_pct_samples_out_to_the_milder_policy(resolver, dmarc_records):
    result, _ = run(evaluate(["a@example.org"], None, [], resolver.lookup, sample=lambda: 50))
    assert (result.result, result.policy, result.disposition) == ("fail", "quarantine", "none")


def test_several_author_domains_take_the_strictest(resolver, dmarc_records):
    result, _ = run(
        evaluate(["a@example.org, b@sender.test"], None, [], resolver.lookup, sample=lambda: 0)
    )
    assert (result.domain, result.disposition) == ("sender.test", "reject")
    assert author_domains(["A <a@Sender.Test>", "b@example.org"]) == ["sender.test", "example.org"]


def test_a_from_nested_past_the_parser_still_names_its_domain(resolver, dmarc_records):
    """A From of a few thousand "(" before the address made email.utils raise RecursionError
    (the message got a 451 at end of data, and was tried again for days). Read without
    recursion, its address is still found and its domain's policy applied: a nest is no way
    around DMARC."""
    nested = "(" * 5000 + " a@sender.test"
    assert author_domains([nested]) == ["sender.test"]
    result, _ = run(evaluate([nested], None, [], resolver.lookup, sample=lambda: 0))
    assert (result.result, result.domain, result.disposition) == ("fail", "sender.test", "reject")


def test_no_record_and_no_from(resolver):
    result, _ = run(evaluate(["a@forwarder.test"], None, [], resolver.lookup))
    assert result.result == "none"
    result, _ = run(evaluate([], None, [], resolver.lookup))
    assert (result.result, result.reason) == ("none", "no From field")


def test_a_temporary_error_is_not_a_fail(resolver, dmarc_records):
    temperror = DKIMResult("temperror", domain="sender.test")
    result, _ = run(evaluate(["a@sender.test"], None, [temperror], resolver.lookup))
    assert result.result == "temperror"


# -- iprev --------------------------------------------------------------------------------------


def test_iprev(resolver):
    assert run(check_iprev("127.0.0.1", resolver.lookup)).result == "pass"
    assert run(check_iprev("127.0.0.2", resolver.lookup)).result == "fail"
    assert run(check_iprev("127.0.0.3", resolver.lookup)).result == "permerror"


# -- ARC ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forwarder_key(knot, key_dir):
    key = generate_key(key_dir, "forwarder.test", "arc", "rsa")
    publish(knot, key)
    return key


def _forwarded(key, dmarc: str = "pass") -> bytes:
    """A message as a forwarder relays it: its A-R, then its ARC set on top."""
    results = (
        f"Authentication-Results: mx.forwarder.test; spf=pass smtp.mailfrom=sender.test;\r\n"
        f"\tdmarc={dmarc} header.from=sender.test\r\n"
    ).encode()
    message = results + FROM
    return arc_seal(message, key, "mx.forwarder.test") + message


def test_a_sealed_chain_passes_and_a_trusted_sealer_counts(resolver, forwarder_key):
    result, lookups = run(verify_chain(_forwarded(forwarder_key), resolver.lookup))
    assert result.result == "pass", result
    assert [s.sealer for s in result.sets] == ["forwarder.test"]
    assert result.trusted_pass(["forwarder.test"]) is not None
    assert result.trusted_pass(["other.test"]) is None
    assert lookups


def test_a_trusted_sealer_that_saw_a_fail_does_not_count(resolver, forwarder_key):
    result, _ = run(verify_chain(_forwarded(forwarder_key, "fail"), resolver.lookup))
    assert result.result == "pass" and result.trusted_pass(["forwarder.test"]) is None


def test_a_changed_message_breaks_the_chain(resolver, forwarder_key):
    broken = _forwarded(forwarder_key).replace(b"body", b"changed")
    result, _ = run(verify_chain(broken, resolver.lookup))
    assert result.result == "fail"
    assert result.claims_trusted(["forwarder.test"])


@pytest.mark.parametrize(
    "headers",
    [
        b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=x.test; s=s; b=AAAA\r\n",
        b"ARC-Seal: garbage\r\n",
        b"ARC-Seal: i=99; cv=none\r\nARC-Message-Signature: i=99\r\nARC-Authentication-Results: i=99; x\r\n",
        b"ARC-Seal: i=2; cv=pass; a=rsa-sha256; d=x.test; s=s; b=AAAA\r\nARC-Message-Signature: i=2; a=rsa-sha256; d=x.test; s=s; h=from; bh=AAAA; b=AAAA\r\nARC-Authentication-Results: i=2; x\r\n",
        b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=x.test; s=s; b=AAAA\r\nARC-Seal: i=1; cv=none; a=rsa-sha256; d=x.test; s=s; b=AAAA\r\n",
    ],
)
def test_malformed_arc_headers_fail_cleanly(resolver, headers):
    result, _ = run(verify_chain(headers + FROM, resolver.lookup))
    assert result.result == "fail"


def test_no_arc_is_none(resolver):
    assert run(verify_chain(FROM, resolver.lookup))[0].result == "none"


# -- the session's checks together, and the header -----------------------------------------------


def test_session_checks_end_to_end(knot, resolver, sender_keys, dmarc_records):
    knot.set("sender.test", {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]})
    checks = SessionChecks(
        AuthenticationSettings(), resolver.lookup, client_ip="127.0.0.1", receiver="mx.example.test"
    )

    async def session() -> Results:
        checks.connected()
        checks.mail_from("alice@sender.test", "mx.example.test")
        return await checks.message(sign(FROM, sender_keys) + FROM)

    results = run(session())
    assert results.iprev is not None and results.iprev.result == "pass"
    assert results.spf is not None and results.spf.result == "pass"
    assert [r.result for r in results.dkim or []] == ["pass", "pass"]
    assert results.dmarc is not None and results.dmarc.result == "pass"
    assert results.arc is not None and results.arc.result == "none"
    header = results.header("mx.example.test").decode()
    assert header.startswith("Authentication-Results: mx.example.test;\r\n\tiprev=pass")
    assert "spf=pass smtp.mailfrom=sender.test" in header
    assert "dkim=pass header.d=sender.test header.s=rsa1 header.a=rsa-sha256" in header
    assert "dmarc=pass (p=REJECT dis=NONE) header.from=sender.test" in header
    lines = results.lines()
    assert any(line.startswith("  spf DNS: TXT sender.test") for line in lines)


def test_the_header_quotes_what_needs_quoting():
    dkim = DKIMResult("fail", "bad (very) bad", "d.test", "s", "rsa-sha256", "@d.test", "ab/c+=d")
    header = authentication_results("mx.test", dkim=[dkim]).decode()
    assert 'header.b="ab/c+=d"' in header and r"(bad \(very\) bad)" in header
    assert authentication_results("mx.test") == b"Authentication-Results: mx.test;\r\n\tnone\r\n"


def test_claimed_results_are_removed_and_others_kept():
    message = (
        b"Authentication-Results: MX.Example.Test; dkim=pass\r\n"
        b"Authentication-Results: (comment) mx.example.test;\r\n spf=pass\r\n"
        b"Authentication-Results: other.test; spf=fail\r\n" + FROM
    )
    head = message[: header_length(message)]
    kept, removed = remove_claimed(head, "mx.example.test")
    assert removed == 2
    assert kept.startswith(b"Authentication-Results: other.test; spf=fail\r\nFrom: Alice")
    assert from_fields(message) == ["Alice <alice@sender.test>"]
