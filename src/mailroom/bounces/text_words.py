"""What bounces' words share for their readers: the shape of an address, the text after a
heading, each entry's text up to the next."""

from __future__ import annotations

import re

__all__ = ["ADDRESS", "blocks_after", "entries"]

ADDRESS = r"[^\s<>()\"',;:]+@[\w.\-]+[a-z0-9]"


def blocks_after(text: str, start: re.Pattern[str]) -> str | None:
    found = start.search(text)
    return text[found.end() :] if found else None


def entries(start: re.Pattern[str], text: str) -> list[tuple[re.Match[str], str]]:
    """Each match of ``start`` (an entry's first line) with the text after it, up to the next
    match or the end."""
    matches = list(start.finditer(text))
    if not matches:
        return []
    ends = [match.start() for match in matches[1:]] + [len(text)]
    return [(match, text[match.end() : end]) for match, end in zip(matches, ends, strict=True)]
