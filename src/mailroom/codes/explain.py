"""``mailroom explain``: what a reply code, an enhanced code or a whole reply means, and what a
client should do next."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mailroom.codes.basic import BasicCodeInfo, describe_basic_code
from mailroom.codes.catalogue import CATALOGUE
from mailroom.codes.classify import Classification, classify
from mailroom.codes.enhanced import EnhancedStatus, EnhancedStatusError
from mailroom.codes.reply import ReplyError, split_reply_lines
from mailroom.codes.reports import REPORTS

__all__ = ["ExplainError", "Explanation", "explain"]


class ExplainError(ValueError):
    """Input that is neither a reply code, an enhanced status code nor a reply."""


# What a client does next, by the first digit (RFC 5321 §4.2.1) or the enhanced class.
NEXT_STEP = {
    2: ("done", "The action completed; go on with the next command."),
    3: ("continue", "The server waits for more: send the message data or the next SASL response."),
    4: ("retry later", "A temporary condition: keep the message and try again later, as is."),
    5: (
        "do not retry as is",
        "A permanent failure: do not send the same command again as is; "
        "bounce the message or change the request.",
    ),
}

_BASIC_ONLY = re.compile(r"\d{3}")
_ENHANCED_ONLY = re.compile(r"\d\.\d{1,3}\.\d{1,3}")


@dataclass
class Explanation:
    input: str
    code: int | None = None
    basic: BasicCodeInfo | None = None
    status: EnhancedStatus | None = None
    text_lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    action: str = ""
    advice: str = ""
    classification: Classification | None = None  # what it means for a message in flight

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input}
        if self.code is not None and self.basic is not None:
            out["code"] = self.code
            out["basic"] = {
                "category": self.basic.category,
                "category_meaning": self.basic.category_meaning,
                "area": self.basic.area,
                "area_meaning": self.basic.area_meaning,
                "standard": self.basic.is_standard,
                "definitions": [
                    {"text": d.text, "meaning": d.meaning, "reference": d.reference}
                    for d in self.basic.definitions
                    if d.standard
                ],
            }
        if self.status is not None:
            entry = self.status.entry
            subject = self.status.subject_entry
            out["enhanced"] = {
                "code": str(self.status),
                "class": self.status.class_entry.title,
                "subject": subject.title if subject else None,
                "registered": entry is not None,
                "title": entry.title if entry else None,
                "description": entry.description if entry else None,
                "reference": entry.reference if entry else None,
            }
        if self.text_lines:
            out["text"] = self.text_lines
        out["sent_by_mailroom"] = self.mailroom_names()
        out["reported_by_mailroom"] = [
            {"name": name, "when": REPORTS[name].when} for name in self.report_names()
        ]
        if self.status is not None:
            why = _not_sent(self.status)
            if why is not None:
                out["not_sent_by_mailroom"] = why
        out["warnings"] = self.warnings
        out["action"] = self.action
        out["advice"] = self.advice
        if self.classification is not None:
            c = self.classification
            out["classification"] = {"action": c.action, "reason": c.reason, "evidence": c.evidence}
        return out

    def mailroom_names(self) -> list[str]:
        """The catalogue entries with this code (and enhanced code, when one was given)."""
        return [
            name
            for name, template in CATALOGUE.items()
            if (self.code is None or template.code == self.code)
            and (self.status is None or template.status == self.status)
            and (self.code is not None or self.status is not None)
        ]

    def report_names(self) -> list[str]:
        """The statuses mailroom writes into delivery reports (codes/reports.py) with this
        enhanced code (a basic code alone names none: reports carry no basic code)."""
        if self.status is None:
            return []
        return [name for name, report in REPORTS.items() if report.status == self.status]

    def render(self) -> str:
        out: list[str] = []
        if self.code is not None and self.basic is not None:
            b = self.basic
            out.append(f"{self.code}: {b.category} ({self.code // 100}yz) — {b.category_meaning}.")
            out.append(f"     area x{(self.code // 10) % 10}z {b.area}: {b.area_meaning}.")
            for d in b.definitions:
                if d.standard:
                    out.append(f'     {d.reference}: "{d.text}"')
        if self.status is not None:
            s = self.status
            out.append(f"{s}: class {s.status_class} {s.class_entry.title}.")
            subject = s.subject_entry
            if subject is not None:
                out.append(
                    f"     subject {s.status_class}.{s.subject} {subject.title}: "
                    f"{subject.description}"
                )
            entry = s.entry
            if entry is not None:
                out.append(f'     {s.registry_key} "{entry.title}" {entry.reference}')
                out.append(f"     {entry.description}")
        if self.text_lines and any(self.text_lines):
            out.append("text: " + " / ".join(line for line in self.text_lines if line))
        names = self.mailroom_names()
        if names:
            out.append("mailroom sends this as: " + ", ".join(names))
        for name in self.report_names():
            out.append(
                f"mailroom reports this as {name}: in a delivery report when {REPORTS[name].when}"
            )
        why = _not_sent(self.status) if self.status is not None else None
        if why is not None:
            out.append(f"mailroom does not send this: {why}")
        for warning in self.warnings:
            out.append(f"warning: {warning}")
        out.append(f"next: {self.action} — {self.advice}")
        if self.classification is not None:
            c = self.classification
            out.append(
                f"classified: {c.action}, reason {c.reason} — {c.description} ({c.evidence})"
            )
        return "\n".join(out)


def _not_sent(status: EnhancedStatus) -> str | None:
    """Why mailroom never sends this code (the registry table's reason), or that the work that
    brings it is under way; None otherwise."""
    from mailroom.codes.coverage import IN_PROGRESS, NOT_MET

    key = status.registry_key
    if key in NOT_MET:
        return NOT_MET[key]
    if (
        key in IN_PROGRESS
        and not any(
            t.status is not None and t.status.registry_key == key for t in CATALOGUE.values()
        )
        and not any(r.status.registry_key == key for r in REPORTS.values())
    ):
        return f"not yet: {IN_PROGRESS[key]}"
    return None


def _explain_status(status: EnhancedStatus, warnings: list[str]) -> None:
    if status.subject_entry is None:
        warnings.append(f"subject {status.subject} is not defined by RFC 3463 (0 to 7 are)")
    elif not status.is_registered:
        warnings.append(
            f"{status} is not enumerated in the IANA registry; read it by class and subject"
        )


def _basic(code: int, warnings: list[str]) -> BasicCodeInfo:
    try:
        info = describe_basic_code(code)
    except ValueError as exc:
        raise ExplainError(str(exc)) from None
    if not info.is_standard and info.note:
        warnings.append(f"{code} is non-standard: {info.note}")
    return info


def explain(text: str) -> Explanation:
    """Explain ``"550"``, ``"5.7.1"``, ``"550 5.1.1 <x@y>: no such user"`` or a multi-line
    reply. Raises :class:`ExplainError` for anything else."""
    stripped = text.strip()
    if not stripped:
        raise ExplainError("nothing to explain: give a reply code, an enhanced code or a reply")
    result = Explanation(input=stripped, classification=classify(stripped))
    if _BASIC_ONLY.fullmatch(stripped):
        result.code = int(stripped)
        result.basic = _basic(result.code, result.warnings)
        result.action, result.advice = NEXT_STEP[result.code // 100]
        return result
    if _ENHANCED_ONLY.fullmatch(stripped):
        try:
            result.status = EnhancedStatus.parse(stripped)
        except EnhancedStatusError as exc:
            raise ExplainError(f"{exc} (the class must be 2, 4 or 5)") from None
        _explain_status(result.status, result.warnings)
        result.action, result.advice = NEXT_STEP[result.status.status_class]
        return result
    try:
        lines = split_reply_lines(stripped)
    except ReplyError as exc:
        raise ExplainError(f"not a reply code, enhanced code or SMTP reply: {exc}") from None
    result.code = lines[0].code
    result.basic = _basic(result.code, result.warnings)
    statuses = [line.status for line in lines]
    found = [s for s in statuses if s is not None]
    if found:
        result.status = found[0]
        _explain_status(result.status, result.warnings)
        if result.status.status_class != result.code // 100:
            result.warnings.append(
                f"the enhanced code's class ({result.status.status_class}) disagrees with the "
                f"reply code's first digit ({result.code // 100}); RFC 3463 requires them to "
                "match. Trust the reply code."
            )
        if len(set(found)) > 1:
            result.warnings.append(
                "different enhanced codes on different lines: " + ", ".join(map(str, found))
            )
        elif len(lines) > 1 and len(found) < len(lines):
            result.warnings.append(
                "the enhanced code is not repeated on every line, as RFC 2034 §3 asks"
            )
    result.text_lines = [line.text for line in lines]
    result.action, result.advice = NEXT_STEP[result.code // 100]
    if result.code == 421:
        result.advice += " The server is closing the connection."
    return result
