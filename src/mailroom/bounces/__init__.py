"""Read bounces: the delivery reports a sender gets back, as one record per failed recipient.

    import mailroom.bounces

    for record in mailroom.bounces.read("~/Maildir"):          # a message, mbox or Maildir
        print(record.recipient, record.reason, record.bounce_type, record.reason_why)

    records = mailroom.bounces.parse(raw_bytes)                 # one message

What it reads (:mod:`~mailroom.bounces.reader`): RFC 3464 delivery status notifications from
any MTA (Postfix, Exim, Sendmail, Exchange and Office 365, Gmail, Amazon SES, Dovecot,
mailroom itself), the text-only bounces of qmail, older Exim and Sendmail, Yahoo, Gmail and
Exchange (recognised by the structure of their words), Amazon SES's JSON notifications,
RFC 5965 complaint reports (reason ``feedback``) and RFC 3834 automatic replies (reason
``vacation``), which it tells apart from bounces. Each record
(:class:`~mailroom.bounces.record.BounceRecord`) has the recipient, the original sender and
Message-ID, action, status, diagnostic code and type, remote and reporting MTA, the SMTP
command, the reason (:func:`mailroom.codes.classify`) with its evidence, the time, and whether
the bounce is hard or soft. ``mailroom bounces`` writes them as JSON lines or CSV.

Uses the standard library's ``email`` package; above ``codes`` in the layers, used by the
command line and the web UI.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from typing import BinaryIO

from mailroom.bounces.mime import parse as _parse_message
from mailroom.bounces.reader import records_of
from mailroom.bounces.record import FIELDS, BounceRecord
from mailroom.bounces.ses import notification_records
from mailroom.bounces.sources import messages
from mailroom.mimeshape import MimeLimits, measure

__all__ = ["FIELDS", "BounceRecord", "MessageTooComplex", "parse", "read"]

log = logging.getLogger("mailroom.bounces")


# A report's own parts (its words, the delivery-status fields, the returned message's headers)
# come first and are small; what follows is the returned message's body, which no record needs.
# Reading at most this much of a message, and one blank line where a long run of them stands
# (the delivery-status part would make a block of each; no report has more than a few in a
# row), bounds the time a message a stranger sent can take to read: `mailroom bounces` on a
# mailbox, the web UI's panel.
MAX_READ = 1024 * 1024
_BLANK_RUN = re.compile(rb"(\r?\n\r?\n)(?:[ \t]*\r?\n){8,}")


class MessageTooComplex(ValueError):
    """A message with more MIME parts, or parts nested deeper, than the reader parses."""


def parse(raw: bytes, source: str = "", limits: MimeLimits | None = None) -> list[BounceRecord]:
    """The records of one message (empty when it is neither a bounce, a delay or success
    report, a complaint, nor an automatic reply).

    Raises :class:`MessageTooComplex` for a message past ``limits`` (by default 1,000 parts,
    50 levels): the standard library's parser takes about a second a thousand parts, with
    the interpreter lock held, and a few hundred levels of nesting make it raise
    RecursionError. No report comes near them."""
    raw = _BLANK_RUN.sub(rb"\1", raw[:MAX_READ])
    if raw.lstrip()[:1] == b"{":
        return notification_records(raw, source)
    shape = measure(raw, limits or MimeLimits())
    if shape.too_complex is not None:
        raise MessageTooComplex(f"not read: {shape.too_complex}")
    return records_of(_parse_message(raw), source)


def read(source: str | os.PathLike[str] | BinaryIO) -> Iterator[BounceRecord]:
    """The records of every message in ``source``: a message file, an mbox, a Maildir, a
    directory of message files, ``"-"`` (standard input) or an open binary file."""
    for name, raw in messages(source, MAX_READ):
        try:
            yield from parse(raw, name)
        except MessageTooComplex as exc:  # one message of a mailbox: said, and the rest read
            log.warning("%s: %s", name or "message", exc)
