"""One record per failed (or delayed, or reported) recipient: what a bounce says, as data.

The fields are those of RFC 3464's per-recipient block (Final-Recipient, Action, Status,
Remote-MTA, Diagnostic-Code, Last-Attempt-Date) and per-message block (Reporting-MTA,
Arrival-Date), plus what a bounce processor wants beside them: the original sender and
Message-ID, the SMTP command the failure answered, the reason (mailroom.codes.classify, named
as Sisimai names reasons) with its evidence, and whether the bounce is hard or soft.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["FIELDS", "BounceRecord"]


@dataclass(frozen=True, slots=True)
class BounceRecord:
    # What kind of report this is: "bounce" (a failure), "delay" (still being tried),
    # "success" (a delivery or relay report), "autoreply" (an out-of-office or other
    # automatic reply, RFC 3834), "feedback" (a complaint, RFC 5965).
    kind: str
    recipient: str  # Final-Recipient (or the address the text names)
    reason: str  # Sisimai's name: userunknown, mailboxfull, …, vacation, feedback
    reason_why: str = ""  # the evidence: the words or codes that decided
    action: str = ""  # RFC 3464: failed, delayed, delivered, relayed, expanded
    status: str = ""  # the enhanced status code, "5.1.1"
    bounce_type: str = ""  # "hard" (the address does not work) or "soft"; "" for non-failures
    diagnostic_code: str = ""  # the remote server's reply or the reporting MTA's words
    diagnostic_type: str = ""  # "smtp", "x-postfix", … ("text": read from the human part)
    command: str = ""  # the SMTP command the failure answered: MAIL, RCPT, DATA, …
    remote_mta: str = ""
    reporting_mta: str = ""
    sender: str = ""  # the original message's envelope sender, as far as the report tells
    original_recipient: str = ""  # RFC 3461 ORCPT, when the report carries it
    message_id: str = ""  # the original message's Message-ID
    subject: str = ""  # the original message's subject
    timestamp: str = ""  # ISO 8601, UTC: the last attempt, else the arrival, else the report
    format: str = ""  # how the report was recognised: rfc3464, exim, qmail, arf, …
    feedback_type: str = ""  # for kind "feedback": abuse, fraud, … (RFC 5965 §3.1)
    source: str = ""  # where the report was read: a file, "mbox#3", a Maildir file name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELDS = tuple(f.name for f in fields(BounceRecord))
