"""Scheduling: the retry schedule, expiry after max_age (4.4.7 with the last reason kept), and
which reports NOTIFY asks for (RFC 3461 §4.1)."""

from __future__ import annotations

import pytest

from mailroom.delivery.schedule import domain_of, next_attempt, settle, wants
from mailroom.queue.entry import QueueEntry, QueueRecipient
from mailroom.queue.settings import QueueSettings

HOUR = 3600.0


def entry(
    *recipients: QueueRecipient, sender: str = "alice@a.test", created: float = 0.0
) -> QueueEntry:
    return QueueEntry(id="Q1", sender=sender, recipients=list(recipients), created=created)


def test_default_retry_schedule_is_postfix_like() -> None:
    settings = QueueSettings()
    waits = [settings.retry_after(n) for n in range(1, 9)]
    assert waits == [300, 600, 1200, 2400, 3600, 3600, 3600, 3600]
    assert settings.max_age == 5 * 86400


def test_next_attempt_follows_schedule_and_stops_at_expiry() -> None:
    settings = QueueSettings(retry_schedule=(60.0, 120.0), max_age=1000.0)
    e = entry(QueueRecipient("b@b.test"))
    e.attempts = 1
    assert next_attempt(e, settings, 10.0) == 70.0
    e.attempts = 2
    assert next_attempt(e, settings, 10.0) == 130.0
    e.attempts = 7
    assert next_attempt(e, settings, 500.0) == 620.0
    # The last attempt happens when the entry expires, not an interval later.
    assert next_attempt(e, settings, 950.0) == 1000.0


@pytest.mark.parametrize(
    ("notify", "success", "failure", "delay"),
    [
        (None, False, True, True),
        (["NEVER"], False, False, False),
        (["SUCCESS"], True, False, False),
        (["FAILURE"], False, True, False),
        (["SUCCESS", "FAILURE", "DELAY"], True, True, True),
        (["delay"], False, False, True),
    ],
)
def test_notify(notify: list[str] | None, success: bool, failure: bool, delay: bool) -> None:
    recipient = QueueRecipient("b@b.test", notify=notify)
    assert wants(recipient, "SUCCESS") is success
    assert wants(recipient, "FAILURE") is failure
    assert wants(recipient, "DELAY") is delay


def test_domain_of() -> None:
    assert domain_of("Bob@Example.TEST") == "example.test"
    assert domain_of("bob@example.test.") == "example.test"


def test_pending_recipient_is_rescheduled_without_report() -> None:
    settings = QueueSettings(retry_schedule=(60.0,), delay_warning=HOUR)
    e = entry(QueueRecipient("b@b.test", attempts=1))
    e.attempts = 1
    result = settle(e, settings, 100.0)
    assert result.report is None
    assert not result.done
    assert result.next_attempt == 160.0
    assert e.recipients[0].state == "pending"


def test_bounced_recipient_is_reported_once_done() -> None:
    settings = QueueSettings()
    bounced = QueueRecipient("b@b.test", state="bounced", status="5.1.1")
    delivered = QueueRecipient("c@b.test", state="delivered", notified=True)
    result = settle(entry(bounced, delivered), settings, 10.0)
    assert result.done and result.next_attempt is None
    assert result.report is not None
    assert result.report.recipients == [(bounced, "failed")]


def test_never_and_null_sender_get_no_report() -> None:
    settings = QueueSettings()
    never = QueueRecipient("b@b.test", state="bounced", notify=["NEVER"])
    assert settle(entry(never), settings, 1.0).report is None
    plain = QueueRecipient("b@b.test", state="bounced")
    result = settle(entry(plain, sender=""), settings, 1.0)
    assert result.report is None and result.done


def test_success_report_only_for_relayed_or_finally_delivered_recipients() -> None:
    settings = QueueSettings()
    # Delivered to a server without DSN: "relayed" (RFC 3461 §6.2.2).
    relayed = QueueRecipient("b@b.test", state="delivered", notify=["SUCCESS"])
    result = settle(entry(relayed), settings, 1.0)
    assert result.report is not None and result.report.recipients == [(relayed, "relayed")]
    # Put in its mailbox by an LMTP server: "delivered".
    final = QueueRecipient("b@b.test", state="delivered", notify=["SUCCESS"], final=True)
    result = settle(entry(final), settings, 1.0)
    assert result.report is not None and result.report.recipients == [(final, "delivered")]
    # A server with DSN took NOTIFY on: the runner marks it notified, nothing is owed.
    passed_on = QueueRecipient("b@b.test", state="delivered", notify=["SUCCESS"], notified=True)
    assert settle(entry(passed_on), settings, 1.0).report is None
    # Without NOTIFY=SUCCESS, a delivery is not reported.
    quiet = QueueRecipient("b@b.test", state="delivered")
    assert settle(entry(quiet), settings, 1.0).report is None


def test_delay_warning_after_delay_warning_and_only_once() -> None:
    settings = QueueSettings(delay_warning=HOUR)
    recipient = QueueRecipient("b@b.test", attempts=3)
    e = entry(recipient, created=0.0)
    e.attempts = 3
    assert settle(e, settings, HOUR - 1).report is None
    result = settle(e, settings, HOUR + 1)
    assert result.report is not None and result.report.recipients == [(recipient, "delayed")]
    recipient.delay_warned = True  # the runner sets it once the warning is handed on
    assert settle(e, settings, HOUR + 2).report is None
    # Off with delay_warning = 0, and when NOTIFY leaves DELAY out.
    assert (
        settle(entry(QueueRecipient("b@b.test")), QueueSettings(delay_warning=0), 2 * HOUR).report
        is None
    )
    failure_only = QueueRecipient("b@b.test", notify=["FAILURE"])
    assert settle(entry(failure_only), settings, HOUR + 1).report is None


def test_expiry_bounces_with_4_4_7_and_keeps_the_reason() -> None:
    settings = QueueSettings(max_age=1000.0, delay_warning=0)
    full = QueueRecipient(
        "b@b.test",
        attempts=9,
        last_reply="452 4.2.2 Mailbox full",
        status="4.2.2",
        reason="mailboxfull",
        remote_mta="mx.b.test",
    )
    e = entry(full)
    e.attempts = 9
    assert settle(e, settings, 999.0).next_attempt == 1000.0
    assert full.state == "pending"
    result = settle(e, settings, 1000.0)
    assert result.expired == [full]
    assert result.done
    assert (full.state, full.status, full.reason) == ("bounced", "4.4.7", "mailboxfull")
    assert full.last_reply == "452 4.2.2 Mailbox full"
    assert result.report is not None and result.report.recipients == [(full, "failed")]
