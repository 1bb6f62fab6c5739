"""Enhanced mail system status codes (RFC 3463): ``class.subject.detail``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mailroom.codes.registry import (
    RegistryEntry,
    class_entries,
    enhanced_code_entries,
    subject_entries,
)

__all__ = ["EnhancedStatus", "EnhancedStatusError"]

# RFC 3463 §2: class is 2, 4 or 5; subject and detail are 1 to 3 digits without leading zeros
# (the grammar is "1*3digit"; we accept leading zeros on input but never produce them).
_PATTERN = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")


class EnhancedStatusError(ValueError):
    """Text that is not an RFC 3463 enhanced status code."""


@dataclass(frozen=True, slots=True, order=True)
class EnhancedStatus:
    """An RFC 3463 status code such as ``5.1.1``."""

    status_class: int
    subject: int
    detail: int

    def __post_init__(self) -> None:
        if self.status_class not in (2, 4, 5):
            raise EnhancedStatusError(f"class must be 2, 4 or 5, not {self.status_class}")
        if not (0 <= self.subject <= 999 and 0 <= self.detail <= 999):
            raise EnhancedStatusError(
                f"subject and detail must be 0..999: {self.subject}.{self.detail}"
            )

    def __reduce__(self) -> tuple[Any, ...]:
        # As its constructor's arguments (see Reply.__reduce__).
        return (EnhancedStatus, (self.status_class, self.subject, self.detail))

    @classmethod
    def parse(cls, text: str) -> EnhancedStatus:
        """Parse ``"5.1.1"``; anything else raises :class:`EnhancedStatusError`."""
        match = _PATTERN.fullmatch(text.strip())
        if match is None:
            raise EnhancedStatusError(f"not an enhanced status code: {text!r}")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    @classmethod
    def match_prefix(cls, text: str) -> tuple[EnhancedStatus, str] | None:
        """If ``text`` starts with a code followed by a space or its end, split it off."""
        match = _PATTERN.match(text)
        if match is None:
            return None
        rest = text[match.end() :]
        if rest and rest[0] != " ":
            return None
        return cls(int(match[1]), int(match[2]), int(match[3])), rest[1:]

    def __str__(self) -> str:
        return f"{self.status_class}.{self.subject}.{self.detail}"

    @property
    def registry_key(self) -> str:
        """The registry's class-independent spelling, ``X.1.1``."""
        return f"X.{self.subject}.{self.detail}"

    @property
    def entry(self) -> RegistryEntry | None:
        """The IANA registry entry, or None when the code is not enumerated (e.g. 5.1.99)."""
        return enhanced_code_entries().get(self.registry_key)

    @property
    def is_registered(self) -> bool:
        return self.registry_key in enhanced_code_entries()

    @property
    def class_entry(self) -> RegistryEntry:
        return class_entries()[self.status_class]

    @property
    def subject_entry(self) -> RegistryEntry | None:
        return subject_entries().get(self.subject)

    def with_class(self, status_class: int) -> EnhancedStatus:
        return EnhancedStatus(status_class, self.subject, self.detail)
