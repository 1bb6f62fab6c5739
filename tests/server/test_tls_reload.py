"""The listeners' certificate is reloaded while the server runs: when its files change (a
certbot renewal) and on SIGHUP, for STARTTLS and implicit TLS alike, without dropping the
sessions in progress; a bad new certificate is refused with a log line and the old one kept.
And TLS 1.2 is the oldest version a listener speaks unless told 1.3."""

from __future__ import annotations

import logging
import shutil
import signal
import smtplib
import socket
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.live import LiveServer, ServeProcess, wait_for
from tests.transport.tlspeers import Issued, TestCA

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _unverified(maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
    return context


def _der(issued: Issued) -> bytes:
    return issued.certificate.public_bytes(serialization.Encoding.DER)


def starttls_certificate(address: tuple[str, int]) -> bytes:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.starttls(context=_unverified())
        certificate = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        assert certificate is not None
        return certificate


def implicit_certificate(address: tuple[str, int]) -> bytes:
    with (
        socket.create_connection(address, timeout=30) as raw,
        _unverified().wrap_socket(raw, server_hostname="mx.test") as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
        assert certificate is not None
        return certificate


def install(issued: Issued, cert: Path, key: Path) -> None:
    """Put a certificate where the server reads it, as a renewal does (new files renamed)."""
    new_key, new_cert = key.with_name(key.name + ".new"), cert.with_name(cert.name + ".new")
    shutil.copy(issued.key_path, new_key)
    shutil.copy(issued.cert_path, new_cert)
    new_key.replace(key)
    new_cert.replace(cert)


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


def test_a_renewed_certificate_is_used_without_dropping_sessions(
    tmp_path: Path, ca: TestCA, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailroom.server")
    first, second = ca.issue("first", ["mx.test"]), ca.issue("second", ["mx.test"])
    cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
    install(first, cert, key)
    live = LiveServer(
        {
            "data": tmp_path / "data",
            "smtp": "127.0.0.1:0",
            "smtps": "127.0.0.1:0",
            "hostname": "mx.test",
            "web": "off",
            "tls": "files",
            "tls_cert": cert,
            "tls_key": key,
            "tls_reload_interval": 0.1,
        }
    ).start()
    try:
        listener_tls = live.mail_server.tls
        assert listener_tls is not None
        assert starttls_certificate(live.smtp) == _der(first)
        assert implicit_certificate(live.smtps) == _der(first)
        # A session in TLS with the first certificate, kept open across the renewal.
        held = smtplib.SMTP(*live.smtp, timeout=30)
        held.starttls(context=_unverified())
        held.ehlo("client.test")

        install(second, cert, key)
        wait_for(lambda: listener_tls.reloads == 1, timeout=30)
        assert starttls_certificate(live.smtp) == _der(second)
        assert implicit_certificate(live.smtps) == _der(second)
        # The held session goes on, with the certificate it began with.
        assert held.sock.getpeercert(binary_form=True) == _der(first)  # type: ignore[union-attr]
        held.sendmail("a@client.test", ["b@mx.test"], b"Subject: held\r\n\r\nstill here\r\n")
        held.quit()

        # Half a renewal: a key that does not belong to the certificate. Refused, logged,
        # and the certificate in use stays.
        third = ca.issue("third", ["mx.test"])
        shutil.copy(first.key_path, key)
        shutil.copy(third.cert_path, cert)
        wait_for(lambda: listener_tls.refusals == 1, timeout=30)
        assert starttls_certificate(live.smtp) == _der(second)
        assert implicit_certificate(live.smtps) == _der(second)
        # The rest of it arrives: in use.
        shutil.copy(third.key_path, key)
        wait_for(lambda: listener_tls.reloads == 2, timeout=30)
        assert starttls_certificate(live.smtp) == _der(third)
    finally:
        live.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "mailroom.server"]
    assert any("TLS certificate not reloaded (the files changed)" in m for m in messages)
    assert any("the one in use stays" in m for m in messages)
    reloaded = [m for m in messages if m.endswith("reloaded (the files changed)")]
    assert len(reloaded) == 2 and all(m.startswith(f"TLS certificate {cert} ") for m in reloaded)


def test_sighup_reloads_the_certificate(tmp_path: Path, ca: TestCA) -> None:
    first, second = ca.issue("first", ["mx.test"]), ca.issue("second", ["mx.test"])
    cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
    install(first, cert, key)
    process = ServeProcess(
        [
            "--data",
            str(tmp_path / "data"),
            "--smtp",
            "127.0.0.1:0",
            "--web",
            "off",
            "--hostname",
            "mx.test",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--tls-reload-interval",
            "0",  # only on SIGHUP
        ],
        tmp_path / "serve.log",
    ).wait_started()
    try:
        assert starttls_certificate(process.smtp) == _der(first)
        install(second, cert, key)
        assert starttls_certificate(process.smtp) == _der(first)  # not watched: unchanged
        process.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded (SIGHUP)" in process.stderr, timeout=30)
        assert starttls_certificate(process.smtp) == _der(second)
        # A SIGHUP with a broken file: refused, logged, the server goes on with the second.
        cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
        process.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "not reloaded (SIGHUP)" in process.stderr, timeout=30)
        assert starttls_certificate(process.smtp) == _der(second)
        assert process.process.poll() is None
    finally:
        assert process.terminate() == 0


def test_tls_1_2_is_the_oldest_version_unless_told_1_3(tmp_path: Path, ca: TestCA) -> None:
    issued = ca.issue("mx", ["mx.test"])
    base = {
        "smtp": "127.0.0.1:0",
        "hostname": "mx.test",
        "web": "off",
        "tls": "files",
        "tls_cert": issued.cert_path,
        "tls_key": issued.key_path,
    }

    def handshake(address: tuple[str, int], maximum: ssl.TLSVersion) -> str | None:
        with smtplib.SMTP(*address, timeout=30) as client:
            try:
                client.starttls(context=_unverified(maximum))
            except (ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError):
                return None
            return client.sock.version()  # type: ignore[union-attr]

    default = LiveServer({**base, "data": tmp_path / "d1"}).start()
    try:
        assert default.mail_server.tls is not None
        assert default.mail_server.tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert handshake(default.smtp, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
        assert handshake(default.smtp, ssl.TLSVersion.TLSv1_1) is None
    finally:
        default.stop()
    strict = LiveServer({**base, "data": tmp_path / "d2", "tls_min_version": "1.3"}).start()
    try:
        assert handshake(strict.smtp, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
        assert handshake(strict.smtp, ssl.TLSVersion.TLSv1_2) is None
    finally:
        strict.stop()
