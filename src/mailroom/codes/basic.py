"""Three-digit SMTP reply codes: what each digit means and what the RFCs define (RFC 5321 §4.2)."""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.codes.registry import BasicCodeDefinition, basic_code_definitions

__all__ = ["NON_STANDARD_CODES", "BasicCodeInfo", "describe_basic_code"]

FIRST_DIGIT = {
    2: ("Positive Completion", "the requested action has been successfully completed"),
    3: (
        "Positive Intermediate",
        "the command has been accepted, but the server needs more information before it can act",
    ),
    4: (
        "Transient Negative Completion",
        "the command was not accepted and the action did "
        "not occur, but the condition is temporary: the client may try again later",
    ),
    5: (
        "Permanent Negative Completion",
        "the command was not accepted and the action did "
        "not occur; the client should not repeat the same request as is",
    ),
}

SECOND_DIGIT = {
    0: (
        "Syntax",
        "syntax errors, syntactically correct commands that do not fit any functional "
        "category, and unimplemented or superfluous commands",
    ),
    1: ("Information", "replies to requests for information, such as status or help"),
    2: ("Connections", "replies referring to the transmission channel"),
    3: ("Unspecified", "not specified by RFC 5321 (used by AUTH, RFC 4954)"),
    4: ("Unspecified", "not specified by RFC 5321"),
    5: (
        "Mail system",
        "the status of the receiver mail system with respect to the requested "
        "transfer or other mail system action",
    ),
}

# Codes met in the wild (and in some references) that no RFC defines.
NON_STANDARD_CODES = {
    240: "listed by some references as the reply to QUIT; RFC 5321 defines 221 for QUIT",
}


@dataclass(frozen=True, slots=True)
class BasicCodeInfo:
    code: int
    category: str  # from the first digit
    category_meaning: str
    area: str  # from the second digit
    area_meaning: str
    definitions: tuple[BasicCodeDefinition, ...]  # empty when no RFC defines the code
    note: str | None  # why a code is non-standard, when we know

    @property
    def is_standard(self) -> bool:
        return any(d.standard for d in self.definitions)


def describe_basic_code(code: int) -> BasicCodeInfo:
    """What a three-digit code means; raises ValueError if it cannot be an SMTP reply code."""
    first, second = code // 100, (code // 10) % 10
    if not 200 <= code <= 599 or first not in FIRST_DIGIT or second not in SECOND_DIGIT:
        raise ValueError(f"{code} is not an SMTP reply code (2yz..5yz, second digit 0..5)")
    category, category_meaning = FIRST_DIGIT[first]
    area, area_meaning = SECOND_DIGIT[second]
    definitions = basic_code_definitions().get(code, ())
    note = NON_STANDARD_CODES.get(code)
    if note is None and not any(d.standard for d in definitions):
        note = (
            "only associated with an enhanced code in the IANA registry; no RFC defines its text"
            if definitions
            else "no RFC defines this code; read it by its digits only"
        )
    return BasicCodeInfo(
        code=code,
        category=category,
        category_meaning=category_meaning,
        area=area,
        area_meaning=area_meaning,
        definitions=definitions,
        note=note,
    )
