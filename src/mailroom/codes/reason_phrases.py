"""Phrase families: for each reason, the words mail servers use when they mean it.

A rule that lists one server's sentence learns that server; a family names what is being
talked about and what is said of it, in either order and in the languages that recur in
bounces (:mod:`mailroom.codes.phrase_words`). The families live by subject:

- :mod:`~mailroom.codes.phrases_recipient`: the recipient's mailbox (missing, filtered,
  suspended, moved, full, too small);
- :mod:`~mailroom.codes.phrases_sender`: the sender, the client and the message (refused
  senders, block lists, reverse DNS, reputation, relaying, authentication, spam, viruses,
  policy, format, rates);
- :mod:`~mailroom.codes.phrases_system`: the destination and the way there (unknown hosts,
  null MX, DNS and network failures, loops, expiry, system failures).

A family says only what the words mean; which family is asked first, and what else (the
enhanced code, the command) must hold for it to decide, is :mod:`mailroom.codes.reason_order`.
:data:`WEAK` holds hints that decide only when nothing else does.

Text is matched lower-cased with whitespace collapsed. Pure: data and regular expressions.
"""

from __future__ import annotations

import re

from mailroom.codes.phrases_recipient import RECIPIENT_FAMILIES
from mailroom.codes.phrases_sender import SENDER_FAMILIES
from mailroom.codes.phrases_system import SYSTEM_FAMILIES

__all__ = ["FAMILIES", "WEAK", "Family", "compile_families"]

Family = tuple[str, tuple[str, ...]]  # (reason, alternative regular expressions)

FAMILIES: dict[str, re.Pattern[str]] = {
    reason: re.compile("|".join(phrases))
    for table in (RECIPIENT_FAMILIES, SENDER_FAMILIES, SYSTEM_FAMILIES)
    for reason, phrases in table.items()
}

# Wording that is no better than a hint, in this order: used only when neither the codes nor
# the families above said anything (Sisimai would say onhold there; a sender is better served
# by the hint).
WEAK: tuple[Family, ...] = (
    (
        "expired",
        (
            r"time limit",
            r"timed? ?out",
            r"queue too long",
            r"(?:failed|unable|could not|couldn't) to connect",
            r"(?:could not|couldn't|can't|cannot) connect",
            r"connection refused",
            r"socket error",
            r"no answer from",
        ),
    ),
    ("spamdetected", (r"\bspam\b", r"\bjunk\b", r"unsolicited", r"bulk mail", r"phishing")),
    ("mailboxfull", (r"\bquota\b",)),
    (
        "syntaxerror",
        (
            r"syntax",
            r"improper sequence",
            r"bad sequence",
            r"out of sequence",
            r"unrecogni[sz]ed command",
            r"command (?:not )?(?:recogni[sz]ed|implemented)",
            r"(?:rcpt|mail|ehlo/helo|helo|ehlo) first",
            r"unknown command",
            r"need (?:rcpt|mail|helo|ehlo)",
            r"line too long",
        ),
    ),
    ("blocked", (r"\bblocked\b", r"access denied", r"\bbanned\b", r"service refused")),
    # Within a few lines' reach: ".*" went from each "sender" to the end of the text and back
    # (64 KB of "sender " took 10 s), where a hint is about one statement anyway.
    ("rejected", (r"\bsender\b.{0,300}\brejected\b",)),
    ("policyviolation", (r"\bpolic(?:y|ies)\b",)),
    (
        "systemerror",
        (
            r"temporar(?:y|ily) (?:failure|error|problem|unavailable)",
            r"service (?:is )?(?:temporarily |currently )?(?:unavailable|not available)",
        ),
    ),
)


def compile_families(families: tuple[Family, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each family's alternatives as one pattern, in the table's order."""
    return tuple((reason, re.compile("|".join(phrases))) for reason, phrases in families)
