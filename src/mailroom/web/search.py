"""Search queries as Mailpit writes them, read into SQL over the index.

``from:alice subject:"quarterly report" after:2024-05-01 has:attachment -is:read invoice``

- ``from:``, ``to:``, ``cc:``, ``bcc:``, ``subject:``, ``message-id:``, ``addressed:`` (any
  address). ``to:`` also matches the envelope recipients, so Bcc recipients are found.
- ``before:`` / ``after:`` a date (``2024-05-01``: its midnight, in ``tz`` or local time) or
  an ISO 8601 time.
- ``larger:`` / ``smaller:`` a size (``100K``, ``2M``).
- ``is:read``, ``is:unread``, ``has:attachment``, ``has:inline``.
- ``tag:NAME`` (any case; ``tag:"two words"``), ``is:tagged``.
- anything else is free text, matched (case-insensitively) against the subject, the
  addresses, the text of the body and the attachments' names.
- ``-`` or ``!`` before a term negates it; ``"double quotes"`` keep spaces together.

A query holds at most ``max_terms`` terms (the ``web_max_search_terms`` setting, 100 by
default): each term is a clause of one SQL expression, and SQLite refuses expressions deeper
than 1,000. More is a :class:`SearchError`, which the API answers with 400.

Columns are those of the index (``m.``) and of the web's own table of message summaries
(``s.``: attachments, body text), which the caller fills before it runs a query that needs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Query", "SearchError", "parse_query"]


class SearchError(ValueError):
    """A query that cannot be read (a bad date or size, an unknown time zone)."""


# A term; findall passes over the spaces between terms one by one (a leading "\s*" would run
# over a whole run of spaces again from each of them, a time growing with its square).
_TOKEN = re.compile(r'([-!]?)(?:([A-Za-z][A-Za-z-]*):)?("[^"]*"?|\S+)')
_FIELD_COLUMNS = {
    "from": ("m.from_header", "m.sender"),
    "to": ("m.to_header", "m.recipients"),
    "cc": ("m.cc_header",),
    "bcc": ("m.recipients",),
    "subject": ("m.subject",),
    "message-id": ("m.message_id",),
    "addressed": ("m.from_header", "m.to_header", "m.cc_header", "m.sender", "m.recipients"),
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMG]?)B?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
MAX_SIZE = 2**63 - 1  # the largest INTEGER of SQLite, PostgreSQL's bigint


@dataclass
class Query:
    where: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)
    needs_summaries: bool = False  # uses s.* columns: every message must have its summary

    @property
    def sql(self) -> str:
        return " AND ".join(self.where) if self.where else "1 = 1"


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _any_like(columns: tuple[str, ...], value: str, params: list[object]) -> str:
    params.extend(_like(value) for _ in columns)
    return "(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")"


def _zone(tz: str | None) -> ZoneInfo | None:
    if not tz:
        return None
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SearchError(f"unknown time zone {tz!r}") from None


# Seconds from 1970 past any a message is received at (either way), for dates at the ends of
# the calendar.
CALENDAR_EDGE = 1e18


def _timestamp(value: str, tz: str | None) -> float:
    """``value`` as a Unix time; a bare date is its midnight."""
    zone = _zone(tz)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=zone)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None and zone is not None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        raise SearchError(f"not a date: {value!r} (write 2024-05-01 or an ISO 8601 time)") from None
    # a naive time is local time, as datetime.timestamp() reads it
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        # A naive time on the calendar's first day: reading it as local time looks at the
        # day before ("year 0 is out of range", a 500). Before every message, or after all.
        return -CALENDAR_EDGE if moment.year < 1970 else CALENDAR_EDGE


def _size(value: str) -> int:
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise SearchError(f"not a size: {value!r} (write 500, 100K or 2M)")
    size = float(match[1]) * _UNITS[match[2].upper()]
    # Past what a column holds ("larger:" and 30 nines: an OverflowError binding it, a 500;
    # 400 nines: infinity) it means what the largest does: larger matches none, smaller all.
    return int(size) if size < MAX_SIZE else MAX_SIZE


MAX_TERMS = 100


def parse_query(text: str, tz: str | None = None, *, max_terms: int = MAX_TERMS) -> Query:
    query = Query()
    tokens = _TOKEN.findall(text or "")
    if len(tokens) > max_terms:
        raise SearchError(
            f"a search of {len(tokens)} terms: at most {max_terms} terms "
            "(the web_max_search_terms setting)"
        )
    for negate, key, raw in tokens:
        value = raw[1:].rstrip('"') if raw.startswith('"') else raw
        key = key.lower()
        params: list[object] = []
        clause: str | None
        if key in _FIELD_COLUMNS:
            clause = _any_like(_FIELD_COLUMNS[key], value, params) if value else None
        elif key == "is" and value.lower() in ("read", "unread"):
            clause = "m.read" if value.lower() == "read" else "NOT m.read"
        elif key == "has" and value.lower() in ("attachment", "attachments", "inline", "inlines"):
            column = "s.inline" if value.lower().startswith("inline") else "s.attachments"
            clause = f"{column} > 0"
            query.needs_summaries = True
        elif key == "is" and value.lower() == "tagged":
            clause = "EXISTS (SELECT 1 FROM tags t WHERE t.id = m.id)"
        elif key == "tag":
            clause = "EXISTS (SELECT 1 FROM tags t WHERE t.id = m.id AND t.tag = ?)"
            params.append(value)
        elif key in ("before", "after"):
            params.append(_timestamp(value, tz))
            clause = "m.received <= ?" if key == "before" else "m.received >= ?"
        elif key in ("larger", "smaller"):
            params.append(_size(value))
            clause = "m.size > ?" if key == "larger" else "m.size < ?"
        else:
            word = f"{key}:{value}" if key else value
            if not word:
                continue
            clause = "s.search_text LIKE ? ESCAPE '\\'"
            params.append(_like(word.lower()))
            query.needs_summaries = True
        if clause is None:
            continue
        query.where.append(f"NOT {clause}" if negate else clause)
        query.params.extend(params)
    return query
