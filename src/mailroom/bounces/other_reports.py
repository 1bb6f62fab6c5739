"""Messages that come back but are not bounces: automatic replies (RFC 3834) and complaint
reports (RFC 5965, the Abuse Reporting Format that mailbox providers send through feedback
loops). A bounce processor must tell them apart: an out-of-office reply says the address works,
a complaint says the recipient does not want the mail.
"""

from __future__ import annotations

import re
from email.message import Message

from mailroom.bounces.dsn import status_blocks
from mailroom.bounces.mime import (
    address_of,
    header,
    iso_time,
    part_bytes,
    returned_headers,
    walk,
)
from mailroom.bounces.record import BounceRecord
from mailroom.bounces.text_formats import is_bounce_sender
from mailroom.header_section import address_list

__all__ = ["autoreply", "feedback", "microsoft_complaint"]

_FEEDBACK_TYPES = ("message/feedback-report",)
_AUTO_SUBJECT = re.compile(
    r"^(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)|"
    r"auto:|vacation|abwesenheitsnotiz|r[ée]ponse automatique|absence|on leave|away)",
    re.IGNORECASE,
)


def feedback(message: Message, source: str) -> list[BounceRecord]:
    """One record for an RFC 5965 report (kind and reason ``feedback``), else []."""
    for part in walk(message):
        if part.get_content_type() not in _FEEDBACK_TYPES:
            continue
        fields: dict[str, str] = {}
        # Original-Rcpt-To may appear once per recipient of the reported message (§3.2).
        rcpt_to: list[str] = []
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            for block in payload:
                if isinstance(block, Message):
                    for name, value in block.items():
                        _add(fields, rcpt_to, name.lower(), " ".join(str(value).split()))
        else:
            text = part_bytes(part).decode("utf-8", "replace").replace("\r\n", "\n")
            for line in re.sub(r"\n[ \t]+", " ", text).splitlines():
                name, sep, value = line.partition(":")
                if sep and name.strip():
                    _add(fields, rcpt_to, name.strip().lower(), value.strip())
        if not rcpt_to:
            # Original-Rcpt-To is optional; the reported message (or its header) names who
            # got it.
            returned = returned_headers(message)
            if returned is not None:
                rcpt_to = [a for _, a in address_list(returned.get_all("To") or []) if "@" in a]
        kind = fields.get("feedback-type", "").lower() or "abuse"
        return [
            BounceRecord(
                kind="feedback",
                recipient=recipient,
                reason="feedback",
                reason_why=f"an RFC 5965 feedback report (Feedback-Type: {kind})",
                sender=address_of(fields.get("original-mail-from", "")),
                reporting_mta=fields.get("reporting-mta", "").partition(";")[2].strip()
                or fields.get("user-agent", ""),
                timestamp=iso_time(fields.get("arrival-date", "") or header(message, "Date")),
                format="arf",
                feedback_type=kind,
                source=source,
            )
            for recipient in _unique(rcpt_to) or [""]
        ]
    return []


def microsoft_complaint(message: Message, source: str) -> list[BounceRecord]:
    """A complaint in Microsoft's older feedback-loop form (JMRP, Outlook.com/Hotmail): no
    feedback-report part, the reported message attached whole, its recipient in the
    X-HmXmrOriginalRecipient field Microsoft adds to it."""
    returned = returned_headers(message)
    if returned is None:
        return []
    recipients = [
        address_of(str(value)) for value in returned.get_all("X-HmXmrOriginalRecipient") or []
    ]
    recipients = [r for r in recipients if "@" in r]
    if not recipients:
        return []
    return [
        BounceRecord(
            kind="feedback",
            recipient=recipient,
            reason="feedback",
            reason_why="a Microsoft feedback-loop complaint (X-HmXmrOriginalRecipient)",
            sender=address_of(header(returned, "Return-Path") or header(returned, "From")),
            reporting_mta=address_of(header(message, "From")).rpartition("@")[2],
            message_id=header(returned, "Message-ID"),
            subject=header(returned, "Subject"),
            timestamp=iso_time(header(message, "Date")),
            format="jmrp",
            feedback_type="abuse",
            source=source,
        )
        for recipient in _unique(recipients)
    ]


def _add(fields: dict[str, str], rcpt_to: list[str], name: str, value: str) -> None:
    fields.setdefault(name, value)
    if name == "original-rcpt-to" and address_of(value):
        rcpt_to.append(address_of(value))


def _unique(addresses: list[str]) -> list[str]:
    first: dict[str, str] = {}
    for address in addresses:
        first.setdefault(address.lower(), address)
    return list(first.values())


def is_autoreply(message: Message) -> str:
    """Why ``message`` is an automatic reply ("" when it is not): RFC 3834's Auto-Submitted,
    the headers of common responders, or an out-of-office subject."""
    if status_blocks(message) is not None:
        return ""  # a delivery report also says Auto-Submitted: auto-replied
    if is_bounce_sender(message):
        # Exim's bounces and delay warnings without a status part say it too: a mail
        # system's report, not a person's absence.
        return ""
    submitted = header(message, "Auto-Submitted").lower()
    if submitted.startswith("auto-replied"):
        return "Auto-Submitted: auto-replied (RFC 3834)"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply-From"):
        if message.get(name):
            return f"header {name}"
    if header(message, "Precedence").lower() == "auto_reply":
        return "Precedence: auto_reply"
    subject = header(message, "Subject")
    if _AUTO_SUBJECT.match(subject):
        return f"subject '{subject[:40]}'"
    return ""


def autoreply(message: Message, source: str) -> list[BounceRecord]:
    """One record (kind ``autoreply``, reason ``vacation``) for an automatic reply, else []."""
    why = is_autoreply(message)
    if not why:
        return []
    replied_to = header(message, "In-Reply-To") or header(message, "References").split(" ")[0]
    return [
        BounceRecord(
            kind="autoreply",
            recipient=address_of(header(message, "From")),
            reason="vacation",
            reason_why=f"an automatic reply: {why}",
            action="delivered",
            sender=address_of(header(message, "To")),
            message_id=replied_to,
            subject=header(message, "Subject"),
            timestamp=iso_time(header(message, "Date")),
            format="autoreply",
            source=source,
        )
    ]
