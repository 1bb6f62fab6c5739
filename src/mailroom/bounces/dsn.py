"""RFC 3464 delivery status notifications: the machine-readable part of a report.

``multipart/report; report-type=delivery-status`` (RFC 6522) carries a
``message/delivery-status`` part (or ``message/global-delivery-status``, RFC 6533): one block of
fields about the message (Reporting-MTA, Arrival-Date, …) and one block per recipient
(Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date, …).
:func:`status_blocks` finds the part anywhere in the report (some MTAs nest it, some forget the
report type) and returns its blocks as dictionaries of lower-case field names.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser

from mailroom.bounces.mime import part_bytes, walk

__all__ = ["StatusBlocks", "status_blocks", "typed"]

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
Fields = dict[str, str]
StatusBlocks = tuple[Fields, list[Fields]]


_RECIPIENT_FIELDS = ("final-recipient", "original-recipient")


def _fields(block: Message) -> list[Fields]:
    """A block's fields (the first of each name). A block that runs several recipients
    together, or the per-message fields and the first recipient, without the blank line
    RFC 3464 §2.1 puts between them (AOL's reports) is split where the next one begins."""
    found: list[Fields] = []
    current: Fields = {}
    for name, value in block.items():
        key = name.lower()
        if key in _RECIPIENT_FIELDS and current:
            about_recipient = any(k in current for k in _RECIPIENT_FIELDS)
            if key in current or (
                not about_recipient and any(k in _MESSAGE_FIELDS for k in current)
            ):
                found.append(current)
                current = {}
        current.setdefault(key, " ".join(str(value).split()))
    if current:
        found.append(current)
    return found


def _blocks_of_text(text: str) -> list[Fields]:
    """Blocks separated by blank lines, each parsed as header fields (folding allowed)."""
    text = text.replace("\r\n", "\n").strip("\n")
    blocks: list[Fields] = []
    for chunk in text.split("\n\n"):
        if chunk.strip():
            parsed = HeaderParser().parsestr(chunk.strip("\n") + "\n", headersonly=True)
            blocks.extend(_fields(parsed))
    return blocks


def status_blocks(message: Message) -> StatusBlocks | None:
    """(per-message fields, [per-recipient fields]) from the report's status part, or None
    when it has none."""
    for part in walk(message):
        if part.get_content_type() not in _STATUS_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and all(isinstance(p, Message) for p in payload):
            blocks = [b for p in payload if isinstance(p, Message) for b in _fields(p)]
        else:
            blocks = _blocks_of_text(part_bytes(part).decode("utf-8", "replace"))
        if not blocks:
            continue
        recipient_blocks = [
            b for b in blocks if "final-recipient" in b or "original-recipient" in b
        ]
        first = blocks[0] if blocks[0] not in recipient_blocks else {}
        # Some MTAs run the per-message fields into the first recipient's block.
        if not first and recipient_blocks:
            first = {k: v for k, v in recipient_blocks[0].items() if k in _MESSAGE_FIELDS}
        return first, recipient_blocks
    return _fields_in_text(message)


# Some MTAs (Amazon WorkMail, gateways that forward a report as text) write the RFC 3464 fields
# into the text for a person instead of a status part, and some reports lose their MIME
# boundaries on the way: a Final-Recipient line with an Action or Status line after it.
_INLINE_START = re.compile(
    r"^(?:reporting-mta|final-recipient)[ \t]*:", re.IGNORECASE | re.MULTILINE
)
_INLINE_NEEDS = re.compile(
    r"^final-recipient[ \t]*:.*?^(?:action|status)[ \t]*:", re.IGNORECASE | re.MULTILINE | re.DOTALL
)


def _fields_in_text(message: Message) -> StatusBlocks | None:
    for part in walk(message):
        # A text part, or a multipart whose boundary is not in its body (the parts' text is
        # all there is).
        broken = part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), str)
        if part.get_content_type() != "text/plain" and not broken:
            continue
        text = part_bytes(part).decode("utf-8", "replace").replace("\r\n", "\n")
        start = _INLINE_START.search(text)
        if start is None or _INLINE_NEEDS.search(text, start.start()) is None:
            continue
        blocks = _blocks_of_text(text[start.start() :])
        recipient_blocks = [b for b in blocks if "final-recipient" in b and "action" in b]
        if recipient_blocks:
            first = blocks[0] if blocks[0] not in recipient_blocks else {}
            return first, recipient_blocks
    return None


_MESSAGE_FIELDS = frozenset(
    {
        "reporting-mta",
        "dsn-gateway",
        "received-from-mta",
        "arrival-date",
        "original-envelope-id",
        "x-postfix-sender",
        "x-postfix-queue-id",
        "x-mailroom-queue-id",
    }
)


def typed(value: str) -> tuple[str, str]:
    """A typed field, ``smtp; 550 …`` -> ("smtp", "550 …"); untyped -> ("", value)."""
    kind, sep, rest = value.partition(";")
    if sep and kind.strip() and " " not in kind.strip() and len(kind.strip()) <= 20:
        return kind.strip().lower(), rest.strip()
    return "", value.strip()
