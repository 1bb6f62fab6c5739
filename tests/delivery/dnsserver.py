"""A tiny authoritative DNS server for tests: UDP on 127.0.0.1, answers parsed and built with
dnspython, records given as zone-file text. Names it does not know are NXDOMAIN; names listed in
``servfail`` answer SERVFAIL (a temporary failure), as do the (name, type) pairs of
``servfail_types``; a known name without records of the asked
type answers NOERROR with no records (so a domain with only A records has an implicit MX).
``fail_all`` answers SERVFAIL to every question: :func:`dns_that_cannot_answer`.

    with DNSServer({"example.test": {"MX": ["10 mx.example.test."]},
                    "mx.example.test": {"A": ["127.0.0.1"]}}) as dns:
        resolver = Resolver([dns.address])
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from types import TracebackType

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["DNSServer", "dns_that_cannot_answer"]


class DNSServer:
    def __init__(
        self,
        records: dict[str, dict[str, list[str]]] | None = None,
        *,
        servfail: set[str] | None = None,
        servfail_types: set[tuple[str, str]] | None = None,
        fail_all: bool = False,
    ) -> None:
        self.records: dict[str, dict[str, list[str]]] = {}
        for name, types in (records or {}).items():
            self.set(name, types)
        self.servfail = {self._key(n) for n in servfail or ()}
        # (name, type) pairs answered SERVFAIL, the name's other types answered as usual.
        self.servfail_types = {(self._key(n), t.upper()) for n, t in servfail_types or ()}
        self.fail_all = fail_all
        self.queries: Counter[tuple[str, str]] = Counter()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)  # so that stop() is noticed: close() does not wake recvfrom
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)
        self._running = False

    @staticmethod
    def _key(name: str) -> str:
        return name.lower().rstrip(".") + "."

    def set(self, name: str, types: dict[str, list[str]]) -> None:
        self.records[self._key(name)] = {t.upper(): list(v) for t, v in types.items()}

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> DNSServer:
        self._running = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> DNSServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        while self._running:
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                answer = self.answer(data)
            except Exception:  # a query we cannot parse: no answer, as a real server might
                continue
            try:
                self._sock.sendto(answer, peer)
            except OSError:
                return

    def answer(self, data: bytes) -> bytes:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        if self.fail_all or name in self.servfail or (name, rdtype) in self.servfail_types:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            values = self.records[name].get(rdtype, [])
            if values:
                response.answer.append(
                    dns.rrset.from_text_list(
                        question.name, 60, dns.rdataclass.IN, question.rdtype, values
                    )
                )
        return response.to_wire()


_cannot_answer: DNSServer | None = None


def dns_that_cannot_answer() -> str:
    """The address of a DNS server that answers SERVFAIL ("try again later") to every
    question, started once for the test process: what tests with no DNS of their own put in
    ``dns_servers``. A closed port says the same, but slowly: dnspython's unconnected UDP
    socket never sees the ICMP refusal, so each lookup waited its whole timeout (5 s)."""
    global _cannot_answer
    if _cannot_answer is None:
        _cannot_answer = DNSServer(fail_all=True).start()
    return _cannot_answer.address
