"""Open relay: the classic relay tests against the mail server mode's MX listener, from a
client that has not authenticated. Each trick gets its refusal, pinned literally: 550 5.7.1
where the address names (or hides) a remote destination; 501 5.1.3 where it is no address at
all (a trailing dot, a second @ outside quotes); and nothing reaches the outbound queue."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

import pytest

from mailroom.testing import SMTPTestServer

RELAY_DENIED = 550


def denied(address: str) -> tuple[int, bytes]:
    return RELAY_DENIED, f"5.7.1 {address}: Relay access denied".encode()


def bad_syntax(address: str) -> tuple[int, bytes]:
    return 501, f"5.1.3 {address}: Bad recipient address syntax".encode()


# (RCPT argument, the reply). example.test and example.org are the server's domains;
# remote.test is not.
CASES = [
    # A remote domain, plainly and in every case.
    ("<user@remote.test>", denied("<user@remote.test>")),
    ("<USER@REMOTE.TEST>", denied("<USER@REMOTE.TEST>")),
    ("<User@Remote.Test>", denied("<User@Remote.Test>")),
    ("<postmaster@remote.test>", denied("<postmaster@remote.test>")),
    ("<user@remote.test> NOTIFY=NEVER", denied("<user@remote.test>")),
    # The percent hack, the bang path and a quoted address, behind a local domain.
    ("<user%remote.test@example.test>", denied("<user%remote.test@example.test>")),
    ("<user%remote.test@EXAMPLE.TEST>", denied("<user%remote.test@EXAMPLE.TEST>")),
    ("<ALICE%REMOTE.TEST@EXAMPLE.TEST>", denied("<ALICE%REMOTE.TEST@EXAMPLE.TEST>")),
    (
        "<user%remote.test%example.test@example.test>",
        denied("<user%remote.test%example.test@example.test>"),
    ),
    ("<user%remote.test@example.org>", denied("<user%remote.test@example.org>")),
    ("<remote.test!user@example.test>", denied("<remote.test!user@example.test>")),
    ("<remote.test!user@example.org>", denied("<remote.test!user@example.org>")),
    ('<"user@remote.test"@example.test>', denied('<"user@remote.test"@example.test>')),
    ('<"user%remote.test"@example.test>', denied('<"user%remote.test"@example.test>')),
    ('<"user\\"@remote.test"@example.test>', denied('<"user\\"@remote.test"@example.test>')),
    # Source routes through a local domain (RFC 5321 §4.1.1.3: the route is ignored).
    ("<@example.test:user@remote.test>", denied("<user@remote.test>")),
    ("<@example.test,@example.org:user@remote.test>", denied("<user@remote.test>")),
    # Address literals: ours, another, IPv6; and a dotted quad without brackets.
    ("<user@[127.0.0.1]>", denied("<user@[127.0.0.1]>")),
    ("<alice@[127.0.0.1]>", denied("<alice@[127.0.0.1]>")),
    ("<user@[192.0.2.1]>", denied("<user@[192.0.2.1]>")),
    ("<user@[IPv6:::1]>", denied("<user@[IPv6:::1]>")),
    ("<user@[IPv6:2001:db8::1]>", denied("<user@[IPv6:2001:db8::1]>")),
    ("<user@127.0.0.1>", denied("<user@127.0.0.1>")),
    # Names that merely contain or resemble a local domain or the host name.
    ("<user@example.test.remote.test>", denied("<user@example.test.remote.test>")),
    ("<user@mx.example.test>", denied("<user@mx.example.test>")),
    ("<user@localhost>", denied("<user@localhost>")),
    # Trailing dots and other non-addresses: syntax errors, never a route anywhere.
    ("<user@remote.test.>", bad_syntax("<user@remote.test.>")),
    ("<user@example.test.>", bad_syntax("<user@example.test.>")),
    ("<alice@example.test.>", bad_syntax("<alice@example.test.>")),
    ("<user@exAmple.tEst.>", bad_syntax("<user@exAmple.tEst.>")),
    ("<user@remote.test@example.test>", bad_syntax("<user@remote.test@example.test>")),
    ("<alice@example.test@remote.test>", bad_syntax("<alice@example.test@remote.test>")),
    ("<user\\@remote.test@example.test>", bad_syntax("<user\\@remote.test@example.test>")),
    ("<user@remote.test%example.test>", bad_syntax("<user@remote.test%example.test>")),
    ("<user@remote.test >", bad_syntax("<user@remote.test >")),
    ("user@remote.test", (501, b"5.5.2 Syntax: RCPT TO:<address> [parameters]")),
    ("<user@remote.test", (501, b"5.5.2 Syntax: RCPT TO:<address> [parameters]")),
]


def mx(server: SMTPTestServer, helo: str = "client.remote.test") -> smtplib.SMTP:
    client = smtplib.SMTP(*server.address("mx"), timeout=10)
    client.ehlo(helo)
    return client


def queued(server: SMTPTestServer) -> list[Path]:
    folder = Path(server.config.data) / "queue"
    return sorted(p for p in folder.glob("**/*") if p.is_file()) if folder.is_dir() else []


@pytest.mark.parametrize("sender", ["<someone@remote.test>", "<alice@example.test>", "<>"])
def test_every_relay_trick_is_refused(mail_server: SMTPTestServer, sender: str) -> None:
    """Each sender: a stranger, a forged local user, the null sender (bounces)."""
    client = mx(mail_server)
    for argument, reply in CASES:
        assert client.docmd(f"MAIL FROM:{sender}") == (250, b"2.1.0 Ok")
        assert (argument, client.docmd(f"RCPT TO:{argument}")) == (argument, reply)
        assert client.docmd("DATA") == (554, b"5.5.1 Error: no valid recipients")
        assert client.docmd("RSET") == (250, b"2.0.0 Ok")
    client.quit()
    assert queued(mail_server) == []


def test_all_tricks_in_one_pipelined_transaction(mail_server: SMTPTestServer) -> None:
    """Pipelined, the tricks get their refusals in order until the client has had
    max_bad_commands (20) refusals in a row: then 421 4.7.0 and the connection closes."""
    client = mx(mail_server, helo="mx.example.test")  # a client that claims to be us
    commands = ["MAIL FROM:<alice@example.test>", *(f"RCPT TO:{a}" for a, _ in CASES), "DATA"]
    client.send("".join(c + "\r\n" for c in commands))
    replies = [client.getreply() for _ in range(22)]
    assert replies[0] == (250, b"2.1.0 Ok")
    assert replies[1:21] == [reply for _, reply in CASES[:20]]
    hostname = mail_server.config.hostname
    assert replies[21] == (
        421,
        f"4.7.0 {hostname} Error: too many errors, closing connection".encode(),
    )
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.getreply()
    assert queued(mail_server) == []


def test_a_local_recipient_among_them_gets_only_the_local_copy(
    mail_server: SMTPTestServer,
) -> None:
    client = mx(mail_server)
    client.mail("someone@remote.test")
    assert client.rcpt("alice@example.test") == (250, b"2.1.5 Ok")
    for argument, reply in CASES[:8]:
        assert client.docmd(f"RCPT TO:{argument}") == reply
    code, text = client.data(b"Subject: hi\r\n\r\nhello\r\n")
    assert code == 250, text
    client.quit()
    assert queued(mail_server) == []
    stored = list((Path(mail_server.config.data) / "mail").glob("**/new/*"))
    assert [p.parent.parent.name for p in stored] == ["alice"]
    assert b"Delivered-To: alice@example.test\r\n" in stored[0].read_bytes()
    assert b"remote.test\r\n" not in stored[0].read_bytes().split(b"\r\n\r\n")[0]


def test_submission_without_auth_relays_nothing(mail_server: SMTPTestServer) -> None:
    client = smtplib.SMTP(*mail_server.address("submission"), timeout=10)
    client.ehlo("client.remote.test")
    starttls_first = (530, b"5.7.0 Must issue a STARTTLS command first")
    for command in ("MAIL FROM:<alice@example.test>", "RCPT TO:<user@remote.test>", "DATA"):
        assert client.docmd(command) == starttls_first
    context = ssl.create_default_context(
        cafile=str(Path(mail_server.config.data) / "tls" / "self-signed.pem")
    )
    client.starttls(context=context)
    client.ehlo("client.remote.test")
    auth_required = (530, b"5.7.0 Authentication required")
    for command in ("MAIL FROM:<alice@example.test>", "RCPT TO:<user@remote.test>", "DATA"):
        assert client.docmd(command) == auth_required
    client.quit()
    assert queued(mail_server) == []
