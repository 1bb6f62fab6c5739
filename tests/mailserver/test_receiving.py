"""The mail server mode receiving mail: each situation at RCPT gets its reply (issue 5), and
accepted mail lands in one Maildir per local user."""

from __future__ import annotations

import base64
import mailbox
import smtplib
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailroom.config import ConfigError, load_config
from mailroom.testing import SMTPTestServer
from tests.mailserver.conftest import ALICE_PASSWORD, write_config, write_minimal_config

MESSAGE = (
    b"From: someone@remote.test\r\nSubject: hello\r\nMessage-ID: <m1@remote.test>\r\n\r\nHi!\r\n"
)


def mx(server: SMTPTestServer) -> smtplib.SMTP:
    client = smtplib.SMTP(*server.address("mx"), timeout=10)
    client.ehlo("client.remote.test")
    return client


def maildir(server: SMTPTestServer, user: str) -> mailbox.Maildir:
    domain = "example.test"
    return mailbox.Maildir(Path(server.config.data) / "mail" / domain / user, create=False)


@pytest.mark.parametrize(
    "recipient, reply",
    [
        ("alice@example.test", (250, b"2.1.5 Ok")),
        ("ALICE@Example.TEST", (250, b"2.1.5 Ok")),
        ("alice+lists@example.test", (250, b"2.1.5 Ok")),
        ("team@example.test", (250, b"2.1.5 Ok")),
        ("anyone@example.org", (250, b"2.1.5 Ok")),
        ("Postmaster", (250, b"2.1.5 Ok")),
        ("postmaster@example.test", (250, b"2.1.5 Ok")),
        (
            "nobody@example.test",
            (550, b"5.1.1 <nobody@example.test>: Recipient address rejected: User unknown"),
        ),
        ("carol@example.test", (551, b"5.1.6 User not local; please try <carol@elsewhere.test>")),
        ("someone@remote.test", (550, b"5.7.1 <someone@remote.test>: Relay access denied")),
        (
            "user%remote.test@example.test",
            (550, b"5.7.1 <user%remote.test@example.test>: Relay access denied"),
        ),
        (
            "remote.test!user@example.test",
            (550, b"5.7.1 <remote.test!user@example.test>: Relay access denied"),
        ),
        (
            '"user@remote.test"@example.test',
            (550, b'5.7.1 <"user@remote.test"@example.test>: Relay access denied'),
        ),
        ("@example.test:user@remote.test", (550, b"5.7.1 <user@remote.test>: Relay access denied")),
        ("user@[127.0.0.1]", (550, b"5.7.1 <user@[127.0.0.1]>: Relay access denied")),
        (
            "-alice@example.test",
            (
                553,
                b"5.1.3 <-alice@example.test>: Recipient address rejected: mailbox name not "
                b"allowed",
            ),
        ),
    ],
)
def test_rcpt_replies_on_the_mx_listener(
    mail_server: SMTPTestServer, recipient: str, reply: tuple[int, bytes]
) -> None:
    client = mx(mail_server)
    assert client.mail("someone@remote.test") == (250, b"2.1.0 Ok")
    assert client.docmd(f"RCPT TO:<{recipient}>") == reply
    client.quit()


def test_mx_offers_no_auth_and_never_relays(mail_server: SMTPTestServer) -> None:
    client = mx(mail_server)
    assert not client.has_extn("auth")
    assert client.docmd("AUTH PLAIN AGFsaWNlAHg=") == (
        503,
        b"5.5.1 Error: authentication not enabled",
    )
    client.quit()


def test_each_local_user_gets_their_own_copy(mail_server: SMTPTestServer) -> None:
    client = mx(mail_server)
    refused = client.sendmail(
        "someone@remote.test", ["team@example.test", "alice@example.test", "x@example.org"], MESSAGE
    )
    assert refused == {}
    client.quit()
    [alice_copy] = list(maildir(mail_server, "alice"))
    [bob_copy] = list(maildir(mail_server, "bob"))
    # Each copy names only the recipients it was delivered for (no Bcc leaks between users).
    assert alice_copy.get_all("Delivered-To") == ["team@example.test", "alice@example.test"]
    assert bob_copy.get_all("Delivered-To") == ["team@example.test", "x@example.org"]
    assert alice_copy["Return-Path"] == "<someone@remote.test>"
    assert alice_copy["Message-ID"] == bob_copy["Message-ID"] == "<m1@remote.test>"
    assert alice_copy.get_payload() == bob_copy.get_payload() == "Hi!\n"


def test_alias_that_forwards_off_site_is_queued(mail_server: SMTPTestServer) -> None:
    client = mx(mail_server)
    assert client.sendmail("someone@remote.test", ["dave@example.test"], MESSAGE) == {}
    client.quit()
    queue = Path(mail_server.config.data) / "queue" / "active"
    [entry] = list(queue.glob("*.json"))
    assert '"address": "dave@remote.test"' in entry.read_text()
    assert (queue / (entry.stem + ".eml")).read_bytes().endswith(MESSAGE)


def _submission(server: SMTPTestServer) -> smtplib.SMTP:
    context = ssl.create_default_context(
        cafile=str(Path(server.config.data) / "tls" / "self-signed.pem")
    )
    client = smtplib.SMTP(*server.address("submission"), timeout=10)
    client.ehlo("laptop.example.test")
    client.starttls(context=context)
    client.ehlo("laptop.example.test")
    return client


def test_submission_requires_tls_then_auth(mail_server: SMTPTestServer) -> None:
    client = smtplib.SMTP(*mail_server.address("submission"), timeout=10)
    client.ehlo("laptop.example.test")
    # Before TLS nothing is offered or taken (tests/hostile/test_submission_cleartext.py).
    assert not client.has_extn("auth")
    starttls_first = (530, b"5.7.0 Must issue a STARTTLS command first")
    assert client.docmd("MAIL FROM:<alice@example.test>") == starttls_first
    assert client.docmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB4") == starttls_first
    client.quit()
    # After TLS, AUTH before MAIL.
    client = _submission(mail_server)
    assert client.docmd("MAIL FROM:<alice@example.test>") == (530, b"5.7.0 Authentication required")
    client.quit()


def test_submission_authenticated_user_relays_as_themselves(mail_server: SMTPTestServer) -> None:
    client = _submission(mail_server)
    with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
        client.login("alice@example.test", "wrong")
    assert (wrong.value.smtp_code, wrong.value.smtp_error) == (
        535,
        b"5.7.8 Authentication credentials invalid",
    )
    assert client.login("alice@example.test", ALICE_PASSWORD) == (
        235,
        b"2.7.0 Authentication successful",
    )
    assert client.docmd("MAIL FROM:<bob@example.test>") == (
        553,
        b"5.7.1 <bob@example.test>: Sender address rejected: not owned by user alice@example.test",
    )
    # Her own sub-address is hers, as mail to it reaches her (RFC 5233 style); a sub-address
    # of someone else's, or of an address that has moved away, is not.
    assert client.docmd("MAIL FROM:<alice+news@example.test>") == (250, b"2.1.0 Ok")
    client.rset()
    assert client.docmd("MAIL FROM:<bob+news@example.test>")[0] == 553
    assert client.docmd("MAIL FROM:<carol+x@example.test>")[0] == 553
    assert client.docmd("MAIL FROM:<+news@example.test>")[0] == 553
    # postmaster@ is an alias of alice: she may send as it.
    assert client.docmd("MAIL FROM:<postmaster@example.test>") == (250, b"2.1.0 Ok")
    assert client.rcpt("friend@remote.test") == (250, b"2.1.5 Ok")
    code, text = client.data(MESSAGE)
    assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
    client.quit()
    queue = Path(mail_server.config.data) / "queue" / "active"
    assert len(list(queue.glob("*.json"))) == 1


@pytest.mark.parametrize(
    "name",
    [
        "alice@example.test\r\n",
        " alice@example.test",
        "alice@example.test\u2028",
        "alice@example.test\x85",
        "\x1falice@example.test",
    ],
)
def test_a_name_that_is_more_than_the_address_does_not_log_in(
    mail_server: SMTPTestServer, name: str
) -> None:
    """The directory reads addresses from mailroom.toml with surrounding whitespace stripped;
    AUTH compared names the same way, so alice's password logged in with line breaks, NEL,
    U+2028 or controls around her address, and the name as given went into the Received
    field of her mail: control characters and 8-bit octets in a header she could not
    otherwise write there."""
    client = _submission(mail_server)
    plain = base64.b64encode(f"\0{name}\0{ALICE_PASSWORD}".encode()).decode()
    assert client.docmd("AUTH", f"PLAIN {plain}") == (
        535,
        b"5.7.8 Authentication credentials invalid",
    )
    client.quit()


def test_quota_full_mailbox_is_temporary_by_default(
    mail_server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = mail_server_factory(bob_quota="1")
    client = mx(server)
    assert client.sendmail("someone@remote.test", ["bob@example.test"], MESSAGE) == {}
    client.mail("someone@remote.test")
    assert client.rcpt("bob@example.test") == (
        452,
        b"4.2.2 <bob@example.test>: Recipient address rejected: mailbox full",
    )
    client.quit()
    server = mail_server_factory(bob_quota="1", policy='full_mailbox = "permanent"')
    client = mx(server)
    client.sendmail("someone@remote.test", ["bob@example.test"], MESSAGE)
    client.mail("someone@remote.test")
    assert client.rcpt("bob@example.test") == (
        552,
        b"5.2.2 <bob@example.test>: Recipient address rejected: mailbox full",
    )
    client.quit()


def test_greylisting_defers_a_new_triple_then_accepts_it(
    mail_server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = mail_server_factory(policy="greylisting = true\ngreylist_delay = 1")
    client = mx(server)
    client.mail("someone@remote.test")
    code, text = client.rcpt("alice@example.test")
    assert code == 450
    assert text.startswith(
        b"4.7.1 <alice@example.test>: Recipient address rejected: Greylisted, try again in "
    )
    time.sleep(1.1)
    assert client.rcpt("alice@example.test") == (250, b"2.1.5 Ok")
    client.quit()


def test_a_client_greylisted_over_and_over_is_cut_off(
    mail_server_factory: Callable[..., SMTPTestServer],
) -> None:
    """Greylisted RCPTs are refusals too: past max_refused_recipients without a message taken,
    the next RCPT gets 421 and the session ends (each would cost a greylist lookup)."""
    server = mail_server_factory(
        policy="greylisting = true\ngreylist_delay = 300", server="max_refused_recipients = 3"
    )
    client = mx(server)
    client.mail("someone@remote.test")
    assert [client.rcpt("alice@example.test")[0] for _ in range(3)] == [450, 450, 450]
    assert client.rcpt("alice@example.test") == (
        421,
        b"4.7.0 mx.example.test Error: too many errors, closing connection",
    )
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()


def test_block_list_refuses_at_the_greeting(
    mail_server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = mail_server_factory(policy='block_list = ["127.0.0.0/8"]')
    client = smtplib.SMTP(timeout=10)
    code, text = client.connect(*server.address("mx"))
    assert (code, text) == (554, b"5.7.1 mx.example.test No SMTP service here")
    assert client.docmd("EHLO x") == (503, b"5.5.1 Error: no SMTP service here, say QUIT")
    assert client.docmd("QUIT") == (221, b"2.0.0 Bye")


def test_a_server_that_accepts_no_mail_says_521(
    mail_server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = mail_server_factory(policy="accept_no_mail = true")
    client = smtplib.SMTP(timeout=10)
    refusal = (521, b"5.3.2 mx.example.test does not accept mail")
    assert client.connect(*server.address("mx")) == refusal
    # RFC 7504 §3: every command but QUIT gets 521 again
    assert client.ehlo() == refusal
    assert client.docmd("MAIL FROM:<a@remote.test>") == refusal
    assert client.docmd("QUIT") == (221, b"2.0.0 Bye")


def test_rate_limit_per_client(mail_server_factory: Callable[..., SMTPTestServer]) -> None:
    server = mail_server_factory(policy="max_messages_per_minute = 2")
    client = mx(server)
    client.mail("someone@remote.test")
    assert client.rcpt("alice@example.test")[0] == 250
    assert client.rcpt("bob@example.test")[0] == 250
    assert client.rcpt("team@example.test") == (
        450,
        b"4.7.1 Error: too many messages from 127.0.0.1, slow down",
    )
    client.quit()


def test_inject_routes_a_bounce_like_received_mail(mail_server: SMTPTestServer) -> None:
    # What the queue runner does with a DSN: local senders get it in their Maildir, unknown
    # local addresses go to the postmaster, remote ones are queued.
    bounce = b"From: MAILER-DAEMON@mx.example.test\r\nSubject: Undelivered\r\n\r\nSorry.\r\n"
    queue_id = mail_server._call(
        mail_server.server.inject(
            "", ["alice@example.test", "ghost@example.test", "someone@remote.test"], bounce
        )
    )
    assert len(queue_id) == 16
    alice = list(maildir(mail_server, "alice"))
    # alice once as herself and once as the postmaster: one copy, both names on it.
    assert len(alice) == 1
    assert alice[0].get_all("Delivered-To") == ["alice@example.test", "ghost@example.test"]
    assert alice[0]["Return-Path"] == "<>"
    queue = Path(mail_server.config.data) / "queue" / "active"
    [entry] = list(queue.glob("*.json"))
    assert '"address": "someone@remote.test"' in entry.read_text()
    assert '"sender": ""' in entry.read_text()


def test_the_example_config_is_valid() -> None:
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "mailroom.toml"
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", "check-config", str(example)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "mail server for example.org, example.test; 3 users" in result.stdout
    assert ": warning: " not in result.stdout  # nothing in it loads that cannot work


def test_notify_success_for_a_local_mailbox_sends_a_delivered_report(
    mail_server: SMTPTestServer,
) -> None:
    """RCPT ... NOTIFY=SUCCESS for a local user: once the message is in the Maildir the sender
    gets a "delivered" report (RFC 3461 §6.2.2), here in bob's own Maildir; a recipient who
    did not ask is not in it."""
    client = mx(mail_server)
    assert client.mail("bob@example.test", ["ENVID=trip-42"]) == (250, b"2.1.0 Ok")
    options = ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Alice@example.test"]
    assert client.rcpt("alice@example.test", options) == (250, b"2.1.5 Ok")
    assert client.rcpt("x@example.org") == (250, b"2.1.5 Ok")  # bob, by the catch-all
    code, _ = client.data(MESSAGE)
    assert code == 250
    client.quit()
    assert len(list(maildir(mail_server, "alice"))) == 1
    deadline = time.monotonic() + 20
    while len(list(maildir(mail_server, "bob"))) < 2:
        assert time.monotonic() < deadline, "no report came"
        time.sleep(0.05)
    [report] = [
        m for m in maildir(mail_server, "bob") if m.get_content_type() == "multipart/report"
    ]
    assert report["Subject"] == "Successful Mail Delivery Report"
    assert report["To"] == "<bob@example.test>"
    human, status, returned = report.get_payload()
    assert "was delivered to the mailboxes of the recipients below" in human.get_payload()
    fields = [part.items() for part in status.get_payload()]
    assert ("Original-Envelope-Id", "trip-42") in fields[0]
    [alice] = fields[1:]
    assert dict(alice) | {"Last-Attempt-Date": ""} == {
        "Original-Recipient": "rfc822; Alice@example.test",
        "Final-Recipient": "rfc822; alice@example.test",
        "Action": "delivered",
        "Status": "2.0.0",
        "Diagnostic-Code": "X-Mailroom; delivered to its mailbox on this server",
        "Last-Attempt-Date": "",
        "X-Mailroom-Reason": "delivered",
    }
    assert returned.get_content_type() == "text/rfc822-headers"
    queue = Path(mail_server.config.data) / "queue" / "active"
    deadline = time.monotonic() + 10
    while list(queue.glob("*.json")):
        assert time.monotonic() < deadline, "the report's queue entry stayed"
        time.sleep(0.05)


def test_no_success_report_without_notify_or_for_the_null_sender(
    mail_server: SMTPTestServer,
) -> None:
    client = mx(mail_server)
    assert client.sendmail("bob@example.test", ["alice@example.test"], MESSAGE) == {}
    client.mail("")
    client.rcpt("alice@example.test", ["NOTIFY=SUCCESS"])
    assert client.data(MESSAGE)[0] == 250
    client.quit()
    assert len(list(maildir(mail_server, "alice"))) == 2
    assert not list((Path(mail_server.config.data) / "queue" / "active").glob("*.json"))
    time.sleep(0.5)
    assert not (Path(mail_server.config.data) / "mail" / "example.test" / "bob").exists()


def test_the_web_api_does_not_send_for_a_mail_server(tmp_path: Path) -> None:
    """Mailpit's POST /api/v1/send captures mail in the catcher; a mail server would deliver
    it, so there it is refused: its users send with SMTP submission."""
    import base64
    import json
    import urllib.error
    import urllib.request

    from tests.mailserver.conftest import write_config

    config = write_config(tmp_path / "mailroom.toml")
    settings = {"web": "127.0.0.1:0", "web_auth": "postmaster@example.test:web-secret"}
    server = SMTPTestServer(tmp_path / "data", settings, config_file=config).start()
    try:
        web = server.server.web
        assert web is not None
        body = {"From": {"Email": "alice@example.test"}, "To": [{"Email": "x@remote.test"}]}
        request = urllib.request.Request(
            web.url + "api/v1/send",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": "Basic "
                + base64.b64encode(b"postmaster@example.test:web-secret").decode()
            },
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400
        assert "SMTP submission" in json.loads(refused.value.read())["Error"]
        assert not list((Path(server.config.data) / "queue" / "active").glob("*.json"))
    finally:
        server.stop()


def test_a_catcher_listener_is_a_configuration_error(tmp_path: Path) -> None:
    """In the mail server mode a listener with the catcher's role was taken: the mail server's
    policy decided there, but as none of its roles, so AUTH SCRAM-SHA-256 was offered before
    STARTTLS and mail skipped SPF, DKIM and DMARC (the mx listeners' checks)."""
    extra = '[[listeners]]\naddress = "127.0.0.1:0"\nrole = "catcher"\n'
    path = write_config(tmp_path / "mailroom.toml", server=extra)
    with pytest.raises(ConfigError, match="role catcher is the mail catcher's; a mail server's"):
        load_config(path)


def test_postmaster_of_a_local_domain_is_accepted_without_an_alias(tmp_path: Path) -> None:
    """RFC 5321 §4.5.1: RCPT to postmaster at any of the server's domains, and <Postmaster>,
    MUST be supported. With no postmaster alias the first user gets the postmaster's mail."""
    config = write_minimal_config(
        tmp_path / "mailroom.toml", domains=["example.test"], users=["alice@example.test"]
    )
    server = SMTPTestServer(tmp_path / "data", config_file=config).start()
    try:
        client = mx(server)
        assert client.mail("someone@remote.test") == (250, b"2.1.0 Ok")
        assert client.rcpt("Postmaster") == (250, b"2.1.5 Ok")
        assert client.rcpt("postmaster@example.test") == (250, b"2.1.5 Ok")
        assert client.rcpt("PostMaster@Example.TEST") == (250, b"2.1.5 Ok")
        assert client.rcpt("abuse@example.test") == (
            550,
            b"5.1.1 <abuse@example.test>: Recipient address rejected: User unknown",
        )
        client.quit()
    finally:
        server.stop()
