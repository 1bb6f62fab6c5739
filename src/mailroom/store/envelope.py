"""What the SMTP session knows about a message besides its bytes, and the trace header fields
that carry it into the stored file (RFC 5321 §4.4), so the file alone is enough to rebuild the
index."""

from __future__ import annotations

import email.utils
import functools
import re
import time
from dataclasses import dataclass
from typing import Literal

from mailroom.protocol.syntax import AddressError, parse_domain

__all__ = ["Delivery", "Envelope", "received_header", "trace_header"]


@dataclass(frozen=True, slots=True, init=False)
class Delivery:
    """One destination of a message: a local Maildir (``target`` is its name under
    ``<data>/mail``, e.g. ``catchall`` or ``example.test/alice``) or the outbound queue."""

    kind: Literal["mailbox", "queue"]
    target: str
    recipients: tuple[str, ...]
    # Queue only: recipients whose copies went into local mailboxes in the same commit and
    # whose sender asked for a success report (NOTIFY=SUCCESS): the queue entry holds them as
    # delivered, and its runner sends the "delivered" report (RFC 3461 §6.2.2).
    delivered: tuple[str, ...]
    # Queue only: the NOTIFY a recipient's queue entry gets in place of the client's, as
    # policy decided ("NEVER" for mail forwarded off-site for a sender it cannot vouch for).
    notify: tuple[tuple[str, tuple[str, ...]], ...]
    # Queue only: the envelope sender the queue entry gets in place of the message's (an SRS
    # address, for mail forwarded off-site whose local sender the server cannot vouch for).
    sender: str | None

    def __init__(
        self,
        kind: Literal["mailbox", "queue"],
        target: str,
        recipients: tuple[str, ...],
        delivered: tuple[str, ...] = (),
        notify: tuple[tuple[str, tuple[str, ...]], ...] = (),
        sender: str | None = None,
    ) -> None:
        # Compiled, unlike the one @dataclass would write (an interpreted function: see
        # mailroom.protocol.parameters.MailParameters); one or more a message.
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "recipients", recipients)
        object.__setattr__(self, "delivered", delivered)
        object.__setattr__(self, "notify", notify)
        object.__setattr__(self, "sender", sender)


@dataclass(slots=True, init=False)
class Envelope:
    queue_id: str
    sender: str  # "" for the null reverse-path
    recipients: list[str]
    client_ip: str
    helo: str
    esmtp: bool
    tls: bool
    auth_user: str | None
    smtputf8: bool
    received_at: float
    hostname: str
    # Where the message goes; empty means the catcher's one mailbox for every recipient.
    deliveries: list[Delivery]
    # DSN (RFC 3461) and body parameters, kept for the queue and for bounces.
    envid: str | None
    ret: str | None
    body: str | None
    notify: dict[str, tuple[str, ...]]
    orcpt: dict[str, tuple[str, str]]
    # RFC 8689: MAIL FROM ... REQUIRETLS (kept by the queue for the onward relay).
    requiretls: bool
    # The TLS the client used ("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256), for Received.
    tls_version: str | None
    tls_cipher: str | None
    tls_bits: int | None
    # MT-PRIORITY (RFC 6710) the message was taken at (None: not given), and RRVS= of its
    # recipients (RFC 7293), kept for the queue to pass on.
    mt_priority: int | None
    rrvs: dict[str, str]

    def __init__(
        self,
        queue_id: str,
        sender: str,
        recipients: list[str],
        client_ip: str = "",
        helo: str = "",
        esmtp: bool = True,
        tls: bool = False,
        auth_user: str | None = None,
        smtputf8: bool = False,
        received_at: float | None = None,  # None: now
        hostname: str = "localhost",
        deliveries: list[Delivery] | None = None,
        envid: str | None = None,
        ret: str | None = None,
        body: str | None = None,
        notify: dict[str, tuple[str, ...]] | None = None,
        orcpt: dict[str, tuple[str, str]] | None = None,
        requiretls: bool = False,
        tls_version: str | None = None,
        tls_cipher: str | None = None,
        tls_bits: int | None = None,
        mt_priority: int | None = None,
        rrvs: dict[str, str] | None = None,
    ) -> None:
        # Compiled, unlike the one @dataclass would write (an interpreted function of 23
        # parameters, one a message on the store's path).
        self.queue_id = queue_id
        self.sender = sender
        self.recipients = recipients
        self.client_ip = client_ip
        self.helo = helo
        self.esmtp = esmtp
        self.tls = tls
        self.auth_user = auth_user
        self.smtputf8 = smtputf8
        self.received_at = time.time() if received_at is None else received_at
        self.hostname = hostname
        # Empty: the catcher's one mailbox for every recipient.
        self.deliveries = (
            deliveries if deliveries else [Delivery("mailbox", "catchall", tuple(recipients))]
        )
        self.envid = envid
        self.ret = ret
        self.body = body
        self.notify = {} if notify is None else notify
        self.orcpt = {} if orcpt is None else orcpt
        self.requiretls = requiretls
        self.tls_version = tls_version
        self.tls_cipher = tls_cipher
        self.tls_bits = tls_bits
        self.mt_priority = mt_priority
        self.rrvs = {} if rrvs is None else rrvs

    @property
    def protocol(self) -> str:
        """The "with" keyword of the Received field (RFC 3848, RFC 6531 §3.7.3)."""
        if not self.esmtp:
            return "SMTP"
        base = "UTF8SMTP" if self.smtputf8 else "ESMTP"
        return base + ("S" if self.tls else "") + ("A" if self.auth_user else "")


def _header_safe(text: str) -> str:
    # One header line: line breaks become spaces, and nothing else changes (a quoted local
    # part may hold two spaces in a row; folding them would name another mailbox).
    return text.replace("\r", " ").replace("\n", " ")


def _comment_safe(text: str) -> str:
    # Inside a comment, "(", ")" and "\" are quoted pairs (RFC 5322 §3.2.2).
    return re.sub(r"([()\\])", r"\\\1", _header_safe(text))


@functools.lru_cache(maxsize=256)
def _from_clause(helo: str, client: str) -> str:
    """``from`` and its TCP-info comment (RFC 5321 §4.4): the name the client gave in HELO
    when it is a domain or an address literal; otherwise ``unknown``, and the name as given,
    quoted, inside the comment, where it cannot end the comment or open another clause."""
    if helo:
        try:
            parse_domain(helo, utf8=True)
        except AddressError:
            pass
        else:
            return f"from {helo} ({client})"
        return f"from unknown ({client} helo={_comment_safe(helo)})"
    return f"from unknown ({client})"


def trace_header(envelope: Envelope, *, recipients: list[str] | None = None) -> bytes:
    """For final delivery: ``Return-Path``, one ``Delivered-To`` per recipient, and
    ``Received`` (RFC 5321 §4.4)."""
    e = envelope
    rcpts = e.recipients if recipients is None else recipients
    lines = [f"Return-Path: <{_header_safe(e.sender)}>"]
    lines += [f"Delivered-To: {_header_safe(r)}" for r in rcpts]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8") + received_header(e, rcpts)


@functools.lru_cache(maxsize=4)
def _header_date(seconds: int) -> str:
    # RFC 5322 dates name whole seconds: a busy server stamps many messages with each one, and
    # formatting it (time zone and all) costs more than the rest of the header.
    return email.utils.formatdate(seconds, localtime=True)


def _tls_comment(e: Envelope) -> str:
    """Postfix's words for the TLS of the hop: ``(using TLSv1.3 with cipher NAME (256/256
    bits))``, and how the client was verified: mailroom asks for no client certificate."""
    if not e.tls or not e.tls_version:
        return ""
    bits = f" ({e.tls_bits}/{e.tls_bits} bits)" if e.tls_bits else ""
    cipher = _comment_safe(e.tls_cipher or "unknown")
    return (
        f"\r\n\t(using {_comment_safe(e.tls_version)} with cipher {cipher}{bits})"
        "\r\n\t(client verified: none, no client certificate requested)"
    )


def received_header(envelope: Envelope, recipients: list[str] | tuple[str, ...]) -> bytes:
    """The ``Received`` field this server adds (RFC 5321 §4.4); alone when relaying."""
    e = envelope
    rcpts = list(recipients)
    lines: list[str] = []
    client = f"[{e.client_ip}]" if ":" not in e.client_ip else f"[IPv6:{e.client_ip}]"
    auth = f" (Authenticated sender: {_comment_safe(e.auth_user)})" if e.auth_user else ""
    tls = _tls_comment(e)
    for_clause = f"\r\n\tfor <{_header_safe(rcpts[0])}>" if len(rcpts) == 1 else ""
    date = _header_date(int(e.received_at))
    lines.append(
        f"Received: {_from_clause(e.helo, client)}{auth}{tls}\r\n"
        f"\tby {e.hostname} (mailroom) with {e.protocol} id {e.queue_id}{for_clause};\r\n"
        f"\t{date}"
    )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
