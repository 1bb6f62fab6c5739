"""Where mail for a domain goes, against a DNS server of the test's own on 127.0.0.1: static
routes, the smarthost, MX hosts by preference with their addresses, implicit MX, null MX,
NXDOMAIN, a temporary DNS failure, and an MX list that leads back to this host."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mailroom.delivery.routing import Destination, destination_for, plan
from mailroom.queue.settings import QueueSettings, RelayHost
from mailroom.resolver import Resolver
from tests.delivery.dnsserver import DNSServer

RECORDS = {
    "example.test": {"MX": ["20 backup.example.test.", "10 mx1.example.test."]},
    "mx1.example.test": {"A": ["127.0.0.2"]},
    "backup.example.test": {"A": ["127.0.0.3"], "AAAA": ["::1"]},
    "implicit.test": {"A": ["127.0.0.4"]},
    "nomail.test": {"MX": ["0 ."]},
    "empty.test": {"TXT": ['"nothing here"']},
    "dangling.test": {"MX": ["10 gone.dangling.test."]},
    "loop.test": {"MX": ["10 mx.a.test.", "20 mx1.example.test."]},
    "self.test": {"MX": ["10 mx.a.test."]},
    "numeric.test": {"MX": ["10 127.0.0.5.", "20 mx1.example.test."]},
    "onlynumeric.test": {"MX": ["10 127.0.0.5."]},
    "halfbroken.test": {"MX": ["10 mx.halfbroken.test."]},
    "mx.halfbroken.test": {"A": ["127.0.0.6"], "AAAA": ["::1"]},
    "v6broken.test": {"MX": ["10 mx.v6broken.test."]},
    "mx.v6broken.test": {"AAAA": ["::1"]},
}


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    failing = {("mx.halfbroken.test", "AAAA"), ("mx.v6broken.test", "A")}
    with DNSServer(RECORDS, servfail={"broken.test"}, servfail_types=failing) as server:
        yield server


def run_plan(dns: DNSServer, domain: str, settings: QueueSettings | None = None):  # type: ignore[no-untyped-def]
    settings = settings or QueueSettings()
    resolver = Resolver([dns.address], timeout=2.0)
    destination = destination_for(domain, settings)
    return asyncio.run(plan(destination, domain, resolver, mx_port=2525, hostname="mx.a.test"))


def test_mx_hosts_in_preference_order_with_every_address(dns: DNSServer) -> None:
    result = run_plan(dns, "example.test")
    assert result.failure is None
    assert [(h.name, h.address, h.port) for h in result.hops] == [
        ("mx1.example.test", "127.0.0.2", 2525),
        ("backup.example.test", "127.0.0.3", 2525),
        ("backup.example.test", "::1", 2525),
    ]


def test_implicit_mx(dns: DNSServer) -> None:
    result = run_plan(dns, "implicit.test")
    assert [(h.name, h.address) for h in result.hops] == [("implicit.test", "127.0.0.4")]


def test_null_mx_bounces_with_5_1_10(dns: DNSServer) -> None:
    failure = run_plan(dns, "nomail.test").failure
    assert failure is not None
    assert (failure.action, failure.status, failure.reason) == ("bounce", "5.1.10", "notaccept")


def test_nxdomain_bounces_with_5_1_2(dns: DNSServer) -> None:
    failure = run_plan(dns, "nowhere.test").failure
    assert failure is not None
    assert (failure.action, failure.status, failure.reason) == ("bounce", "5.1.2", "hostunknown")


def test_no_mx_and_no_address_bounces(dns: DNSServer) -> None:
    failure = run_plan(dns, "empty.test").failure
    assert failure is not None and failure.action == "bounce"


def test_dns_failure_is_temporary(dns: DNSServer) -> None:
    failure = run_plan(dns, "broken.test").failure
    assert failure is not None
    assert (failure.action, failure.status) == ("retry", "4.4.3")


def test_an_address_type_that_fails_does_not_hide_the_other(dns: DNSServer) -> None:
    # The MX host's name server fails AAAA questions (SERVFAIL); its A record is the way in,
    # as Postfix finds it. Before, the whole host counted as a DNS failure: 4.4.3 for days.
    result = run_plan(dns, "halfbroken.test")
    assert result.failure is None
    assert [(h.name, h.address) for h in result.hops] == [("mx.halfbroken.test", "127.0.0.6")]
    # The other way round: A fails, AAAA answers.
    result = run_plan(dns, "v6broken.test")
    assert [(h.name, h.address) for h in result.hops] == [("mx.v6broken.test", "::1")]


def test_mx_host_without_address_is_temporary(dns: DNSServer) -> None:
    failure = run_plan(dns, "dangling.test").failure
    assert failure is not None and failure.action == "retry"


def test_mx_naming_an_address_is_not_used(dns: DNSServer) -> None:
    # RFC 5321 §5.1: an MX record's data is a host name to look up, not an address. Postfix
    # and Exim skip such a record; the next MX host takes the mail.
    result = run_plan(dns, "numeric.test")
    assert [(h.name, h.address) for h in result.hops] == [("mx1.example.test", "127.0.0.2")]
    failure = run_plan(dns, "onlynumeric.test").failure
    assert failure is not None
    assert (failure.action, failure.status) == ("retry", "4.4.4")
    assert failure.diagnostic == (
        "no address for the MX hosts of onlynumeric.test: 127.0.0.5 (an MX record names an "
        "address, not a host: 127.0.0.5)"
    )
    assert dns.queries[("127.0.0.5.", "A")] == 0


def test_mx_list_with_this_host_keeps_only_better_hosts(dns: DNSServer) -> None:
    # This host (mx.a.test) is the best MX: delivering would loop (RFC 5321 §5.1).
    failure = run_plan(dns, "self.test").failure
    assert failure is not None
    assert (failure.action, failure.status) == ("bounce", "5.4.6")
    # Hosts less preferred than this one are dropped; here that leaves none either.
    assert run_plan(dns, "loop.test").failure is not None


def test_static_route_and_smarthost_skip_dns(dns: DNSServer) -> None:
    route = RelayHost.parse("127.0.0.9:2526")
    smarthost = RelayHost.parse({"address": "[::1]:587", "tls": "starttls"})
    settings = QueueSettings(routes={"example.test": route}, smarthost=smarthost)
    assert destination_for("EXAMPLE.test", settings) == Destination("relay 127.0.0.9:2526", route)
    assert destination_for("other.test", settings) == Destination("relay [::1]:587", smarthost)
    assert destination_for("other.test", QueueSettings()) == Destination("other.test")
    result = run_plan(dns, "example.test", settings)
    assert [(h.address, h.port) for h in result.hops] == [("127.0.0.9", 2526)]
    assert run_plan(dns, "nowhere.test", settings).hops[0].port == 587
    assert not any(name == "example.test." for name, _ in dns.queries)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("127.0.0.1:24", ("smtp", "127.0.0.1", 24, None)),  # a route is SMTP unless it says
        ("lmtp://127.0.0.1:2424", ("lmtp", "127.0.0.1", 2424, None)),
        ("lmtp://store.example.test", ("lmtp", "store.example.test", 24, None)),
        ("LMTP://[::1]:2424", ("lmtp", "::1", 2424, None)),
        ("lmtp://[::1]", ("lmtp", "::1", 24, None)),
        ("smtp://127.0.0.1", ("smtp", "127.0.0.1", 25, None)),
        ({"address": "10.0.0.7:24", "protocol": "lmtp"}, ("lmtp", "10.0.0.7", 24, None)),
        (
            {"address": "unix:/var/run/dovecot/lmtp", "protocol": "lmtp"},
            ("lmtp", "localhost", 0, "/var/run/dovecot/lmtp"),
        ),
        ("lmtp:///run/dovecot/lmtp", ("lmtp", "localhost", 0, "/run/dovecot/lmtp")),
    ],
)
def test_relay_host_speaks_smtp_or_lmtp(value: object, expected: tuple[object, ...]) -> None:
    host = RelayHost.parse(value)  # type: ignore[arg-type]
    assert (host.protocol, host.host, host.port, host.socket) == expected
    if host.socket is not None:
        assert host.tls == "none"


def test_lmtp_is_the_default_where_the_caller_says_so() -> None:
    host = RelayHost.parse("127.0.0.1", protocol="lmtp")
    assert (host.protocol, host.port) == ("lmtp", 24)
    assert RelayHost.parse("/run/lmtp", protocol="lmtp").socket == "/run/lmtp"


@pytest.mark.parametrize(
    "value, error",
    [
        ("lmtp://127.0.0.1:25", "port 25"),
        ({"address": "127.0.0.1", "protocol": "lmtp", "port": 24}, "unknown setting 'port'"),
        ({"address": "lmtp://127.0.0.1", "protocol": "smtp"}, "the address says lmtp"),
        ({"address": "127.0.0.1", "protocol": "uucp"}, "protocol is smtp or lmtp"),
        ("http://127.0.0.1", "not a protocol"),
        ({"address": "unix:/run/lmtp", "tls": "starttls"}, "no TLS"),
        ("unix:run/lmtp", "absolute path"),
    ],
)
def test_relay_host_errors(value: object, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        RelayHost.parse(value)  # type: ignore[arg-type]


def test_local_domains_go_to_the_lmtp_server(dns: DNSServer) -> None:
    store = RelayHost.parse("127.0.0.7:2424", protocol="lmtp")
    smarthost = RelayHost.parse("127.0.0.9:2526")
    settings = QueueSettings(
        smarthost=smarthost, local_lmtp=store, local_domains=frozenset({"example.test"})
    )
    assert destination_for("Example.TEST", settings) == Destination("lmtp 127.0.0.7:2424", store)
    assert destination_for("other.test", settings) == Destination("relay 127.0.0.9:2526", smarthost)
    result = run_plan(dns, "example.test", settings)
    assert [(h.address, h.port) for h in result.hops] == [("127.0.0.7", 2424)]
    assert not dns.queries  # no DNS for a local domain


def test_a_unix_socket_is_one_hop_on_this_host(dns: DNSServer) -> None:
    store = RelayHost.parse("unix:/run/dovecot/lmtp", protocol="lmtp")
    settings = QueueSettings(local_lmtp=store, local_domains=frozenset({"example.test"}))
    destination = destination_for("example.test", settings)
    assert destination.key == "lmtp unix:/run/dovecot/lmtp"
    result = run_plan(dns, "example.test", settings)
    assert [(h.name, h.address, h.port) for h in result.hops] == [
        ("mx.a.test", "/run/dovecot/lmtp", 0)
    ]
