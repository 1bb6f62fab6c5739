"""What reply codes say about the reason: the reason an enhanced code names (RFC 3463 and the
IANA registry, read as Sisimai reads them, whose reason names these are), and the few basic
codes (RFC 5321) that name one by themselves.

An enhanced code names a reason by its subject and detail (X.1.1: the mailbox does not exist;
X.2.2: the mailbox is full; X.3.4: too big for the system). Some names are certain and some
are only a first guess that the words may correct: a code that says "the address is bad"
(X.1.1) is sent for filters and disabled accounts too, "security" (X.7.1) for almost any
refusal. :data:`RECONSIDERED` lists the reasons that are only a first guess.

Tables for :mod:`mailroom.codes.reason_order`. Pure: data and small functions.
"""

from __future__ import annotations

from mailroom.codes.enhanced import EnhancedStatus

__all__ = ["GENERIC_STATUS", "RECONSIDERED", "basic_reason", "registry_reason", "status_reason"]

# The reason each (subject, detail) names, whichever the class; _BY_CLASS below overrides a
# few for one class. Where Sisimai's reading departs from the registry's text, a comment says.
_NAMED = {
    (1, 0): "userunknown",  # other address status: said of the recipient
    (1, 1): "userunknown",  # bad destination mailbox address
    (1, 2): "hostunknown",  # bad destination system address
    (1, 3): "userunknown",  # bad destination mailbox address syntax
    (1, 4): "filtered",  # destination mailbox address ambiguous
    (1, 6): "hasmoved",  # destination mailbox has moved, no forwarding address
    (1, 7): "rejected",  # bad sender's mailbox address syntax
    (1, 8): "rejected",  # bad sender's system address
    (1, 9): "systemerror",  # message relayed to non-compliant mailer
    (1, 10): "notaccept",  # recipient address has null MX
    (2, 0): "filtered",  # other mailbox status: Sisimai reads a refusing mailbox as a filter
    (2, 1): "filtered",  # mailbox disabled, not accepting messages (5.2.1; 4.2.1 below)
    (2, 2): "mailboxfull",
    (2, 3): "exceedlimit",  # message length exceeds administrative limit
    (2, 4): "filtered",  # mailing list expansion problem
    (3, 0): "systemerror",
    (3, 1): "systemfull",  # mail system full
    (3, 2): "notaccept",  # system not accepting network messages
    (3, 3): "systemerror",  # system not capable of selected features
    (3, 4): "mesgtoobig",  # message too big for system
    (3, 5): "systemerror",  # system incorrectly configured
    (4, 0): "networkerror",
    (4, 1): "expired",  # no answer from host: Sisimai reads it as the time running out
    (4, 2): "networkerror",  # bad connection
    (4, 3): "systemerror",  # directory server failure
    (4, 4): "hostunknown",  # unable to route (5.4.4; 4.4.4 below)
    (4, 5): "systemfull",  # mail system congestion
    (4, 6): "networkerror",  # routing loop detected
    (4, 7): "expired",  # delivery time expired
    (4, 8): "networkerror",  # retry on IPv4
    (5, 2): "syntaxerror",  # syntax error
    (5, 3): "toomanyconn",  # too many recipients (5.5.3; 4.5.3 below)
    (5, 4): "systemerror",  # invalid command arguments
    (5, 5): "systemerror",  # wrong protocol version
    (5, 6): "syntaxerror",  # authentication exchange line too long
    (7, 13): "suspend",  # user account disabled
    (7, 16): "mesgtoobig",  # message too big for the specified priority
    (7, 17): "hasmoved",  # mailbox owner has changed
    (7, 18): "hasmoved",  # domain owner has changed
    (7, 20): "authfailure",  # no passing DKIM signature
    (7, 21): "authfailure",
    (7, 22): "authfailure",
    (7, 23): "authfailure",  # SPF validation failed
    (7, 24): "authfailure",  # SPF validation error
    (7, 25): "requireptr",  # reverse DNS validation failed
    (7, 26): "authfailure",  # multiple authentication checks failed
    # Sender address has null MX (RFC 7505 §4.2): the sender's domain takes no mail, so the
    # sender is refused. (Sisimai names the code after the null MX, notaccept; the registry's
    # words are about the sender, and so is this reading.)
    (7, 27): "rejected",
    (7, 28): "spamdetected",  # mail flood of similar abusive messages
    (7, 29): "authfailure",  # ARC validation failure
}
# Where the temporary class names another reason than the permanent one.
_BY_CLASS = {
    (4, 2, 1): "suspend",  # mailbox temporarily disabled
    (4, 4, 4): "networkerror",  # unable to route, for now
    (4, 5, 3): "systemerror",
    (4, 7, 1): "blocked",  # a temporary refusal: greylisting, throttling, a block
    (4, 7, 2): "blocked",
}
# A temporary code names a reason only where its meaning holds for now; a temporary "bad
# mailbox" (4.1.1) may be a directory that did not answer. These are the ones that do (the
# ones Sisimai names).
_TEMPORARY_NAMED = frozenset(
    {(1, 6), (1, 7), (1, 8), (1, 9), (2, 1), (2, 2), (2, 3), (2, 4), (3, 1), (3, 2), (3, 3)}
    | {(3, 5), (4, 1), (4, 2), (4, 3), (4, 4), (4, 5), (4, 6), (4, 7), (4, 8), (5, 3), (5, 5)}
    | {(6, 0), (6, 2), (6, 5), (7, 1), (7, 2), (7, 5), (7, 6), (7, 7), (7, 12), (7, 15)}
    | {(7, 16), (7, 24), (7, 25), (7, 26)}
)
# Permanent codes that name no reason: routing and network details that say only "it failed
# on the way" (X.4.1, X.4.2, X.4.5 … X.4.8 permanently), an unspecified protocol status
# (X.5.0, X.5.1) and a password transition (X.7.12).
_PERMANENT_UNNAMED = frozenset({(4, 1), (4, 2), (4, 5), (4, 6), (4, 7), (4, 8), (5, 0), (5, 1)})
_PERMANENT_UNNAMED |= {(7, 12)}
# Reasons an enhanced code names only as a first guess: the words may say better (Sisimai
# reconsiders these, with the families of its second pass, before it keeps them).
RECONSIDERED = frozenset(
    {
        "userunknown",
        "hostunknown",
        "systemerror",
        "securityerror",
        "expired",
        "suspend",
        "networkerror",
        "onhold",
    }
)
# Codes that say only "something about the address / the system / security": the wording,
# even weak wording, says more.
GENERIC_STATUS = frozenset({(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (7, 0), (7, 1)})


# The highest detail the registry defines per subject (IANA, "SMTP Enhanced Status Codes"),
# with X.4.8 ("retry on IPv4"), which Sisimai knows.
_REGISTERED_DETAILS = {1: 10, 2: 4, 3: 6, 4: 8, 5: 6, 6: 10, 7: 30}


def _as_registered(status: EnhancedStatus) -> tuple[int, int]:
    """(subject, detail), a detail the registry does not define read as the subject's general
    X.S.0: "clients should ... report the general error described in the subject sub-code
    when the specific detail is unrecognized" (RFC 3463 §2). Exchange's 5.1.351 is an
    addressing status; Microsoft's X.7.5xx, which it documents, are read before this (by
    mailroom.codes.provider_replies)."""
    subject, detail = status.subject, status.detail
    if detail > _REGISTERED_DETAILS.get(subject, 0):
        return subject, 0
    return subject, detail


def status_reason(status: EnhancedStatus) -> str | None:
    """The reason ``status`` names, or None when it names none (X.0.0, X.5.0, Sisimai's own
    X.0.9yz codes)."""
    subject, detail = _as_registered(status)
    if status.status_class == 2:
        return "delivered"
    if subject == 0:
        return None
    if status.status_class == 4 and (subject, detail) not in _TEMPORARY_NAMED:
        return None
    if status.status_class == 5 and (subject, detail) in _PERMANENT_UNNAMED:
        return None
    by_class = _BY_CLASS.get((status.status_class, subject, detail))
    if by_class is not None:
        return by_class
    if subject == 6 and detail <= 9 and detail != 4:
        return "contenterror"  # media: conversion, MIME, non-ASCII addresses
    if subject == 7 and detail <= 30:
        return _NAMED.get((7, detail), "securityerror")  # the rest of X.7: security
    return _NAMED.get((subject, detail))


def registry_reason(status: EnhancedStatus) -> str | None:
    """The registry's reading of ``status`` whatever its class, for a code that
    :func:`status_reason` leaves unnamed (4.3.0: a mail system error, for now)."""
    subject, detail = _as_registered(status)
    if status.status_class == 2 or subject == 0:
        return status_reason(status)
    if subject == 6 and detail <= 9:
        return "contenterror"
    if subject == 7 and detail <= 30:
        return _NAMED.get((7, detail), "securityerror")
    return _NAMED.get((subject, detail))


def basic_reason(code: int) -> str | None:
    """The reason a basic code names by itself: 525 (RFC 5321: the account is disabled), 551
    (user not local: it moved; servers send 551 for other refusals too, so this is read
    last), and the syntax replies 501-507 and 401-407 (Sisimai's reading of them)."""
    if code == 525:
        return "suspend"
    if code == 551:
        return "hasmoved"
    if 500 < code < 508 or 400 < code < 408:
        return "syntaxerror"
    return None
