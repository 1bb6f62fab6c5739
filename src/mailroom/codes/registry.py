"""The reference tables mailroom ships as package data, loaded once on first use.

The CSV files under ``data/`` are copies of public registries: the IANA "SMTP Enhanced Status
Codes" registry (RFC 5248) and the three-digit reply codes defined by RFC 5321, 3207, 4954,
1870 and 7504. Nothing here decides anything; it only answers "what does the registry say".
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = [
    "BasicCodeDefinition",
    "CommandReplies",
    "RegistryEntry",
    "basic_code_definitions",
    "class_entries",
    "command_replies",
    "enhanced_code_entries",
    "subject_entries",
]


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One row of the IANA enhanced status code registry (or its class/subject tables)."""

    code: str  # as the registry writes it: "X.1.1", "X.1.YYY", "5.XXX.YYY"
    title: str  # the registry's "sample text" (or summary for classes and subjects)
    description: str
    reference: str
    basic_codes: tuple[str, ...] = ()  # associated basic codes, as free text items ("550", "4XX")


@dataclass(frozen=True, slots=True)
class BasicCodeDefinition:
    """A three-digit reply code as one RFC defines it (a code may have several definitions)."""

    code: int
    text: str
    meaning: str
    reference: str
    standard: bool  # False for codes that only appear as associated codes in the IANA registry


@dataclass(frozen=True, slots=True)
class CommandReplies:
    """Which basic codes a command may return (RFC 5321 §4.3.2 and extension RFCs)."""

    command: str
    success: frozenset[int]
    intermediate: frozenset[int]
    error: frozenset[int]
    reference: str
    notes: str

    @property
    def allowed(self) -> frozenset[int]:
        return self.success | self.intermediate | self.error


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("mailroom.codes").joinpath("data", name).read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


_BASIC_CODE_ITEM = re.compile(r"\d{3}|\dXX")


def _basic_code_items(text: str) -> tuple[str, ...]:
    # The registry's column is free text: "451, 550", "250 or 251", "451/550", "5XX", "Any".
    return tuple(_BASIC_CODE_ITEM.findall(text))


@cache
def enhanced_code_entries() -> dict[str, RegistryEntry]:
    """Enumerated codes keyed by ``"X.s.d"`` (class-independent, as IANA lists them)."""
    entries = {}
    for row in _rows("enhanced-status-codes.csv"):
        entries[row["code"]] = RegistryEntry(
            code=row["code"],
            title=row["sample_text"].strip(),
            description=" ".join(row["description"].split()),
            reference=row["reference"],
            basic_codes=_basic_code_items(row["basic_codes"]),
        )
    return entries


@cache
def class_entries() -> dict[int, RegistryEntry]:
    return {
        int(row["code"][0]): RegistryEntry(
            code=row["code"],
            title=row["summary"],
            description=" ".join(row["description"].split()),
            reference=row["reference"],
        )
        for row in _rows("enhanced-status-classes.csv")
    }


@cache
def subject_entries() -> dict[int, RegistryEntry]:
    return {
        int(row["code"].split(".")[1]): RegistryEntry(
            code=row["code"],
            title=row["summary"],
            description=" ".join(row["description"].split()),
            reference=row["reference"],
        )
        for row in _rows("enhanced-status-subjects.csv")
    }


@cache
def basic_code_definitions() -> dict[int, tuple[BasicCodeDefinition, ...]]:
    found: dict[int, list[BasicCodeDefinition]] = {}
    for row in _rows("basic-reply-codes.csv"):
        code = int(row["code"])
        found.setdefault(code, []).append(
            BasicCodeDefinition(
                code=code,
                text=row["text"],
                meaning=row["meaning"],
                reference=row["reference"],
                standard=not row["verified"].startswith("registry-only"),
            )
        )
    return {code: tuple(defs) for code, defs in found.items()}


def _codes(text: str) -> frozenset[int]:
    return frozenset(int(item) for item in text.split())


@cache
def command_replies() -> dict[str, CommandReplies]:
    return {
        row["command"]: CommandReplies(
            command=row["command"],
            success=_codes(row["success"]),
            intermediate=_codes(row["intermediate"]),
            error=_codes(row["error"]),
            reference=row["reference"],
            notes=row["notes"],
        )
        for row in _rows("command-replies.csv")
    }
