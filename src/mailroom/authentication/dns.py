"""How the checks ask DNS: one async function, ``(name, rdtype) -> Lookup``, and a log of what
each check asked and was told (for the session transcript and the ``Authentication-Results``
comments).

The checks never talk to a name server themselves: the server hands them
:meth:`mailroom.resolver.Resolver.lookup` (dnspython, asynchronous, cached by TTL), and the
tests hand them the same resolver pointed at a Knot DNS of their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mailroom.resolver import Lookup

__all__ = ["DNSLog", "Lookup", "LookupFunc"]

LookupFunc = Callable[[str, str], Awaitable[Lookup]]


@dataclass
class DNSLog:
    """A lookup function that remembers its questions and answers, in order."""

    lookup: LookupFunc
    answers: list[Lookup] = field(default_factory=list)

    async def __call__(self, name: str, rdtype: str) -> Lookup:
        answer = await self.lookup(name, rdtype)
        self.answers.append(answer)
        return answer

    def lines(self) -> list[str]:
        return [str(answer) for answer in self.answers]
