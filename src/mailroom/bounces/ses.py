"""Amazon SES notifications: the JSON that SES publishes (to SNS, SQS or an event destination)
for each bounce, complaint and delivery delay, instead of or beside a bounce message.

A notification is ``{"notificationType": "Bounce", "bounce": {"bounceType": "Permanent",
"bouncedRecipients": [{"emailAddress", "action", "status", "diagnosticCode"}], …},
"mail": {"source", "commonHeaders": {"messageId", "subject"}, …}}`` (event publishing names the
type ``eventType``); an SNS envelope carries it as the string in ``"Message"``. Each recipient
becomes a record, its reason read from its diagnostic code as for any bounce; a ``Delivery``
notification gives a ``success`` record per recipient it names.

An SNS topic with an email subscription mails the notification itself: the JSON object is the
body of a plain message from SNS, with a line about unsubscribing after it
(:func:`notification_in_text`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from mailroom.bounces.record import BounceRecord
from mailroom.codes import classify
from mailroom.codes.reasons import is_hard

__all__ = ["notification_in_text", "notification_records"]

# Sendmail breaks a line longer than its mailer's limit (L=, 990 by default) with "!", a line
# break and a space; an SNS email's notification is one long line and arrives so broken.
_SENDMAIL_LINE_BREAK = re.compile(r"!\r?\n ")
_OBJECT_START = re.compile(r'^\{\s*"(?:notificationType|eventType|Type)"', re.MULTILINE)


def _load(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):  # RecursionError: arrays or objects nested too deep
        return None
    return _unwrapped(data)


def _unwrapped(data: Any) -> dict[str, Any] | None:
    """The notification, out of its SNS envelope when it came in one."""
    if isinstance(data, dict) and isinstance(data.get("Message"), str):  # an SNS envelope
        try:
            data = json.loads(data["Message"])
        except (ValueError, RecursionError):
            return None
    return data if isinstance(data, dict) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def notification_in_text(text: str, source: str) -> list[BounceRecord]:
    """The records of an SES notification that is the body of a mail (an SNS email
    subscription's): the JSON object at the start of a line, whatever follows it."""
    start = _OBJECT_START.search(text)
    if start is None:
        return []
    body = _SENDMAIL_LINE_BREAK.sub("", text[start.start() :])
    try:
        data, _ = json.JSONDecoder().raw_decode(body)
    except (ValueError, RecursionError):
        return []
    notification = _unwrapped(data)
    return _records(notification, source) if notification is not None else []


def notification_records(raw: bytes, source: str) -> list[BounceRecord]:
    """The records of an SES notification (none when ``raw`` is not one)."""
    data = _load(raw)
    return _records(data, source) if data is not None else []


def _records(data: dict[str, Any], source: str) -> list[BounceRecord]:
    """The records of a decoded notification, however it came."""
    kind = _text(data.get("notificationType") or data.get("eventType")).lower()
    mail: dict[str, Any] = data["mail"] if isinstance(data.get("mail"), dict) else {}
    headers: dict[str, Any] = (
        mail["commonHeaders"] if isinstance(mail.get("commonHeaders"), dict) else {}
    )
    common = {
        "sender": _text(mail.get("source")),
        "message_id": _text(headers.get("messageId")) or _text(mail.get("messageId")),
        "subject": _text(headers.get("subject")),
        "source": source,
    }
    if kind == "bounce" and isinstance(data.get("bounce"), dict):
        bounce = data["bounce"]
        permanent = _text(bounce.get("bounceType")) == "Permanent"
        records = []
        for recipient in bounce.get("bouncedRecipients") or []:
            if not isinstance(recipient, dict):
                continue
            diagnostic_type, _, diagnostic = _text(recipient.get("diagnosticCode")).partition(";")
            if not diagnostic:
                diagnostic, diagnostic_type = diagnostic_type, ""
            status = _text(recipient.get("status"))
            subtype = _text(bounce.get("bounceSubType"))
            verdict = classify(diagnostic or status or subtype, status=status or None)
            reason, why = verdict.reason, verdict.why
            if subtype in ("Suppressed", "OnAccountSuppressionList"):
                reason, why = "suppressed", f"SES bounceSubType {subtype}"
            records.append(
                BounceRecord(
                    kind="bounce",
                    recipient=_text(recipient.get("emailAddress")),
                    reason=reason,
                    reason_why=why,
                    action=_text(recipient.get("action")) or "failed",
                    status=status,
                    bounce_type="hard" if is_hard(reason, permanent) else "soft",
                    diagnostic_code=diagnostic.strip(),
                    diagnostic_type=diagnostic_type.strip().lower(),
                    command=verdict.command or "",
                    remote_mta=_text(bounce.get("remoteMtaIp")),
                    reporting_mta=_text(bounce.get("reportingMTA")).partition(";")[2].strip(),
                    timestamp=_text(bounce.get("timestamp")),
                    format="ses-notification",
                    **common,
                )
            )
        return records
    if kind == "delivery" and isinstance(data.get("delivery"), dict):
        delivery = data["delivery"]
        reply = _text(delivery.get("smtpResponse"))
        delivered = classify(reply) if reply else None
        return [
            BounceRecord(
                kind="success",
                recipient=recipient,
                reason="delivered",
                reason_why="an SES delivery notification",
                action="delivered",
                status=str(delivered.status) if delivered and delivered.status else "",
                diagnostic_code=reply,
                diagnostic_type="smtp" if reply else "",
                reporting_mta=_text(delivery.get("reportingMTA")),
                timestamp=_text(delivery.get("timestamp")),
                format="ses-notification",
                **common,
            )
            for recipient in delivery.get("recipients") or []
            if isinstance(recipient, str)
        ]
    if kind == "complaint" and isinstance(data.get("complaint"), dict):
        complaint = data["complaint"]
        feedback = _text(complaint.get("complaintFeedbackType")) or "abuse"
        return [
            BounceRecord(
                kind="feedback",
                recipient=_text(r.get("emailAddress")),
                reason="feedback",
                reason_why=f"an SES complaint notification ({feedback})",
                timestamp=_text(complaint.get("timestamp")),
                format="ses-notification",
                feedback_type=feedback,
                **common,
            )
            for r in complaint.get("complainedRecipients") or []
            if isinstance(r, dict)
        ]
    return []
