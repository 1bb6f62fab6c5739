"""TLS for STARTTLS and implicit TLS: contexts from files, or a self-signed certificate made on
first start (cryptography) and kept in the data directory; and :class:`ListenerTLS`, the one
object the server holds for all its listeners, whose certificate can be replaced while it runs.

Reloading (certbot renewing a certificate, an operator's SIGHUP): the listeners keep the one
context they were given, and its ``sni_callback``, run at the start of every handshake, hands
the handshake to the newest good context. Sessions already in TLS keep theirs: nothing is
dropped. A new certificate that does not load (a key that does not fit, half a file) is
refused with a log line, and the one in use stays.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import ssl
from pathlib import Path

from mailroom.filemodes import private_dir, write_private

__all__ = ["TLS_VERSIONS", "ListenerTLS", "ensure_self_signed", "server_context"]

log = logging.getLogger("mailroom.server")

# The oldest TLS version a listener accepts: 1.2 by default (RFC 8996 retired 1.0 and 1.1).
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_context(
    cert: Path, key: Path, *, min_version: str = "1.2", ciphers: str = ""
) -> ssl.SSLContext:
    """A listener's context: ``min_version`` ("1.2" or "1.3") and, for TLS 1.2, the OpenSSL
    cipher list ``ciphers`` (empty: OpenSSL's defaults)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = TLS_VERSIONS[min_version]
    if ciphers:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise OSError(f"tls_ciphers {ciphers!r}: no cipher OpenSSL knows ({exc})") from exc
    try:
        context.load_cert_chain(cert, key)
    except OSError as exc:  # ssl.SSLError too; neither names the file at fault
        reason = exc.strerror or str(exc)
        raise OSError(f"cannot load TLS certificate {cert} and key {key}: {reason}") from exc
    return context


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class ListenerTLS:
    """The listeners' TLS: :attr:`context` is what they are given, once; :meth:`reload` and
    :meth:`watch` put a renewed certificate in use for the next handshakes."""

    def __init__(
        self, cert: Path, key: Path, *, min_version: str = "1.2", ciphers: str = ""
    ) -> None:
        self.cert = cert
        self.key = key
        self.min_version = min_version
        self.ciphers = ciphers
        self.current = self._load()  # raises: a server does not start without a certificate
        self.context = self.current
        self.context.sni_callback = self._choose
        self._seen = self._files()
        self.reloads = 0  # certificates put in use after the first (logs, tests)
        self.refusals = 0  # new certificates refused

    def _load(self) -> ssl.SSLContext:
        return server_context(
            self.cert, self.key, min_version=self.min_version, ciphers=self.ciphers
        )

    def _files(self) -> tuple[tuple[int, int, int] | None, ...]:
        return (_signature(self.cert), _signature(self.key))

    def _choose(
        self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        # Called by OpenSSL for each ClientHello, with or without SNI.
        if self.current is not context:
            ssl_object.context = self.current

    @property
    def changed(self) -> bool:
        """Whether the files differ from those last loaded (or tried)."""
        return self._files() != self._seen

    def reload(self, why: str = "on request") -> bool:
        """Load the files again; True if the new certificate is in use now."""
        self._seen = self._files()
        try:
            fresh = self._load()
        except OSError as exc:
            self.refusals += 1
            log.error("TLS certificate not reloaded (%s): %s; the one in use stays", why, exc)
            return False
        self.current = fresh
        self.reloads += 1
        log.info("TLS certificate %s reloaded (%s)", self.cert, why)
        return True

    async def watch(self, interval: float) -> None:
        """Reload whenever the files change (a renewal), looking every ``interval`` seconds.
        A certificate half written is refused and tried again once the files change again."""
        while True:
            await asyncio.sleep(interval)
            if self.changed:
                # Both files of a renewal are replaced one after the other: a moment for both.
                await asyncio.sleep(min(1.0, interval))
                self.reload("the files changed")


def _still_good(cert_path: Path, hostname: str) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc - now < datetime.timedelta(days=7):
        return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return hostname in names.get_values_for_type(x509.DNSName)


def ensure_self_signed(directory: Path, hostname: str) -> tuple[Path, Path]:
    """A certificate for ``hostname`` (and localhost, 127.0.0.1, ::1) in ``directory``; made
    anew when missing, expiring within a week, or for another hostname."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private_dir(directory)
    cert_path, key_path = directory / "self-signed.pem", directory / "self-signed.key"
    if cert_path.exists() and key_path.exists() and _still_good(cert_path, hostname):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    san = [
        x509.DNSName(hostname),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
