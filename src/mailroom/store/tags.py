"""Tags on stored messages, as Mailpit has them: short labels a person or a sender puts on a
message (``X-Tags: invoice, customer-42``, the web API's ``PUT /api/v1/tags``), kept in the
index and searched with ``tag:NAME``.

A tag holds letters, digits, ``-``, ``_``, ``.``, ``@`` and single spaces, at most
:data:`MAX_TAG_LENGTH` characters; anything else becomes a space (Mailpit's rule, so a tag set
through either server reads the same). Tags differ by more than case: ``Invoice`` and
``invoice`` are one tag, spelled as it was first given."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_TAGS", "MAX_TAG_LENGTH", "clean_tag", "clean_tags", "tags_from_header"]

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
