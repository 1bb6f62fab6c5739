"""The standard library's HTML parser, stopped where markup it cannot close would take it time
growing with the square of the markup.

``html.parser.HTMLParser`` (as Python 3.11.7 ships it, which these machines run) looks for the
end of a construct (a start or end tag, a comment, a CDATA section, a processing instruction)
up to the end of the markup; where the markup never closes it, the parser hands on one
character as text and looks again from the next "<". A message's HTML is a stranger's, and
repeats of an unclosed construct cost: 8,000 of ``<a b=c `` took 24 s, of ``<a `` 10 s, of
``<!-- a> `` 1.4 s, with the interpreter lock held (the web's worker thread and the SMTP event
loop share it).

:class:`BoundedHTMLParser` counts the characters those failed looks cover and, once they
pass a budget in proportion to the markup (a well-formed page fails none, or one at its very
end), raises :class:`MarkupTooCostly`. It is a ``ValueError``: every caller already catches
that for markup the parser refuses, and keeps what was read or reads the text another way.
"""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["BoundedHTMLParser", "MarkupTooCostly"]

# Failed looks may cover this many times the markup (plus a floor for small pages) before
# the parser stops. A page that closes what it opens stays far under it.
_BUDGET_PER_CHARACTER = 4
_BUDGET_FLOOR = 100_000


class MarkupTooCostly(ValueError):
    """The markup leaves so many constructs unclosed that reading it would take too long."""


class BoundedHTMLParser(HTMLParser):
    """``HTMLParser`` with a bound on the work spent looking for ends that are not there."""

    _looked = 0
    _budget = _BUDGET_FLOOR

    def feed(self, data: str) -> None:
        self._budget += _BUDGET_PER_CHARACTER * len(data)
        super().feed(data)

    def _failed_from(self, start: int, end: int) -> int:
        if end < 0:
            self._looked += len(self.rawdata) - start
            if self._looked > self._budget:
                raise MarkupTooCostly("markup leaves too many constructs unclosed")
        return end

    # Each of these returns -1 when what starts at ``i`` is not closed in the markup read.
    def parse_starttag(self, i: int) -> int:
        return self._failed_from(i, super().parse_starttag(i))

    def parse_endtag(self, i: int) -> int:
        return self._failed_from(i, super().parse_endtag(i))

    def parse_comment(self, i: int, report: bool = True) -> int:
        return self._failed_from(i, super().parse_comment(i, report))

    def parse_html_declaration(self, i: int) -> int:
        return self._failed_from(i, super().parse_html_declaration(i))

    def parse_pi(self, i: int) -> int:
        return self._failed_from(i, super().parse_pi(i))
