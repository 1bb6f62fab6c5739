"""Local domains with non-ASCII names (RFC 5890): one domain has two spellings, its U-labels
and its A-labels, and mail for it comes in either. A client without SMTPUTF8 can only write
the A-labels (RFC 6531 §3.2), a client with it usually writes the U-labels; both are this
server's mail. Before, the directory compared the spelling the configuration used, and the
other got 550 5.7.1 Relay access denied: mail for a local domain refused as a relay attempt.
Each spelling reaches the same user and the same Maildir, named as the configuration names
the domain; the relay tricks stay refused in both."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.testing import SMTPTestServer
from tests.mailserver.conftest import write_minimal_config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SMTPTestServer]:
    config = write_minimal_config(
        tmp_path / "mailroom.toml",
        domains=["bücher.test", "xn--mnchen-3ya.test"],
        users=["anna@bücher.test", "max@xn--mnchen-3ya.test"],
    )
    started = SMTPTestServer(tmp_path / "data", config_file=config).start()
    yield started
    started.stop()


def relay_denied(address: str) -> tuple[int, bytes]:
    return 550, f"5.7.1 {address}: Relay access denied".encode()


OK = (250, b"2.1.5 Ok")
# (RCPT argument, the reply, the Maildir it lands in)
CASES = [
    ("<anna@xn--bcher-kva.test>", OK, "bücher.test/anna"),
    ("<anna@XN--BCHER-KVA.TEST>", OK, "bücher.test/anna"),
    ("<anna@bücher.test>", OK, "bücher.test/anna"),
    ("<anna@BÜCHER.test>", OK, "bücher.test/anna"),
    ("<max@xn--mnchen-3ya.test>", OK, "xn--mnchen-3ya.test/max"),
    ("<max@münchen.test>", OK, "xn--mnchen-3ya.test/max"),
    (
        "<nobody@xn--bcher-kva.test>",
        (550, b"5.1.1 <nobody@xn--bcher-kva.test>: Recipient address rejected: User unknown"),
        None,
    ),
    (
        "<user%remote.test@xn--bcher-kva.test>",
        relay_denied("<user%remote.test@xn--bcher-kva.test>"),
        None,
    ),
    ("<user%remote.test@münchen.test>", relay_denied("<user%remote.test@münchen.test>"), None),
    (
        "<anna@xn--bcher-kva.test.remote.test>",
        relay_denied("<anna@xn--bcher-kva.test.remote.test>"),
        None,
    ),
]


def command(client: smtplib.SMTP, line: str) -> tuple[int, bytes]:
    client.send(f"{line}\r\n".encode())  # as UTF-8: smtplib's docmd writes ASCII only
    return client.getreply()


@pytest.mark.parametrize("argument, reply, maildir", CASES)
def test_either_spelling_of_a_local_domain_is_local(
    server: SMTPTestServer, argument: str, reply: tuple[int, bytes], maildir: str | None
) -> None:
    client = smtplib.SMTP(*server.address("mx"), timeout=10)
    client.ehlo("client.remote.test")
    utf8 = "" if argument.isascii() else " SMTPUTF8"
    assert command(client, f"MAIL FROM:<someone@remote.test>{utf8}") == (250, b"2.1.0 Ok")
    assert command(client, f"RCPT TO:{argument}") == reply
    if maildir is None:
        client.quit()
        return
    code, _ = client.data(b"Subject: hi\r\n\r\nhello\r\n")
    client.quit()
    assert code == 250
    stored = list((Path(server.config.data) / "mail").glob("*/*/new/*"))
    assert [p.parent.parent.relative_to(p.parents[3]).as_posix() for p in stored] == [maildir]
