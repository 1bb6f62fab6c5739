"""The queue converting messages for real next hops (issue 17): Postfix's smtp-sink with ``-8``
(no 8BITMIME) and without SMTPUTF8, and Exim without 8BITMIME, SMTPUTF8 or CHUNKING — or with
SMTPUTF8. What arrives is read back with the email package: 7-bit, MIME-correct, the same
content; what cannot go comes back to the sender with its code."""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailroom.queue.entry import QueueSpool
from mailroom.queue.settings import RelayHost
from tests.client.servers import SMTP_SINK, smtp_sink
from tests.delivery.peers import Inbox, fast, queue_message, recipient_blocks, running, wait_until
from tests.interop.exim import running_exim

UTF8_TEXT = "Grüße aus Köln: 5 € für den Kaffee.\r\n"
MULTIPART = (
    "From: Alice <alice@a.test>\r\n"
    "To: bob@example.test\r\n"
    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="frontier"\r\n'
    "\r\n"
    "--frontier\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n" + UTF8_TEXT + "--frontier\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "\u00ff\u00fe raw\r\n"
    "--frontier--\r\n"
).encode("utf-8")


def require_sink() -> None:
    import os

    if SMTP_SINK is None:
        if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
            pytest.skip("smtp-sink (Debian package postfix) is not installed")
        pytest.fail("smtp-sink (Debian package postfix) is not installed")


def parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def sink_message(capture: bytes) -> bytes:
    """smtp-sink's capture: its X- headers and three-line Received:, then the message (LF line
    ends), then an empty line."""
    _, _, rest = capture.partition(b"\nReceived: ")
    return rest.split(b"\n", 3)[3][:-1]


def deliver(tmp_path: Path, address: str, entries: list[dict[str, object]]) -> Inbox:
    """Queue ``entries`` (keyword arguments of queue_message) for a route to ``address`` and run
    the queue until they are gone; the reports the sender got."""
    spool = QueueSpool(tmp_path / "queue")
    for entry in entries:
        queue_message(spool, **entry)  # type: ignore[arg-type]
    inbox = Inbox()
    routes = {
        domain: RelayHost.parse({"address": address, "tls": "none"})
        for domain in ("example.test", "b.test")
    }

    async def main() -> None:
        async with running(spool, fast(routes=routes), inbox):
            await wait_until(lambda: not spool.ids(), timeout=60)

    asyncio.run(main())
    return inbox


def test_8bit_parts_to_smtp_sink_without_8bitmime(tmp_path: Path) -> None:
    require_sink()
    with smtp_sink("-8") as sink:
        inbox = deliver(
            tmp_path,
            f"127.0.0.1:{sink.port}",
            [{"recipients": ["bob@example.test"], "message": MULTIPART, "body": "8BITMIME"}],
        )
        [capture] = sink.captured()
    arrived = sink_message(capture)
    assert arrived.isascii(), "a hop without 8BITMIME got 8-bit octets"
    message = parse(arrived)
    assert str(message["Subject"]) == "Grüße"
    text, data = message.iter_parts()
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_content().replace("\r\n", "\n") == UTF8_TEXT.replace("\r\n", "\n").rstrip("\n")
    assert data["Content-Transfer-Encoding"] == "base64"
    assert data.get_content() == "\u00ff\u00fe raw".encode()
    assert inbox.reports == []  # nothing was lost: nothing to report


def test_a_7bit_message_declared_8bitmime_to_smtp_sink_without_8bitmime(tmp_path: Path) -> None:
    # BODY=8BITMIME on a message of ASCII octets only (what many clients declare for every
    # message): smtp-sink -8 gets it as it is, without BODY=. It was returned with 5.6.3.
    require_sink()
    message = b"From: alice@a.test\r\nTo: bob@example.test\r\nSubject: plain\r\n\r\nASCII.\r\n"
    with smtp_sink("-8") as sink:
        inbox = deliver(
            tmp_path,
            f"127.0.0.1:{sink.port}",
            [{"recipients": ["bob@example.test"], "message": message, "body": "8BITMIME"}],
        )
        [capture] = sink.captured()
    assert sink_message(capture).replace(b"\n", b"\r\n") == message
    assert inbox.reports == []


def test_a_lossy_conversion_is_reported_with_2_6_4(tmp_path: Path) -> None:
    require_sink()
    latin1 = b"From: alice@a.test\r\nSubject: caf\r\n\r\nUn caf\xe9, s'il vous pla\xeet.\r\n"
    with smtp_sink("-8") as sink:
        inbox = deliver(
            tmp_path,
            f"127.0.0.1:{sink.port}",
            [{"recipients": ["bob@example.test"], "message": latin1, "body": "8BITMIME"}],
        )
        [capture] = sink.captured()
    arrived = parse(sink_message(capture))
    assert arrived.get_content_charset() == "unknown-8bit"
    assert arrived.get_payload(decode=True).rstrip(b"\r\n") == b"Un caf\xe9, s'il vous pla\xeet."
    [report] = inbox.reports
    [block] = recipient_blocks(report)
    assert (block["Action"], block["Status"]) == ("relayed", "2.6.4")
    assert "lost information" in " ".join(report.as_string().split())


def test_smtputf8_to_smtp_sink_without_smtputf8(tmp_path: Path) -> None:
    """smtp-sink offers 8BITMIME but not SMTPUTF8 (RFC 6531 §3.2): a non-ASCII recipient comes
    back with 5.6.7, UTF-8 header fields with 5.6.9; ASCII addresses and header go."""
    require_sink()
    utf8_header = "Subject: Grüße\r\n\r\nhi\r\n".encode()
    ascii_header = "Subject: hello\r\n\r\nGrüße\r\n".encode()
    with smtp_sink() as sink:
        inbox = deliver(
            tmp_path,
            f"127.0.0.1:{sink.port}",
            [
                {
                    "recipients": ["jos\u00e9@example.test", "bob@example.test"],
                    "message": ascii_header,
                    "smtputf8": True,
                    "body": "8BITMIME",
                },
                {"recipients": ["carol@b.test"], "message": utf8_header, "smtputf8": True},
            ],
        )
        captured = sink.captured()
    statuses = sorted(
        (block["Final-Recipient"].split(";")[1].strip(), block["Status"])
        for report in inbox.reports
        for block in recipient_blocks(report)
    )
    assert statuses == [("carol@b.test", "5.6.9"), ("jos\u00e9@example.test", "5.6.7")]
    [capture] = captured
    assert sink_message(capture).endswith("Grüße\n".encode())


def test_conversions_for_exim_without_8bitmime(tmp_path: Path) -> None:
    binary = (
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"\x89PNG\r\n\x1a\n\x00\x00\rdata\r\n--b--\r\n"
    )
    prohibited = b"Conversion: Prohibited\r\nSubject: x\r\n\r\ncaf\xc3\xa9\r\n"
    signed = (
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; boundary="s"; protocol="application/pgp-signature"\r\n'
        b"\r\n--s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"
        b"\r\n\r\nsign\xc3\xa9\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\nSIG\r\n"
        b"--s--\r\n"
    )
    with running_exim(eightbitmime=False, smtputf8=False, chunking=False) as exim:
        inbox = deliver(
            tmp_path,
            exim.address,
            [
                {"recipients": ["png@example.test"], "message": binary, "body": "BINARYMIME"},
                {"recipients": ["mime@example.test"], "message": MULTIPART, "body": "8BITMIME"},
                {"recipients": ["no@example.test"], "message": prohibited, "body": "8BITMIME"},
                {"recipients": ["signed@example.test"], "message": signed, "body": "8BITMIME"},
                {
                    "recipients": ["raw@example.test"],
                    "message": b"Subject: raw\r\n\r\n\x00\x01 binary\r\n",
                    "body": "BINARYMIME",
                },
            ],
        )
        arrived = {m.recipients[0]: m for m in exim.wait_for(2)}
    assert set(arrived) == {"png@example.test", "mime@example.test"}
    for received in arrived.values():
        assert received.message.isascii()
    [image] = parse(arrived["png@example.test"].message).iter_parts()
    assert image.get_content() == b"\x89PNG\r\n\x1a\n\x00\x00\rdata"
    text, _ = parse(arrived["mime@example.test"].message).iter_parts()
    assert "Grüße aus Köln" in text.get_content()
    statuses = sorted(
        (block["Final-Recipient"].split(";")[1].strip(), block["Status"])
        for report in inbox.reports
        for block in recipient_blocks(report)
    )
    assert statuses == [
        ("no@example.test", "5.6.2"),
        ("raw@example.test", "5.6.3"),
        ("signed@example.test", "5.7.3"),
    ]


def test_smtputf8_to_exim_that_offers_it(tmp_path: Path) -> None:
    message = "From: José <jos\u00e9@a.test>\r\nSubject: Grüße\r\n\r\nGrüße\r\n".encode()
    with running_exim(eightbitmime=True, smtputf8=True) as exim:
        inbox = deliver(
            tmp_path,
            exim.address,
            [
                {
                    "recipients": ["bj\u00f6rn@example.test"],
                    "sender": "jos\u00e9@a.test",
                    "message": message,
                    "smtputf8": True,
                    "body": "8BITMIME",
                }
            ],
        )
        [received] = exim.wait_for(1)
    assert received.sender == "jos\u00e9@a.test" and received.recipients == [
        "bj\u00f6rn@example.test"
    ]
    assert "Subject: Grüße".encode() in received.header
    assert inbox.reports == []


def test_an_lmtp_route_to_an_smtp_server_is_the_wrong_protocol(tmp_path: Path) -> None:
    """A route says LMTP, but smtp-sink speaks SMTP: it does not know LHLO (500). That is this
    server's configuration at fault (RFC 3463 X.5.5), so the message waits: 4.5.5, not a
    bounce of the recipient."""
    require_sink()
    spool = QueueSpool(tmp_path / "queue")
    entry = queue_message(spool, ["bob@example.test"])
    with smtp_sink() as sink:
        routes = {
            "example.test": RelayHost.parse(
                {"address": f"127.0.0.1:{sink.port}", "protocol": "lmtp", "tls": "none"}
            )
        }

        async def main() -> None:
            async with running(spool, fast(routes=routes, retry_schedule=(3600.0,))):
                await wait_until(lambda: (spool.load(entry.id) or entry).attempts >= 1)

        asyncio.run(main())
    [recipient] = spool.load(entry.id).recipients  # type: ignore[union-attr]
    assert (recipient.state, recipient.status) == ("pending", "4.5.5")
    assert "does not speak LMTP (it refused LHLO: 500 5.5.1" in (recipient.last_reply or "")
