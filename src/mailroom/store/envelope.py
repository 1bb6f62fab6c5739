"""What the SMTP session knows about a message besides its bytes, and the trace header fields
that carry it into the stored file (RFC 5321 §4.4), so the file alone is enough to rebuild the
index."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field

__all__ = ["Envelope", "trace_header"]


@dataclass(slots=True)
class Envelope:
    queue_id: str
    sender: str  # "" for the null reverse-path
    recipients: list[str]
    client_ip: str = ""
    helo: str = ""
    esmtp: bool = True
    tls: bool = False
    auth_user: str | None = None
    smtputf8: bool = False
    received_at: float = field(default_factory=time.time)
    hostname: str = "localhost"

    @property
    def protocol(self) -> str:
        """The "with" keyword of the Received field (RFC 3848, RFC 6531 §3.7.3)."""
        if not self.esmtp:
            return "SMTP"
        base = "UTF8SMTP" if self.smtputf8 else "ESMTP"
        return base + ("S" if self.tls else "") + ("A" if self.auth_user else "")


def _header_safe(text: str) -> str:
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


def trace_header(envelope: Envelope, *, recipients: list[str] | None = None) -> bytes:
    """``Return-Path``, one ``Delivered-To`` per recipient, and ``Received``."""
    e = envelope
    rcpts = e.recipients if recipients is None else recipients
    lines = [f"Return-Path: <{_header_safe(e.sender)}>"]
    lines += [f"Delivered-To: {_header_safe(r)}" for r in rcpts]
    client = f"[{e.client_ip}]" if ":" not in e.client_ip else f"[IPv6:{e.client_ip}]"
    auth = f" (Authenticated sender: {_header_safe(e.auth_user)})" if e.auth_user else ""
    for_clause = f"\r\n\tfor <{_header_safe(rcpts[0])}>" if len(rcpts) == 1 else ""
    date = email.utils.formatdate(e.received_at, localtime=True)
    lines.append(
        f"Received: from {_header_safe(e.helo) or 'unknown'} ({client}){auth}\r\n"
        f"\tby {e.hostname} (mailroom) with {e.protocol} id {e.queue_id}{for_clause};\r\n"
        f"\t{date}"
    )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
