"""The asyncio client (and its synchronous wrapper) against mailroom itself on loopback:
plain, STARTTLS and implicit TLS, AUTH, PIPELINING with DATA and with BDAT, SIZE, SMTPUTF8,
per-recipient results and refusals with their parsed replies."""

from __future__ import annotations

import asyncio
import email.policy
import ssl
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailroom.client import (
    AuthenticationFailed,
    Client,
    ConnectionFailed,
    GreetingRefused,
    MailOptions,
    RefusedBeforeSending,
    SyncClient,
    TLSFailed,
    send_message,
    send_message_sync,
)
from mailroom.client.message import message_bytes
from mailroom.policy.credentials import password_line
from mailroom.protocol.client import InvalidAddress, TraceLine
from mailroom.protocol.client_body import canonical_message
from tests.client.servers import HOSTNAME, Mailroom, free_port, mailroom_in_thread, with_mailroom


def make_message(
    subject: str = "hello", *, bcc: str | None = None, body: str = "Hello.\n"
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.test>"
    msg["To"] = "Bob <bob@example.test>, carol@example.test"
    if bcc:
        msg["Bcc"] = bcc
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@example.test>"
    msg.set_content(body)
    return msg


def test_plain_send_message_with_bcc(tmp_path: Path) -> None:
    msg = make_message("plain", bcc="dave@example.test")

    async def body(m: Mailroom):  # type: ignore[no-untyped-def]
        host, port = m.smtp
        return await send_message(msg, host=host, port=port)

    result = with_mailroom(tmp_path, body)
    assert [r.address for r in result.delivered] == [
        "bob@example.test",
        "carol@example.test",
        "dave@example.test",
    ]
    assert result.data_reply is not None and result.data_reply.text.startswith("Ok: queued as ")


def test_stored_bytes_are_the_message_without_bcc(tmp_path: Path) -> None:
    msg = make_message("exact", bcc="dave@example.test", body="line\n.\n..\nend\n")

    async def body(m: Mailroom) -> tuple[list[bytes], list[bytes]]:
        async with Client(*m.smtp) as client:
            await client.send(msg)
        return m.stored(), m.traces()

    (stored,), (trace,) = with_mailroom(tmp_path, body)
    assert stored == message_bytes(msg)
    assert b"Bcc" not in stored and b"\r\n.\r\n..\r\n" in stored
    assert trace.startswith(b"Return-Path: <alice@example.test>\r\n")
    assert b"Delivered-To: dave@example.test\r\n" in trace


@pytest.mark.parametrize("chunking", [None, False])
def test_several_messages_on_one_connection_with_bdat_and_data(
    tmp_path: Path, chunking: bool | None
) -> None:
    raw = [
        b"Subject: one\r\n\r\nfirst\r\n",
        b"Subject: two\n\n.dot\n\rbare CR\nsmuggle\n.\nMAIL FROM:<x@example.test>\n",
        b"Subject: three\r\n\r\n" + (b"y" * 76 + b"\r\n") * 4000,  # 312 kB: several chunks
    ]
    lines: list[TraceLine] = []

    async def body(m: Mailroom) -> list[bytes]:
        async with Client(*m.smtp, trace=lines.append) as client:
            for data in raw:
                result = await client.send(
                    data,
                    sender="a@example.test",
                    recipients=["b@example.test"],
                    options=MailOptions(chunking=chunking, chunk_size=64 * 1024),
                )
                assert result.all_delivered
                assert result.method == ("DATA" if chunking is False else "BDAT")
        return m.stored()

    assert with_mailroom(tmp_path, body) == [canonical_message(r) for r in raw]
    sent = [line.text for line in lines if line.direction == "client"]
    if chunking is False:
        assert sent.count("DATA") == 3
    else:
        assert sum(t.startswith("BDAT ") for t in sent) > 3  # the big one in several chunks
    # PIPELINING: MAIL and RCPT went out before the reply to MAIL came back.
    directions = [line.direction for line in lines if line.direction in ("client", "server")]
    first_mail = next(i for i, line in enumerate(lines) if line.text.startswith("MAIL FROM"))
    assert lines[first_mail + 1].text.startswith("RCPT TO") and "server" in directions


def test_starttls_and_auth(tmp_path: Path) -> None:
    async def body(m: Mailroom) -> tuple[bool, str, list[bytes]]:
        client = Client(
            *m.smtp, tls="starttls", ssl_context=m.ssl_context(), server_hostname=HOSTNAME
        )
        async with client:
            assert client.tls_active and "AUTH" in client.extensions
            reply = await client.login("bob", "whatever", mechanism="PLAIN")
            await client.send(make_message("tls"))
        return client.tls_active, str(reply), m.traces()

    tls, reply, (trace,) = with_mailroom(tmp_path, body, tls="self-signed", auth="accept-any")
    assert tls
    assert reply == "235 2.7.0 Authentication successful"
    assert b"(Authenticated sender: bob)" in trace and b"with ESMTPSA" in trace


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "SCRAM-SHA-256", None])
def test_auth_with_a_password_file(tmp_path: Path, mechanism: str | None) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text(password_line("bob", "s3cret") + "\n")

    async def body(m: Mailroom) -> tuple[str, str]:
        async with Client(*m.smtps, tls="implicit", ssl_context=m.ssl_context()) as client:
            assert client.tls_active
            await client.login("bob", "s3cret", mechanism=mechanism)
            good = client.connection.authenticated
        async with Client(*m.smtps, tls="implicit", ssl_context=m.ssl_context()) as client:
            with pytest.raises(AuthenticationFailed) as caught:
                await client.login("bob", "wrong", mechanism=mechanism)
        failure = caught.value
        assert failure.code == 535 and failure.is_permanent
        assert failure.classification.reason == "securityerror"
        return str(good), str(failure.reply.status)

    good, status = with_mailroom(
        tmp_path / "data", body, tls="self-signed", smtps="127.0.0.1:0", auth=str(passwords)
    )
    assert good == (mechanism or "SCRAM-SHA-256")  # the strongest both sides speak
    assert status == "5.7.8"


def test_untrusted_certificate_is_a_permanent_tls_failure(tmp_path: Path) -> None:
    async def body(m: Mailroom) -> TLSFailed:
        with pytest.raises(TLSFailed) as caught:
            await Client(
                *m.smtp, tls="starttls", ssl_context=ssl.create_default_context()
            ).connect()
        return caught.value

    failure = with_mailroom(tmp_path, body, tls="self-signed")
    assert failure.is_permanent and failure.reply is None


def test_starttls_required_but_not_offered(tmp_path: Path) -> None:
    async def body(m: Mailroom) -> None:
        with pytest.raises(TLSFailed):
            await Client(*m.smtp, tls="starttls").connect()
        async with Client(*m.smtp, tls="opportunistic") as client:  # goes on in the clear
            assert not client.tls_active
            await client.send(make_message("clear"))

    with_mailroom(tmp_path, body)


def test_size_is_refused_before_sending(tmp_path: Path) -> None:
    async def body(m: Mailroom) -> RefusedBeforeSending:
        async with Client(*m.smtp) as client:
            assert client.extensions.size == 2048
            with pytest.raises(RefusedBeforeSending) as caught:
                await client.send(make_message("big", body="x" * 3000))
            await client.send(make_message("small"))  # the connection is still good
        assert len(m.stored()) == 1
        return caught.value

    refused = with_mailroom(tmp_path, body, max_message_size="2K")
    assert (
        refused.reply is not None and refused.code == 552 and str(refused.reply.status) == "5.3.4"
    )
    assert refused.is_permanent and refused.classification.reason == "mesgtoobig"


def test_per_recipient_results(tmp_path: Path) -> None:
    async def body(m: Mailroom):  # type: ignore[no-untyped-def]
        async with Client(*m.smtp) as client:
            return await client.send(
                b"Subject: many\r\n\r\nhi\r\n",
                sender="a@example.test",
                recipients=["one@example.test", "two@example.test", "three@example.test"],
            )

    result = with_mailroom(tmp_path, body, max_recipients=2)
    assert [r.delivered for r in result.recipients] == [True, True, False]
    (failed,) = result.failed
    assert failed.reply.code == 452 and str(failed.reply.status) == "4.5.3"
    assert failed.is_transient and failed.command == "RCPT"
    assert failed.classification.action == "retry"
    assert failed.classification.reason == "toomanyconn"


def test_smtputf8(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["From"] = "Zoë <zoë@exämple.test>"
    msg["To"] = "jörg@exämple.test"
    msg["Subject"] = "grüße"
    msg.set_content("Grüße!\n")

    async def body(m: Mailroom) -> tuple[list[bytes], list[bytes]]:
        async with Client(*m.smtp) as client:
            await client.send(msg)
        return m.stored(), m.traces()

    (stored,), (trace,) = with_mailroom(tmp_path, body)
    assert "Delivered-To: jörg@exämple.test".encode() in trace
    assert stored == msg.as_bytes(policy=email.policy.SMTPUTF8)


def test_an_invalid_address_never_reaches_the_server(tmp_path: Path) -> None:
    lines: list[TraceLine] = []

    async def body(m: Mailroom) -> None:
        async with Client(*m.smtp, trace=lines.append) as client:
            with pytest.raises(InvalidAddress):
                await client.send(
                    b"x", sender="a@example.test", recipients=["b@example.test>\r\nRSET"]
                )
            await client.noop()

    with_mailroom(tmp_path, body)
    assert not any(line.text.startswith(("MAIL", "RCPT")) for line in lines)


def test_greeting_refused_when_the_server_is_full(tmp_path: Path) -> None:
    async def body(m: Mailroom) -> GreetingRefused:
        async with Client(*m.smtp):
            with pytest.raises(GreetingRefused) as caught:
                await Client(*m.smtp).connect()
        return caught.value

    refused = with_mailroom(tmp_path, body, max_connections=1)
    assert refused.code == 421 and refused.is_transient
    assert refused.classification.reason == "toomanyconn"


def test_nothing_listening() -> None:
    async def body() -> ConnectionFailed:
        with pytest.raises(ConnectionFailed) as caught:
            await Client("127.0.0.1", free_port(), timeout=30).connect()
        return caught.value

    failure = asyncio.run(body())
    assert failure.is_transient and failure.reply is None


def test_sync_client(tmp_path: Path) -> None:
    with mailroom_in_thread(tmp_path, tls="self-signed", auth="accept-any") as m:
        with SyncClient(*m.smtp, tls="starttls", ssl_context=m.ssl_context()) as client:
            client.login("bob", "pw")
            first = client.send(make_message("sync one"))
            second = client.send(make_message("sync two"))
            assert client.noop().code == 250
        host, port = m.smtp
        third = send_message_sync(make_message("sync three"), host=host, port=port)
        stored = m.stored()
    assert first.all_delivered and second.all_delivered and third.all_delivered
    assert [s.split(b"Subject: ")[1].split(b"\r\n")[0] for s in stored] == [
        b"sync one",
        b"sync two",
        b"sync three",
    ]


def test_sync_client_refuses_to_run_inside_an_event_loop() -> None:
    async def body() -> None:
        with pytest.raises(RuntimeError):
            SyncClient("127.0.0.1", 1).connect()

    asyncio.run(body())
