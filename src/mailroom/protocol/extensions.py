"""The service extensions a server offers in its EHLO reply (RFC 5321 §4.1.1.1), as the client
side reads them.

Each line after the first is ``keyword [params]``; keywords are case-insensitive. Only what the
client acts on gets a property; everything else is kept in :attr:`Extensions.keywords`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailroom.codes import Reply
from mailroom.protocol.syntax import ascii_digits

__all__ = ["Extensions"]

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


@dataclass(frozen=True, slots=True)
class Extensions:
    """What an EHLO reply offered. ``Extensions()`` is a HELO session: nothing at all."""

    keywords: tuple[tuple[str, str], ...] = ()  # (KEYWORD upper-cased, its parameters)
    _map: dict[str, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        mapping: dict[str, str] = {}
        for keyword, params in self.keywords:
            # AUTH may be given twice ("AUTH PLAIN", "AUTH=PLAIN" for old Outlook): join them.
            if keyword in mapping and params:
                mapping[keyword] = f"{mapping[keyword]} {params}".strip()
            else:
                mapping.setdefault(keyword, params)
        object.__setattr__(self, "_map", mapping)

    @classmethod
    def parse(cls, reply: Reply) -> Extensions:
        """Read the keyword lines of a 250 EHLO reply; lines that are not keywords are skipped
        (some servers add free text), never an error."""
        found: list[tuple[str, str]] = []
        for line in reply.lines[1:]:
            words = line.strip()
            if not words:
                continue
            # "AUTH=PLAIN LOGIN" is a pre-standard spelling of "AUTH PLAIN LOGIN".
            head, _, params = words.replace("=", " ", 1).partition(" ")
            if not _KEYWORD.fullmatch(head):
                continue
            found.append((head.upper(), " ".join(params.split())))
        return cls(tuple(found))

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self._map

    def params(self, keyword: str) -> str | None:
        """The parameters of ``keyword`` ("" when it has none), or None when not offered."""
        return self._map.get(keyword.upper())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._map)

    @property
    def size(self) -> int | None:
        """RFC 1870: the largest message the server takes in octets; 0 when SIZE is offered
        without a number (no fixed limit), None when SIZE is not offered."""
        value = self._map.get("SIZE")
        if value is None:
            return None
        first = value.split()[0] if value.split() else ""
        return int(first) if ascii_digits(first) else 0

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self._map

    @property
    def starttls(self) -> bool:
        return "STARTTLS" in self._map

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        value = self._map.get("AUTH")
        if value is None:
            return ()
        seen: dict[str, None] = {}
        for name in value.upper().split():
            seen.setdefault(name, None)
        return tuple(seen)

    @property
    def eightbitmime(self) -> bool:
        return "8BITMIME" in self._map

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self._map

    @property
    def chunking(self) -> bool:
        return "CHUNKING" in self._map

    @property
    def binarymime(self) -> bool:
        return "BINARYMIME" in self._map

    @property
    def dsn(self) -> bool:
        return "DSN" in self._map

    @property
    def requiretls(self) -> bool:
        """RFC 8689: the server keeps a message's REQUIRETLS promise on its onward relay."""
        return "REQUIRETLS" in self._map

    @property
    def enhancedstatuscodes(self) -> bool:
        return "ENHANCEDSTATUSCODES" in self._map

    @property
    def mt_priority(self) -> str | None:
        """RFC 6710: the server's priority policy name ("" when it names none), or None when
        MT-PRIORITY is not offered."""
        return self._map.get("MT-PRIORITY")

    @property
    def rrvs(self) -> bool:
        return "RRVS" in self._map  # RFC 7293

    @property
    def burl(self) -> tuple[str, ...] | None:
        """RFC 4468: the URL schemes BURL takes (("imap",) for IMAP URLAUTH), or None when BURL
        is not offered."""
        value = self._map.get("BURL")
        return None if value is None else tuple(value.lower().split())
