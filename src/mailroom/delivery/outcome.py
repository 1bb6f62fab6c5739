"""What one delivery attempt came to for one recipient (RFC 5321 §4.2.1: 2yz done, 4yz try
again later, 5yz do not repeat), and how that changes the recipient's queue state.

An :class:`Outcome` comes from the remote server's reply (:func:`from_reply`), from a failure
that had no reply — a refused connection, a timeout, a lost connection, a TLS error
(:func:`from_error`) — or from our own decision (:func:`local`): a domain that does not exist,
a null MX, a DNS failure. Failures without a reply are 4yz-like: they are retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailroom.client import ConnectionFailed, ProtocolError, SendError, SMTPReplyError, TLSFailed
from mailroom.codes import Reply, classify, reports
from mailroom.codes.reports import ReportStatus
from mailroom.queue.entry import QueueRecipient

__all__ = [
    "Outcome",
    "apply",
    "diagnostic_line",
    "from_error",
    "from_reply",
    "is_smtp_diagnostic",
    "local",
    "reported",
]

Action = Literal["delivered", "retry", "bounce"]


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    status: str  # the enhanced status of the outcome: the DSN's Status field
    diagnostic: str  # the remote reply as received (lines joined by "\n"), or our own words
    reason: str  # the classification, named as Sisimai names reasons (mailboxfull, …)
    remote_mta: str | None = None  # the host that answered, when one did
    why: str = ""  # the evidence for the reason: the classifier's, or what mailroom found

    @property
    def final(self) -> bool:
        return self.action != "retry"


def _action_of(code: int) -> Action:
    return "delivered" if code < 400 else "retry" if code < 500 else "bounce"


def _not_a_completion(reply: Reply, command: str, remote_mta: str | None) -> Outcome:
    """A reply that settles nothing where a completion or a refusal was due: the next hop broke
    the protocol, nothing is known to be delivered, and the recipient is tried again."""
    why = (
        f"a {reply.code} reply to {command}, where only a completion (2yz) or a refusal "
        "(4yz, 5yz) can come (RFC 5321 §4.2.1, §4.3.2)"
    )
    return reported(reports.PROTOCOL_ERROR, str(reply), remote_mta, why)


def from_reply(reply: Reply, command: str, remote_mta: str | None) -> Outcome:
    """The outcome a remote reply means: its class decides the action, the classification
    names the reason, and the status is the reply's enhanced code (or the one its text holds,
    or ``class.0.0`` as RFC 3463 §3.1 allows). A 3yz (or any code outside 2yz, 4yz, 5yz)
    completes nothing: MAIL, RCPT and the end of data have no intermediate reply (§4.3.2)."""
    if reply.code // 100 not in (2, 4, 5):
        return _not_a_completion(reply, command, remote_mta)
    verdict = classify(reply, command=command)
    status = reply.status or verdict.status
    klass = reply.code // 100
    fits = status is not None and status.status_class == klass
    status_text = str(status) if fits else f"{klass}.0.0"
    return Outcome(
        _action_of(reply.code), status_text, str(reply), verdict.reason, remote_mta, verdict.why
    )


def from_error(error: BaseException, remote_mta: str | None = None) -> Outcome:
    """The outcome of a failure: a reply-carrying error by its reply, the rest as temporary
    (connection refused or lost, timeouts, TLS and protocol errors)."""
    if isinstance(error, SMTPReplyError) and error.reply is not None:
        command = {"GREETING": "CONNECT", "EHLO": "HELO", "LHLO": "HELO", "STARTTLS": "HELO"}.get(
            error.command, error.command
        )
        if error.reply.code < 400:
            # A failure whose reply is no refusal (EHLO answered "251" or "354"): not a success.
            return _not_a_completion(error.reply, command, remote_mta)
        return from_reply(error.reply, command, remote_mta)
    text = str(error) or type(error).__name__
    if isinstance(error, TLSFailed):
        why = "TLS could not be negotiated (no reply to classify)"
        return reported(reports.TLS_FAILED, f"TLS failed: {text}", remote_mta, why)
    if isinstance(error, ProtocolError):
        why = "the server broke the protocol (no reply to classify)"
        return reported(reports.PROTOCOL_ERROR, text, remote_mta, why)
    if isinstance(error, ConnectionFailed) and remote_mta is None:
        return reported(reports.NO_ANSWER, text, None, "no host answered (no reply to classify)")
    if isinstance(error, ConnectionFailed | SendError | OSError | TimeoutError):
        why = "the connection was lost (no reply to classify)"
        return reported(reports.CONNECTION_LOST, text, remote_mta, why)
    return reported(reports.UNDEFINED_FAILURE, text, remote_mta, "an error without a reply")


def reported(
    report: ReportStatus, text: str, remote_mta: str | None = None, why: str = ""
) -> Outcome:
    """An outcome of our own making, from the queue's catalogue (:mod:`mailroom.codes.reports`):
    its status decides the action (2 delivered, 4 retry, 5 bounce); ``why`` is the evidence
    (by default, mailroom's own finding, ``text``)."""
    action: Action = report.action  # type: ignore[assignment]
    evidence = why or "mailroom's own finding: " + text
    return Outcome(action, str(report.status), text, report.reason, remote_mta, evidence)


def local(action: Action, status: str, text: str, reason: str) -> Outcome:
    """An outcome of our own making with a status outside the queue's catalogue (tests)."""
    return Outcome(action, status, text, reason, None, "mailroom's own finding: " + text)


def apply(recipient: QueueRecipient, outcome: Outcome, now: float) -> None:
    """Record an attempt's outcome in the recipient's state."""
    recipient.attempts += 1
    recipient.last_attempt = now
    recipient.last_reply = outcome.diagnostic
    recipient.status = outcome.status
    recipient.reason = outcome.reason
    recipient.reason_why = outcome.why or None
    recipient.remote_mta = outcome.remote_mta
    if outcome.action == "delivered":
        recipient.state = "delivered"
    elif outcome.action == "bounce":
        recipient.state = "bounced"


def is_smtp_diagnostic(text: str) -> bool:
    """Whether a recorded diagnostic is a remote SMTP reply (else it is our own words)."""
    try:
        Reply.parse(text.replace("\n", "\r\n"))
    except ValueError:
        return False
    return True


def diagnostic_line(text: str) -> str:
    """A recorded diagnostic as one line (the lines of a multi-line reply joined by spaces)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
