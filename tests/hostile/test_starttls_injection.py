"""STARTTLS command injection (CVE-2011-0411): commands written in the clear in the same
packet as STARTTLS must never be executed, before or after the handshake. The reply to
STARTTLS is read straight off the socket; anything the server wrongly sent after it in the
clear would break the TLS handshake that follows, and the first reply inside TLS must be the
answer to the first command sent inside TLS."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from mailroom.testing import SMTPTestServer
from tests.hostile.tools import TLSClient, read_reply_raw, stored_files
from tests.live import LiveServer, tls_context

READY = b"220 2.0.0 Ready to start TLS\r\n"
INJECTIONS = {
    "RSET": b"RSET\r\n",
    "MAIL": b"MAIL FROM:<injected@example.test>\r\n",
    "whole transaction": b"MAIL FROM:<injected@example.test>\r\nRCPT TO:<victim@example.test>\r\n"
    b"DATA\r\nSubject: injected\r\n\r\ninjected\r\n.\r\n",
    "AUTH": b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\n",
    "EHLO": b"EHLO injected.example.test\r\n",
}


def inject(address: tuple[str, int], context: ssl.SSLContext, injected: bytes) -> list[bytes]:
    """EHLO, then STARTTLS with ``injected`` in the same write; the handshake; then EHLO and
    QUIT inside TLS. Returns the replies inside TLS."""
    sock = socket.create_connection(address, timeout=10)
    try:
        greeting, rest = read_reply_raw(sock)
        assert greeting.startswith(b"220 ") and rest == b""
        sock.sendall(b"EHLO client.example.test\r\n")
        ehlo, rest = read_reply_raw(sock)
        assert ehlo.startswith(b"250-") and b"STARTTLS" in ehlo and rest == b""
        sock.sendall(b"STARTTLS\r\n" + injected)
        reply, early = read_reply_raw(sock)
        assert reply == READY
        assert early == b"", "the server answered the injected commands in the clear"
        tls = TLSClient(sock, context)
        tls.handshake()  # fails if the server said anything more in the clear
        after = [tls.command(b"EHLO after.example.test")]
        tls.send(b"QUIT\r\n")
        after += tls.replies_until_closed()
        return after
    finally:
        sock.close()


def assert_clean_start(replies: list[bytes]) -> None:
    """Inside TLS the session starts over: the first reply is the EHLO's, the only other is
    QUIT's; no reply to an injected command."""
    assert len(replies) == 2, replies
    assert replies[0].startswith(b"250-") and b"Hello after.example.test\r\n" in replies[0]
    assert b"STARTTLS" not in replies[0]
    assert replies[1] == b"221 2.0.0 Bye\r\n"


@pytest.mark.parametrize("injected", list(INJECTIONS.values()), ids=list(INJECTIONS))
def test_catcher(serve, injected: bytes) -> None:
    live: LiveServer = serve(tls="self-signed", auth="accept-any")
    replies = inject(live.smtp, tls_context(live.data), injected)
    assert_clean_start(replies)
    assert stored_files(live.data) == []


@pytest.mark.parametrize("injected", list(INJECTIONS.values()), ids=list(INJECTIONS))
def test_submission_listener(mail_server: SMTPTestServer, injected: bytes) -> None:
    data = Path(mail_server.config.data)
    context = ssl.create_default_context(cafile=str(data / "tls" / "self-signed.pem"))
    replies = inject(mail_server.address("submission"), context, injected)
    assert_clean_start(replies)
    assert b"AUTH " in replies[0]  # offered now, inside TLS
    assert stored_files(data) == []


def test_injection_does_not_count_as_an_auth_failure(serve) -> None:
    """The injected AUTH was never read: the session inside TLS may still authenticate."""
    live: LiveServer = serve(tls="self-signed", auth="accept-any")
    sock = socket.create_connection(live.smtp, timeout=10)
    read_reply_raw(sock)
    sock.sendall(b"EHLO client.example.test\r\n")
    read_reply_raw(sock)
    sock.sendall(b"STARTTLS\r\nAUTH PLAIN AGEAYg==\r\n")
    assert read_reply_raw(sock) == (READY, b"")
    tls = TLSClient(sock, tls_context(live.data))
    tls.handshake()
    assert tls.command(b"EHLO after.example.test").startswith(b"250-")
    assert (
        tls.command(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==")
        == b"235 2.7.0 Authentication successful\r\n"
    )
    sock.close()
