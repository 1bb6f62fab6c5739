"""The standard library's smtplib against mailroom on loopback: plain, STARTTLS, SMTPS, AUTH
PLAIN and LOGIN, several recipients, dot lines, 8-bit and SMTPUTF8. Each message must then lie
in the Maildir byte for byte after the trace fields, and the CLI must find it."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.interop.messages import (
    DOT_BODY,
    LATIN1_MESSAGE,
    RECIPIENT,
    SENDER,
    UTF8_MESSAGE,
    UTF8_RECIPIENT,
    UTF8_SENDER,
    message,
)
from tests.live import (
    HOSTNAME,
    LiveServer,
    assert_listed,
    assert_stored,
    maildir_files,
    queue_id_of,
    run_cli,
    stored,
    tls_context,
)


def transaction(
    client: smtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    body: bytes,
    mail_options: Sequence[str] = (),
) -> str:
    """MAIL, RCPT…, DATA by hand, to see the reply to the end of data; the queue id."""
    client.ehlo_or_helo_if_needed()
    code, text = client.mail(sender, list(mail_options))
    assert code == 250, text
    for recipient in recipients:
        code, text = client.rcpt(recipient)
        assert code == 250, text
    code, text = client.data(body)
    assert code == 250, text
    return queue_id_of(text)


def test_plain(serve) -> None:
    live: LiveServer = serve()
    body = message("smtplib plain")
    with smtplib.SMTP(*live.smtp) as client:
        code, ehlo = client.ehlo("client.example.test")
        assert code == 250
        assert ehlo.startswith(f"{HOSTNAME} Hello".encode())
        assert b"STARTTLS" not in ehlo and b"AUTH" not in ehlo
        queue_id = transaction(client, SENDER, [RECIPIENT], body)
    raw = assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])
    assert b"Received: from client.example.test ([127.0.0.1])\r\n" in raw
    assert b" with ESMTP id " + queue_id.encode() + b"\r\n\tfor <bob@example.test>;" in raw
    assert_listed(
        live.data,
        queue_id,
        raw,
        sender=SENDER,
        recipients=[RECIPIENT],
        subject="smtplib plain",
        from_header="Alice <alice@example.test>",
        message_id="<smtplib-plain@example.test>",
        helo="client.example.test",
        tls=False,
        auth_user=None,
    )


def test_helo_without_esmtp(serve) -> None:
    live: LiveServer = serve()
    body = message("smtplib helo")
    with smtplib.SMTP(*live.smtp) as client:
        assert client.helo("old.example.test")[0] == 250
        queue_id = transaction(client, SENDER, [RECIPIENT], body)
    raw = assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])
    assert b" with SMTP id " in raw


def test_sendmail_several_recipients(serve) -> None:
    live: LiveServer = serve()
    recipients = ["bob@example.test", "carol@example.test", "dave@other.example.test"]
    body = message("three recipients")
    with smtplib.SMTP(*live.smtp) as client:
        refused = client.sendmail(SENDER, recipients, body)
    assert refused == {}
    (path,) = maildir_files(live.data)
    queue_id = path.name.split(".")[1]
    raw = assert_stored(live.data, queue_id, body, sender=SENDER, recipients=recipients)
    assert b"\tfor <" not in raw  # "for" names one recipient only (RFC 5321 §4.4)
    assert_listed(live.data, queue_id, raw, recipients=recipients, subject="three recipients")


def test_null_sender(serve) -> None:
    live: LiveServer = serve()
    body = message("bounce")
    with smtplib.SMTP(*live.smtp) as client:
        queue_id = transaction(client, "<>", [RECIPIENT], body)
    raw = assert_stored(live.data, queue_id, body, sender="", recipients=[RECIPIENT])
    assert_listed(live.data, queue_id, raw, sender="")


def test_dot_lines(serve) -> None:
    live: LiveServer = serve()
    body = message("dots", DOT_BODY)
    with smtplib.SMTP(*live.smtp) as client:
        queue_id = transaction(client, SENDER, [RECIPIENT], body)
    assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])


def test_several_messages_in_one_session(serve) -> None:
    live: LiveServer = serve()
    bodies = [message(f"number {n}") for n in range(3)]
    with smtplib.SMTP(*live.smtp) as client:
        ids = [transaction(client, SENDER, [RECIPIENT], body) for body in bodies]
        assert client.rset()[0] == 250
        ids.append(transaction(client, SENDER, [RECIPIENT], bodies[0]))
    assert len(set(ids)) == 4
    for queue_id, body in zip(ids, [*bodies, bodies[0]], strict=True):
        assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])


def test_smtputf8(serve) -> None:
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        assert client.has_extn("smtputf8") and client.has_extn("8bitmime")
        queue_id = transaction(
            client,
            UTF8_SENDER,
            [UTF8_RECIPIENT],
            UTF8_MESSAGE,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
    raw = assert_stored(
        live.data, queue_id, UTF8_MESSAGE, sender=UTF8_SENDER, recipients=[UTF8_RECIPIENT]
    )
    assert f" with UTF8SMTP id {queue_id}".encode() in raw
    assert_listed(
        live.data,
        queue_id,
        raw,
        sender=UTF8_SENDER,
        recipients=[UTF8_RECIPIENT],
        subject="Grüße aus Köln ✓",
        from_header="Jörg <jörg@exämple.test>",
    )


def test_utf8_address_needs_smtputf8(serve) -> None:
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        client.command_encoding = "utf-8"  # send it anyway, without the parameter
        code, text = client.mail(UTF8_SENDER)
    assert (code, text[:5]) == (550, b"5.6.7"), text
    assert not maildir_files(live.data)


def test_8bitmime(serve) -> None:
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        refused = client.sendmail(SENDER, [RECIPIENT], LATIN1_MESSAGE, ["BODY=8BITMIME"])
    assert refused == {}
    (path,) = maildir_files(live.data)
    queue_id = path.name.split(".")[1]
    assert_stored(live.data, queue_id, LATIN1_MESSAGE, sender=SENDER, recipients=[RECIPIENT])


def test_starttls(serve) -> None:
    live: LiveServer = serve(tls="self-signed")
    context = tls_context(live.data)
    body = message("over starttls")
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert client.starttls(context=context)[0] == 220
        code, ehlo = client.ehlo()
        assert code == 250 and b"STARTTLS" not in ehlo
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[union-attr]
        queue_id = transaction(client, SENDER, [RECIPIENT], body)
    raw = assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])
    assert f" with ESMTPS id {queue_id}".encode() in raw
    assert_listed(live.data, queue_id, raw, tls=True, auth_user=None)


def test_certificate_names_the_hostname(serve) -> None:
    live: LiveServer = serve(tls="self-signed")
    context = tls_context(live.data)
    with smtplib.SMTP(*live.smtp) as client:
        client._host = HOSTNAME  # type: ignore[attr-defined]  # the name to check for
        client.starttls(context=context)
        cert = client.sock.getpeercert()  # type: ignore[union-attr]
    assert ("DNS", HOSTNAME) in cert["subjectAltName"]


def test_smtps(serve) -> None:
    live: LiveServer = serve(smtps="127.0.0.1:0")
    context = tls_context(live.data)
    body = message("over smtps")
    with smtplib.SMTP_SSL(*live.smtps, context=context) as client:
        code, ehlo = client.ehlo()
        assert code == 250 and b"STARTTLS" not in ehlo
        queue_id = transaction(client, SENDER, [RECIPIENT], body)
    raw = assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])
    assert f" with ESMTPS id {queue_id}".encode() in raw
    assert_listed(live.data, queue_id, raw, tls=True)


def _auth(client: smtplib.SMTP, mechanism: str, user: str, password: str, initial: bool) -> None:
    client.user, client.password = user, password  # type: ignore[attr-defined]
    method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
    code, text = client.auth(mechanism, method, initial_response_ok=initial)
    assert (code, text) == (235, b"2.7.0 Authentication successful")


@pytest.mark.parametrize(
    ("mechanism", "initial"),
    [("PLAIN", True), ("PLAIN", False), ("LOGIN", True), ("LOGIN", False)],
)
def test_auth_accept_any_over_starttls(serve, mechanism: str, initial: bool) -> None:
    live: LiveServer = serve(tls="self-signed", auth="accept-any")
    body = message(f"auth {mechanism}")
    with smtplib.SMTP(*live.smtp) as client:
        client.starttls(context=tls_context(live.data))
        client.ehlo()
        assert mechanism in client.esmtp_features["auth"].split()
        _auth(client, mechanism, "anyone", "any password", initial)
        queue_id = transaction(client, SENDER, [RECIPIENT], body)
    raw = assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])
    assert b" (Authenticated sender: anyone)\r\n" in raw
    assert f" with ESMTPSA id {queue_id}".encode() in raw
    assert_listed(live.data, queue_id, raw, auth_user="anyone", tls=True)


def test_login_picks_a_mechanism(serve) -> None:
    live: LiveServer = serve(tls="self-signed", auth="accept-any")
    with smtplib.SMTP(*live.smtp) as client:
        client.starttls(context=tls_context(live.data))
        assert client.login("carol", "secret")[0] == 235
        queue_id = transaction(client, SENDER, [RECIPIENT], message("login"))
    assert b"(Authenticated sender: carol)" in stored(live.data, queue_id)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "passwords"
    run_cli("passwd", "alice", "--file", str(path), "--password-stdin", stdin=b"wonderland\n")
    line = run_cli("passwd", "bob", "--password-stdin", stdin=b"builder\n").decode()
    with path.open("a") as f:
        f.write("# a comment, and an empty line\n\n" + line)
    text = path.read_text()
    assert text.startswith("alice:$argon2") and "wonderland" not in text
    return path


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_password_file(serve, password_file: Path, mechanism: str) -> None:
    # Refusals in one session, then a success: without the brute-force limits (their delay,
    # and a session closed after its third failure: tests/hostile/test_auth_abuse.py).
    live: LiveServer = serve(
        tls="self-signed",
        auth=str(password_file),
        max_auth_failures_per_session=0,
        auth_failure_delay=0,
    )
    body = message(f"password file {mechanism}")
    with smtplib.SMTP(*live.smtp) as client:
        client.starttls(context=tls_context(live.data))
        client.ehlo()
        client.user, client.password = "alice", "wonderland"  # type: ignore[attr-defined]
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        # A wrong password, and a user who is not in the file (bob's password is "builder").
        wrong = ("alice", "builder") if mechanism == "PLAIN" else ("bob", "wonderland")
        for user, password in (wrong, ("nobody", "wonderland")):
            client.user, client.password = user, password  # type: ignore[attr-defined]
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.auth(mechanism, method)
            assert refused.value.smtp_code == 535
            assert refused.value.smtp_error == b"5.7.8 Authentication credentials invalid"
        assert client.mail(SENDER)[0] == 250  # AUTH is not required, only offered
        client.rset()
        _auth(client, mechanism, "alice", "wonderland", True)
        queue_id = transaction(client, SENDER, [RECIPIENT], body)
    raw = assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])
    assert b" (Authenticated sender: alice)\r\n" in raw
    assert_listed(live.data, queue_id, raw, auth_user="alice")


def test_wrong_password_reply_on_the_wire(serve, password_file: Path) -> None:
    live: LiveServer = serve(tls="self-signed", auth=str(password_file), auth_failure_delay=0)
    with smtplib.SMTP(*live.smtp) as client:
        client.starttls(context=tls_context(live.data))
        client.ehlo()
        code, text = client.docmd("AUTH", "PLAIN AGJvYgB3cm9uZw==")  # \0bob\0wrong
    assert (code, text) == (535, b"5.7.8 Authentication credentials invalid")


def test_send_message_international(serve) -> None:
    """send_message finds the non-ASCII addresses and asks for SMTPUTF8 by itself."""
    from email.message import EmailMessage

    live: LiveServer = serve()
    msg = EmailMessage()
    msg["From"] = f"Jörg <{UTF8_SENDER}>"
    msg["To"] = f"Zoë <{UTF8_RECIPIENT}>, {RECIPIENT}"
    msg["Subject"] = "Grüße ✓"
    msg["Message-ID"] = "<send-message@exämple.test>"
    msg.set_content("Ünïcödé body.\n.\nA dot line above.\n")
    with smtplib.SMTP(*live.smtp) as client:
        assert client.send_message(msg) == {}
    (path,) = maildir_files(live.data)
    queue_id = path.name.split(".")[1]
    expected = msg.as_bytes(policy=msg.policy.clone(utf8=True, linesep="\r\n"))
    raw = assert_stored(
        live.data,
        queue_id,
        expected,
        sender=UTF8_SENDER,
        recipients=[UTF8_RECIPIENT, RECIPIENT],
    )
    assert f" with UTF8SMTP id {queue_id}".encode() in raw
    assert_listed(live.data, queue_id, raw, subject="Grüße ✓", from_header=f"Jörg <{UTF8_SENDER}>")
