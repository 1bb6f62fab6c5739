"""Tags on stored messages, as Mailpit has them: short labels a person or a sender puts on a
message (``X-Tags: invoice, customer-42``, the web API's ``PUT /api/v1/tags``), kept in the
index (its ``tags`` table, read and changed by the queries below) and searched with
``tag:NAME``.

A tag holds letters, digits, ``-``, ``_``, ``.``, ``@`` and single spaces, at most
:data:`MAX_TAG_LENGTH` characters; anything else becomes a space (Mailpit's rule, so a tag set
through either server reads the same). Tags differ by more than case: ``Invoice`` and
``invoice`` are one tag, spelled as it was first given."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "all_tags",
    "clean_tag",
    "clean_tags",
    "delete_tag",
    "rename_tag",
    "set_tags",
    "tag_counts",
    "tags_from_header",
    "tags_of",
]

MAX_TAG_LENGTH = 100
MAX_TAGS = 50  # per message: a header that lists more is cut short
_INVALID = re.compile(r"[^A-Za-z0-9\-_.@ ]")
_SPACES = re.compile(r"\s+")


def clean_tag(text: str) -> str:
    """``text`` as a tag: invalid characters become spaces, runs of spaces one; "" if nothing
    is left."""
    return _SPACES.sub(" ", _INVALID.sub(" ", text)).strip()[:MAX_TAG_LENGTH].strip()


def clean_tags(values: Iterable[str]) -> list[str]:
    """Clean tags without empty ones or repeats (whatever their case), in the order given."""
    seen: set[str] = set()
    tags: list[str] = []
    for value in values:
        tag = clean_tag(value)
        if tag and tag.lower() not in seen and len(tags) < MAX_TAGS:
            seen.add(tag.lower())
            tags.append(tag)
    return tags


def tags_from_header(value: str) -> list[str]:
    """The tags of an ``X-Tags`` field: a comma-separated list."""
    return clean_tags(value.split(",")) if value else []


# -- the index's tags table (the web's tag endpoints run these in its worker thread) ----------


def all_tags(db: sqlite3.Connection) -> list[str]:
    """Every tag in use, sorted without regard to case."""
    return [r[0] for r in db.execute("SELECT DISTINCT tag FROM tags ORDER BY tag COLLATE NOCASE")]


def tags_of(db: sqlite3.Connection, ids: list[str]) -> dict[str, list[str]]:
    """The tags of each message of ``ids`` (an empty list for one without)."""
    found: dict[str, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        for id_, tag in db.execute(
            f"SELECT id, tag FROM tags WHERE id IN ({', '.join('?' for _ in part)}) "
            "ORDER BY tag COLLATE NOCASE",
            part,
        ):
            found[id_].append(tag)
    return found


def tag_counts(db: sqlite3.Connection) -> dict[str, int]:
    """Each tag with the number of messages that carry it (``/api/v1/info``'s ``Tags``)."""
    return dict(
        db.execute("SELECT tag, COUNT(*) FROM tags GROUP BY tag ORDER BY tag COLLATE NOCASE")
    )


def set_tags(db: sqlite3.Connection, ids: Iterable[str], tags: list[str]) -> list[str]:
    """Give each message of ``ids`` exactly ``tags`` (already clean). A tag that exists on
    another message keeps that spelling. The ids of messages that exist."""
    spelled = {}
    for tag in tags:
        found = db.execute("SELECT tag FROM tags WHERE tag = ? LIMIT 1", (tag,)).fetchone()
        spelled[tag] = found[0] if found else tag
    changed = []
    with db:
        for message_id in ids:
            if db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is None:
                continue
            db.execute("DELETE FROM tags WHERE id = ?", (message_id,))
            db.executemany(
                "INSERT OR IGNORE INTO tags (id, tag) VALUES (?, ?)",
                [(message_id, spelled[tag]) for tag in tags],
            )
            changed.append(message_id)
    return changed


def rename_tag(db: sqlite3.Connection, old: str, new: str) -> int:
    """Rename ``old`` to ``new`` on every message (merging with ``new`` where both are). The
    number of messages that had ``old``."""
    with db:
        ids = [r[0] for r in db.execute("SELECT id FROM tags WHERE tag = ?", (old,))]
        db.execute("DELETE FROM tags WHERE tag = ?", (old,))
        db.executemany(
            "INSERT OR IGNORE INTO tags (id, tag) VALUES (?, ?)", [(i, new) for i in ids]
        )
        db.execute("UPDATE tags SET tag = ? WHERE tag = ?", (new, new))  # one spelling of it
    return len(ids)


def delete_tag(db: sqlite3.Connection, tag: str) -> int:
    with db:
        return db.execute("DELETE FROM tags WHERE tag = ?", (tag,)).rowcount
