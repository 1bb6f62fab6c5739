"""Delivery status notifications (RFC 3464): the report a sender gets when a message failed,
is delayed, was delivered to a mailbox (a local Maildir or LMTP), or was relayed to a server
that will not report on it, as the sender asked (RFC 3461 §6.2.2).

The report is ``multipart/report; report-type=delivery-status`` (RFC 6522) with three parts:
words for a person (what happened to each recipient, and why, in the receiving server's own
words and as mailroom classified them), the machine-readable ``message/delivery-status`` (one
block about the message, one per recipient), and the message itself as the sender's RET asked:
``FULL`` (the default) returns it whole as ``message/rfc822`` unless it is larger than
``return_limit``, ``HDRS`` returns only its header (``text/rfc822-headers``). Reports that tell
of no failure always return the header only (RFC 3461 §4.3).

Addresses or diagnostics that are not ASCII make it ``message/global-delivery-status``
(RFC 6533), and a returned message that was sent with SMTPUTF8 is ``message/global``.
"""

from __future__ import annotations

import email.utils
import re
import secrets
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from mailroom.codes import reports
from mailroom.codes.reasons import REASONS
from mailroom.delivery.outcome import diagnostic_line, is_smtp_diagnostic
from mailroom.delivery.schedule import Report
from mailroom.header_section import split_message
from mailroom.queue.entry import QueueEntry, QueueRecipient

__all__ = ["DEFAULT_RETURN_LIMIT", "DSNOptions", "build_dsn"]

DEFAULT_RETURN_LIMIT = 1024 * 1024  # octets of a message returned whole; larger: header only
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class DSNOptions:
    hostname: str  # the Reporting-MTA, and the domain of the report's From and Message-ID
    return_limit: int = DEFAULT_RETURN_LIMIT
    max_age: float = 5 * 86400.0  # for Will-Retry-Until and the words of a delay warning


def _returned_header(message: bytes) -> bytes:
    """The message's header section as a report returns it: its last field with a line end."""
    header, _ = split_message(message)
    return header if not header or header.endswith(b"\n") else header + b"\r\n"


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def _fold(name: str, value: str, width: int = 78) -> str:
    """``Name: value`` folded at spaces into lines of about ``width`` characters (RFC 5322
    §2.2.3); a word longer than a line stays whole."""
    words = value.split(" ")
    lines: list[str] = []
    line = f"{name}: "
    for word in words:
        if not word:
            continue
        if len(line) + len(word) > width and line.strip() and not line.endswith(": "):
            lines.append(line.rstrip())
            line = " " + word + " "
        else:
            line += word + " "
    lines.append(line.rstrip())
    return "\r\n".join(lines)


def _date(when: float) -> str:
    return email.utils.formatdate(when, localtime=True)


def _address_field(name: str, address_type: str, address: str) -> str:
    kind = address_type if address.isascii() or address_type.lower() != "rfc822" else "utf-8"
    return _fold(name, f"{kind}; {_clean(address)}")


def _diagnostic(recipient: QueueRecipient) -> str | None:
    text = recipient.last_reply
    if not text:
        return None
    if is_smtp_diagnostic(text):
        return f"smtp; {_clean(diagnostic_line(text))}"
    return f"X-Mailroom; {_clean(diagnostic_line(text))}"


def _recipient_block(
    entry: QueueEntry, recipient: QueueRecipient, action: str, options: DSNOptions
) -> list[str]:
    lines = []
    if recipient.orcpt:
        address_type, original = recipient.orcpt[0], recipient.orcpt[1]
        lines.append(_address_field("Original-Recipient", address_type, original))
    lines.append(_address_field("Final-Recipient", "rfc822", recipient.address))
    lines.append(f"Action: {action}")
    status = recipient.status or {"failed": "5.0.0", "delayed": "4.0.0"}.get(action, "2.0.0")
    if action == "relayed" and recipient.conversion_loss is None:
        # Handed to a server that will not report further (RFC 3461 §6.2.2); what it said is
        # in the Diagnostic-Code.
        status = str(reports.RELAYED_WITHOUT_DSN.status)
    lines.append(f"Status: {status}")
    if recipient.remote_mta:
        lines.append(_fold("Remote-MTA", f"dns; {_clean(recipient.remote_mta)}"))
    diagnostic = _diagnostic(recipient)
    if diagnostic is not None:
        lines.append(_fold("Diagnostic-Code", diagnostic))
    if recipient.last_attempt:
        lines.append(f"Last-Attempt-Date: {_date(recipient.last_attempt)}")
    if action == "delayed":
        lines.append(f"Will-Retry-Until: {_date(entry.created + options.max_age)}")
    if recipient.reason:
        lines.append(f"X-Mailroom-Reason: {recipient.reason}")
        if recipient.reason_why:
            lines.append(_fold("X-Mailroom-Reason-Why", _clean(recipient.reason_why)))
    return lines


def _status_part(entry: QueueEntry, report: Report, options: DSNOptions) -> str:
    head = [f"Reporting-MTA: dns; {options.hostname}", f"X-Mailroom-Queue-ID: {entry.id}"]
    if entry.envid:
        head.append(_fold("Original-Envelope-Id", _clean(entry.envid)))
    head.append(f"Arrival-Date: {_date(entry.created)}")
    blocks = ["\r\n".join(head)]
    for recipient, action in report.recipients:
        blocks.append("\r\n".join(_recipient_block(entry, recipient, action, options)))
    return "\r\n\r\n".join(blocks) + "\r\n"


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(
        _clean(text),
        width=76,
        initial_indent="    ",
        subsequent_indent="      ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _why(recipient: QueueRecipient, action: str) -> list[str]:
    lines = []
    if recipient.last_reply:
        said = diagnostic_line(recipient.last_reply)
        if is_smtp_diagnostic(recipient.last_reply):
            host = recipient.remote_mta or "the receiving server"
            lines += _wrap(f"{host} said: {said}")
        else:
            lines += _wrap(said)
    if recipient.conversion_loss:
        lines += _wrap(
            "mailroom converted the message for that server, which takes no 8-bit data, and "
            f"the conversion lost information: {recipient.conversion_loss}."
        )
    if recipient.status == "4.4.7" and action == "failed":
        lines.append("    mailroom gave up: the message stayed undeliverable too long.")
    if recipient.reason and recipient.reason not in ("delivered", "expired"):
        description = REASONS.get(recipient.reason, "")
        words = f"Reason: {recipient.reason}" + (f" ({description})" if description else "")
        if recipient.reason_why:
            words += f"; decided by {recipient.reason_why}"
        lines += _wrap(words)
    return lines


def _human_part(
    entry: QueueEntry,
    report: Report,
    options: DSNOptions,
    original: dict[str, str],
    returned: str,
) -> str:
    by_action: dict[str, list[QueueRecipient]] = {}
    for recipient, action in report.recipients:
        by_action.setdefault(action, []).append(recipient)
    out = [f"This is the mail system at {options.hostname}.", ""]
    about = []
    if original.get("subject"):
        about.append(f"  Subject: {original['subject']}")
    if original.get("message-id"):
        about.append(f"  Message-ID: {original['message-id']}")
    about.append(f"  Received: {_date(entry.created)} (queue id {entry.id})")
    out += ["Your message", *about, ""]
    if "failed" in by_action:
        out += [
            "could not be delivered to the recipients below; mailroom will not try again.",
            "",
        ]
        for recipient in by_action["failed"]:
            out += [f"<{recipient.address}>:", *_why(recipient, "failed"), ""]
    if "delayed" in by_action:
        give_up = _date(entry.created + options.max_age)
        out += [
            ("It has also " if "failed" in by_action else "has ")
            + "not been delivered yet to the recipients below. mailroom keeps trying until",
            f"{give_up}; you need not send it again.",
            "",
        ]
        for recipient in by_action["delayed"]:
            out += [f"<{recipient.address}>:", *_why(recipient, "delayed"), ""]
    if "delivered" in by_action:
        out += [
            ("It was " if {"failed", "delayed"} & by_action.keys() else "was ")
            + "delivered to the mailboxes of the recipients below.",
            "",
        ]
        for recipient in by_action["delivered"]:
            out += [f"<{recipient.address}>:", *_why(recipient, "delivered"), ""]
    if "relayed" in by_action:
        out += [
            ("It was " if len(by_action) > 1 else "was ")
            + "handed on to the servers of the recipients below, which do not send",
            "delivery reports: this is the last report you get about them.",
            "",
        ]
        for recipient in by_action["relayed"]:
            out += [f"<{recipient.address}>:", *_why(recipient, "relayed"), ""]
    out.append(returned)
    return "\r\n".join(out) + "\r\n"


def _subject(report: Report) -> str:
    actions = report.actions
    if "failed" in actions:
        return "Undelivered Mail Returned to Sender"
    if "delayed" in actions:
        return "Delayed Mail (still being retried)"
    return "Successful Mail Delivery Report"


def _original_headers(header: bytes) -> dict[str, str]:
    parsed = BytesHeaderParser(policy=default_policy).parsebytes(header + b"\r\n")
    found = {}
    for name in ("subject", "message-id"):
        try:
            value = parsed.get(name)
        except Exception:  # a malformed field must not stop the report
            value = None
        if value is not None:
            found[name] = _clean(str(value))
    return found


def _boundary(parts: Iterable[bytes]) -> str:
    while True:
        boundary = f"=_mailroom_{secrets.token_hex(12)}"
        token = boundary.encode("ascii")
        if not any(token in part for part in parts):
            return boundary


def build_dsn(
    entry: QueueEntry,
    report: Report,
    message: bytes,
    options: DSNOptions,
    *,
    now: float | None = None,
) -> bytes:
    """The report, as the bytes of a message from ``MAILER-DAEMON@hostname`` to the envelope
    sender (CRLF line ends), ready to be sent with the null reverse-path."""
    now = time.time() if now is None else now
    header = _returned_header(message)
    failed = "failed" in report.actions
    whole = failed and (entry.ret or "FULL").upper() == "FULL" and entry.body != "BINARYMIME"
    too_large = whole and len(message) > options.return_limit
    if whole and not too_large:
        returned_type = "message/global" if entry.smtputf8 else "message/rfc822"
        returned = message
        returned_words = "The message is attached."
    else:
        returned_type = "message/global-headers" if entry.smtputf8 else "text/rfc822-headers"
        returned = header
        returned_words = "The header of the message is attached."
        if too_large:
            returned_words = (
                f"The message is {len(message)} octets, more than the {options.return_limit} "
                "returned whole: only its header is attached."
            )
    original = _original_headers(header)

    human = _human_part(entry, report, options, original, returned_words).encode("utf-8")
    status_text = _status_part(entry, report, options)
    status = status_text.encode("utf-8")
    status_type = (
        "message/delivery-status" if status_text.isascii() else ("message/global-delivery-status")
    )

    def encoding(data: bytes) -> str:
        return "7bit" if data.isascii() else "8bit"

    boundary = _boundary((human, status, returned))
    to = entry.sender
    top = [
        f"From: Mail Delivery System <MAILER-DAEMON@{options.hostname}>",
        f"To: <{to}>" if to.isascii() else f"To: {to}",
        f"Subject: {_subject(report)}",
        f"Date: {_date(now)}",
        f"Message-ID: <{int(now)}.{entry.id}.{secrets.token_hex(4)}@{options.hostname}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "Content-Transfer-Encoding: "
        + ("7bit" if all(p.isascii() for p in (human, status, returned)) else "8bit"),
        "",
        "This is a MIME-encapsulated delivery status notification.",
        "",
    ]
    out = bytearray("\r\n".join(top).encode("utf-8"))
    out += f"\r\n--{boundary}\r\n".encode()
    out += b"Content-Description: Notification\r\n"
    charset = "us-ascii" if human.isascii() else "utf-8"
    out += f"Content-Type: text/plain; charset={charset}\r\n".encode()
    out += f"Content-Transfer-Encoding: {encoding(human)}\r\n\r\n".encode()
    out += human
    out += f"\r\n--{boundary}\r\n".encode()
    out += b"Content-Description: Delivery report\r\n"
    out += f"Content-Type: {status_type}\r\n".encode()
    out += f"Content-Transfer-Encoding: {encoding(status)}\r\n\r\n".encode()
    out += status
    out += f"\r\n--{boundary}\r\n".encode()
    out += b"Content-Description: " + (
        b"Undelivered message\r\n" if returned is message else b"Message header\r\n"
    )
    out += f"Content-Type: {returned_type}\r\n".encode()
    out += f"Content-Transfer-Encoding: {encoding(returned)}\r\n\r\n".encode()
    out += returned
    if not returned.endswith(b"\n"):
        out += b"\r\n"
    out += f"\r\n--{boundary}--\r\n".encode()
    return bytes(out)
