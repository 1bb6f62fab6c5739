"""What policy reads from a message at its end: the trace it carries (RFC 5321 §6.3: the
``Received`` fields count the hops it made) and a fingerprint of its content for telling a
flood of near-identical messages (a subscription bomb, draft-levine-mailbomb-header) from
ordinary mail.

The session keeps the first :data:`HEAD_LIMIT` octets of each message for this
(``session.message_head``); nothing here reads more. Pure functions.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import deque
from dataclasses import dataclass, field

from mailroom.header_section import split_message

__all__ = [
    "HEAD_LIMIT",
    "FloodDetector",
    "count_received",
    "fingerprint",
    "header_fields",
]

HEAD_LIMIT = 64 * 1024  # octets of a message policy may read: the header and a body's start

_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
# What varies between the copies of one mass mailing: numbers, long hex or base64-ish tokens
# (confirmation codes, tracking ids), URLs' query strings, the recipient's own address. An
# address is looked for only from the start of a run of the characters its local part may hold:
# tried again inside the run, after each number taken out of it, it would scan on to the run's
# end each time (a Subject of 60 KB of dots held the event loop for 40 s).
_VARIABLE = re.compile(
    rb"https?://[^\s\"'<>]*|(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+|[0-9a-f]{8,}|"
    rb"[A-Za-z0-9_-]{24,}|\d+",
    re.IGNORECASE,
)
_SPACE = re.compile(rb"\s+")
_FIELD_NAME = re.compile(rb"[!-9;-~]+")  # RFC 5322 §3.6.8: printable ASCII but ":"
FINGERPRINT_BODY = 4096  # octets of the body that count for the fingerprint


def header_fields(header: bytes) -> list[tuple[str, str]]:
    """(lower-case name, unfolded value) of each field of a header section, in order."""
    # Each field's pieces are joined once at the end: adding each folded line to the value as
    # it came took time with the square of a long fold.
    fields: list[tuple[str, list[str]]] = []
    for line in header.splitlines():
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line.strip().decode("utf-8", "replace"))
            continue
        raw_name, colon, raw_value = line.partition(b":")
        if colon and _FIELD_NAME.fullmatch(raw_name):
            value = raw_value.strip().decode("utf-8", "replace")
            fields.append((raw_name.decode("ascii").lower(), [value]))
    return [(name, " ".join(pieces)) for name, pieces in fields]


def count_received(head: bytes) -> int:
    """How many ``Received`` fields the message's header holds (the hops it made)."""
    header, _ = split_message(head)
    return len(_RECEIVED.findall(header))


def fingerprint(head: bytes) -> str:
    """The content of a message with what varies between copies of one mailing taken out: its
    Subject and the start of its body, numbers, tokens, addresses and URLs replaced. Copies of a
    confirmation request sent to one address get the same fingerprint; different letters do
    not."""
    header, body = split_message(head)
    subject = b""
    for name, value in header_fields(header):
        if name == "subject":
            subject = value.encode("utf-8", "replace")
            break
    digest = hashlib.sha256()
    for part in (subject, body[:FINGERPRINT_BODY]):
        normalized = _SPACE.sub(b" ", _VARIABLE.sub(b"#", part)).strip().lower()
        digest.update(normalized + b"\0")
    return digest.hexdigest()[:32]


@dataclass
class FloodDetector:
    """Per recipient and fingerprint, the distinct senders seen within ``window`` seconds: a
    recipient getting near-identical messages from more than ``max_senders`` senders is being
    flooded. Memory is bounded: at most ``max_tracked`` (recipient, fingerprint) pairs, the
    oldest forgotten first."""

    max_senders: int
    window: float
    max_tracked: int = 100_000
    _seen: dict[tuple[str, str], deque[tuple[float, str]]] = field(default_factory=dict)

    def note(self, recipient: str, print_: str, sender: str, now: float | None = None) -> int:
        """Record one message; returns how many distinct senders sent it in the window."""
        now = time.monotonic() if now is None else now
        key = (recipient.lower(), print_)
        seen = self._seen.pop(key, None) or deque()
        while seen and seen[0][0] <= now - self.window:
            seen.popleft()
        seen.append((now, sender.lower()))
        self._seen[key] = seen  # most recently used last
        while len(self._seen) > self.max_tracked:
            del self._seen[next(iter(self._seen))]
        return len({s for _, s in seen})

    def flooded(self, recipient: str, print_: str, sender: str, now: float | None = None) -> int:
        """0 when this message may pass, else the number of distinct senders (over the limit)."""
        if not self.max_senders:
            return 0
        count = self.note(recipient, print_, sender, now)
        return count if count > self.max_senders else 0
