"""When to try again, when to give up, and which reports (RFC 3464 DSNs) a round of delivery
attempts owes the sender. Pure: the clock is an argument.

A *round* is one attempt at every pending recipient of an entry. After it, :func:`settle`
gives up on recipients past ``max_age`` (bounced as expired, 4.4.7, with the reason of their
last reply kept), picks the recipients owed a report, and sets the next attempt from the retry
schedule — never later than the moment the entry expires, so it gets a last attempt then.

NOTIFY (RFC 3461 §4.1): ``NEVER`` asks for no report; otherwise the listed kinds. Without
NOTIFY, mailroom reports failures and delays (the RFC allows ``FAILURE`` or
``FAILURE,DELAY``; delay warnings stay off with ``delay_warning = 0``), like Postfix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mailroom.codes import reports
from mailroom.queue.entry import QueueEntry, QueueRecipient
from mailroom.queue.settings import QueueSettings

__all__ = ["Report", "Settlement", "domain_of", "next_attempt", "settle", "wants"]

Kind = Literal["SUCCESS", "FAILURE", "DELAY"]
DEFAULT_NOTIFY: tuple[Kind, ...] = ("FAILURE", "DELAY")


def wants(recipient: QueueRecipient, kind: Kind) -> bool:
    """Whether the sender asked for a report of this kind about this recipient."""
    notify = [word.upper() for word in recipient.notify or DEFAULT_NOTIFY]
    if "NEVER" in notify:
        return False
    return kind in notify


def domain_of(address: str) -> str:
    """The domain part of an address, lower-cased (the destination it is grouped by)."""
    return address.rpartition("@")[2].rstrip(".").lower()


def next_attempt(entry: QueueEntry, settings: QueueSettings, now: float) -> float:
    """When to try the pending recipients again after ``entry.attempts`` rounds."""
    after = now + settings.retry_after(max(entry.attempts, 1))
    return min(after, entry.created + settings.max_age) if settings.max_age > 0 else after


@dataclass
class Report:
    """One report to the sender: the recipients it covers, each with its DSN action."""

    recipients: list[tuple[QueueRecipient, str]]  # (recipient, failed|delayed|relayed|delivered)

    @property
    def actions(self) -> set[str]:
        return {action for _, action in self.recipients}


@dataclass
class Settlement:
    expired: list[QueueRecipient] = field(default_factory=list)
    report: Report | None = None  # None: nothing to tell the sender now
    done: bool = False  # every recipient is final: the entry can go once the report is out
    next_attempt: float | None = None  # when the pending recipients are due again


def settle(entry: QueueEntry, settings: QueueSettings, now: float) -> Settlement:
    """After a round: expire what is too old, and decide the report and the next attempt.

    The recipients it changes are changed in place (expired ones become bounced); marking the
    reported ones ``notified`` (and ``delay_warned``) is left to the caller, once the report
    has been handed on, so a crash in between sends it again rather than never.
    """
    result = Settlement()
    pending = entry.pending
    if pending and settings.max_age > 0 and now >= entry.created + settings.max_age:
        for recipient in pending:
            expire(recipient, settings)
            result.expired.append(recipient)
        pending = []
    owed: list[tuple[QueueRecipient, str]] = []
    for recipient in entry.recipients:
        if recipient.state == "bounced" and not recipient.notified:
            if wants(recipient, "FAILURE") and entry.sender:
                owed.append((recipient, "failed"))
        elif recipient.state == "delivered" and not recipient.notified:
            # Put in its mailbox (a local Maildir, LMTP), or handed to a server without DSN,
            # where the sender's request ends (RFC 3461 §6.2.2).
            lossy = recipient.conversion_loss is not None  # the 2.6.4 warning (X.6.4)
            if (wants(recipient, "SUCCESS") or lossy) and entry.sender:
                owed.append((recipient, "delivered" if recipient.final else "relayed"))
        elif (
            recipient.state == "pending"
            and settings.delay_warning > 0
            and now >= entry.created + settings.delay_warning
            and not recipient.delay_warned
            and wants(recipient, "DELAY")
            and entry.sender
        ):
            owed.append((recipient, "delayed"))
    if owed:
        result.report = Report(owed)
    result.done = not pending
    if pending:
        result.next_attempt = next_attempt(entry, settings, now)
    return result


# What a recipient the outbound TLS policy held back keeps at expiry: it says what failed.
_TLS_POLICY_STATUSES = frozenset(
    str(report.status)
    for report in (
        reports.NO_STARTTLS_WHERE_REQUIRED,
        reports.TLS_POLICY_NOT_MET,
        reports.TLS_FAILED,
    )
)


def expire(recipient: QueueRecipient, settings: QueueSettings) -> None:
    """Give up on a recipient that stayed undeliverable for ``max_age``: bounced with 4.4.7
    (delivery time expired, RFC 3463), its last reply and its reason kept for the report. A
    recipient held back by the TLS policy keeps its X.7.x status (4.7.4 no TLS, 4.7.5 a
    certificate or TLSA problem), which says exactly what failed."""
    recipient.state = "bounced"
    if recipient.status not in _TLS_POLICY_STATUSES:
        recipient.status = str(reports.EXPIRED.status)
    if not recipient.reason:
        recipient.reason = reports.EXPIRED.reason
    if not recipient.last_reply:
        recipient.last_reply = "delivery time expired"
