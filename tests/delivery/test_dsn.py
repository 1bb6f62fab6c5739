"""Delivery status notifications (RFC 3464, RFC 6522), parsed back with the email package:
the report's structure, every per-message and per-recipient field, RET=FULL and HDRS, the size
cap, delay warnings, relayed reports, and non-ASCII addresses (RFC 6533)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message

from mailroom.delivery.dsn import DSNOptions, build_dsn
from mailroom.delivery.schedule import Report
from mailroom.header_section import split_message
from mailroom.queue.entry import QueueEntry, QueueRecipient

ORIGINAL = (
    b"Received: from client.a.test ([127.0.0.1]) by mx.a.test (mailroom) with ESMTPA id Q1;\r\n"
    b"\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: Alice <alice@a.test>\r\n"
    b"To: bob@b.test\r\n"
    b"Subject: Lunch on Friday\r\n"
    b"Message-ID: <lunch@a.test>\r\n"
    b"\r\n"
    b"Shall we?\r\n"
)
CREATED = 1_700_000_000.0
ATTEMPT = CREATED + 600


def bounced(address: str = "bob@b.test", **changes: object) -> QueueRecipient:
    values: dict[str, object] = {
        "state": "bounced",
        "last_reply": "550 5.1.1 <bob@b.test>: Recipient address rejected: User unknown",
        "status": "5.1.1",
        "reason": "userunknown",
        "reason_why": "words 'user unknown'",
        "remote_mta": "mx.b.test",
        "last_attempt": ATTEMPT,
        "attempts": 1,
    }
    values.update(changes)
    return QueueRecipient(address, **values)  # type: ignore[arg-type]


def make_entry(*recipients: QueueRecipient, **changes: object) -> QueueEntry:
    entry = QueueEntry("Q0000000000000001", "alice@a.test", list(recipients), created=CREATED)
    for name, value in changes.items():
        setattr(entry, name, value)
    return entry


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def report_parts(dsn: EmailMessage) -> tuple[EmailMessage, list[Message], Message]:
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = dsn.get_payload()
    assert isinstance(parts, list) and len(parts) == 3
    human, status, returned = parts
    assert human.get_content_type() == "text/plain"
    assert status.get_content_type() in (
        "message/delivery-status",
        "message/global-delivery-status",
    )
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    return human, blocks, returned


def test_failure_report_fields() -> None:
    bob = bounced(orcpt=["rfc822", "Bob@B.test"])
    entry = make_entry(bob, envid="QQ-314159")
    data = build_dsn(
        entry, Report([(bob, "failed")]), ORIGINAL, DSNOptions("mx.a.test"), now=ATTEMPT
    )
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    dsn = parse(data)
    assert dsn["From"] == "Mail Delivery System <MAILER-DAEMON@mx.a.test>"
    assert [a.addr_spec for a in dsn["To"].addresses] == ["alice@a.test"]
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert dsn["Auto-Submitted"] == "auto-replied"
    assert dsn["Message-ID"].endswith("@mx.a.test>")
    assert dsn["Date"] is not None and dsn["MIME-Version"] == "1.0"
    human, blocks, returned = report_parts(dsn)

    words = " ".join(human.get_content().split())
    assert "<bob@b.test>:" in words
    assert (
        "mx.b.test said: 550 5.1.1 <bob@b.test>: Recipient address rejected: User unknown" in words
    )
    assert "Reason: userunknown (the recipient's mailbox does not exist); decided by words" in words
    assert "Subject: Lunch on Friday" in words and "<lunch@a.test>" in words

    per_message, per_recipient = blocks
    assert per_message["Reporting-MTA"] == "dns; mx.a.test"
    assert per_message["Original-Envelope-Id"] == "QQ-314159"
    assert per_message["Arrival-Date"] == email.utils.formatdate(CREATED, localtime=True)
    assert per_message["X-Mailroom-Queue-ID"] == "Q0000000000000001"
    assert per_recipient["Original-Recipient"] == "rfc822; Bob@B.test"
    assert per_recipient["Final-Recipient"] == "rfc822; bob@b.test"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.b.test"
    assert per_recipient["Diagnostic-Code"] == (
        "smtp; 550 5.1.1 <bob@b.test>: Recipient address rejected: User unknown"
    )
    assert per_recipient["Last-Attempt-Date"] == email.utils.formatdate(ATTEMPT, localtime=True)
    assert per_recipient["X-Mailroom-Reason"] == "userunknown"
    assert per_recipient["X-Mailroom-Reason-Why"] == "words 'user unknown'"
    assert per_recipient["Will-Retry-Until"] is None

    # RET=FULL is the default: the message comes back whole, as message/rfc822.
    assert returned.get_content_type() == "message/rfc822"
    inner = returned.get_payload()[0]
    assert inner["Message-ID"] == "<lunch@a.test>"
    assert inner.get_payload().strip() == "Shall we?"


def test_ret_hdrs_returns_the_header_only() -> None:
    bob = bounced()
    entry = make_entry(bob, ret="HDRS")
    dsn = parse(build_dsn(entry, Report([(bob, "failed")]), ORIGINAL, DSNOptions("mx.a.test")))
    _, _, returned = report_parts(dsn)
    assert returned.get_content_type() == "text/rfc822-headers"
    text = returned.get_payload(decode=True)
    assert text.rstrip(b"\r\n") == split_message(ORIGINAL)[0].rstrip(b"\r\n")
    assert b"Shall we?" not in text


def test_full_beyond_the_size_limit_returns_the_header_only() -> None:
    bob = bounced()
    big = ORIGINAL + b"x" * 5000 + b"\r\n"
    options = DSNOptions("mx.a.test", return_limit=1000)
    dsn = parse(build_dsn(make_entry(bob), Report([(bob, "failed")]), big, options))
    human, _, returned = report_parts(dsn)
    assert returned.get_content_type() == "text/rfc822-headers"
    assert "only its header is attached" in human.get_content()
    small = parse(build_dsn(make_entry(bob), Report([(bob, "failed")]), ORIGINAL, options))
    assert report_parts(small)[2].get_content_type() == "message/rfc822"


def test_delay_warning() -> None:
    carol = QueueRecipient(
        "carol@c.test",
        last_reply="452 4.2.2 <carol@c.test>: Mailbox full",
        status="4.2.2",
        reason="mailboxfull",
        remote_mta="mx.c.test",
        last_attempt=ATTEMPT,
        attempts=4,
    )
    options = DSNOptions("mx.a.test", max_age=5 * 86400)
    dsn = parse(build_dsn(make_entry(carol), Report([(carol, "delayed")]), ORIGINAL, options))
    assert dsn["Subject"] == "Delayed Mail (still being retried)"
    human, blocks, returned = report_parts(dsn)
    assert "not been delivered yet" in human.get_content()
    assert "mailboxfull (the recipient's mailbox is full)" in human.get_content()
    recipient = blocks[1]
    assert recipient["Action"] == "delayed"
    assert recipient["Status"] == "4.2.2"
    assert recipient["Diagnostic-Code"] == "smtp; 452 4.2.2 <carol@c.test>: Mailbox full"
    assert recipient["Will-Retry-Until"] == email.utils.formatdate(
        CREATED + 5 * 86400, localtime=True
    )
    # No failure: only the header comes back (RFC 3461 §4.3), even with RET=FULL.
    assert returned.get_content_type() == "text/rfc822-headers"


def test_expired_recipient_keeps_its_last_reply_and_reason() -> None:
    carol = bounced(
        "carol@c.test",
        status="4.4.7",
        reason="mailboxfull",
        last_reply="452 4.2.2 <carol@c.test>: Mailbox full",
        remote_mta="mx.c.test",
    )
    dsn = parse(
        build_dsn(make_entry(carol), Report([(carol, "failed")]), ORIGINAL, DSNOptions("h"))
    )
    human, blocks, _ = report_parts(dsn)
    assert (blocks[1]["Action"], blocks[1]["Status"]) == ("failed", "4.4.7")
    assert blocks[1]["X-Mailroom-Reason"] == "mailboxfull"
    assert blocks[1]["Diagnostic-Code"] == "smtp; 452 4.2.2 <carol@c.test>: Mailbox full"
    assert "gave up" in human.get_content()
    assert "mailbox is full" in human.get_content()


def test_relayed_report_and_our_own_diagnostic() -> None:
    dave = QueueRecipient(
        "dave@d.test",
        state="delivered",
        notify=["SUCCESS"],
        last_reply="250 2.0.0 Ok",
        status="2.0.0",
        reason="delivered",
        remote_mta="mx.d.test",
        last_attempt=ATTEMPT,
    )
    erin = bounced(
        "erin@e.test",
        status="5.1.10",
        reason="notaccept",
        last_reply="e.test accepts no mail (null MX, RFC 7505)",
        remote_mta=None,
    )
    report = Report([(dave, "relayed"), (erin, "failed")])
    dsn = parse(build_dsn(make_entry(dave, erin), report, ORIGINAL, DSNOptions("mx.a.test")))
    human, blocks, _ = report_parts(dsn)
    assert [b["Action"] for b in blocks[1:]] == ["relayed", "failed"]
    assert blocks[1]["Status"] == "2.1.9"  # relayed to a server without DSN (RFC 3886)
    assert blocks[2]["Diagnostic-Code"] == "X-Mailroom; e.test accepts no mail (null MX, RFC 7505)"
    assert blocks[2]["Remote-MTA"] is None
    assert "do not send" in human.get_content()
    only_relayed = parse(
        build_dsn(make_entry(dave), Report([(dave, "relayed")]), ORIGINAL, DSNOptions("h"))
    )
    assert only_relayed["Subject"] == "Successful Mail Delivery Report"


def test_long_diagnostic_is_folded() -> None:
    text = "550 5.7.1 " + " ".join(["word"] * 100)
    bob = bounced(last_reply=text, status="5.7.1")
    data = build_dsn(make_entry(bob), Report([(bob, "failed")]), ORIGINAL, DSNOptions("h"))
    assert all(len(line) <= 80 for line in data.split(b"\r\n") if b"word" in line)
    _, blocks, _ = report_parts(parse(data))
    assert " ".join(blocks[1]["Diagnostic-Code"].split()) == f"smtp; {text}"


def test_non_ascii_recipient_makes_a_global_report() -> None:
    jose = bounced("josé@b.test", last_reply="550 5.1.1 unknown")
    entry = make_entry(jose, smtputf8=True)
    message = ORIGINAL.replace(b"Subject: Lunch on Friday", "Subject: Café".encode())
    data = build_dsn(entry, Report([(jose, "failed")]), message, DSNOptions("mx.a.test"))
    dsn = parse(data)
    status = dsn.get_payload()[1]
    assert status.get_content_type() == "message/global-delivery-status"
    # The email package reads fields blocks of message/delivery-status only.
    as_plain = data.replace(b"message/global-delivery-status", b"message/delivery-status")
    _, blocks, returned = report_parts(parse(as_plain))
    assert blocks[1]["Final-Recipient"] == "utf-8; josé@b.test"
    assert returned.get_content_type() == "message/global"
    assert dsn["Content-Transfer-Encoding"] == "8bit"


def test_returned_header_ends_its_last_field() -> None:
    # A message with no body whose last field has no line end: the returned header still
    # ends its last field, so the MIME boundary after it starts a line of its own.
    bob = bounced()
    entry = make_entry(bob, ret="HDRS")
    raw = build_dsn(entry, Report([(bob, "failed")]), b"Subject: cut", DSNOptions("mx.a.test"))
    _, _, returned = report_parts(parse(raw))
    assert returned.get_payload(decode=True).rstrip(b"\r\n") == b"Subject: cut"
    assert b"Subject: cut\r\n" in raw
