"""What a reply or a failure means for a recipient: 2yz delivered, 4yz retried, 5yz bounced,
failures without a reply retried; the status, the diagnostic and the reason recorded."""

from __future__ import annotations

import pytest

from mailroom.client import (
    ConnectionFailed,
    GreetingRefused,
    HelloRefused,
    ProtocolError,
    ServiceClosing,
    TLSFailed,
)
from mailroom.codes import Reply
from mailroom.delivery.outcome import (
    apply,
    diagnostic_line,
    from_error,
    from_reply,
    is_smtp_diagnostic,
    local,
)
from mailroom.queue.entry import QueueRecipient


@pytest.mark.parametrize(
    ("wire", "command", "action", "status", "reason"),
    [
        ("250 2.0.0 Ok: queued as 1234", "DATA", "delivered", "2.0.0", "delivered"),
        ("250 Ok", "DATA", "delivered", "2.0.0", "delivered"),
        ("451 4.3.0 try later", "RCPT", "retry", "4.3.0", None),
        ("452 4.2.2 Mailbox full", "RCPT", "retry", "4.2.2", "mailboxfull"),
        ("550 5.1.1 <bob@example.test>: no such user", "RCPT", "bounce", "5.1.1", "userunknown"),
        # No enhanced code: class.0.0 (RFC 3463 §3.1), the reason still read from the reply.
        ("550 Requested action not taken: mailbox unavailable", "RCPT", "bounce", "5.0.0", None),
        ("552 5.3.4 Message too big", "DATA", "bounce", "5.3.4", "mesgtoobig"),
        ("421 4.7.0 Too busy", "CONNECT", "retry", "4.7.0", None),
    ],
)
def test_reply_outcome(
    wire: str, command: str, action: str, status: str, reason: str | None
) -> None:
    reply = Reply.parse(wire + "\r\n")
    outcome = from_reply(reply, command, "mx.example.test")
    assert outcome.action == action
    assert outcome.status == status
    assert outcome.diagnostic == str(reply)
    assert outcome.remote_mta == "mx.example.test"
    if reason is not None:
        assert outcome.reason == reason
    assert outcome.final == (action != "retry")


@pytest.mark.parametrize(
    ("wire", "command"),
    [("354 Start mail input", "RCPT"), ("334 VXNlcm5hbWU6", "MAIL"), ("354 again", "DATA")],
)
def test_a_3yz_where_a_completion_was_due_is_not_a_delivery(wire: str, command: str) -> None:
    # RFC 5321 §4.3.2: MAIL, RCPT and the end of data have no intermediate reply; a 3yz
    # completes nothing. It was taken for a delivery (code < 400): the message was dropped.
    outcome = from_reply(Reply.parse(wire + "\r\n"), command, "mx.example.test")
    assert (outcome.action, outcome.status, outcome.reason) == ("retry", "4.5.0", "systemerror")
    assert outcome.diagnostic == wire and outcome.remote_mta == "mx.example.test"
    assert outcome.why.startswith(f"a {wire[:3]} reply to {command}, where only a completion")


def test_a_refusal_whose_reply_is_no_refusal_is_not_a_delivery() -> None:
    # EHLO answered "251 ok": the client refuses the hop (only 250 is EHLO's success), and the
    # outcome of that refusal must not read as delivered.
    error = HelloRefused("EHLO", Reply.parse(b"251 ok\r\n"))
    outcome = from_error(error, "mx.example.test")
    assert (outcome.action, outcome.status) == ("retry", "4.5.0")
    assert outcome.diagnostic == "251 ok"


def test_status_in_text_of_a_reply_without_one_is_used() -> None:
    # Some servers put the enhanced code elsewhere in the text than after the basic code.
    reply = Reply(550, None, "Mailbox unavailable (#5.1.1)")
    outcome = from_reply(reply, "RCPT", None)
    assert outcome.action == "bounce"
    assert (outcome.status, outcome.reason) == ("5.1.1", "userunknown")


def test_multiline_reply_is_kept_whole() -> None:
    reply = Reply.parse(b"550-5.7.1 first line\r\n550 5.7.1 second line\r\n")
    outcome = from_reply(reply, "RCPT", "mx")
    assert outcome.diagnostic == "550-5.7.1 first line\n550 5.7.1 second line"
    assert is_smtp_diagnostic(outcome.diagnostic)
    assert diagnostic_line(outcome.diagnostic) == "550-5.7.1 first line 550 5.7.1 second line"


def test_failures_without_reply_are_temporary() -> None:
    refused = from_error(ConnectionFailed("cannot connect to 127.0.0.1:25: refused"))
    assert (refused.action, refused.status, refused.remote_mta) == ("retry", "4.4.1", None)
    assert refused.reason == "networkerror"
    assert not is_smtp_diagnostic(refused.diagnostic)
    lost = from_error(ConnectionFailed("mx closed the connection"), "mx")
    assert (lost.action, lost.status, lost.remote_mta) == ("retry", "4.4.2", "mx")
    tls = from_error(TLSFailed("handshake failed"), "mx")
    assert (tls.action, tls.status, tls.reason) == ("retry", "4.7.5", "failedstarttls")
    broken = from_error(ProtocolError("mx: garbage"), "mx")
    assert (broken.action, broken.status) == ("retry", "4.5.0")
    timeout = from_error(TimeoutError("timed out"), "mx")
    assert timeout.action == "retry"


def test_errors_with_replies_go_by_the_reply() -> None:
    greeting = from_error(GreetingRefused("GREETING", Reply(554, "5.7.1", "No SMTP service")), "mx")
    assert (greeting.action, greeting.status) == ("bounce", "5.7.1")
    closing = from_error(ServiceClosing("", Reply(421, "4.3.2", "shutting down")), "mx")
    assert (closing.action, closing.status) == ("retry", "4.3.2")


def test_apply_records_the_attempt() -> None:
    recipient = QueueRecipient("bob@example.test")
    apply(recipient, from_reply(Reply(451, "4.3.0", "later"), "RCPT", "mx"), 1000.0)
    assert (recipient.state, recipient.attempts, recipient.last_attempt) == ("pending", 1, 1000.0)
    assert recipient.last_reply == "451 4.3.0 later"
    assert recipient.status == "4.3.0"
    assert recipient.remote_mta == "mx"
    assert (recipient.reason, recipient.reason_why) == ("systemerror", "enhanced code 4.3.0")
    apply(recipient, from_reply(Reply(250, "2.0.0", "ok"), "DATA", "mx"), 2000.0)
    assert (recipient.state, recipient.attempts) == ("delivered", 2)
    other = QueueRecipient("carol@example.test")
    apply(other, local("bounce", "5.1.10", "null MX", "notaccept"), 5.0)
    assert (other.state, other.status, other.reason, other.remote_mta) == (
        "bounced",
        "5.1.10",
        "notaccept",
        None,
    )
    assert other.reason_why == "mailroom's own finding: null MX"
