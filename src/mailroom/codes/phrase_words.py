"""The words bounce phrases are built from: what a reply talks about, what it says of it, and
how two such words stand in one statement.

Servers say the same thing in many ways ("user unknown", "unknown user", "no such user", "the
email account that you tried to reach does not exist", "utilisateur inconnu"). A phrase family
(:mod:`mailroom.codes.reason_phrases`) names what is talked about (the recipient: user,
mailbox, address, account, …) and what is said of it (unknown, not found, does not exist, …),
in either order, with a few words or an address between; the pieces here are those names.

Text is matched lower-cased with whitespace collapsed. Pure: strings and three small helpers.
"""

from __future__ import annotations

__all__ = [
    "CLIENT",
    "DISABLED",
    "FULL",
    "MESSAGE",
    "MISSING",
    "NOT_THERE_BEFORE",
    "RECIPIENT",
    "SENDER",
    "TOO_BIG",
    "any_of",
    "near",
    "then",
    "then_in_clause",
]


def any_of(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


# A few words of one statement: an address in angle brackets or a bare one may stand between,
# but not the end of a sentence.
_GAP = r"(?:\s*<[^<>]{0,80}>\s*|\s[\w.+\-']+@[\w.\-]+\s|[^.;!?<>]){1,COUNT}?"
# The same within one clause: not across a colon either ("host x said: 550 … rejected"); a bare
# address may stand between ("user bob@example.org does not exist").
_CLAUSE_GAP = r"(?:\s*<[^<>]{0,80}>\s*|\s[\w.+\-']+@[\w.\-]+\s|[^.;:!?<>]){1,COUNT}?"


def then(first: str, second: str, gap: int = 48) -> str:
    """``first``, then ``second`` later in the same statement."""
    return first + r"\b" + _GAP.replace("COUNT", str(gap)) + r"\b" + second


def then_in_clause(first: str, second: str, gap: int = 32, avoid: str = "") -> str:
    """``first``, then ``second`` later in the same clause, with none of the words ``avoid``
    (another subject, "but") between them."""
    between = _CLAUSE_GAP.replace("COUNT", str(gap))
    if avoid:
        between = between.replace("[^.;:!?<>]", r"(?!\b(?:" + avoid + r")\b)[^.;:!?<>]")
    return first + r"\b" + between + r"\b" + second


def near(first: str, second: str, words: int = 2) -> str:
    """``first`` and ``second`` with at most ``words`` words between them."""
    return first + r"(?:\s+\S+){0," + str(words) + r"}\s+" + second


# -- what is talked about ------------------------------------------------------------------------

# The recipient's mailbox, by the names servers give it. "address" only when it is not the
# client's IP address or the sender's.
RECIPIENT = any_of(
    r"user(?:name)?",
    r"user name",
    r"recipient",
    r"addressee",
    r"mail ?box(?: name)?",
    r"(?<!ip )(?<!sender )(?<!from )(?<!return )(?<!system )(?:e-?mail )?address",
    r"(?:e-?mail )?account",
    r"local[- ]?part",
    r"alias",
    r"destination(?! system)(?: address| mailbox)?",
    r"person",
    r"rcpt",
)
# The envelope sender (RFC 5321 MAIL FROM), by its names.
SENDER = any_of(
    r"sender(?:'s)?(?: e-?mail)?(?: address| domain)?",
    r"envelope[- ](?:from|sender)",
    r"mail[- ]from(?: address| domain)?",
    r"from (?:address|domain)",
    r"return[- ]path",
    r"reverse[- ]path",
    r"originator",
    r"exp[eé]diteur",
    r"[eé]metteur",
    r"absender",
)
# The connecting client: its address, its name, its network.
CLIENT = any_of(
    r"(?:client|sending|sender|source|your|remote|connecting)?\s?ip(?: address)?",
    r"client(?: host)?",
    r"(?:client |sending |your |remote )?host(?: ?name)?",
    r"network",
    r"netblock",
    r"(?<![\w=/.])\[?\d{1,3}(?:\.\d{1,3}){3}\]?",  # an address, not one inside a URL
)

# -- what is said of it --------------------------------------------------------------------------

# A mailbox that is not there.
MISSING = any_of(
    r"unknown",
    r"(?<!may )not (?:known|found|exists?|valid|present|listed|recogni[sz]ed|registered|"
    r"local(?:ly)? (?:known|valid))",
    r"(?:does|do|did|dose)(?: not|n't) exists?",
    r"(?:could|can)(?:not|n't| not) be (?:found|located)",
    r"(?:is|was)(?: not|n't) (?:found|known|valid)",
    r"non-?existent",
    r"invalid",
    r"unrecogni[sz]ed",
    r"no longer (?:exists?|valid)",
    r"unavailable",
)
NOT_THERE_BEFORE = any_of(
    r"unknown",
    r"no such",
    r"invalid",
    r"non-?existent",
    r"unrecogni[sz]ed",
    r"illegal",
    r"bad",
    r"not an? (?:known|valid|local|existing)",
)
# A mailbox that is turned off.
DISABLED = any_of(
    r"disabled",
    r"suspended",
    r"inactive",
    r"deactivated",
    r"de-activated",
    r"inactivated",
    r"frozen",
    r"locked",
    r"closed",
    r"terminated",
    r"discontinued",
    r"archived",
    r"not active",
    r"no longer active",
)
# A mailbox or a store that has no room.
FULL = any_of(
    r"full",
    r"over ?(?:the |its |his |her |their |the allowed |disk )?quota",
    r"out of (?:storage|disk|space)",
    r"exceed(?:s|ed|ing)? (?:the |its |his |her |their |your )?(?:\w+ )?(?:storage|quota|disk|"
    r"space|allocation|capacity)",
    # (a sending quota is the sender's rate, not the mailbox's room)
    r"(?<!sending )(?<!daily )(?<!submission )(?<!relay )(?:storage|quota|space|capacity) "
    r"(?:exceeded|full|reached|used up)",
    r"has (?:no|insufficient) (?:more )?(?:space|storage|room)",
    r"(?:does not|doesn't) have enough (?:space|storage|room)",
    r"(?:is )?(?:over|at) (?:its )?capacity",
)
MESSAGE = any_of(
    r"message",
    r"mail",
    r"e-?mail",
    r"letter",
    r"file",
    r"attachments?",
    r"data",
)
TOO_BIG = any_of(
    r"too (?:big|large)",
    r"larger than",
    r"exceed(?:s|ed)?(?: the| our| fixed| its| your)?(?: \w+){0,2} (?:size|limit|maximum|max)",
    r"over (?:the |our )?(?:size )?limit",
    r"size (?:limit )?exceed(?:s|ed)",
)
