"""What bounces' words share for their readers: the shape of an address, the text after a
heading."""

from __future__ import annotations

import re

__all__ = ["ADDRESS", "blocks_after"]

ADDRESS = r"[^\s<>()\"',;:]+@[\w.\-]+[a-z0-9]"


def blocks_after(text: str, start: re.Pattern[str]) -> str | None:
    found = start.search(text)
    return text[found.end() :] if found else None
