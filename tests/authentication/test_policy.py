"""Policy's judgement of the checks' results (mailroom.policy.authentication), one situation at
a time: which catalogue reply, or quarantine, or nothing."""

from __future__ import annotations

from mailroom.authentication.arc import ARCResult, ARCSet
from mailroom.authentication.checks import Results
from mailroom.authentication.dkim import DKIMResult
from mailroom.authentication.dmarc import DMARCResult
from mailroom.authentication.settings import AuthenticationSettings
from mailroom.policy.authentication import AuthenticationPolicy

MESSAGE = b"From: a@sender.test\r\nSubject: x\r\n\r\nbody\r\n"


def policy(**settings) -> AuthenticationPolicy:
    return AuthenticationPolicy(
        None,  # type: ignore[arg-type]
        AuthenticationSettings(**settings),
        lookup=None,  # type: ignore[arg-type]
        hostname="mx.example.test",
        trusted=lambda session: False,
        is_local_domain=lambda domain: domain == "example.test",
    )


def failing(disposition: str = "reject") -> DMARCResult:
    return DMARCResult("fail", "sender.test", "reject", disposition, "v=DMARC1; p=reject")  # type: ignore[arg-type]


def label(reply) -> str:
    return f"{reply.code} {reply.status}" if reply is not None else "none"


def test_dmarc_reject_quarantine_and_record():
    reply, junk = policy().judge(Results(dmarc=failing()), MESSAGE)
    assert (label(reply), junk) == ("550 5.7.26", False)
    reply, junk = policy().judge(Results(dmarc=failing("quarantine")), MESSAGE)
    assert (label(reply), junk) == ("none", True)
    reply, junk = policy(dmarc="record").judge(Results(dmarc=failing()), MESSAGE)
    assert (label(reply), junk) == ("none", False)


def test_dmarc_temperror_defers_unless_the_policy_is_none():
    unknown = DMARCResult("temperror", "sender.test", reason="timed out after 10 s")
    assert label(policy().judge(Results(dmarc=unknown), MESSAGE)[0]) == "451 4.7.26"
    relaxed = DMARCResult("temperror", "sender.test", "none", "none", "v=DMARC1; p=none")
    assert label(policy().judge(Results(dmarc=relaxed), MESSAGE)[0]) == "none"


def test_a_trusted_arc_seal_excuses_and_a_broken_one_is_550_5_7_29():
    sealed = (ARCSet(1, "forwarder.test", "mx.forwarder.test; dmarc=pass header.from=sender.test"),)
    trusting = policy(trusted_arc_sealers=("forwarder.test",))
    good = Results(dmarc=failing(), arc=ARCResult("pass", sets=sealed))
    assert trusting.judge(good, MESSAGE) == (None, False)
    broken = Results(dmarc=failing(), arc=ARCResult("fail", "body hash did not verify", sealed))
    assert label(trusting.judge(broken, MESSAGE)[0]) == "550 5.7.29"
    # Without trust in that sealer, the chain is not relied on: plain DMARC.
    assert label(policy().judge(broken, MESSAGE)[0]) == "550 5.7.26"


def test_a_domain_that_requires_dkim():
    requiring = policy(dmarc="off", dkim_required_domains=("sender.test",))
    cases = [
        ([], "550 5.7.20"),
        ([DKIMResult("fail", "signature did not verify", "sender.test")], "550 5.7.20"),
        ([DKIMResult("policy", "rsa-sha1 is not acceptable", "sender.test")], "550 5.7.21"),
        ([DKIMResult("pass", "", "mailer.example")], "550 5.7.22"),
        ([DKIMResult("temperror", "timed out after 10 s", "sender.test")], "451 4.7.20"),
        ([DKIMResult("pass", "", "mail.sender.test")], "none"),  # relaxed: a subdomain aligns
    ]
    for signatures, expected in cases:
        assert label(requiring.judge(Results(dkim=signatures), MESSAGE)[0]) == expected, signatures
    reply = requiring.judge(Results(dkim=[DKIMResult("pass", "", "mailer.example")]), MESSAGE)[0]
    assert b"its passing signatures are by mailer.example" in reply.format()
