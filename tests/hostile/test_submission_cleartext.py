"""Submission without TLS: a STARTTLS-stripping attacker (or a careless client) must not get a
whole submission in cleartext. On submission listeners no AUTH is offered before TLS, and AUTH
or MAIL before STARTTLS get ``530 5.7.0 Must issue a STARTTLS command first`` (as Postfix's
submission service does with ``smtpd_tls_security_level=encrypt``)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from pathlib import Path

import pytest

from mailroom.client import SendError, SMTPReplyError, send_message
from mailroom.testing import SMTPTestServer
from tests.mailserver.conftest import ALICE_PASSWORD

STARTTLS_FIRST = (530, b"5.7.0 Must issue a STARTTLS command first")


def test_no_auth_offered_and_nothing_taken_before_starttls(mail_server: SMTPTestServer) -> None:
    client = smtplib.SMTP(*mail_server.address("submission"), timeout=10)
    client.ehlo("laptop.example.test")
    assert client.has_extn("starttls")
    assert not client.has_extn("auth")  # not even SCRAM-SHA-256
    # SCRAM's first message carries no password, but the whole exchange (and the mail
    # after it) would travel in the clear: refused before it starts.
    assert client.docmd("AUTH SCRAM-SHA-256 biwsbj1hbGljZSxyPWFiYw==") == STARTTLS_FIRST
    assert client.docmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB4") == STARTTLS_FIRST
    assert client.docmd("MAIL FROM:<alice@example.test>") == STARTTLS_FIRST
    assert client.docmd("RCPT TO:<bob@example.test>") == STARTTLS_FIRST
    assert client.docmd("DATA") == STARTTLS_FIRST
    assert client.docmd("NOOP") == (250, b"2.0.0 Ok")
    client.quit()


def test_a_scram_submission_in_cleartext_is_refused(mail_server: SMTPTestServer) -> None:
    """mailroom's own client, told it may authenticate without TLS, tries SCRAM-SHA-256 and
    a message in the clear (on the server before this fix, both went through): it finds no
    AUTH to use, and the message alone is refused."""
    host, port = mail_server.address("submission")

    def submit(**login: str) -> None:
        asyncio.run(
            send_message(
                b"Subject: in the clear\r\n\r\nhello\r\n",
                host=host,
                port=port,
                sender="alice@example.test",
                recipients=["bob@example.test"],
                allow_insecure_auth=True,
                timeout=10,
                **login,
            )
        )

    with pytest.raises(SendError, match="does not offer AUTH"):
        submit(username="alice@example.test", password=ALICE_PASSWORD)
    with pytest.raises(SMTPReplyError) as refused:
        submit()
    assert refused.value.reply is not None
    assert str(refused.value.reply) == "530 5.7.0 Must issue a STARTTLS command first"
    assert mail_server.messages == []


def test_after_starttls_every_mechanism_is_offered(mail_server: SMTPTestServer) -> None:
    context = ssl.create_default_context(
        cafile=str(Path(mail_server.config.data) / "tls" / "self-signed.pem")
    )
    client = smtplib.SMTP(*mail_server.address("submission"), timeout=10)
    client.starttls(context=context)
    client.ehlo("laptop.example.test")
    assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]
    client.login("alice@example.test", ALICE_PASSWORD)
    assert (
        client.sendmail("alice@example.test", ["bob@example.test"], b"Subject: x\r\n\r\nx\r\n")
        == {}
    )
    client.quit()
