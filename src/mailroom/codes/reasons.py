"""The reasons a delivery fails, named as Sisimai names them, with what each means.

One list shared by the classifier (:mod:`mailroom.codes.classify`), the bounce reader
(:mod:`mailroom.bounces`) and mailroom's own delivery reports. Sisimai (BSD-2-Clause) is the
de facto vocabulary of bounce processing; using its names lets a user compare our verdicts
with the tools they already have.

Pure: data only.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["HARD", "NAMES_THE_CAUSE", "REASONS", "Action", "Basis", "is_hard"]

Action = Literal["delivered", "retry", "bounce"]

# The kind of evidence a reason was decided on, from the strongest to nothing at all:
# - "words": the reply's, the reporting MTA's or a provider's words, or a provider's own code
#   or label ("mailbox full", Yahoo's [TSS04], Google's 5.7.26);
# - "enhanced code": an enhanced code that names this reason itself (X.2.2: mailboxfull, 4.4.2
#   bad connection: networkerror);
# - "code reading": an enhanced code read only by its subject (X.6 media, X.7 security, X.5
#   protocol) or by the registry's loose text (4.3.0), or a 2.x.x code's class;
# - "reply code": the basic code, alone or with the command it answered (550 to RCPT);
# - "command": only where the refusal came (at the greeting: the client itself);
# - "hint": words too loose to decide on their own ("quota", "timed out");
# - "nothing": no words, no code.
Basis = Literal[
    "words", "enhanced code", "code reading", "reply code", "command", "hint", "nothing"
]
# The kinds that name what went wrong, rather than guess it from where or how it was said.
NAMES_THE_CAUSE: frozenset[Basis] = frozenset({"words", "enhanced code"})

# Sisimai's reason names (v5), with what each means; the order is the documentation order.
REASONS = {
    "authfailure": "rejected for failing SPF, DKIM or DMARC",
    "badreputation": "rejected for the sending IP address's or domain's reputation",
    "blocked": "rejected for the client's IP address or host name (block lists, bans)",
    "contenterror": "rejected for the format of the message (headers, MIME, encoding)",
    "delivered": "delivered",
    "exceedlimit": "larger than the recipient's per-mailbox message size limit",
    "expired": "delivery time expired (the destination could not be reached in time)",
    "failedstarttls": "TLS was required and could not be negotiated",
    "feedback": "a complaint (RFC 5965 feedback report) about a message, not a bounce",
    "filtered": "refused by the recipient's filter or preferences",
    "hasmoved": "the mailbox has moved and mail is not forwarded",
    "hostunknown": "the recipient's domain does not exist",
    "mailboxfull": "the recipient's mailbox is full",
    "mailererror": "a local delivery program failed",
    "mesgtoobig": "larger than the destination system takes",
    "networkerror": "DNS or network failure",
    "norelaying": "relaying denied",
    "notaccept": "the destination accepts no mail (null MX, not accepting messages)",
    "notcompliantrfc": "the message does not comply with the RFCs",
    "onhold": "the reply says too little to tell",
    "policyviolation": "refused by a policy of the destination",
    "rejected": "the sender (envelope from) was refused",
    "requireptr": "the client has no valid reverse DNS (PTR) record",
    "securityerror": "authentication or another security requirement failed",
    "spamdetected": "refused as spam",
    "speeding": "too much mail too fast: a rate limit",
    "suppressed": "on a suppression list",
    "suspend": "the recipient's account is disabled or suspended",
    "syntaxerror": "a command was out of sequence or malformed",
    "systemerror": "an error on the destination system",
    "systemfull": "the destination system is out of storage",
    "toomanyconn": "too many connections or recipients at once",
    "undefined": "nothing to go on",
    "userunknown": "the recipient's mailbox does not exist",
    "vacation": "an automatic out-of-office reply",
    "virusdetected": "refused for a virus or malware",
}

# A "hard" bounce says the address itself does not work: sending again, later or otherwise,
# cannot succeed, and a list should stop mailing it. The rest are "soft": the same address may
# take mail once the mailbox is emptied, the rate drops, the block is lifted or the host is up.
# The split is Sisimai's (userunknown, hostunknown, hasmoved, notaccept), so counts agree.
HARD = frozenset({"userunknown", "hostunknown", "hasmoved", "notaccept"})


def is_hard(reason: str, permanent: bool) -> bool:
    """Whether a failure for ``reason`` is a hard bounce. ``permanent``: a 5yz reply or a DSN
    with action ``failed``; a temporary failure is never hard. With no reason to go on
    (``onhold``, ``undefined``) nothing says the address is dead: soft (Sisimai 5 counts it
    so too)."""
    return permanent and reason in HARD
