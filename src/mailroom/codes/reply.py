"""An SMTP reply: basic code, optional enhanced status, text lines; its wire form and parser."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mailroom.codes.enhanced import EnhancedStatus

__all__ = ["Reply", "ReplyError", "ReplyLine", "split_reply_lines"]


class ReplyError(ValueError):
    """A reply that cannot be built or parsed; the message says what is wrong with it."""


def _check_code(code: int) -> None:
    # RFC 5321 §4.2: first digit 2..5, second digit 0..5, third digit 0..9.
    if not (200 <= code <= 559) or (code // 10) % 10 > 5:
        raise ReplyError(f"{code} is not an SMTP reply code (2yz..5yz, second digit 0..5)")


@dataclass(frozen=True, slots=True, init=False)
class Reply:
    """One SMTP reply.

    ``Reply(550, "5.1.1", "<bob@example.test>: no such user")`` — the status may be given as
    text or as an :class:`EnhancedStatus`, the text as one string or a sequence of lines.
    A status whose class differs from the code's first digit is refused (RFC 3463 §2).
    """

    code: int
    status: EnhancedStatus | None
    lines: tuple[str, ...]
    # The wire form with enhanced codes, made on first use: the catalogue hands out the same
    # Reply object for every fixed reply, so the hot path formats each of them once.
    _wire: bytes | None = field(default=None, compare=False, repr=False)

    def __init__(
        self,
        code: int,
        status: EnhancedStatus | str | None = None,
        text: str | Iterable[str] = "",
    ) -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise ReplyError(f"reply code must be an int, not {code!r}")
        _check_code(code)
        if isinstance(status, str):
            try:
                status = EnhancedStatus.parse(status)
            except ValueError as exc:
                raise ReplyError(str(exc)) from None
        if status is not None and status.status_class != code // 100:
            raise ReplyError(
                f"enhanced status {status} has class {status.status_class}, "
                f"but reply code {code} has class {code // 100}"
            )
        lines = (text,) if isinstance(text, str) else tuple(text)
        if not lines:
            lines = ("",)
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ReplyError(f"reply text must not hold CR or LF: {line!r}")
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "lines", lines)
        object.__setattr__(self, "_wire", None)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its constructor's arguments (the worker processes of --workers hand fault
        # rules, which hold replies, to each other; a compiled class pickles no other way).
        return (Reply, (self.code, self.status, self.lines))

    # -- what it means ---------------------------------------------------------------------

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_intermediate(self) -> bool:
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    # -- wire form -------------------------------------------------------------------------

    def format(self, *, enhanced: bool = True) -> bytes:
        """The wire form, CRLF-terminated; the enhanced code is repeated on every line
        (RFC 2034 §3). ``enhanced=False`` leaves it out, for sessions that must not see it."""
        if enhanced and self._wire is not None:
            return self._wire
        # The separator is always written, even before an empty text: "334 " is how RFC 4954
        # spells an empty challenge, and every reply grammar accepts it.
        prefix = f"{self.status} " if enhanced and self.status is not None else ""
        last = len(self.lines) - 1
        out = []
        for index, line in enumerate(self.lines):
            separator = " " if index == last else "-"
            body = f"{prefix}{line}" if line else prefix.rstrip(" ")
            out.append(f"{self.code}{separator}{body}\r\n")
        wire = "".join(out).encode("utf-8")
        if enhanced:
            object.__setattr__(self, "_wire", wire)
        return wire

    def __str__(self) -> str:
        return self.format().decode("utf-8").rstrip("\r\n").replace("\r\n", "\n")

    @classmethod
    def parse(cls, data: bytes | str) -> Reply:
        """Read one complete reply from another server, single- or multi-line.

        The enhanced code is taken from the first line that carries one and stripped from every
        line that repeats it; a line without it (some servers put it on the first or last line
        only) keeps its text as is. Anything that is not exactly one well-formed reply raises
        :class:`ReplyError`.
        """
        parsed = split_reply_lines(data)
        code = parsed[0].code
        status = next((line.status for line in parsed if line.status is not None), None)
        if status is not None and status.status_class != code // 100:
            raise ReplyError(
                f"enhanced status {status} has class {status.status_class}, "
                f"but reply code {code} has class {code // 100}"
            )
        texts = []
        for line in parsed:
            if line.status is not None and line.status != status:
                # A different code on a later line is text, not the reply's status.
                texts.append(f"{line.status} {line.text}" if line.text else str(line.status))
            else:
                texts.append(line.text)
        return cls(code, status, texts)


@dataclass(frozen=True, slots=True)
class ReplyLine:
    """One line of a reply as it was on the wire."""

    code: int
    last: bool
    status: EnhancedStatus | None
    text: str


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ReplyError(f"a reply is bytes or str, not {type(data).__name__}")
    return bytes(data).decode("utf-8", errors="replace")


def split_reply_lines(data: bytes | str) -> list[ReplyLine]:
    """Split the wire form of one reply into lines, checking the grammar of RFC 5321 §4.2.

    This is the lenient half of :meth:`Reply.parse`: it does not insist that an enhanced code's
    class matches the basic code, so ``mailroom explain`` can warn about such replies.
    """
    text = _decode(data)
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ReplyError("empty reply")
    raw_lines = text.replace("\r\n", "\n").split("\n")
    parsed: list[ReplyLine] = []
    for number, raw in enumerate(raw_lines, start=1):
        if len(raw) < 3 or not raw[:3].isascii() or not raw[:3].isdigit():
            raise ReplyError(f"line {number} does not start with a three-digit code: {raw!r}")
        code = int(raw[:3])
        _check_code(code)
        if parsed and code != parsed[0].code:
            raise ReplyError(
                f"line {number} has code {code}, the reply began with {parsed[0].code}"
            )
        marker = raw[3:4]
        if marker not in ("", " ", "-"):
            raise ReplyError(f"line {number}: code must be followed by a space or '-': {raw!r}")
        last = marker != "-"
        if last and number != len(raw_lines):
            raise ReplyError(f"line {number} ends the reply but more lines follow")
        if not last and number == len(raw_lines):
            raise ReplyError(f"line {number} says more lines follow ('-') but the reply ends")
        rest = raw[4:]
        status: EnhancedStatus | None = None
        split = EnhancedStatus.match_prefix(rest)
        if split is not None:
            status, rest = split
        parsed.append(ReplyLine(code, last, status, rest))
    return parsed
