"""From an :class:`email.message.EmailMessage` (or raw RFC 5322 bytes) to what SMTP sends: the
envelope (sender, recipients) and the bytes, without Bcc; and building a message from parts,
for ``mailroom send``."""

from __future__ import annotations

import copy
import email.policy
import email.utils
import mimetypes
from collections.abc import Iterable, Sequence
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

__all__ = [
    "build_message",
    "envelope_of",
    "message_bytes",
    "parse_message",
]


def _addresses(values: Iterable[str]) -> list[str]:
    return [addr for _, addr in email.utils.getaddresses(list(values)) if addr]


def envelope_of(message: Message) -> tuple[str, list[str]]:
    """The envelope smtplib and sendmail -t would use: the sender from Sender or From, the
    recipients from To, Cc and Bcc (each once, in order). Resent-* headers, when present,
    replace them (RFC 5322 §3.6.6)."""
    resent = message.get_all("Resent-Date") is not None
    prefix = "Resent-" if resent else ""
    senders = _addresses(
        message.get_all(f"{prefix}Sender", []) or message.get_all(f"{prefix}From", [])
    )
    recipients: list[str] = []
    for field in ("To", "Cc", "Bcc"):
        for address in _addresses(message.get_all(f"{prefix}{field}", [])):
            if address not in recipients:
                recipients.append(address)
    return (senders[0] if senders else ""), recipients


def message_bytes(message: Message, *, utf8: bool = False) -> bytes:
    """The message as it goes on the wire: CRLF line endings, headers folded for SMTP, Bcc
    removed. ``utf8`` keeps non-ASCII headers as UTF-8 (for SMTPUTF8 servers); otherwise they
    are RFC 2047 encoded."""
    sent = copy.copy(message)
    for name in ("Bcc", "Resent-Bcc"):
        del sent[name]
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    return sent.as_bytes(policy=policy)


def parse_message(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def build_message(
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    subject: str | None = None,
    body: str = "",
    attachments: Sequence[Path] = (),
    headers: Sequence[tuple[str, str]] = (),
    hostname: str | None = None,
) -> EmailMessage:
    """A new message with Date and Message-ID, the body as text/plain, each file attached with
    a type guessed from its name."""
    msg = EmailMessage()
    msg["From"] = sender
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if subject is not None:
        msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    domain = hostname or (sender.rpartition("@")[2].strip(">") if "@" in sender else None)
    msg["Message-ID"] = email.utils.make_msgid(domain=domain or None)
    for name, value in headers:
        msg[name] = value
    msg.set_content(body if body.endswith("\n") or not body else body + "\n")
    for path in attachments:
        kind, _ = mimetypes.guess_type(path.name)
        maintype, _, subtype = (kind or "application/octet-stream").partition("/")
        data = path.read_bytes()
        if maintype == "text":
            try:
                msg.add_attachment(data.decode("utf-8"), subtype=subtype, filename=path.name)
                continue
            except UnicodeDecodeError:
                pass
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    return msg
