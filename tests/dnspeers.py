"""Real DNS servers on loopback for tests: Knot DNS (authoritative, optionally DNSSEC-signing)
and Unbound (a validating recursive resolver in front of it).

Email authentication (SPF, DKIM, DMARC, iprev) and transport security (DANE, MTA-STS) are
decisions over DNS answers, so their tests need a name server that behaves like the ones on the
Internet: TCP fallback for big TXT records, NXDOMAIN versus NODATA, wildcard rules, and DNSSEC
signatures that a validating resolver checks. Both daemons come from Debian (``knot``,
``unbound``; ``.ci/run`` installs them) and run as the test's own processes, in a temporary
directory, on free ports of 127.0.0.1::

    records = {
        "example.test": {"MX": ["10 mx.example.test."], "TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        "mx.example.test": {"A": ["127.0.0.1"]},
        "_25._tcp.mx.example.test": {"TLSA": ["3 1 1 " + digest]},
    }
    with Knot(records, zones=["example.test"], signed={"example.test"}) as knot:
        knot.address                      # "127.0.0.1:PORT": authoritative answers
        with Unbound(knot) as resolver:   # trusts knot's signed zones (AD bit set on them)
            resolver.address              # give this to mailroom as its DNS server
            knot.set("_dmarc.example.test", {"TXT": ["v=DMARC1; p=reject"]})  # live change

Values are zone-file text, except that TXT values are plain strings: they are split into
character-strings of at most 255 octets and quoted here (so a 64 KiB TXT record is one value).
A value that already starts with a double quote is used as written.

``silent_dns()`` is a UDP and TCP socket that reads queries and never answers: a name server
that is down or unreachable, for timeouts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

__all__ = ["DNSPeerError", "Knot", "Unbound", "free_port", "silent_dns"]

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"

Records = dict[str, dict[str, list[str]]]


class DNSPeerError(RuntimeError):
    """A DNS daemon did not start or did not take its configuration; the message has its log."""


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (DNS listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise DNSPeerError("no free port for both UDP and TCP")


def _absolute(name: str) -> str:
    return name.lower().rstrip(".") + "."


def _txt(value: str) -> str:
    if value.startswith('"'):
        return value
    data = value.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return " ".join(
        '"' + c.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks
    )


def _wait_for_answer(
    address: tuple[str, int],
    name: str,
    *,
    timeout: float,
    want_ad: bool = False,
    any_rcode: bool = False,
) -> None:
    """Until the server at ``address`` answers SOA of ``name`` (with the AD bit if asked; with
    any answer at all, SERVFAIL included, if ``any_rcode``)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        query = dns.message.make_query(name, dns.rdatatype.SOA, want_dnssec=want_ad)
        if want_ad:
            query.flags |= dns.flags.AD
        try:
            answer = dns.query.udp(query, address[0], port=address[1], timeout=0.5)
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.05)
            continue
        if any_rcode or (answer.answer and (not want_ad or answer.flags & dns.flags.AD)):
            return
        last = DNSPeerError(f"answer without {'AD' if want_ad else 'records'}: {answer}")
        time.sleep(0.05)
    raise DNSPeerError(f"no answer for {name} from {address}: {last}")


class _Daemon:
    """A daemon of the test's own: started in a directory, stopped (and its log kept) on exit."""

    name = "daemon"

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"mailroom-{self.name}-")
        self.dir = Path(self._tmp.name)
        os.chmod(self.dir, 0o755)  # daemons that drop privileges must still reach it
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, argv: list[str]) -> None:
        log = (self.dir / "log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise DNSPeerError(f"{self.name} exited with {self.process.returncode}:\n{self.log}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Knot(_Daemon):
    """Knot DNS serving ``records`` for ``zones`` (each record's name must fall in one zone; by
    default each name in ``records`` with an SOA-less apex becomes a zone of its own). Zones in
    ``signed`` are signed with ECDSA P-256 (algorithm 13) by knotd itself, with keys kept for the
    life of this object, so a trust anchor taken once stays good across :meth:`set`."""

    name = "knot"

    def __init__(
        self,
        records: Records | None = None,
        *,
        zones: Iterable[str] | None = None,
        signed: Iterable[str] = (),
        ttl: int = 1,
    ) -> None:
        super().__init__()
        self.records: Records = {}
        for name, types in (records or {}).items():
            self.records[_absolute(name)] = {t.upper(): list(v) for t, v in types.items()}
        self.zones = sorted({_absolute(z) for z in (zones or [])}, key=len, reverse=True)
        if not self.zones:
            raise ValueError("Knot needs zones=[...] (the apex of each zone it serves)")
        self.signed = {_absolute(z) for z in signed}
        unknown = self.signed - set(self.zones)
        if unknown:
            raise ValueError(f"signed zones not among zones: {sorted(unknown)}")
        self.ttl = ttl
        self._serial = int(time.time())
        self._lock = threading.Lock()

    def __enter__(self) -> Knot:
        return self.start()

    # -- zones -----------------------------------------------------------------------------------

    def zone_of(self, name: str) -> str:
        name = _absolute(name)
        for zone in self.zones:  # longest first
            if name == zone or name.endswith("." + zone):
                return zone
        raise ValueError(f"{name} is in none of the zones {self.zones}")

    def _zone_text(self, zone: str) -> str:
        lines = [
            f"$ORIGIN {zone}",
            f"$TTL {self.ttl}",
            f"@ SOA ns.{zone} hostmaster.{zone} {self._serial} 3600 600 86400 {self.ttl}",
            f"@ NS ns.{zone}",
        ]
        has_ns_address = False
        for name, types in sorted(self.records.items()):
            if self.zone_of(name) != zone:
                continue
            if name == f"ns.{zone}":
                has_ns_address = True
            for rtype, values in types.items():
                for value in values:
                    text = _txt(value) if rtype in ("TXT", "SPF") else value
                    lines.append(f"{name} {self.ttl} IN {rtype} {text}")
        if not has_ns_address:
            lines.append(f"ns.{zone} {self.ttl} IN A 127.0.0.1")
        return "\n".join(lines) + "\n"

    def _write_zones(self) -> None:
        zones_dir = self.dir / "zones"
        zones_dir.mkdir(exist_ok=True)
        for zone in self.zones:
            (zones_dir / f"{zone}zone").write_text(self._zone_text(zone))

    def _config(self) -> str:
        zones = "\n".join(
            f"  - domain: {zone}\n    file: {self.dir / 'zones' / (zone + 'zone')}\n"
            + ("    dnssec-signing: on\n    dnssec-policy: test\n" if zone in self.signed else "")
            for zone in self.zones
        )
        return f"""
server:
    rundir: {self.dir}
    listen: 127.0.0.1@{self.port}
    background-workers: 1
    udp-workers: 1
    tcp-workers: 1
database:
    storage: {self.dir / "db"}
log:
  - target: {self.dir / "log"}
    any: info
policy:
  - id: test
    algorithm: ecdsap256sha256
    ksk-lifetime: 0
    zsk-lifetime: 0
    rrsig-lifetime: 14d
    rrsig-refresh: 7d
template:
  - id: default
    storage: {self.dir / "zones"}
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
{zones}
"""

    def start(self) -> Knot:
        (self.dir / "db").mkdir(exist_ok=True)
        self._write_zones()
        (self.dir / "knot.conf").write_text(self._config())
        self._spawn([KNOTD, "-c", str(self.dir / "knot.conf")])
        try:
            for zone in self.zones:
                self._check_alive()
                _wait_for_answer(self.endpoint, zone, timeout=15)
            for zone in self.signed:
                self._wait_signed(zone)
        except BaseException:
            self.close()
            raise
        return self

    def _wait_signed(self, zone: str) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self._check_alive()
            if self.dnskeys(zone):
                return
            time.sleep(0.05)
        raise DNSPeerError(f"knot did not sign {zone}:\n{self.log}")

    def set(self, name: str, types: dict[str, list[str]]) -> None:
        """Replace the records of ``name`` (an empty dict removes the name) and reload."""
        key = _absolute(name)
        zone = self.zone_of(key)
        with self._lock:
            if types:
                self.records[key] = {t.upper(): list(v) for t, v in types.items()}
            else:
                self.records.pop(key, None)
            self._serial += 1
            (self.dir / "zones" / f"{zone}zone").write_text(self._zone_text(zone))
            self._knotc("zone-reload", zone)
            self._wait_serial(zone, self._serial)

    def _knotc(self, *args: str) -> None:
        result = subprocess.run(
            [KNOTC, "-c", str(self.dir / "knot.conf"), "-b", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise DNSPeerError(f"knotc {' '.join(args)}: {result.stdout}{result.stderr}")

    def _wait_serial(self, zone: str, serial: int) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            answer = self.query(zone, "SOA")
            for rrset in answer.answer:
                for rdata in rrset:
                    # A signed zone's serial may move past ours (knot bumps it when signing).
                    if rdata.rdtype == dns.rdatatype.SOA and rdata.serial >= serial:
                        return
            time.sleep(0.05)
        raise DNSPeerError(f"knot did not load serial {serial} of {zone}:\n{self.log}")

    # -- asking it -------------------------------------------------------------------------------

    def query(self, name: str, rtype: str, *, dnssec: bool = False) -> dns.message.Message:
        query = dns.message.make_query(name, rtype, want_dnssec=dnssec)
        return dns.query.tcp(query, "127.0.0.1", port=self.port, timeout=5)

    def dnskeys(self, zone: str) -> list[str]:
        """The zone's DNSKEY records, as zone-file text (empty until it is signed)."""
        answer = self.query(zone, "DNSKEY", dnssec=True)
        return [
            f"{rrset.name} DNSKEY {rdata.to_text()}"
            for rrset in answer.answer
            if rrset.rdtype == dns.rdatatype.DNSKEY
            for rdata in rrset
        ]

    def trust_anchors(self) -> list[str]:
        """One trust anchor per signed zone: its key-signing keys (flags 257)."""
        anchors = []
        for zone in self.signed:
            anchors += [key for key in self.dnskeys(zone) if " DNSKEY 257 " in key]
        return anchors


class Unbound(_Daemon):
    """Unbound as the resolver a mail server uses: recursion for the test's zones goes to the
    given Knot (stub zones), DNSSEC is validated with Knot's signed zones as trust anchors, and
    answers are not cached (tests change records while it runs)."""

    name = "unbound"

    def __init__(
        self, knot: Knot, *, validate: bool = True, anchors: Iterable[str] | None = None
    ) -> None:
        """``anchors`` replaces the trust anchors taken from Knot (to test a broken chain: a
        key that did not sign the zone makes its every answer bogus, SERVFAIL)."""
        super().__init__()
        self.knot = knot
        self.validate = validate
        self.anchors = list(anchors) if anchors is not None else None

    def __enter__(self) -> Unbound:
        return self.start()

    def _config(self) -> str:
        stubs = "\n".join(
            f'stub-zone:\n    name: "{zone}"\n    stub-addr: 127.0.0.1@{self.knot.port}\n'
            for zone in self.knot.zones
        )
        anchors = self.knot.trust_anchors() if self.anchors is None else self.anchors
        anchors = anchors if self.validate else []
        anchor_lines = "\n".join(f'    trust-anchor: "{a}"' for a in anchors)
        insecure = "\n".join(
            f'    domain-insecure: "{zone}"'
            for zone in self.knot.zones
            if zone not in self.knot.signed or not self.validate
        )
        # Unbound answers some names itself (RFC 6761's test., invalid., 127.in-addr.arpa. for
        # PTR of loopback...): names the test serves must reach Knot.
        ancestors = sorted(
            {
                ".".join(zone.split(".")[i:])
                for zone in self.knot.zones
                for i in range(zone.count("."))
            }
        )
        defaults_off = "\n".join(f'    local-zone: "{name}" nodefault' for name in ancestors)
        modules = "validator iterator" if self.validate else "iterator"
        return f"""
server:
    interface: 127.0.0.1@{self.port}
    port: {self.port}
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{self.dir}"
    pidfile: "{self.dir / "unbound.pid"}"
    logfile: "{self.dir / "log"}"
    use-syslog: no
    verbosity: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "{modules}"
    cache-max-ttl: 0
    cache-max-negative-ttl: 0
    # No answers made up from NSEC records seen before (RFC 8198): they would hide names a
    # test adds while running, and a child zone's answers behind its parent's denials.
    aggressive-nsec: no
    infra-host-ttl: 1
    num-threads: 1
    msg-cache-size: 1m
    rrset-cache-size: 1m
    key-cache-size: 1m
    neg-cache-size: 1m
    harden-dnssec-stripped: yes
    val-log-level: 2
    qname-minimisation: no
    minimal-responses: no
    prefetch: no
    # Without this a validator with no root anchor would still look for one.
    auto-trust-anchor-file: ""
    unblock-lan-zones: yes
    insecure-lan-zones: yes
{defaults_off}
{anchor_lines}
{insecure}
{stubs}
"""

    def start(self) -> Unbound:
        config = self.dir / "unbound.conf"
        config.write_text(self._config())
        self._spawn([UNBOUND, "-d", "-c", str(config)])
        try:
            for zone in self.knot.zones:
                self._check_alive()
                if self.validate and zone in self.knot.signed and self.anchors is not None:
                    _wait_for_answer(self.endpoint, zone, timeout=15, any_rcode=True)
                else:
                    signed = self.validate and zone in self.knot.signed
                    _wait_for_answer(self.endpoint, zone, timeout=15, want_ad=signed)
        except BaseException:
            self.close()
            raise
        return self

    def query(self, name: str, rtype: str) -> dns.message.Message:
        query = dns.message.make_query(name, rtype, want_dnssec=True)
        query.flags |= dns.flags.AD
        return dns.query.udp(query, "127.0.0.1", port=self.port, timeout=5)


@contextlib.contextmanager
def silent_dns() -> Iterator[str]:
    """A name server that takes queries (UDP and TCP) and never answers: ``"127.0.0.1:PORT"``."""
    port = free_port()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp.bind(("127.0.0.1", port))
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)  # connections are accepted by the kernel and then left unread
    try:
        yield f"127.0.0.1:{port}"
    finally:
        udp.close()
        tcp.close()
