"""aiosmtplib against mailroom on loopback: plain, STARTTLS (with AUTH), SMTPS, send_message
and sendmail, and many clients at once (their fsyncs shared by group commit)."""

from __future__ import annotations

import asyncio
import copy
import email.policy
from email.message import EmailMessage

import aiosmtplib

from tests.interop.messages import DOT_BODY, RECIPIENT, SENDER, message
from tests.live import (
    LiveServer,
    assert_listed,
    assert_stored,
    cli_list,
    queue_id_of,
    tls_context,
)


def email_message(subject: str, *, bcc: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.test>"
    msg["To"] = "Bob <bob@example.test>, carol@example.test"
    if bcc:
        msg["Bcc"] = bcc
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.test>"
    msg.set_content("Hello from aiosmtplib.\n.\nA line that is only a dot, above.\n")
    return msg


def wire_bytes(msg: EmailMessage) -> bytes:
    """What a client sends for ``msg`` (RFC 5322 form: CRLF, no Bcc), made with the stdlib
    generator rather than with aiosmtplib's own."""
    sent = copy.copy(msg)
    del sent["Bcc"]
    return sent.as_bytes(policy=email.policy.SMTP)


def test_send_message_plain(serve) -> None:
    live: LiveServer = serve()
    msg = email_message("aiosmtplib plain", bcc="dave@example.test")
    host, port = live.smtp
    errors, text = asyncio.run(aiosmtplib.send(msg, hostname=host, port=port, start_tls=False))
    assert errors == {}
    queue_id = queue_id_of(text)
    recipients = ["bob@example.test", "carol@example.test", "dave@example.test"]
    raw = assert_stored(live.data, queue_id, wire_bytes(msg), sender=SENDER, recipients=recipients)
    assert b"Bcc" not in raw
    assert b"\r\n.\r\nA line that is only a dot, above.\r\n" in raw
    assert_listed(
        live.data,
        queue_id,
        raw,
        sender=SENDER,
        recipients=recipients,
        subject="aiosmtplib plain",
        to_header="Bob <bob@example.test>, carol@example.test",
    )


def test_sendmail_exact_bytes(serve) -> None:
    live: LiveServer = serve()
    body = message("aiosmtplib dots", DOT_BODY)
    host, port = live.smtp

    async def send() -> str:
        async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False) as client:
            errors, text = await client.sendmail(SENDER, [RECIPIENT], body)
            assert errors == {}
            return text

    queue_id = queue_id_of(asyncio.run(send()))
    assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])


def test_starttls_and_auth(serve) -> None:
    live: LiveServer = serve(tls="self-signed", auth="accept-any")
    msg = email_message("aiosmtplib starttls")
    host, port = live.smtp

    async def send() -> str:
        client = aiosmtplib.SMTP(
            hostname=host, port=port, start_tls=False, tls_context=tls_context(live.data)
        )
        async with client:
            await client.ehlo()
            assert client.supports_extension("starttls")
            assert "plain" not in client.server_auth_methods  # not before TLS
            response = await client.starttls()
            assert response.code == 220
            assert client.get_transport_info("sslcontext") is not None
            await client.ehlo()
            assert "plain" in client.server_auth_methods
            response = await client.login("frank", "anything")
            assert (response.code, response.message) == (235, "2.7.0 Authentication successful")
            errors, text = await client.send_message(msg)
            assert errors == {}
            return text

    queue_id = queue_id_of(asyncio.run(send()))
    recipients = ["bob@example.test", "carol@example.test"]
    raw = assert_stored(live.data, queue_id, wire_bytes(msg), sender=SENDER, recipients=recipients)
    assert b"(Authenticated sender: frank)" in raw
    assert f" with ESMTPSA id {queue_id}".encode() in raw
    assert_listed(live.data, queue_id, raw, tls=True, auth_user="frank")


def test_starttls_automatic(serve) -> None:
    live: LiveServer = serve(tls="self-signed")
    msg = email_message("aiosmtplib auto starttls")
    host, port = live.smtp
    errors, text = asyncio.run(
        aiosmtplib.send(msg, hostname=host, port=port, tls_context=tls_context(live.data))
    )
    assert errors == {}
    queue_id = queue_id_of(text)
    raw = assert_stored(
        live.data,
        queue_id,
        wire_bytes(msg),
        sender=SENDER,
        recipients=["bob@example.test", "carol@example.test"],
    )
    assert f" with ESMTPS id {queue_id}".encode() in raw


def test_implicit_tls(serve) -> None:
    live: LiveServer = serve(smtps="127.0.0.1:0")
    msg = email_message("aiosmtplib smtps")
    host, port = live.smtps
    errors, text = asyncio.run(
        aiosmtplib.send(
            msg, hostname=host, port=port, use_tls=True, tls_context=tls_context(live.data)
        )
    )
    assert errors == {}
    queue_id = queue_id_of(text)
    raw = assert_stored(
        live.data,
        queue_id,
        wire_bytes(msg),
        sender=SENDER,
        recipients=["bob@example.test", "carol@example.test"],
    )
    assert f" with ESMTPS id {queue_id}".encode() in raw


def test_many_clients_at_once(serve) -> None:
    live: LiveServer = serve()
    host, port = live.smtp
    count = 40

    async def one(n: int) -> tuple[str, bytes]:
        body = message(f"concurrent {n}", f"message number {n}\r\n".encode())
        _, text = await aiosmtplib.send(
            body, sender=SENDER, recipients=[RECIPIENT], hostname=host, port=port, start_tls=False
        )
        return queue_id_of(text), body

    async def all_of_them() -> list[tuple[str, bytes]]:
        return await asyncio.gather(*(one(n) for n in range(count)))

    results = asyncio.run(all_of_them())
    assert len({queue_id for queue_id, _ in results}) == count
    for queue_id, body in results:
        assert_stored(live.data, queue_id, body, sender=SENDER, recipients=[RECIPIENT])
    rows = cli_list(live.data)
    assert {row["id"] for row in rows} == {queue_id for queue_id, _ in results}
