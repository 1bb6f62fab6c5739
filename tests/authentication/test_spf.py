"""SPF (RFC 7208) against real DNS: each case publishes its records in Knot, then mailroom's
check_host() runs through Unbound, and so does pyspf (the reference implementation, an
independent second opinion) on the same records; both must give the expected result."""

from __future__ import annotations

import asyncio
import time

import dns.resolver
import pytest
import spf as pyspf

from mailroom.authentication.spf import (
    SPFLimits,
    _Evaluation,
    _Stop,
    check_host,
    check_sender,
    parse_record,
)
from mailroom.resolver import Resolver
from tests.authentication.conftest import run
from tests.dnspeers import silent_dns

D = "spf.example.org"  # each case's records live under <case>.spf.example.org


def _case(knot, name: str, records: dict[str, dict[str, list[str]]]) -> str:
    base = f"{name}.{D}"
    for label, types in records.items():
        knot.set(f"{label}.{base}" if label != "@" else base, types)
    return base


@pytest.fixture
def pyspf_resolver(unbound):
    """pyspf asks dnspython's default resolver: point it at the test's Unbound."""
    saved = dns.resolver.default_resolver
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = unbound.port
    dns.resolver.default_resolver = resolver
    yield
    dns.resolver.default_resolver = saved


CASES = [
    # name, client ip, records (label -> types), expected result
    ("ip4pass", "192.0.2.10", {"@": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]}}, "pass"),
    ("ip4fail", "198.51.100.1", {"@": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]}}, "fail"),
    ("softfail", "198.51.100.1", {"@": {"TXT": ["v=spf1 ~all"]}}, "softfail"),
    ("neutral", "198.51.100.1", {"@": {"TXT": ["v=spf1 ?all"]}}, "neutral"),
    ("default", "198.51.100.1", {"@": {"TXT": ["v=spf1 ip4:192.0.2.1"]}}, "neutral"),
    ("norecord", "192.0.2.1", {"@": {"TXT": ["some other text"]}}, "none"),
    ("two", "192.0.2.1", {"@": {"TXT": ["v=spf1 -all", "v=spf1 +all"]}}, "permerror"),
    ("version", "192.0.2.1", {"@": {"TXT": ["v=spf10 -all"]}}, "none"),
    ("ip6", "2001:db8::1", {"@": {"TXT": ["v=spf1 ip6:2001:db8::/32 -all"]}}, "pass"),
    ("amech", "192.0.2.7", {"@": {"TXT": ["v=spf1 a -all"], "A": ["192.0.2.7"]}}, "pass"),
    (
        "acidr",
        "192.0.2.99",
        {"@": {"TXT": ["v=spf1 a:h.acidr.spf.example.org/24 -all"]}, "h": {"A": ["192.0.2.1"]}},
        "pass",
    ),
    (
        "mxmech",
        "192.0.2.25",
        {
            "@": {"TXT": ["v=spf1 mx -all"], "MX": ["10 mail.mxmech.spf.example.org."]},
            "mail": {"A": ["192.0.2.25"]},
        },
        "pass",
    ),
    (
        "include",
        "192.0.2.5",
        {
            "@": {"TXT": ["v=spf1 include:i.include.spf.example.org -all"]},
            "i": {"TXT": ["v=spf1 ip4:192.0.2.5 -all"]},
        },
        "pass",
    ),
    (
        "includefail",
        "192.0.2.6",
        {
            "@": {"TXT": ["v=spf1 include:i.includefail.spf.example.org ~all"]},
            "i": {"TXT": ["v=spf1 ip4:192.0.2.5 -all"]},
        },
        "softfail",
    ),
    (
        "includenone",
        "192.0.2.6",
        {"@": {"TXT": ["v=spf1 include:nothing.includenone.spf.example.org -all"]}},
        "permerror",
    ),
    (
        "redirect",
        "192.0.2.8",
        {
            "@": {"TXT": ["v=spf1 redirect=r.redirect.spf.example.org"]},
            "r": {"TXT": ["v=spf1 ip4:192.0.2.8 -all"]},
        },
        "pass",
    ),
    (
        "redirectnone",
        "192.0.2.8",
        {"@": {"TXT": ["v=spf1 redirect=r.redirectnone.spf.example.org"]}},
        "permerror",
    ),
    (
        "allbeatsredirect",
        "192.0.2.8",
        {
            "@": {"TXT": ["v=spf1 -all redirect=r.allbeatsredirect.spf.example.org"]},
            "r": {"TXT": ["v=spf1 +all"]},
        },
        "fail",
    ),
    (
        "exists",
        "192.0.2.3",
        {
            "@": {"TXT": ["v=spf1 exists:%{ir}.e.exists.spf.example.org -all"]},
            "3.2.0.192.e": {"A": ["127.0.0.2"]},
        },
        "pass",
    ),
    (
        "macrolocal",
        "192.0.2.3",
        {
            "@": {"TXT": ["v=spf1 exists:%{l}.u.macrolocal.spf.example.org -all"]},
            "someone.u": {"A": ["127.0.0.2"]},
        },
        "pass",
    ),
    (
        "badmacro",
        "192.0.2.3",
        {"@": {"TXT": ["v=spf1 exists:%(ir).x.example.org -all"]}},
        "permerror",
    ),
    ("unknownmech", "192.0.2.3", {"@": {"TXT": ["v=spf1 foo:bar -all"]}}, "permerror"),
    ("unknownmod", "192.0.2.3", {"@": {"TXT": ["v=spf1 moo=cow -all"]}}, "fail"),
    (
        "tworedirects",
        "192.0.2.3",
        {"@": {"TXT": ["v=spf1 redirect=a.example.org redirect=b.example.org"]}},
        "permerror",
    ),
    ("badcidr", "192.0.2.3", {"@": {"TXT": ["v=spf1 ip4:192.0.2.0/33 -all"]}}, "permerror"),
    ("syntaxlate", "192.0.2.3", {"@": {"TXT": ["v=spf1 +all ip4:nonsense"]}}, "permerror"),
    ("nodomainend", "192.0.2.3", {"@": {"TXT": ["v=spf1 include:foo -all"]}}, "permerror"),
    (
        "ptr",
        "127.0.0.1",
        {"@": {"TXT": ["v=spf1 ptr:example.test -all"]}},
        "pass",
    ),
    (
        "ptrunconfirmed",
        "127.0.0.2",
        {"@": {"TXT": ["v=spf1 ptr:example.org -all"]}},
        "fail",
    ),
    (
        "voids",
        "192.0.2.3",
        {
            "@": {
                "TXT": [
                    "v=spf1 a:n1.voids.spf.example.org a:n2.voids.spf.example.org a:n3.voids.spf.example.org +all"
                ]
            }
        },
        "permerror",
    ),
    (
        "twovoids",
        "192.0.2.3",
        {"@": {"TXT": ["v=spf1 a:n1.twovoids.spf.example.org a:n2.twovoids.spf.example.org +all"]}},
        "pass",
    ),
    (
        "mxlimit",
        "192.0.2.3",
        {"@": {"TXT": ["v=spf1 mx -all"], "MX": [f"{i} m{i}.example.org." for i in range(11)]}},
        "permerror",
    ),
    (
        "loop",
        "192.0.2.3",
        {"@": {"TXT": ["v=spf1 include:loop.spf.example.org -all"]}},
        "permerror",
    ),
    (
        "chain",
        "192.0.2.3",
        # 11 includes deep: past the 10 DNS-querying terms
        {
            **{
                f"c{i}": {"TXT": [f"v=spf1 include:c{i + 1}.chain.spf.example.org -all"]}
                for i in range(11)
            },
            "c11": {"TXT": ["v=spf1 +all"]},
            "@": {"TXT": ["v=spf1 include:c0.chain.spf.example.org -all"]},
        },
        "permerror",
    ),
    (
        "tenterms",
        "192.0.2.3",
        {
            **{f"t{i}": {"TXT": ["v=spf1 -all"]} for i in range(9)},
            "@": {
                "TXT": [
                    " ".join(
                        ["v=spf1"]
                        + [f"include:t{i}.tenterms.spf.example.org" for i in range(9)]
                        + ["a:ok.tenterms.spf.example.org", "-all"]
                    )
                ]
            },
            "ok": {"A": ["192.0.2.3"]},
        },
        "pass",
    ),
]


@pytest.mark.parametrize("name, ip, records, expected", CASES, ids=[c[0] for c in CASES])
def test_check_host_against_real_dns(knot, resolver, pyspf_resolver, name, ip, records, expected):
    domain = _case(knot, name, records)
    sender = f"someone@{domain}"
    result = run(check_host(ip, domain, sender, helo="client.example", lookup=resolver.lookup))
    assert result.result == expected, result
    # pyspf, on the same DNS, agrees
    theirs, explanation = pyspf.check2(ip, sender, "client.example", querytime=10)
    assert theirs == expected, (theirs, explanation)
    assert result.lookups  # the transcript shows the DNS answers used


def test_the_helo_identity_for_the_null_sender(knot, resolver):
    knot.set("helo.spf.example.org", {"TXT": ["v=spf1 ip4:192.0.2.44 -all"]})
    result = run(check_sender("192.0.2.44", "", "helo.spf.example.org", lookup=resolver.lookup))
    assert (result.result, result.identity, result.sender) == (
        "pass",
        "helo",
        "postmaster@helo.spf.example.org",
    )


def test_an_explanation_on_fail(knot, resolver):
    knot.set("exp.spf.example.org", {"TXT": ["v=spf1 -all exp=why.exp.spf.example.org"]})
    knot.set("why.exp.spf.example.org", {"TXT": ["%{i} is not one of %{d}'s servers"]})
    result = run(
        check_host(
            "192.0.2.1", "exp.spf.example.org", "a@exp.spf.example.org", lookup=resolver.lookup
        )
    )
    assert result.result == "fail"
    assert result.explanation == "192.0.2.1 is not one of exp.spf.example.org's servers"


def test_a_64_kib_record_is_a_clear_result(knot, resolver):
    # One TXT record of 60,000 octets: over TCP, parsed whole, a result and no error.
    big = "v=spf1 " + " ".join(f"ip4:10.{i // 250}.{i % 250}.1" for i in range(4000)) + " -all"
    knot.set("huge.spf.example.org", {"TXT": [big[:64000]]})
    started = time.monotonic()
    result = run(
        check_host(
            "192.0.2.1", "huge.spf.example.org", "a@huge.spf.example.org", lookup=resolver.lookup
        )
    )
    assert result.result in ("fail", "permerror")
    assert time.monotonic() - started < 10


# The sender's DNS chooses the record: a domain-spec whose last label is 63,000 letters and a
# "!" took 35 s of the server's CPU to refuse (the top-label pattern tried every cut of the run
# before failing), with the interpreter lock held. Now it is refused at once.
@pytest.mark.timeout(15)  # a hang guard: it takes well under a second
def test_a_long_label_that_is_not_a_top_label_is_refused_at_once(knot, resolver):
    record = "v=spf1 a:x." + "a" * 63_000 + "! -all"
    knot.set("longlabel.spf.example.org", {"TXT": [record]})
    result = run(
        check_host(
            "192.0.2.1",
            "longlabel.spf.example.org",
            "a@longlabel.spf.example.org",
            lookup=resolver.lookup,
        )
    )
    assert result.result == "permerror"
    assert "does not end in a top label" in result.problem


def test_dns_that_never_answers_is_a_temperror():
    with silent_dns() as address:
        resolver = Resolver([address], timeout=0.5)
        result = run(
            check_host("192.0.2.1", "example.test", "a@example.test", lookup=resolver.lookup)
        )
    assert result.result == "temperror"
    assert "timed out" in result.problem


def test_malformed_domains_are_none(resolver):
    for domain in ("nodots", "a..b.example", "x" * 64 + ".example", ""):
        result = run(check_host("192.0.2.1", domain, f"a@{domain}", lookup=resolver.lookup))
        assert result.result == "none", domain


def test_the_void_limit_is_a_setting(knot, resolver):
    domain = _case(
        knot,
        "voidsetting",
        {"@": {"TXT": ["v=spf1 a:n1.x.example.org a:n2.x.example.org a:n3.x.example.org +all"]}},
    )
    result = run(
        check_host(
            "192.0.2.3",
            domain,
            f"a@{domain}",
            lookup=resolver.lookup,
            limits=SPFLimits(void_lookups=5),
        )
    )
    assert result.result == "pass"


# -- macros (RFC 7208 §7.4's examples) ------------------------------------------------------


@pytest.mark.parametrize(
    "macro, expansion",
    [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        ("%%%_%-", "% %20"),
        ("%{S}", "strong-bad%40email.example.com"),
    ],
)
def test_macro_expansion(macro, expansion):
    import ipaddress

    evaluation = _Evaluation(
        ipaddress.ip_address("192.0.2.3"),
        "strong-bad@email.example.com",
        "h",
        None,
        SPFLimits(),
        "r",  # type: ignore[arg-type]
    )
    assert asyncio.run(evaluation.expand(macro, "email.example.com")) == expansion


def test_ipv6_macro_expansion():
    import ipaddress

    evaluation = _Evaluation(
        ipaddress.ip_address("2001:db8::cb01"),
        "strong-bad@email.example.com",
        "h",
        None,
        SPFLimits(),
        "r",  # type: ignore[arg-type]
    )
    assert asyncio.run(evaluation.expand("%{ir}.%{v}._spf.%{d2}", "email.example.com")) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )


def test_prefix_length_of_unicode_digits_is_a_permerror() -> None:
    # str.isdigit is true of "²", which int refuses; a TXT record is read as UTF-8
    with pytest.raises(_Stop) as stop:
        parse_record("v=spf1 ip4:192.0.2.0/² -all")
    assert stop.value.result == "permerror"
