"""TLSA answers read in wire form (mailroom.tlsa): records dnspython refuses are kept for the
DANE code to judge, CNAMEs are followed, a truncated answer is asked again over TCP, a server
that fails is passed over; and dnspython itself is left as it was (its TLSA check still on).

The answers here are made with dnspython and served by a small responder on loopback, since a
real resolver cannot be made to serve a record under three octets or to truncate on demand; the
DANE tests (test_dane.py) read real Unbound answers the same way."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

import mailroom.resolver  # noqa: F401  (importing it must change nothing in dnspython)
from mailroom.delivery import dane
from mailroom.tlsa import TLSAQueryError, query_tlsa, read_answer

NAME = "_25._tcp.mx.example.test."
GOOD = bytes([3, 1, 1]) + b"\x11" * 32
SHORT_DIGEST = bytes([3, 1, 1]) + b"\x22" * 20
TOO_SHORT = bytes([3, 1])


def _tlsa(*rdatas: bytes, owner: str = NAME) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(dns.name.from_text(owner), dns.rdataclass.IN, dns.rdatatype.TLSA)
    for data in rdatas:
        # GenericRdata: raw rdata, as a server may send it, without dnspython's checks.
        rrset.add(dns.rdata.GenericRdata(dns.rdataclass.IN, dns.rdatatype.TLSA, data), 300)
    return rrset


def _answer(
    query: dns.message.Message, *rrsets: dns.rrset.RRset, ad: bool = True, rcode: int = 0
) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    if ad:
        response.flags |= dns.flags.AD
    response.answer.extend(rrsets)
    return response


def _query(name: str = NAME) -> dns.message.Message:
    return dns.message.make_query(name, dns.rdatatype.TLSA)


def test_records_dnspython_refuses_are_read_and_judged_unusable() -> None:
    query = _query()
    wire = _answer(query, _tlsa(GOOD, SHORT_DIGEST, TOO_SHORT)).to_wire()
    # dnspython refuses the whole answer (its check is still on: nothing was switched off).
    with pytest.raises(dns.exception.FormError):
        dns.message.from_wire(wire)
    answer, truncated = read_answer(wire, query.id, dns.name.from_text(NAME))
    assert not truncated and answer.authenticated and answer.rcode == dns.rcode.NOERROR
    # An RRset is a set: find each record by its data.
    by_data = {r.data[:1]: r for r in answer.records if not r.malformed}
    good, short = by_data[b"\x11"], by_data[b"\x22"]
    [broken] = [r for r in answer.records if r.malformed]
    assert (good.usage, good.selector, good.mtype, good.data) == (3, 1, 1, b"\x11" * 32)
    assert dane.unusable_reason(good) is None
    assert dane.unusable_reason(short) == "a sha256 digest of 20 octets (32 expected)"
    assert broken.malformed and dane.unusable_reason(broken) == broken.malformed
    assert dane.record_text(broken) == "\\# 2 0301"
    assert dane.usable_records(answer.records) == [good]


def test_a_cname_is_followed_and_other_names_ignored() -> None:
    query = _query()
    cname = dns.rrset.from_text(NAME, 300, "IN", "CNAME", "tlsa.example.net.")
    wire = _answer(
        query,
        cname,
        _tlsa(GOOD, owner="tlsa.example.net."),
        _tlsa(SHORT_DIGEST, owner="elsewhere.example.net."),
    ).to_wire()
    answer, _ = read_answer(wire, query.id, dns.name.from_text(NAME))
    assert [r.data for r in answer.records] == [GOOD[3:]]


def test_an_answer_to_another_query_is_refused() -> None:
    query = _query()
    wire = _answer(query, _tlsa(GOOD)).to_wire()
    with pytest.raises(dns.exception.FormError):
        read_answer(wire, (query.id + 1) % 65536, dns.name.from_text(NAME))


Responder = Callable[[dns.message.Message, bool], dns.message.Message | None]


@contextlib.asynccontextmanager
async def responder(answer: Responder) -> AsyncIterator[tuple[str, int]]:
    """A DNS server on 127.0.0.1 (UDP and TCP on one port) answering with ``answer(query,
    over_tcp)``; None: no answer."""
    loop = asyncio.get_running_loop()
    udp, tcp = await _udp_and_tcp_on_one_port()
    port = udp.getsockname()[1]

    async def serve_udp() -> None:
        while True:
            data, peer = await loop.sock_recvfrom(udp, 65535)
            reply = answer(dns.message.from_wire(data), False)
            if reply is not None:
                await loop.sock_sendto(udp, reply.to_wire(), peer)

    async def serve_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int.from_bytes(await reader.readexactly(2), "big")
        reply = answer(dns.message.from_wire(await reader.readexactly(size)), True)
        if reply is not None:
            wire = reply.to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
        writer.close()

    tcp_server = await asyncio.start_server(serve_tcp, sock=tcp)
    task = asyncio.ensure_future(serve_udp())
    try:
        yield ("127.0.0.1", port)
    finally:
        task.cancel()
        tcp_server.close()
        udp.close()


async def _udp_and_tcp_on_one_port() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same free port of 127.0.0.1. The port the system
    picks for one may be taken for the other by another test running at the same time: then
    another port is tried."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(udp.getsockname())
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.setblocking(False)
        return udp, tcp
    raise OSError("no port free for both UDP and TCP on 127.0.0.1")


def test_a_truncated_answer_is_asked_again_over_tcp() -> None:
    asked: list[str] = []

    def answer(query: dns.message.Message, over_tcp: bool) -> dns.message.Message:
        asked.append("tcp" if over_tcp else "udp")
        if not over_tcp:
            response = _answer(query)
            response.flags |= dns.flags.TC
            return response
        return _answer(query, _tlsa(GOOD, SHORT_DIGEST))

    async def main() -> None:
        async with responder(answer) as server:
            found = await query_tlsa(NAME, [server], timeout=10)
        assert sorted(len(r.data) for r in found.records) == [20, 32] and found.authenticated

    asyncio.run(main())
    assert asked == ["udp", "tcp"]


def test_a_failing_server_is_passed_over_and_all_failing_raises() -> None:
    def servfail(query: dns.message.Message, over_tcp: bool) -> dns.message.Message:
        return _answer(query, ad=False, rcode=dns.rcode.SERVFAIL)

    def nxdomain(query: dns.message.Message, over_tcp: bool) -> dns.message.Message:
        return _answer(query, rcode=dns.rcode.NXDOMAIN)

    async def main() -> None:
        async with responder(servfail) as bad, responder(nxdomain) as good:
            found = await query_tlsa(NAME, [bad, good], timeout=10)
            assert found.rcode == dns.rcode.NXDOMAIN and found.records == ()
            assert found.authenticated  # a validated denial
            with pytest.raises(TLSAQueryError, match="SERVFAIL"):
                await query_tlsa(NAME, [bad], timeout=10)
        async with responder(lambda query, over_tcp: None) as silent:
            with pytest.raises(TLSAQueryError, match="TimeoutError"):
                await query_tlsa(NAME, [silent], timeout=0.5)

    asyncio.run(main())
