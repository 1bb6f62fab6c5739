"""TLSA records (RFC 6698) asked for, and read, in wire form.

dnspython reads a TLSA record whose digest is not as long as its matching type says as a
malformed message and refuses the whole answer (a FormError, retried until the lookup times
out). For an SMTP client such a record is only unusable, and the other records of its RRset
still count (RFC 7672 §2.2). Rather than switch off dnspython's check for the whole process,
this module sends the question itself (a message dnspython builds, the AD bit asked for, EDNS0)
and reads the answer section's records as raw rdata, which for TLSA is three octets and the
rest: usage, selector, matching type, and the association data whatever its length. The DANE
code (:mod:`mailroom.delivery.dane`) judges them; a record too short to hold its three octets is
kept as malformed (unusable).

The answer's owner may be reached through CNAMEs (RFC 7671 §7): the records taken are those of
the last name of the chain in the answer section. UDP first, TCP when the answer is truncated;
the servers are asked in turn until one answers NOERROR or NXDOMAIN.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.wire

__all__ = ["TLSAAnswer", "TLSALookup", "TLSAQueryError", "TLSARecordData", "query_tlsa"]

EDNS_PAYLOAD = 1232  # octets of a UDP answer asked for (the DNS flag day 2020 value)
MAX_CNAMES = 8  # CNAMEs followed in one answer section


class TLSAQueryError(Exception):
    """No server gave an answer (timeouts, SERVFAIL: a validating resolver's bogus)."""


@dataclass(frozen=True, slots=True)
class TLSARecordData:
    """One TLSA record as received (RFC 6698 §2.1): any values, checked by the DANE code."""

    usage: int
    selector: int
    mtype: int
    data: bytes
    malformed: str = ""  # why the rdata could not be read as a TLSA record (then unusable)


@dataclass(frozen=True, slots=True)
class TLSALookup:
    """The TLSA RRset of ``_PORT._tcp.HOST`` (RFC 7672 §2.2): ``secure`` when a trusted
    validating resolver set the AD bit on the answer (records or their denial)."""

    name: str
    records: tuple[TLSARecordData, ...]
    secure: bool


@dataclass(frozen=True, slots=True)
class TLSAAnswer:
    """A server's answer: NOERROR (records, perhaps none) or NXDOMAIN, and its AD bit."""

    rcode: int
    authenticated: bool
    records: tuple[TLSARecordData, ...]


def record_of(rdata: bytes) -> TLSARecordData:
    """A TLSA record from its rdata (RFC 6698 §2.1)."""
    if len(rdata) < 3:
        return TLSARecordData(
            -1, -1, -1, rdata, malformed=f"rdata of {len(rdata)} octets (at least 3)"
        )
    return TLSARecordData(rdata[0], rdata[1], rdata[2], rdata[3:])


def read_answer(wire: bytes, query_id: int, qname: dns.name.Name) -> tuple[TLSAAnswer, bool]:
    """The answer in ``wire`` to the query ``query_id`` for ``qname``, and whether it was
    truncated. Raises dns.exception.FormError (or another DNSException) for a message that is
    not one."""
    parser = dns.wire.Parser(wire)
    ident, flags, questions, answers, _, _ = parser.get_struct("!HHHHHH")
    if ident != query_id or not flags & dns.flags.QR:
        raise dns.exception.FormError("not the answer to this query")  # type: ignore[no-untyped-call]
    for _ in range(questions):
        dns.name.from_wire_parser(parser)
        parser.get_struct("!HH")
    found: list[tuple[dns.name.Name, int, dns.name.Name | bytes]] = []
    if not flags & dns.flags.TC:
        for _ in range(answers):
            owner = dns.name.from_wire_parser(parser)
            rdtype, _, _, length = parser.get_struct("!HHIH")
            with parser.restrict_to(length):
                if rdtype == dns.rdatatype.CNAME:
                    found.append((owner, rdtype, dns.name.from_wire_parser(parser)))
                else:
                    found.append((owner, rdtype, parser.get_remaining()))
    target = qname
    for _ in range(MAX_CNAMES):
        alias = next((v for n, t, v in found if t == dns.rdatatype.CNAME and n == target), None)
        if not isinstance(alias, dns.name.Name):
            break
        target = alias
    records = tuple(
        record_of(value)
        for owner, rdtype, value in found
        if rdtype == dns.rdatatype.TLSA and owner == target and isinstance(value, bytes)
    )
    answer = TLSAAnswer(flags & 0x000F, bool(flags & dns.flags.AD), records)
    return answer, bool(flags & dns.flags.TC)


async def _udp(wire: bytes, server: tuple[str, int], timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(server)  # a connected socket hears only that server
        async with asyncio.timeout(timeout):
            await loop.sock_sendall(sock, wire)
            while True:
                data = await loop.sock_recv(sock, 65535)
                if data[:2] == wire[:2]:  # the query's id: not a stray earlier answer
                    return data


async def _tcp(wire: bytes, server: tuple[str, int], timeout: float) -> bytes:
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(*server)
        try:
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            return await reader.readexactly(size)
        finally:
            writer.close()


async def query_tlsa(
    name: str, servers: Sequence[tuple[str, int]], *, timeout: float
) -> TLSAAnswer:
    """Ask ``servers`` in turn for the TLSA records of ``name`` within ``timeout`` seconds in
    all; raises :class:`TLSAQueryError` when none answers NOERROR or NXDOMAIN."""
    qname = dns.name.from_text(name)
    query = dns.message.make_query(qname, dns.rdatatype.TLSA, use_edns=0, payload=EDNS_PAYLOAD)
    query.flags |= dns.flags.AD  # RFC 6840 §5.7: the AD bit in the answer says "validated"
    wire = query.to_wire()
    deadline = time.monotonic() + timeout
    problems = []
    for index, server in enumerate(servers):
        # Each server gets an equal share of what is left of the time.
        share = (deadline - time.monotonic()) / (len(servers) - index)
        if share <= 0:
            break
        try:
            answer, truncated = read_answer(await _udp(wire, server, share), query.id, qname)
            if truncated:
                left = deadline - time.monotonic()
                answer, _ = read_answer(await _tcp(wire, server, left), query.id, qname)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            problems.append(f"{server[0]}:{server[1]}: {type(exc).__name__} {exc}".strip())
            continue
        except dns.exception.DNSException as exc:
            problems.append(f"{server[0]}:{server[1]}: a malformed answer ({exc})")
            continue
        if answer.rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return answer
        rcode = dns.rcode.Rcode.make(answer.rcode)
        problems.append(f"{server[0]}:{server[1]}: {dns.rcode.to_text(rcode)}")
    raise TLSAQueryError("; ".join(problems) or "timed out")
