"""From one message to its records: what kind of report it is, who failed, and why.

In order:

1. a complaint (RFC 5965 ``message/feedback-report``): one ``feedback`` record;
2. a delivery status notification (RFC 3464, in any MTA's dress): one record per recipient
   block, its Diagnostic-Code completed from the report's own words where the block leaves it
   empty or generic (Exim writes ``Status: 5.0.0`` and says the reason only in its text);
3. a bounce without a status part, recognised by its sender or subject (MAILER-DAEMON,
   "Undelivered Mail", "failure notice", …) and read by the structure of its words (qmail,
   Sendmail, Exim, Gmail, Yahoo, Exchange): one record per address it names;
4. an Amazon SES notification an SNS email subscription mailed (its body is the JSON); a
   report that names nobody and returns another report, or a report forwarded in a mail's
   text ("Begin forwarded message:", quoted "> "): the inner report's records;
5. an automatic reply (RFC 3834): one ``autoreply`` record (reason ``vacation``).

Anything else gives no record. The reason is :func:`mailroom.codes.classify`'s, given the
diagnostic, the command the report says it answered, and the Status field. A report that gave
up (``failed``, or ``delayed``) with only a temporary status is ``expired`` unless its words
(or a code that names one, 4.4.2) say why it could not get through: "No route to host" is
``networkerror``. A local program's exit that says nothing more (``X-Unix; 71``) is
``mailererror``.
"""

from __future__ import annotations

import re
from email.message import Message

from mailroom.bounces.dsn import status_blocks, typed
from mailroom.bounces.mime import (
    address_of,
    header,
    human_text,
    iso_time,
    returned_headers,
    walk,
)
from mailroom.bounces.mime import parse as parse_message
from mailroom.bounces.other_reports import autoreply, feedback, microsoft_complaint
from mailroom.bounces.record import BounceRecord
from mailroom.bounces.ses import notification_in_text
from mailroom.bounces.text_formats import is_bounce_sender, is_bounce_text, per_address, producer
from mailroom.codes import EnhancedStatus, classify
from mailroom.codes.reason_codes import GENERIC_STATUS, RECONSIDERED
from mailroom.codes.reasons import is_hard
from mailroom.codes.reply_facts import read_facts
from mailroom.header_section import address_list

__all__ = ["records_of"]

_KIND_OF_ACTION = {
    "failed": "bounce",
    "delayed": "delay",
    "delivered": "success",
    "relayed": "success",
    "expanded": "success",
}
# Action values outside RFC 3464 §2.3.3 that reports do use: Postfix's address verification
# (sendmail -bv) says "deliverable"/"undeliverable", SendGrid "expired" for a message it gave
# up on, some gateways "failure".
_ACTION_NAMES = {
    "deliverable": "delivered",
    "undeliverable": "failed",
    "expired": "failed",
    "failure": "failed",
}
# A failed report that only says it could not get through gave up waiting: expired. When its
# words (or a code that names one) say why it could not get through, that cause is the reason.
_GAVE_UP = frozenset({"networkerror", "expired", "onhold", "undefined", "systemerror"})
# The reporting MTA's own category for a recipient, where it names a reason plainly: PowerMTA
# writes X-PowerMTA-BounceCategory after matching the reply against its bounce rules. Only the
# categories about the address itself are taken; the broad ones ("policy-related", "other")
# are left to the words.
_CATEGORIES = {
    "bad-mailbox": "userunknown",
    "bad-domain": "hostunknown",
    "inactive-mailbox": "suspend",
    "quota-issues": "mailboxfull",
}
_DELAY_WORDS = re.compile(
    r"has not yet been delivered|has been delayed|delivery (?:is )?delayed|will (?:continue|be) "
    r"(?:to )?(?:retr|tr)|still being retried|transient non-fatal|warning: message",
    re.IGNORECASE,
)
_ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w.]?\d)")


class _Original:
    """What the report says about the message it is about."""

    def __init__(self, message: Message, fields: dict[str, str]) -> None:
        returned = returned_headers(message)
        self.message_id = header(returned, "Message-ID") if returned is not None else ""
        self.subject = header(returned, "Subject") if returned is not None else ""
        sender = address_of(fields.get("x-postfix-sender", ""))
        if not sender and returned is not None:
            sender = address_of(header(returned, "Return-Path"))
        if not sender:
            # A report goes to the envelope sender of the message it is about.
            sender = address_of(header(message, "Delivered-To") or header(message, "To"))
        if not sender and returned is not None:
            sender = address_of(header(returned, "From"))
        self.sender = sender


def _status_of(text: str) -> EnhancedStatus | None:
    # RFC 3464's fields may carry RFC 822 comments: "Status: 5.4.4 (Illegal host/domain name
    # found)" (Sun/Oracle Messaging Server, PowerMTA) is 5.4.4.
    code = re.sub(r"\([^()]*\)", " ", text).split()
    try:
        return EnhancedStatus.parse(code[0]) if code else None
    except ValueError:
        return None


def _best_status(field: str, diagnostic: str) -> str:
    """The Status field, unless it is generic (X.0.0) and the diagnostic holds a more specific
    code of the same class."""
    status = _status_of(field)
    found = _ENHANCED.search(diagnostic)
    inner = _status_of(".".join(found.groups())) if found else None
    if inner is not None and (
        status is None
        or ((status.subject, status.detail) == (0, 0) and inner.status_class == status.status_class)
    ):
        return str(inner)
    return str(status) if status is not None else ""


def _stated_command(text: str) -> str | None:
    """The command a reporting MTA's wrapper names ("after RCPT TO:", "in reply to end of DATA
    command"), not one guessed from the reply's words."""
    if not text:
        return None
    told = read_facts(text)
    return told.command if told.command_from == "wrapper" else None


def _record(
    *,
    kind: str,
    recipient: str,
    action: str,
    status_field: str,
    diagnostic: str,
    diagnostic_type: str,
    words: str,
    remote_mta: str,
    reporting_mta: str,
    original: _Original,
    original_recipient: str,
    timestamp: str,
    report_format: str,
    source: str,
    category: str = "",
) -> BounceRecord:
    status = _best_status(status_field, f"{diagnostic} {words}")
    # The words for a person often say more than an empty or generic Diagnostic-Code.
    said = diagnostic
    if words and (not diagnostic or _ENHANCED.search(diagnostic) is None):
        said = f"{words} {diagnostic}".strip() if diagnostic not in words else words
    # The command the report's words (or the MTA's own Diagnostic-Code, "X-Postfix; host …
    # said: 550 … (in reply to RCPT TO command)") say the failure answered.
    stated = _stated_command(words) or _stated_command(diagnostic)
    own = _status_of(status)
    if (
        diagnostic_type not in ("smtp", "lmtp", "")
        and own is not None
        and (own.subject, own.detail) not in GENERIC_STATUS
    ):
        # The reporting MTA's own words about its own delivery come with its own verdict:
        # a specific Status it wrote is that verdict (Postfix: "x-unix; input/output error",
        # Status: 5.2.2), unless the code names its reason only as a first guess and the
        # MTA's words name the cause (Postfix: "connect to …: No route to host", 4.4.1).
        verdict = classify(status)
        if verdict.reason in RECONSIDERED:
            read = classify(diagnostic, command=stated, status=status)
            if read.reason != verdict.reason and read.names_cause:
                verdict = read
    else:
        # The command the report's words say the failure answered ("after RCPT TO:"), when
        # the Diagnostic-Code alone does not say it.
        verdict = classify(said or status or action, command=stated, status=status or None)
    reason, why = verdict.reason, verdict.why
    if category.lower() in _CATEGORIES and action == "failed":
        reason = _CATEGORIES[category.lower()]
        why = f"the reporting MTA's category '{category}' ({verdict.why})"
    elif diagnostic_type == "x-unix" and not verdict.names_cause:
        # A local program's exit (Sendmail's "X-Unix; 71", a sysexits code; Postfix's pipe
        # or local delivery "x-unix; temporary failure") that says nothing more: the
        # program, the mailer, failed.
        reason, why = "mailererror", f"a local program failed: x-unix; {diagnostic}"
    permanent = action == "failed" or (not action and status.startswith("5"))
    named = reason not in _GAVE_UP or verdict.names_cause
    # Failed with a temporary status: the sender gave up retrying. A report with no status
    # (a gateway's text: "Each of the following recipients was rejected", or nothing at all)
    # says nothing of retrying: nothing to go on (onhold), not expired.
    if action == "failed" and not named and status[:1] == "4":
        reason = "expired"
        why = f"reported failed with {status} status after retrying ({verdict.why})"
    elif action == "delayed" and not named:
        # Not yet through, for no reason beyond the network: the time is running (Sisimai
        # names delay notices so).
        reason = "expired"
        why = f"still being retried ({verdict.why})"
    if kind == "success":
        reason, why = "delivered", f"Action: {action}"
    bounce_type = ""
    if kind == "bounce":
        bounce_type = "hard" if is_hard(reason, permanent) else "soft"
    return BounceRecord(
        kind=kind,
        recipient=recipient,
        reason=reason,
        reason_why=why,
        action=action,
        status=status,
        bounce_type=bounce_type,
        diagnostic_code=diagnostic or words,
        diagnostic_type=diagnostic_type or ("text" if words else ""),
        command=verdict.command or stated or "",
        remote_mta=remote_mta,
        reporting_mta=reporting_mta,
        sender=original.sender,
        original_recipient=original_recipient,
        message_id=original.message_id,
        subject=original.subject,
        timestamp=timestamp,
        format=report_format,
        source=source,
    )


def _words_for(recipient: str, said: list[tuple[str, str]]) -> str:
    for address, words in said:
        if address.lower() == recipient.lower():
            return words
    return said[0][1] if len(said) == 1 else ""


_MAILBOX = re.compile(r"(?:\"[^\"]*\"|[^\s@|/<>()\[\],;:\"]+)@[^\s@<>()\[\],;:\"]+")
# A source route's hops ("@relay1,@relay2:"). A hop's domain holds no "@": with one that
# could, a run of "@" had every way of cutting it into hops to try before failing
# (exponential: 46 of them in a Final-Recipient took over a minute).
_ROUTE = re.compile(r"^(?:@[^:,\s@]+,?)+:")


def _is_mailbox(address: str) -> bool:
    """An addr-spec the sender could have written: a local part and a domain with a dot (or an
    address literal); "bob@sims-ms-daemon" (Sun's message store channel) or "bob@server" is
    an MTA's internal name."""
    if _MAILBOX.fullmatch(address) is None:
        return False
    domain = address.rpartition("@")[2]
    return "." in domain.strip(".") or domain.startswith("[")


def _recipient_of(block: dict[str, str], said: list[tuple[str, str]], message: Message) -> str:
    """Final-Recipient (RFC 3464 §2.3.2), when it is a mailbox. When it is not (Exim's pipe and
    file deliveries, "|/usr/bin/x" or "/var/mail/x"; a source route "@relay:user@host"; a bare
    "@host"; an internal name without a dot in its domain), the address the sender used:
    Original-Recipient (ORCPT), else the one address the report's words name, else the route's
    mailbox, else the returned message's only To, else Final-Recipient as it is."""
    final = address_of(block.get("final-recipient", ""))
    if _is_mailbox(final):
        return final
    original = address_of(block.get("original-recipient", ""))
    if _is_mailbox(original):
        return original
    if len(said) == 1 and _is_mailbox(said[0][0]):
        return said[0][0]
    routed = _ROUTE.sub("", final)
    if _is_mailbox(routed):
        return routed
    returned = returned_headers(message)
    if returned is not None:
        to = [a for _, a in address_list(returned.get_all("To") or []) if _is_mailbox(a)]
        if len(to) == 1:
            return to[0]
    return final or original


def _from_status_part(message: Message, source: str) -> list[BounceRecord] | None:
    blocks = status_blocks(message)
    if blocks is None:
        return None
    head, recipients = blocks
    text = human_text(message)
    said = per_address(text)
    status_text = "\n".join(f"{k}: {v}" for b in (head, *recipients) for k, v in b.items())
    made_by = producer(message, text, status_text)
    report_format = f"rfc3464:{made_by}" if made_by else "rfc3464"
    original = _Original(message, head)
    records = []
    for block in recipients:
        recipient = _recipient_of(block, said if len(recipients) == 1 else [], message)
        action = block.get("action", "").lower().split()[0] if block.get("action") else ""
        action = _ACTION_NAMES.get(action, action)
        diagnostic_type, diagnostic = typed(block.get("diagnostic-code", ""))
        reporting = typed(head.get("reporting-mta", ""))[1]
        when = block.get("last-attempt-date") or head.get("arrival-date") or header(message, "Date")
        records.append(
            _record(
                kind=_KIND_OF_ACTION.get(action, "bounce"),
                recipient=recipient,
                action=action,
                status_field=block.get("status", ""),
                diagnostic=diagnostic,
                diagnostic_type=diagnostic_type,
                words=_words_for(recipient, said),
                remote_mta=typed(block.get("remote-mta", ""))[1],
                reporting_mta=reporting,
                original=original,
                original_recipient=address_of(block.get("original-recipient", "")),
                timestamp=iso_time(when),
                report_format=report_format,
                source=source,
                category=block.get("x-powermta-bouncecategory", ""),
            )
        )
    return records


def _from_words(message: Message, source: str) -> list[BounceRecord]:
    if not is_bounce_text(message):
        return []
    text = human_text(message)
    said = per_address(text)
    failed = [a.strip() for a in header(message, "X-Failed-Recipients").split(",") if a.strip()]
    if not said and failed:
        said = [(address, text) for address in failed]
    if not said:
        return []
    made_by = producer(message, text) or "text"
    delayed = bool(_DELAY_WORDS.search(text) or _DELAY_WORDS.search(header(message, "Subject")))
    action = "delayed" if delayed else "failed"
    original = _Original(message, {})
    reporting = address_of(header(message, "From")).rpartition("@")[2]
    return [
        _record(
            kind="delay" if delayed else "bounce",
            recipient=address,
            action=action,
            status_field="",
            diagnostic="",
            diagnostic_type="",
            words=words,
            remote_mta="",
            reporting_mta=reporting,
            original=original,
            original_recipient="",
            timestamp=iso_time(header(message, "Date")),
            report_format=made_by,
            source=source,
        )
        for address, words in said
    ]


def records_of(message: Message, source: str) -> list[BounceRecord]:
    """The records of one parsed message (none when it is not a report of any kind)."""
    found = feedback(message, source) or microsoft_complaint(message, source)
    if found:
        return found
    from_status = _from_status_part(message, source)
    if from_status:
        return from_status
    return (
        _from_words(message, source)
        or _ses_by_mail(message, source)
        or _nested_report(message, source)
        or _forwarded_report(message, source)
        or autoreply(message, source)
    )


def _returned_report(message: Message) -> Message | None:
    """The returned message, when it is itself a report (multipart/report, or from a mail
    system)."""
    for part in walk(message):
        if part.get_content_type() not in ("message/rfc822", "message/global"):
            continue
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message) and (
            inner.get_content_type() == "multipart/report" or is_bounce_sender(inner)
        ):
            return inner
    return None


def _nested_report(message: Message, source: str) -> list[BounceRecord]:
    """A report that names nobody itself and returns another report (a gateway's "The
    following addresses had permanent delivery errors" with an empty list, and the MTA's
    multipart/report behind it as the returned message): the inner report's records."""
    if not is_bounce_text(message):
        return []
    inner = _returned_report(message)
    return records_of(inner, source) if inner is not None else []


_FORWARDED = re.compile(
    r"^[ \t]*(?:begin forwarded message:|-+ ?forwarded message ?-+)[ \t]*\n", re.I | re.M
)
_QUOTE = re.compile(r"^> ?", re.MULTILINE)


def _forwarded_report(message: Message, source: str) -> list[BounceRecord]:
    """A report the sender forwarded in a mail's text ("Begin forwarded message:", each line
    quoted "> "): the report's own records, when the forwarded header is a mail system's."""
    text = human_text(message)
    found = _FORWARDED.search(text)
    if found is None:
        return []
    pasted = text[found.end() :]
    if sum(line.startswith(">") for line in pasted.splitlines()) > len(pasted.splitlines()) / 2:
        pasted = _QUOTE.sub("", pasted)
    inner = parse_message(pasted.lstrip("\n").encode("utf-8", "replace"))
    if not is_bounce_sender(inner):
        return []
    return _from_status_part(inner, source) or _from_words(inner, source)


def _ses_by_mail(message: Message, source: str) -> list[BounceRecord]:
    """An Amazon SES notification mailed by an SNS email subscription (from
    no-reply@sns.amazonaws.com, an ``x-amz-sns-message-id`` field): its body is the JSON."""
    if not message.get("x-amz-sns-message-id"):
        return []
    return notification_in_text(human_text(message), source)
