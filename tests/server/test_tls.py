"""TLS in the running server: STARTTLS with input in the client's last handshake flight,
--require-tls, AUTH mechanisms before and after TLS, a failed handshake."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

from tests.live import (
    LineClient,
    LiveServer,
    ServeProcess,
    maildir_files,
    queue_id_of,
    tls_context,
)


def starttls_sending_at_once(client: LineClient, context: ssl.SSLContext, line: bytes) -> bytes:
    """Complete the handshake with ``line`` written in the same flight as the client's
    Finished message (as a TLS 1.3 client may), and return the reply to it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                client.sock.sendall(outgoing.read())
            data = client.sock.recv(65536)
            assert data, "closed during the handshake"
            incoming.write(data)
    tls.write(line)
    client.sock.sendall(outgoing.read())
    reply = b""
    while not reply.endswith(b"\r\n") or reply.splitlines()[-1][3:4] == b"-":
        try:
            reply += tls.read(65536)
        except ssl.SSLWantReadError:
            data = client.sock.recv(65536)
            assert data, "closed before the reply"
            incoming.write(data)
    return reply


def test_command_in_the_handshakes_last_flight_is_answered(serve) -> None:
    live: LiveServer = serve(tls="self-signed")
    context = tls_context(live.data)
    for _ in range(5):
        client = LineClient(live.smtp, timeout=5)
        client.reply()
        client.command(b"EHLO client.example.test")
        assert client.command(b"STARTTLS") == b"220 2.0.0 Ready to start TLS\r\n"
        reply = starttls_sending_at_once(client, context, b"EHLO again.example.test\r\n")
        assert reply.startswith(b"250-mx.test Hello again.example.test\r\n")
        assert b"STARTTLS" not in reply
        client.close()


def test_plaintext_after_starttls_is_never_executed(serve) -> None:
    # CVE-2011-0411: commands pipelined after STARTTLS in the clear must be dropped.
    live: LiveServer = serve(tls="self-signed")
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    client.send(b"STARTTLS\r\nMAIL FROM:<injected@example.test>\r\n")
    assert client.reply() == b"220 2.0.0 Ready to start TLS\r\n"
    reply = starttls_sending_at_once(client, tls_context(live.data), b"RCPT TO:<a@b.test>\r\n")
    assert reply.startswith(b"503 5.5.1 ")  # no HELO after TLS, and no MAIL either
    client.close()


def test_require_tls(serve) -> None:
    live: LiveServer = serve(tls="self-signed", require_tls=True)
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert client.mail("alice@example.test") == (
            530,
            b"5.7.0 Must issue a STARTTLS command first",
        )
        assert client.rcpt("bob@example.test")[0] == 530
        assert client.noop()[0] == 250
        client.starttls(context=tls_context(live.data))
        client.ehlo()
        assert client.mail("alice@example.test")[0] == 250
        assert client.rcpt("bob@example.test")[0] == 250
        code, text = client.data(b"Subject: over TLS\r\n\r\nhi\r\n")
        assert code == 250
    assert len(maildir_files(live.data)) == 1
    assert queue_id_of(text) in maildir_files(live.data)[0].name


def test_plaintext_auth_hidden_before_tls(serve) -> None:
    live: LiveServer = serve(tls="self-signed", auth="accept-any")
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        offered = client.esmtp_features.get("auth", "").split()
        assert "PLAIN" not in offered and "LOGIN" not in offered
        code, text = client.docmd("AUTH", "PLAIN AGFsaWNlAHNlY3JldA==")
        assert (code, text[:6]) == (538, b"5.7.11")
        code, _ = client.docmd("AUTH", "LOGIN")
        assert code == 538
        client.starttls(context=tls_context(live.data))
        client.ehlo()
        offered = client.esmtp_features["auth"].split()
        assert "PLAIN" in offered and "LOGIN" in offered
        assert client.docmd("AUTH", "PLAIN AGFsaWNlAHNlY3JldA==")[0] == 235


def test_allow_insecure_auth(serve) -> None:
    live: LiveServer = serve(auth="accept-any", allow_insecure_auth=True)
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        offered = client.esmtp_features["auth"].split()
        assert "PLAIN" in offered and "LOGIN" in offered
        assert client.login("alice", "secret")[0] == 235


def test_require_auth(serve, tmp_path: Path) -> None:
    live: LiveServer = serve(tls="self-signed", auth="accept-any", require_auth=True)
    with smtplib.SMTP(*live.smtp) as client:
        client.starttls(context=tls_context(live.data))
        client.ehlo()
        assert client.mail("alice@example.test") == (530, b"5.7.0 Authentication required")
        client.login("alice", "secret")
        assert client.mail("alice@example.test")[0] == 250


def test_failed_handshake_leaves_the_server_serving(serve) -> None:
    live: LiveServer = serve(tls="self-signed", smtps="127.0.0.1:0")
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    assert client.command(b"STARTTLS").startswith(b"220 ")
    client.send(b"this is not a TLS ClientHello\r\n" * 10)
    assert client.closed()
    client.close()
    implicit = LineClient(live.smtps)
    implicit.send(b"EHLO plaintext.example.test\r\n")
    assert implicit.closed()
    implicit.close()
    with smtplib.SMTP_SSL(*live.smtps, context=tls_context(live.data)) as good:
        assert good.ehlo()[0] == 250
    with smtplib.SMTP(*live.smtp) as good:
        good.starttls(context=tls_context(live.data))
        assert good.ehlo()[0] == 250


def test_tls_in_the_serve_process(serve_process) -> None:
    """The same under ``mailroom serve`` (uvloop's transports, when it is installed)."""
    process: ServeProcess = serve_process(
        "--tls", "self-signed", "--smtps", "127.0.0.1:0", "--auth", "accept-any"
    )
    smtp, smtps = process.addresses
    data = process.log.parent / "data"
    context = tls_context(data)
    client = LineClient(smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    assert client.command(b"STARTTLS") == b"220 2.0.0 Ready to start TLS\r\n"
    reply = starttls_sending_at_once(client, context, b"EHLO again.example.test\r\n")
    assert reply.startswith(b"250-mx.test Hello again.example.test\r\n")
    client.close()
    with smtplib.SMTP_SSL(*smtps, context=context) as implicit:
        implicit.login("alice", "secret")
        assert implicit.sendmail("a@example.test", ["b@example.test"], b"Subject: s\r\n\r\n") == {}
    assert process.terminate() == 0
    assert len(maildir_files(data)) == 1
    assert f"127.0.0.1:{smtps[1]} (implicit TLS)" in process.stderr


def test_implicit_tls_satisfies_require_tls_and_offers_plain_auth(serve) -> None:
    live: LiveServer = serve(smtps="127.0.0.1:0", require_tls=True, auth="accept-any")
    with smtplib.SMTP_SSL(*live.smtps, context=tls_context(live.data)) as client:
        client.ehlo()
        assert "starttls" not in client.esmtp_features
        assert "PLAIN" in client.esmtp_features["auth"].split()
        assert client.docmd("AUTH", "PLAIN AGFsaWNlAHNlY3JldA==")[0] == 235
        assert client.sendmail("a@example.test", ["b@example.test"], b"Subject: s\r\n\r\n") == {}
    (path,) = maildir_files(live.data)
    assert b" with ESMTPSA id " in path.read_bytes()


def test_certificate_from_files(serve, tmp_path) -> None:
    from mailroom.server.tls import ensure_self_signed

    cert, key = ensure_self_signed(tmp_path / "pki", "files.example.test")
    live: LiveServer = serve(tls_cert=cert, tls_key=key)
    context = ssl.create_default_context(cafile=str(cert))
    with smtplib.SMTP(*live.smtp) as client:
        client.starttls(context=context)
        presented = client.sock.getpeercert()  # type: ignore[union-attr]
        assert ("DNS", "files.example.test") in presented["subjectAltName"]
        assert client.ehlo()[0] == 250
    assert not (live.data / "tls").exists()  # no self-signed certificate made
