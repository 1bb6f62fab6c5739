"""A named reply of the catalogue: fixed code and enhanced status, a text that may take
parameters, and the facts ``docs/replies.md`` and ``mailroom explain`` print about it."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from mailroom.codes.enhanced import EnhancedStatus
from mailroom.codes.reply import Reply, ReplyError

__all__ = ["COMMAND_KEYS", "ReplyTemplate"]

# Short names for the rows of command-replies.csv, so catalogue entries read naturally.
COMMAND_KEYS = {
    "GREETING": "CONNECTION ESTABLISHMENT",
    "EHLO": "EHLO or HELO",
    "HELO": "EHLO or HELO",
    "MAIL": "MAIL",
    "RCPT": "RCPT",
    "DATA": "DATA",
    "END_OF_DATA": "DATA (after <CRLF>.<CRLF>)",
    "BDAT": "BDAT",
    "BURL": "BURL",
    "RSET": "RSET",
    "VRFY": "VRFY",
    "EXPN": "EXPN",
    "HELP": "HELP",
    "NOOP": "NOOP",
    "QUIT": "QUIT",
    "STARTTLS": "STARTTLS",
    "AUTH": "AUTH",
    "ANY": "*ANY*",
    "ANY_TLS_REQUIRED": "*ANY* except NOOP EHLO STARTTLS QUIT (TLS required by policy)",
    "ANY_AUTH_REQUIRED": (
        "*ANY* except AUTH EHLO HELO NOOP RSET QUIT (authentication required by policy)"
    ),
    "SIZE": "MAIL with SIZE= / RCPT (SIZE extension)",
    "ANY_NO_SERVICE": "*ANY* except QUIT (after a 554/521 greeting)",
    "OTHER": "OTHER",
}


@dataclass(frozen=True, slots=True)
class ReplyTemplate:
    """``MAILBOX_UNKNOWN(address="<bob@example.test>")`` gives the Reply to send.

    Extra positional arguments become further lines (EHLO keywords, HELP topics).
    """

    code: int
    status: EnhancedStatus | None
    text: str
    when: str  # the situation, in words, for docs/replies.md
    commands: tuple[str, ...]  # keys of COMMAND_KEYS this reply answers
    reference: str
    name: str = ""  # filled in by the catalogue from the variable name
    params: tuple[str, ...] = field(default=(), init=False)
    _fixed: Reply | None = field(default=None, init=False, repr=False, compare=False)
    _wire: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(
            name for _, name, _, _ in string.Formatter().parse(self.text) if name is not None
        )
        object.__setattr__(self, "params", names)
        for key in self.commands:
            if key not in COMMAND_KEYS:
                raise ReplyError(f"unknown command key {key!r} in catalogue entry")
        # Build once to refuse inconsistent entries at import time, and to cache fixed replies.
        sample = Reply(self.code, self.status, self.text if not names else "x")
        if not names:
            object.__setattr__(self, "_fixed", sample)
            object.__setattr__(self, "_wire", sample.format())

    def __call__(self, *more_lines: str, **params: object) -> Reply:
        if self._fixed is not None and not more_lines and not params:
            return self._fixed
        for name in self.params:
            if name not in params:
                missing = set(self.params) - params.keys()
                raise TypeError(f"{self.name or self.text!r} needs {', '.join(sorted(missing))}")
        first = self.text.format(**params) if self.params else self.text
        # Parameters come from clients (addresses, domains): never let them break the line.
        if "\r" in first or "\n" in first:
            first = first.replace("\r", " ").replace("\n", " ")
        return Reply(self.code, self.status, (first, *more_lines))

    @property
    def wire(self) -> bytes:
        """Cached wire bytes of a reply that takes no parameters (the hot path's fast case)."""
        if not self._wire:
            raise TypeError(f"{self.name} takes parameters; call it")
        return self._wire

    @property
    def label(self) -> str:
        return f"{self.code} {self.status}" if self.status else str(self.code)
