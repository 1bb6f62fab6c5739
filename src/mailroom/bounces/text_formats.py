"""The words of bounces for a person: which MTA wrote them, and what they say per recipient.

Many reports have no RFC 3464 part (qmail, older Exim and Sendmail, Yahoo, Gmail's and
Exchange's notices), and many that have one leave its Diagnostic-Code empty or generic (Exim
4.96 writes ``Status: 5.0.0`` and puts the reason only in its text). The text says it in the
shape its MTA always uses; each shape is read by structure, not by a particular message:

- :mod:`~mailroom.bounces.text_mtas` reads the shapes of the MTAs' own words (Exim, Postfix,
  qmail, Yahoo, mailroom, Sendmail, Gmail, Exchange and Office 365, Dovecot, OpenSMTPD, dma);
- :mod:`~mailroom.bounces.text_gateways` reads gateways' and vendors' fewer words, then the
  last resorts;
- :mod:`~mailroom.bounces.text_words` has what they share (the shape of an address).

Here: the order they are tried in (:data:`_READERS`, the MTAs' first), :func:`per_address`, and
who wrote a report (:func:`producer`) and whether a message is a bounce at all
(:func:`is_bounce_sender`, :func:`is_bounce_text`).
"""

from __future__ import annotations

import re
from email.message import Message

from mailroom.bounces import text_gateways, text_mtas
from mailroom.bounces.mime import header, human_text, walk

__all__ = ["is_bounce_sender", "is_bounce_text", "per_address", "producer"]


# -- all of them ---------------------------------------------------------------------------------

_READERS = (
    text_mtas.sendmail,
    text_mtas.exim,
    text_mtas.exim_malformed,
    text_mtas.gmail,
    text_mtas.exchange,
    text_mtas.dovecot,
    text_mtas.dma,
    text_mtas.opensmtpd,
    text_mtas.angle,
    text_mtas.sendmail_lines,
    text_gateways.had_errors,
    text_gateways.reason_below,
    text_gateways.reason_above,
    text_gateways.errors_counted,
    text_gateways.recipient_dialogues,
    text_gateways.james,
    text_gateways.server_message,
    text_gateways.failure_reasons,
    text_gateways.sent_received,
    text_gateways.undeliverable_to,
    text_gateways.failed_addresses_follow,
    text_gateways.bracketed_status,
    text_gateways.undelivered_to,
    text_gateways.reason_then_address,
    text_gateways.bracketed_with_sentences,
    text_gateways.failed_list_alone,
)


def per_address(text: str) -> list[tuple[str, str]]:
    """(address, what the text says of it) for each address the report's words name."""
    text = text.replace("\r\n", "\n")
    for reader in _READERS:
        found = [(a, " ".join(d.split())) for a, d in reader(text)]
        if found:
            seen: set[str] = set()
            unique = []
            for address, detail in found:
                if address.lower() not in seen:
                    seen.add(address.lower())
                    unique.append((address, detail))
            return unique
    return []


# -- who wrote it --------------------------------------------------------------------------------

_PRODUCERS = (
    ("mailroom", re.compile(r"^x-mailroom-queue-id:", re.IGNORECASE | re.MULTILINE)),
    ("postfix", re.compile(r"this is the mail system at host|x-postfix", re.IGNORECASE)),
    ("qmail", re.compile(r"this is the qmail-send program|qmail-send", re.IGNORECASE)),
    (
        "exim",
        re.compile(
            r"this message was created automatically by mail delivery software|"
            r"x-failed-recipients|eximdsn",
            re.IGNORECASE,
        ),
    ),
    (
        "sendmail",
        re.compile(
            r"transcript of session follows|the original message was received at", re.IGNORECASE
        ),
    ),
    (
        "gmail",
        re.compile(
            r"delivery to the following recipients? (?:failed|has been delayed)|"
            r"googlemail\.com|\*\* address not found \*\*|support\.google\.com/mail",
            re.IGNORECASE,
        ),
    ),
    (
        "exchange",
        re.compile(
            r"diagnostic information for administrators|the following recipient\(s\) could "
            r"not be reached|x-ms-exchange|couldn't be delivered\.|x-ms-embedded-report|"
            r"msexch:im[sc]:",
            re.IGNORECASE,
        ),
    ),
    (
        "yahoo",
        re.compile(r"unable to deliver your message to the following address", re.IGNORECASE),
    ),
    ("ses", re.compile(r"amazonses\.com|x-ses-", re.IGNORECASE)),
    ("powermta", re.compile(r"^x-powermta-", re.IGNORECASE | re.MULTILINE)),
    ("dovecot", re.compile(r"was automatically rejected|dovecot", re.IGNORECASE)),
)


def producer(message: Message, text: str, status_text: str = "") -> str:
    """The MTA that wrote the report, by the shape of its words and fields ("" if unknown)."""
    heads = "\n".join(f"{k}: {v}" for k, v in message.items())
    everything = f"{heads}\n{status_text}\n{text}"
    for name, pattern in _PRODUCERS:
        if pattern.search(everything):
            return name
    return ""


_BOUNCE_SENDER = re.compile(r"mailer-daemon|post_?master|mail delivery|mdaemon", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (?:status notification|failure|failed|has failed)|"
    r"failure notice|mail delivery failed|delivery problem|non remis|unzustellbar|"
    r"could not be delivered|not delivered|rejected:|returned to sender|nondeliver",
    re.IGNORECASE,
)


def is_bounce_sender(message: Message) -> bool:
    """Whether a message comes from a mail system (MAILER-DAEMON, postmaster, "Mail Delivery
    System") or names the recipients that failed (X-Failed-Recipients)."""
    return bool(
        _BOUNCE_SENDER.search(header(message, "From")) or message.get("X-Failed-Recipients")
    )


_RETURNED_PART = ("message/rfc822", "message/global", "text/rfc822-headers")


def _returns_undelivered(message: Message) -> bool:
    """A message that returns another as a part of its own and says that message could not
    be delivered: a bounce by its structure, whatever its sender and subject (au's reports
    come from no-reply@ with the subject "Mail", or one in Japanese)."""
    if not any(part.get_content_type() in _RETURNED_PART for part in walk(message)):
        return False
    return text_gateways.UNDELIVERED_TO.search(human_text(message)) is not None


def is_bounce_text(message: Message) -> bool:
    """Whether a message without a status part is a bounce by its sender or subject, or by
    returning the message it could not deliver."""
    return bool(
        _BOUNCE_SENDER.search(header(message, "From"))
        or _BOUNCE_SUBJECT.search(header(message, "Subject"))
        or message.get("X-Failed-Recipients")
        or _returns_undelivered(message)
    )
