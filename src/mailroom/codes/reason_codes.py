"""What reply codes say about the reason: the enhanced code (RFC 3463 and the IANA registry,
plus Microsoft's documented X.7.5xx family) by subject and detail, and the basic code
(RFC 5321) read together with the command it answered.

Tables for :mod:`mailroom.codes.classify`. Pure: data and two small functions.
"""

from __future__ import annotations

from mailroom.codes.enhanced import EnhancedStatus

__all__ = ["GENERIC_STATUS", "basic_reason", "status_reason"]

# By (subject, detail), whatever the class, unless status_reason() says otherwise.
_STATUS_REASONS = {
    (1, 1): "userunknown",  # bad destination mailbox address
    (1, 2): "hostunknown",  # bad destination system address
    (1, 3): "userunknown",  # bad destination mailbox address syntax
    (1, 4): "filtered",  # destination mailbox address ambiguous
    (1, 5): "delivered",
    (1, 6): "hasmoved",  # destination mailbox has moved, no forwarding address
    (1, 7): "rejected",  # bad sender's mailbox address syntax
    (1, 8): "rejected",  # bad sender's system address
    (1, 9): "systemerror",  # message relayed to non-compliant mailer
    (1, 10): "notaccept",  # recipient address has null MX
    (2, 0): "filtered",
    (2, 1): "filtered",  # mailbox disabled, not accepting messages
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
    (4, 1): "networkerror",  # no answer from host
    (4, 2): "networkerror",  # bad connection
    (4, 3): "systemerror",  # directory server failure
    (4, 4): "hostunknown",  # unable to route
    (4, 5): "systemfull",  # mail system congestion
    (4, 6): "networkerror",  # routing loop detected
    (4, 7): "expired",  # delivery time expired
    (4, 8): "networkerror",
    (5, 1): "syntaxerror",
    (5, 2): "syntaxerror",
    (5, 3): "toomanyconn",  # too many recipients
    (5, 5): "systemerror",
    (5, 6): "syntaxerror",
    (7, 0): "securityerror",
    (7, 1): "securityerror",
    (7, 2): "securityerror",
    (7, 3): "securityerror",
    (7, 4): "securityerror",
    (7, 5): "securityerror",
    (7, 6): "securityerror",
    (7, 7): "securityerror",
    (7, 8): "securityerror",
    (7, 9): "securityerror",
    (7, 10): "failedstarttls",
    (7, 11): "securityerror",
    (7, 12): "securityerror",
    (7, 13): "securityerror",
    (7, 14): "securityerror",
    (7, 15): "policyviolation",
    (7, 16): "mesgtoobig",
    (7, 17): "hasmoved",
    (7, 18): "hasmoved",
    (7, 19): "policyviolation",
    (7, 20): "authfailure",
    (7, 21): "authfailure",
    (7, 22): "authfailure",
    (7, 23): "authfailure",
    (7, 24): "authfailure",
    (7, 25): "requireptr",
    (7, 26): "authfailure",
    (7, 27): "rejected",  # sender address has null MX
    (7, 28): "blocked",
    (7, 29): "authfailure",
    (7, 30): "failedstarttls",
}
# Codes that say only "something about the address / the system / security": the wording,
# even weak wording, says more.
GENERIC_STATUS = frozenset({(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (7, 0), (7, 1)})
# Microsoft Exchange Online's own X.7.5xx codes ("NDRs in Exchange Online", learn.microsoft.com),
# by detail.
_MICROSOFT_DETAILS = {
    501: "blocked",  # spam abatement: banned sender
    502: "blocked",
    503: "blocked",
    504: "userunknown",  # recipient address rejected: access denied
    505: "userunknown",
    506: "blocked",  # bad HELO
    507: "blocked",  # rejected by recipient
    508: "blocked",
    509: "authfailure",  # DMARC
    510: "blocked",  # no email over IPv6
    511: "blocked",  # banned sender
    512: "authfailure",
    513: "blocked",  # customer block list
    515: "authfailure",
    520: "blocked",
}


def status_reason(status: EnhancedStatus, code: int | None, command: str | None) -> str | None:
    """The reason an enhanced code names, read with the basic code and the command."""
    subject, detail = status.subject, status.detail
    if subject == 7 and detail in _MICROSOFT_DETAILS:
        return _MICROSOFT_DETAILS[detail]
    if subject == 7 and 606 <= detail <= 649:
        return "blocked"  # banned sending IP
    if subject == 7 and 650 <= detail <= 699:
        return "badreputation"
    if subject == 7 and 700 <= detail <= 799:
        return "securityerror"  # tenant or sender account blocked from sending
    if subject == 7 and 850 <= detail <= 899:
        return "blocked"
    if subject == 4 and 300 <= detail <= 316:
        return "expired"  # Exchange Online: message expired
    if status.status_class == 2:
        return "delivered"
    if (subject, detail) == (1, 0):
        return "rejected" if command == "MAIL" else "userunknown"
    if (subject, detail) == (1, 3) and command == "MAIL":
        return "rejected"
    if (subject, detail) in ((0, 0), (7, 0), (7, 1)) and command in ("CONNECT", "HELO"):
        return "blocked"  # refused before any mail was offered: the client itself
    if (subject, detail) == (5, 4):
        # Invalid command arguments: a syntax error in a command; elsewhere the system's.
        return "syntaxerror" if code is not None and 500 <= code <= 504 else "systemerror"
    if status.status_class == 4 and (subject, detail) == (4, 4):
        return "networkerror"
    if status.status_class == 4 and (subject, detail) in ((7, 0), (7, 1), (7, 2)):
        return "blocked"  # a temporary policy refusal: greylisting, throttling, a block
    reason = _STATUS_REASONS.get((subject, detail))
    if reason is None and subject == 6:
        reason = "contenterror"
    return reason


def basic_reason(code: int, command: str | None) -> str | None:
    """The reason a basic code says with the command it answered (RFC 5321 §4.2, §4.3.2)."""
    if code < 300:
        return "delivered"
    if command in ("CONNECT", "HELO") and code in (421, 554, 550):
        return "blocked"  # refused before any mail was offered: the client itself
    if code in (500, 501, 502, 503, 504, 555):
        return "syntaxerror"
    if code in (521, 556):
        return "notaccept"
    if code == 551:
        return "hasmoved"
    if code == 552:
        return "toomanyconn" if command == "RCPT" else "mailboxfull"
    if code == 452:
        return "systemfull"
    if code in (421, 451, 455):
        return "systemerror"  # (421 before any mail was offered is "blocked", above)
    if code in (530, 534, 535, 538):
        return "securityerror"
    if code in (523, 524):
        return "failedstarttls"
    if code in (550, 553):
        if command == "RCPT":
            return "userunknown"
        if command == "MAIL":
            return "rejected"
        if command == "DATA":
            return "filtered"
    return None
