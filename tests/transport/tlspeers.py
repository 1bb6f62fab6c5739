"""Real peers for the transport security tests, on loopback, in the test's own event loop:

- :class:`TestCA`: a certification authority made at test time with ``cryptography`` (a root
  and an intermediate), issuing server certificates for chosen names; its root is the extra CA
  bundle mailroom is told to trust (``[outbound_tls] ca_file``).
- :class:`PolicyServer`: an HTTPS server (aiohttp) answering
  ``/.well-known/mta-sts.txt`` for ``mta-sts.DOMAIN`` as each test says: a policy, or one that
  is huge, slow, redirected, of the wrong media type, or invalid; and taking TLS reports POSTed
  to ``/tlsrpt``.
- :class:`StripStartTLS`: a TCP proxy in front of an SMTP server that removes STARTTLS from
  its EHLO replies (an attacker in the middle, RFC 8689 §8.2).
- :func:`tlsa`: the TLSA record that names a certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Issued", "PolicyServer", "StripStartTLS", "TestCA", "tlsa"]

_KEY_USAGE_CA = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_KEY_USAGE_LEAF = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class Issued:
    """A server certificate: ``cert_path`` holds it and the intermediate (the chain a server
    sends), ``key_path`` its key."""

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    cert_path: Path
    key_path: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


class TestCA:
    __test__ = False  # not a test class, whatever its name

    def __init__(self, directory: Path, label: str = "mailroom test") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.now = datetime.datetime.now(datetime.UTC)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca(
            f"{label} root CA", self.root_key, self.root_key, _name(f"{label} root CA")
        )
        self.intermediate_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = self._ca(
            f"{label} intermediate CA", self.intermediate_key, self.root_key, self.root.subject
        )
        self.path = directory / "ca.pem"  # the root: what a client is told to trust
        self.path.write_bytes(_pem(self.root))

    def _ca(
        self,
        common_name: str,
        key: ec.EllipticCurvePrivateKey,
        issuer_key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(days=1))
            .not_valid_after(self.now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_KEY_USAGE_CA, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if issuer_key is not key:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    def issue(self, stem: str, names: list[str], *, expired: bool = False) -> Issued:
        """A certificate for ``names`` from the intermediate, in ``STEM.pem``/``STEM.key``."""
        key = ec.generate_private_key(ec.SECP256R1())
        if expired:
            start = self.now - datetime.timedelta(days=10)
            end = self.now - datetime.timedelta(days=1)
        else:
            start = self.now - datetime.timedelta(days=1)
            end = self.now + datetime.timedelta(days=10)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_KEY_USAGE_LEAF, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.intermediate_key.public_key()
                ),
                False,
            )
            .sign(self.intermediate_key, hashes.SHA256())
        )
        cert_path = self.directory / f"{stem}.pem"
        key_path = self.directory / f"{stem}.key"
        cert_path.write_bytes(_pem(certificate) + _pem(self.intermediate))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Issued(certificate, [certificate, self.intermediate], cert_path, key_path)


def tlsa(certificate: x509.Certificate, usage: int = 3, selector: int = 1, mtype: int = 1) -> str:
    """The TLSA record (zone-file text) that names ``certificate``."""
    if selector == 0:
        content = certificate.public_bytes(serialization.Encoding.DER)
    else:
        content = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    data = {0: content, 1: hashlib.sha256(content).digest(), 2: hashlib.sha512(content).digest()}
    return f"{usage} {selector} {mtype} {data[mtype].hex()}"


# -- the MTA-STS policy host ---------------------------------------------------------------------


Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class PolicyServer:
    """``mta-sts.DOMAIN`` for every DOMAIN of ``policies``: set ``policies[domain]`` to the
    policy text, or ``behaviours[domain]`` to a handler of its own."""

    context: ssl.SSLContext
    policies: dict[str, str] = field(default_factory=dict)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # Host of each policy request
    reports: list[tuple[str, bytes]] = field(default_factory=list)  # (content type, body)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> PolicyServer:
        app = web.Application()
        app.router.add_get("/.well-known/mta-sts.txt", self._policy)
        app.router.add_post("/tlsrpt", self._report)
        app.router.add_get("/elsewhere.txt", self._policy)
        # A handler still sleeping (the slow policy) is cancelled at once on stop.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _policy(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").partition(":")[0].lower()
        self.requests.append(host)
        domain = host.removeprefix("mta-sts.")
        behaviour = self.behaviours.get(domain)
        if behaviour is not None:
            return await behaviour(request)
        if domain in self.policies:
            return web.Response(text=self.policies[domain], content_type="text/plain")
        return web.Response(status=404, text="no policy here")

    async def _report(self, request: web.Request) -> web.StreamResponse:
        self.reports.append((request.content_type, await request.read()))
        return web.Response(status=201)


async def huge_policy(request: web.Request) -> web.StreamResponse:
    """A policy that never ends: 100 MB of mx lines, sent as fast as it is read."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    await response.write(b"version: STSv1\nmode: enforce\nmax_age: 86400\n")
    line = b"mx: mx.example.test\n" * 1000
    for _ in range(5000):
        await response.write(line)
    return response


async def slow_policy(request: web.Request) -> web.StreamResponse:
    """Headers at once, then a line an hour."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    await response.write(b"version: STSv1\n")
    await asyncio.sleep(3600)
    return response


async def redirecting_policy(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(location="/elsewhere.txt")


def html_policy(text: str) -> Behaviour:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=text, content_type="text/html")

    return handler


# -- an attacker in the middle ---------------------------------------------------------------------


class StripStartTLS:
    """A TCP proxy to ``upstream`` that removes STARTTLS from every EHLO reply, so a client
    that would use it sees a server without it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.connections = 0
        self.stripped = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> StripStartTLS:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        tasks = {
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._replies(up_reader, writer)),
        }
        self._tasks |= tasks
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            self._tasks -= tasks
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def _replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines: list[bytes] = []
        while line := await reader.readline():
            lines.append(line)
            if line[3:4] == b"-":
                continue  # a multi-line reply goes on
            kept = [ln for ln in lines if ln[4:].strip().upper() != b"STARTTLS"]
            if len(kept) < len(lines):
                self.stripped += 1
                kept = [ln[:3] + b"-" + ln[4:] for ln in kept[:-1]] + [
                    kept[-1][:3] + b" " + kept[-1][4:]
                ]
            writer.write(b"".join(kept))
            await writer.drain()
            lines = []
