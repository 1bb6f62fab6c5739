"""What a reply from another server means for the message: deliver, retry or bounce, and why.

:func:`classify` reads a reply (a :class:`~mailroom.codes.Reply`, or text from any server or
bounce message, with or without codes, possibly wrapped in another MTA's words such as
``host mx.example.net[192.0.2.1] said: … (in reply to RCPT TO command)``) and returns a
:class:`Classification`: the action and a reason named as Sisimai names them (``userunknown``,
``mailboxfull``, ``mesgtoobig``, ``blocked``, ``spamdetected``, ``policyviolation``, …).

How it decides, from the most to the least specific evidence:

1. The *inner* reply is found: the text from the remote server's own code onwards, without
   the words of the MTA that reported it ("said:", "The response from the remote server was:",
   "did not like our RCPT TO:"). The SMTP command it answered is read from the wrapper
   ("in reply to end of DATA command") or given by the caller.
2. Error labels that large providers put in their replies and document (Cox and Spectrum
   ``AUP#…``, GoDaddy ``IB…``, Orange and La Poste ``OFR…``/``LPN…``) name the reason exactly.
3. Decisive wording in the inner reply ("mailbox full", "user unknown", "DMARC", "blocked
   using Spamhaus", "reverse DNS", …): many servers send generic codes (5.7.1, 5.0.0, 550) and
   say the reason in words, and some send a specific code that their words correct.
4. The enhanced status code (RFC 3463, IANA registry, plus Microsoft's documented 5.7.5xx
   family) by subject and detail: 5.1.1 userunknown, 5.2.2 mailboxfull, 5.3.4 mesgtoobig, ….
5. The wrapper's own wording (Google's "has been delayed", "will be retried"), then weaker
   wording (a bare "spam", "syntax error", "rate limit").
6. The basic code with the command it answered (550 to RCPT: userunknown; to MAIL: rejected;
   551: hasmoved; 552: mailboxfull; 5xx at the greeting: blocked; …).
7. Otherwise ``onhold`` (a reply that says nothing usable), or ``undefined`` (no text at all).

The action comes from the class (2: delivered, 4: retry, 5: bounce); without any code, from
the wording ("delayed", "will be retried", "temporary" mean retry).

Pure: no I/O. Rules are about codes and phrasing, never about particular messages.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Literal

from mailroom.codes.enhanced import EnhancedStatus
from mailroom.codes.reply import Reply, ReplyError

__all__ = ["REASONS", "Action", "Classification", "classify"]

Action = Literal["delivered", "retry", "bounce"]

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


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one reply: ``action`` is what a sender does next, ``reason`` why."""

    action: Action
    reason: str
    code: int | None  # the basic code found, if any
    status: EnhancedStatus | None  # the enhanced code found, if any
    command: str | None  # the command the reply answered, when known: MAIL, RCPT, DATA, …
    evidence: str  # what decided, in words: "enhanced code 5.1.1", "wording 'mailbox full'"

    @property
    def description(self) -> str:
        return REASONS.get(self.reason, "")

    def __str__(self) -> str:
        return f"{self.action}: {self.reason} ({self.evidence})"


# -- finding the codes, the command and the inner reply -----------------------------------------

_NOT_BEFORE = r"(?<![\w.\-/@=&%+$])"
_PAIR = re.compile(
    _NOT_BEFORE + r"([245][0-5]\d)[ \-:]+(?:[#:]\s*)?([245])\.(\d{1,3})\.(\d{1,3})(?![\w.]?\d)"
)
_STATUS = re.compile(r"(?<![\w.\-/=])([245])\.(\d{1,3})\.(\d{1,3})(?![\w]|\.\d)")
_BASIC = re.compile(_NOT_BEFORE + r"([245][0-5]\d)(?![\d%]|\.\d|:\w)")
_MARKERS = re.compile(
    r"(?:said|the response from the remote server was|the error that the other server returned "
    r"was|remote server returned|the response was|remote host said|did not like our [a-z ]+?)"
    r"\s*:\s*",
)
_COMMANDS = (
    (
        re.compile(
            r"in reply to (?:the )?(?:rcpt to|rcpt)\b|\brcpt to:<|\[rcpt.to\]|did not like our rcpt"
        ),
        "RCPT",
    ),
    (
        re.compile(
            r"in reply to (?:the )?(?:mail from|mail)\b|\bafter mail from\b|did not like our mail"
        ),
        "MAIL",
    ),
    (
        re.compile(
            r"in reply to (?:the )?(?:end of data|data)\b|\bafter (?:end of )?data\b|did not "
            r"like our "
            r"(?:final )?data|after i sent the message|\[data\]"
        ),
        "DATA",
    ),
    (re.compile(r"in reply to (?:the )?(?:helo|ehlo)\b|\bafter (?:helo|ehlo)\b"), "HELO"),
    (re.compile(r"refused to talk to me|\bgreeting\b|not accepting connections"), "CONNECT"),
    (re.compile(r"\bafter rcpt to\b"), "RCPT"),
)


@dataclass(frozen=True, slots=True)
class _Facts:
    text: str  # lower-cased, whitespace collapsed
    inner: str  # the remote server's own reply, as far as it can be told apart
    code: int | None
    status: EnhancedStatus | None
    command: str | None


def _status_of(match: re.Match[str], first: int) -> EnhancedStatus | None:
    try:
        return EnhancedStatus(int(match[first]), int(match[first + 1]), int(match[first + 2]))
    except ValueError:
        return None


def _facts(
    reply: Reply | str | bytes,
    command: str | None,
    code_hint: int | None = None,
    status_hint: EnhancedStatus | str | None = None,
) -> _Facts:
    code: int | None = None
    status: EnhancedStatus | None = None
    if isinstance(reply, bytes | bytearray):
        reply = bytes(reply).decode("utf-8", "replace")
    if isinstance(reply, str):
        with contextlib.suppress(ReplyError):
            reply = Reply.parse(reply.strip())
    inner_start: int | None = None
    if isinstance(reply, Reply):
        code, status = reply.code, reply.status
        raw = " ".join(reply.lines)
        prefix = f"{code} {status} " if status else f"{code} "
        raw = prefix + raw
        inner_start = 0  # a reply as received: all of it is the server's own words
    else:
        raw = reply
    text = " ".join(raw.split()).lower()
    pair = _PAIR.search(text)
    if pair is not None and code is None:
        code = int(pair[1])
        status = _status_of(pair, 2)
        inner_start = pair.start()
    if code is None:
        # In free text a 2yz or 3yz number is more likely a port or a count than a reply.
        basics = [int(m[1]) for m in _BASIC.finditer(text) if m[1][0] in "45"]
        permanent = [c for c in basics if c >= 500]
        code = permanent[0] if permanent else (basics[0] if basics else None)
    if status is None:
        found = [s for m in _STATUS.finditer(text) if (s := _status_of(m, 1)) is not None]
        matching = [s for s in found if code is None or s.status_class == code // 100]
        status = matching[0] if matching else (found[0] if found and code is None else None)
    if code is None and code_hint is not None and 200 <= code_hint <= 599:
        code = code_hint
    if status is None and status_hint is not None:
        if isinstance(status_hint, str):
            with contextlib.suppress(ValueError):
                status = EnhancedStatus.parse(status_hint)
        else:
            status = status_hint
    if inner_start is None and code is not None:
        basic = re.search(_NOT_BEFORE + str(code) + r"(?![\d%]|\.\d)", text)
        inner_start = basic.start() if basic else None
    if inner_start is None:
        markers = list(_MARKERS.finditer(text))
        inner_start = markers[-1].end() if markers else 0
    inner = text[inner_start:]
    if command is None:
        command = next((name for pattern, name in _COMMANDS if pattern.search(text)), None)
    return _Facts(text, inner, code, status, command.upper() if command else None)


# -- provider error labels -----------------------------------------------------------------------

# Cox (cox.com postmaster error codes): "AUP#CXBL", "AUP#IPBL1010", "AUP#URLBL011", …
_COX = {
    "cxbl": "blocked",
    "cdrbl": "blocked",
    "cxdns": "requireptr",
    "cxsndr": "authfailure",
    "cxsmtp": "rejected",
    "cxcnct": "toomanyconn",
    "cxmxrt": "toomanyconn",
    "cxthrt": "securityerror",
    "cxmj": "securityerror",
}
# Spectrum/Charter ("understanding email error codes"): "AUP#In-1310", "AUP#O-1000"; ranges.
_SPECTRUM = (
    (1000, 1000, "blocked"),
    (1010, 1080, "rejected"),
    (1090, 1090, "systemerror"),
    (1100, 1150, "requireptr"),
    (1160, 1190, "policyviolation"),
    (1200, 1250, "blocked"),
    (1260, 1260, "networkerror"),
    (1300, 1340, "toomanyconn"),
    (1350, 1490, "speeding"),
    (1500, 1520, "rejected"),
    (1530, 1530, "mesgtoobig"),
    (1540, 1550, "speeding"),
    (1560, 1560, "policyviolation"),
    (1580, 1580, "speeding"),
)
# GoDaddy ("fix rejected email with a bounce error"): " IB103", " IB212", …
_GODADDY = {
    "ib007": "toomanyconn",
    "ib101": "speeding",
    "ib103": "badreputation",
    "ib104": "blocked",
    "ib105": "blocked",
    "ib106": "blocked",
    "ib108": "requireptr",
    "ib110": "blocked",
    "ib111": "blocked",
    "ib112": "blocked",
    "ib113": "blocked",
    "ib212": "spamdetected",
    "ib401": "securityerror",
    "ib501": "notcompliantrfc",
    "ib502": "notcompliantrfc",
    "ib504": "speeding",
    "ib506": "rejected",
    "ib508": "authfailure",
    "ib510": "speeding",
    "ib605": "toomanyconn",
    "ib607": "speeding",
    "ib705": "virusdetected",
}
# Orange and La Poste: "OFR006_102", "LPN007_426", "OFR_999", "LPNAAA_101"; the last three digits.
_ORANGE = {
    "101": "blocked",
    "102": "blocked",
    "103": "blocked",
    "104": "toomanyconn",
    "305": "securityerror",
    "401": "authfailure",
    "402": "securityerror",
    "403": "rejected",
    "405": "rejected",
    "415": "rejected",
    "416": "userunknown",
    "417": "mailboxfull",
    "420": "suspend",
    "421": "rejected",
    "426": "suspend",
    "505": "systemerror",
    "506": "spamdetected",
    "510": "blocked",
    "514": "mesgtoobig",
    "517": "authfailure",
    "630": "policyviolation",
    "999": "blocked",
}
_COX_LABEL = re.compile(r"aup#([a-z]+\d*)")
_SPECTRUM_LABEL = re.compile(r"aup#(?:in?|o(?:ut)?)?-?(\d{4})\b")
_GODADDY_LABEL = re.compile(r"(?<![\w])(ib\d{3})\b")
_ORANGE_LABEL = re.compile(r"\b(?:ofr|lpn|ouk)[a-z0-9]*_(\d{3})\b")


def _provider_label(text: str) -> tuple[str, str] | None:
    for match in _SPECTRUM_LABEL.finditer(text):
        number = int(match[1])
        for low, high, name in _SPECTRUM:
            if low <= number <= high:
                return name, f"Spectrum error AUP#{match[1]}"
    for match in _COX_LABEL.finditer(text):
        label = match[1]
        reason = _COX.get(label)
        if reason is None and label.startswith("ipbl"):
            reason = "blocked"
        if reason is None and label.startswith("urlbl"):
            reason = "spamdetected"
        if reason is not None:
            return reason, f"Cox error AUP#{label.upper()}"
    for match in _GODADDY_LABEL.finditer(text):
        if match[1] in _GODADDY:
            return _GODADDY[match[1]], f"GoDaddy error {match[1].upper()}"
    for match in _ORANGE_LABEL.finditer(text):
        if match[1] in _ORANGE:
            return _ORANGE[match[1]], f"Orange/La Poste error {match[0].upper()}"
    return None


# -- wording -------------------------------------------------------------------------------------

# Decisive wording, in order: the first reason whose phrases appear in the inner reply wins.
# More specific reasons come before the ones their words overlap with (reputation and DMARC
# before "blocked ... spam"; "mailbox full" before "quota"; delivery programs before "no such
# user"; sizes before "recipient address rejected").
_DECISIVE: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "vacation",
        (
            r"out of (?:the )?office",
            r"\bon vacation\b",
            r"auto(?:matic)?[- ]?reply",
        ),
    ),
    (
        "suppressed",
        (
            r"suppression list",
            r"\bsuppressed\b",
        ),
    ),
    (
        "mailererror",
        (
            r"\bpipe to \|",
            r"procmail",
            r"maildrop",
            r"\bmailer error\b",
            r"delivery program",
            r"command died",
            r"command failed:",
            r"\bx-unix\b",
            r"local delivery (?:program|agent) (?:failed|error)",
        ),
    ),
    (
        "virusdetected",
        (
            r"\bvirus",
            r"malware",
            r"\binfected\b",
            r"trojan",
            r"rejected due to security policies",
        ),
    ),
    (
        "badreputation",
        (
            r"reputation",
            r"user complaints",
            r"senderscore",
            r"sender score",
            r"\[tss?0[1-4]\]",
        ),
    ),
    (
        "spamdetected",
        (
            r"spamassassin",
            r"spam classification",
            r"(?:classified|rejected|refused|blocked|identified|marked|flagged|considered|"
            r"detected) as (?:spam|junk)",
            r"likely unsolicited",
            r"\bube\b",
            r"spam (?:message|content|score|detected|filter)",
            r"content (?:judged|considered) (?:to be )?spam",
            r"looks like spam",
            r"appears to be spam",
            r"message (?:is|was) spam",
            r"urlbl",
            r"\buri ?bl\b",
            r"surbl",
            r"spam or virus",
            r"- spam\b",
        ),
    ),
    (
        "authfailure",
        (
            r"\bdmarc\b",
            r"\bspf\b",
            r"\bdkim\b",
            r"sender policy framework",
            r"unauthenticated (?:email|mail|sender)",
            r"sender is unauthenticated",
            r"authentication results",
            r"authentication checks",
            r"required authentication level",
        ),
    ),
    (
        "requireptr",
        (
            r"reverse dns",
            r"\brdns\b",
            r"\bptr\b",
            r"reverse (?:lookup|hostname|mapping)",
            r"(?:does not|doesn't|not) match (?:the )?(?:client|connecting|sending|your) ip",
            r"mismatches client ip",
            r"cannot find your (?:reverse )?hostname",
            r"no (?:valid )?hostname",
            r"client host name (?:is )?unknown",
            r"unresolvable (?:ip|address)",
            r"fcrdns",
        ),
    ),
    (
        "blocked",
        (
            r"your access to this mail system",
            r"spamhaus",
            r"spamcop",
            r"sorbs",
            r"barracuda",
            r"cloudmark",
            r"\bdnsbl",
            r"\brbl\b",
            r"black ?list",
            r"block ?list",
            r"blocklisted",
            r"blacklisted",
            r"\blisted (?:on|in|at) ",
            r"client host (?:\[[^\]]*\] )?(?:rejected|blocked)",
            r"(?:ip|ip address|client|host|connection|network|sender ip|your ip)(?: \S+)? "
            r"(?:has been |is |was )?(?:temporarily |permanently )?(?:blocked|banned|"
            r"blacklisted|denied)",
            r"banned sending",
            r"banned sender",
            r"bloquee",
            r"refused to talk to me",
            r"not accepting connections",
            r"ip not in whitelist",
            r"no smtp service",
            r"unusual rate of (?:unsolicited )?mail",
            r"spamming",
            r"access denied, (?:bad helo|rejected by recipient|please try again later)",
            r"permanently deferred",
            r"mail from \S+ refused",
            r"poor sending history",
        ),
    ),
    (
        "norelaying",
        (
            r"authorized to relay",
            r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed)|prohibited|refused)",
            r"unable to relay",
            r"insecure mail relay",
            r"not permitted to relay",
            r"(?:we|i) do not relay",
            r"not allowed to relay",
            r"email address is not verified",
            r"relay not permitted",
        ),
    ),
    (
        "exceedlimit",
        (
            r"message too large for this recipient",
            r"recipsizelimit",
            r"exceeds? (?:the )?(?:per-)?(?:recipient|mailbox)'?s? (?:size )?limit",
        ),
    ),
    (
        "mailboxfull",
        (
            r"mailbox exceeds",
            r"exceeded storage allocation",
            r"mailbox (?:is )?full",
            r"mailbox (?:size )?(?:quota|limit) (?:exceeded|reached)",
            r"over ?quota",
            r"(?<!sending )quota (?:exceeded|full|reached)",
            r"exceeded (?:its|the|their|his|her) (?:storage|quota|disk)",
            r"out of storage",
            r"insufficient (?:disk )?(?:space|storage) (?:for|in) (?:user|the (?:user|"
            r"recipient)|mailbox)",
            r"account storage limit",
            r"mailbox has exceeded",
            r"inbox is full",
            r"boite du destinataire pleine",
            r"mail ?folder is full",
            r"disk quota",
            r"storage (?:quota|limit) (?:exceeded|reached)",
            r"mailbox size limit",
        ),
    ),
    (
        "mesgtoobig",
        (
            r"larger than (?:the )?(?:maximum|max|allowed|permitted)",
            r"(?:message|mail|email|file|attachment)s? (?:\S+ )?(?:is |was )?too (?:big|large)",
            r"(?:message|mail|email) size (?:limit )?exceed",
            r"size (?:limit )?exceeded",
            r"exceeds? (?:the |our |fixed )?(?:maximum|max|allowed)(?: message)? size",
            r"too big for system",
            r"message length exceeds",
            r"taille limite",
            r"message size limits?\b",
            r"size of (?:your|the) message",
        ),
    ),
    (
        "suspend",
        (
            r"(?:account|mailbox|user|recipient)(?: that you tried to reach)? (?:is |has been "
            r")?(?:currently )?(?:disabled|suspended|inactive|deactivated|frozen|locked|closed|"
            r"expired)",
            r"(?:recipient|user|destination)(?:'s)? account (?:is |has been )?(?:blocked|"
            r"unavailable|archived)",
            r"account (?:has been )?(?:disabled|suspended)",
            r"compte du destinataire",
            r"boite du destinataire archivee",
            r"no longer active",
            r"mailbox disabled",
        ),
    ),
    (
        "networkerror",
        (
            r"no route to host",
            r"network is unreachable",
            r"host is unreachable",
            r"unable to resolve route",
            r"forwarding loop",
            r"routing loop",
            r"dns records for the destination",
            r"dns error",
            r"routing loop",
            r"mail loop",
            r"too many hops",
            r"\d+ hops",
            r"loop detected",
            r"hop count",
        ),
    ),
    (
        "hasmoved",
        (
            r"has moved",
            r"no longer on (?:this )?server",
            r"moved permanently",
            r"address (?:has )?changed",
            r"user not local; please try",
            r"not our user",
        ),
    ),
    (
        "filtered",
        (
            r"recipient preferences",
            r"refused due to recipient",
            r"rejected by (?:the )?recipient'?s? (?:filter|rules)",
            r"\b550\s*:?\s*:\s*user unknown",
        ),
    ),
    (
        "rejected",
        (
            r"sender (?:address )?(?:rejected|denied|refused|blocked|not allowed|verify failed|"
            r"verification failed|unknown|invalid)",
            r"(?:bad|invalid|unknown) sender",
            r"sender domain",
            r"domain of sender address",
            r"envelope sender",
            r"mail from not owned",
            r"send mail as",
            r"different address or alias",
            r"emetteur invalide",
            r"not (?:allowed|permitted|authorized) to send (?:as|from|on behalf)",
            r"groups\.google\.com/support",
            r"google group",
            r"permission to post",
            r"from address (?:is )?(?:rejected|invalid|not allowed)",
            r"mail sending denied",
        ),
    ),
    (
        "userunknown",
        (
            r"user(?:name)? (?:is )?unknown",
            r"unknown (?:user|recipient|mailbox|address|local[- ]?part|alias|e-?mail address)",
            r"no such (?:user|mailbox|recipient|address|account|person)",
            r"(?:user|mailbox|recipient|address|account)\b[^.;:]{0,40}? (?:does not|doesn't|did "
            r"not) exist",
            r"(?:user|mailbox|recipient|address|account) (?:was )?not found",
            r"recipient (?:is )?(?:unknown|invalid|not valid)",
            r"invalid (?:recipient|mailbox|user)",
            r"not a valid (?:user|mailbox|recipient|address)",
            r"recipnotfound",
            r"recipientnotfound",
            r"recipient address rejected: (?:user unknown|unknown|access denied|invalid|"
            r"undeliverable)",
            r"(?:address|recipient|mailbox|user)\b[^.;:]{0,30}? (?:couldn't|could not|can't|"
            r"cannot) be found",
            r"(?:wasn't|was not) found at",
            r"no mailbox (?:here|by that name|found)",
            r"mailbox unavailable",
            r"bad destination mailbox",
            r"is not a known user",
            r"there is no one at this address",
            r"illegal alias",
            r"utilisateur inconnu",
            r"destinataire invalide",
            r"not our customer",
            r"(?:doesn't|does not) have an? \S+ account",
            r"address (?:is )?(?:unknown|invalid|not present)",
            r"unrouteable address",
        ),
    ),
    (
        "hostunknown",
        (
            r"name or service not known",
            r"host (?:or domain name )?not found",
            r"host unknown",
            r"unknown host",
            r"no such domain",
            r"domain (?:name )?not found",
            r"domain (?:does not|doesn't) exist",
            r"domain (?:is )?(?:not reachable|unreachable)",
            r"unrouteable mail domain",
            r"bad destination system",
            r"no mx (?:record|host)",
            r"recipient domain (?:does not exist|not found)",
            r"unknown domain",
            r"domain\b[^.;:]{0,30}? (?:couldn't|could not|can't|cannot) be found",
        ),
    ),
    (
        "notaccept",
        (
            r"(?:does not|doesn't|do not) accept (?:any )?(?:mail|email|messages)",
            r"not accepting (?:network )?(?:mail|messages|email)",
            r"null mx",
            r"nullmx",
            r"accepts no mail",
            r"malformed or unexpected name server reply",
        ),
    ),
    (
        "notcompliantrfc",
        (
            r"\brfc ?(?:5322|2822|822)\b(?!;)",
            r"multiple addresses in from",
            r"missing a valid (?:address|message-id)",
            r"duplicate headers?",
            r"encoded-word syntax",
            r"not rfc compliant",
            r"(?:non|not)[- ]compliant",
            r"mail message is malformed",
        ),
    ),
    (
        "policyviolation",
        (
            r"policy reasons",
            r"violat(?:es|ion of|ed) (?:our |the |local )?(?:\S+ )?polic",
            r"policy violation",
            r"prohibited (?:attachment|file|content)",
            r"illegal attachment",
            r"attachment (?:type |extension )?(?:is )?(?:not allowed|forbidden|blocked|prohibited)",
            r"content presents a potential",
            r"has a policy that prohibited",
            r"message not allowed",
            r"content (?:filter|policy|restrictions)",
            r"\bdlp\b",
        ),
    ),
    (
        "contenterror",
        (
            r"header error",
            r"illegal (?:character|header)",
            r"headers? (?:too (?:large|long|big)|line too long)",
            r"too many headers",
            r"message content rejected",
            r"invalid (?:header|mime|message|characters)",
            r"malformed (?:header|mime|message)",
            r"8-?bit data",
            r"media not supported",
            r"conversion (?:failed|required)",
        ),
    ),
    (
        "toomanyconn",
        (
            r"too many (?:\w+ ){0,2}(?:connections|sessions)",
            r"too many recipients",
            r"connection limit",
            r"maximum (?:number of )?connections",
            r"trop de connexions",
        ),
    ),
    (
        "speeding",
        (
            r"rate limit",
            r"rate-limit",
            r"ratelimit",
            r"receiving mail (?:too quickly|at a rate)",
            r"too (?:fast|quickly)",
            r"too many (?:messages|emails|mails)",
            r"sending (?:rate|quota|limit)",
            r"(?:daily|hourly) (?:sending |user sending |smtp relay )?(?:quota|limit)",
            r"throttl",
            r"slow down",
            r"message threshold",
        ),
    ),
    (
        "failedstarttls",
        (
            r"starttls (?:is )?required",
            r"must issue a starttls",
            r"tls (?:is )?required",
            r"requires? tls",
            r"mta-sts",
            r"tls handshake",
            r"tls not available",
            r"encryption (?:is )?required for this",
            r"use tls/ssl",
        ),
    ),
    (
        "securityerror",
        (
            r"authentication (?:is )?required",
            r"auth(?:entication)? required",
            r"must (?:authenticate|log ?in)",
            r"smtp auth",
            r"turn on smtp authentication",
            r"authentication (?:failed|failure|unsuccessful|credentials invalid)",
            r"failed authentications?",
            r"invalid credentials",
            r"username and password not accepted",
            r"application-specific password",
            r"not authenticated",
            r"authrequired",
            r"login (?:failed|incorrect)",
        ),
    ),
    (
        "systemfull",
        (
            r"insufficient system storage",
            r"(?:disk|system|spool|server) (?:is )?full",
            r"no space left",
            r"out of disk space",
        ),
    ),
    (
        "systemerror",
        (
            r"resources temporarily unavailable",
            r"system error",
            r"internal (?:server )?error",
            r"local error",
            r"local problem",
            r"temporary system problem",
            r"transaction failed",
            r"server (?:is )?busy",
            r"misconfigur",
            r"configuration error",
            r"message is looping",
        ),
    ),
)
# Wording that is no better than a hint: used only when codes said nothing more specific.
_WEAK: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "expired",
        (
            r"time limit",
            r"giving up on",
            r"delayed",
            r"will be retried",
            r"retry timeout",
            r"timed? ?out",
            r"queue too long",
            r"not delivered within",
            r"message expired",
            r"queue expired",
            r"delivery time expired",
            r"could not be delivered within",
            r"did not accept our requests to connect",
            r"failed to connect",
            r"connection refused",
            r"socket error",
        ),
    ),
    (
        "spamdetected",
        (
            r"\bspam\b",
            r"\bjunk\b",
            r"unsolicited",
        ),
    ),
    ("contenterror", (r"bare (?:lf|line ?feed|cr)",)),
    (
        "mailboxfull",
        (r"\bquota\b",),
    ),
    (
        "syntaxerror",
        (
            r"syntax error",
            r"improper sequence",
            r"bad sequence",
            r"out of sequence",
            r"unrecognized command",
            r"command (?:not )?(?:recognized|implemented)",
            r"(?:rcpt|mail|ehlo/helo|helo) first",
            r"unknown command",
            r"need (?:rcpt|mail|helo|ehlo)",
        ),
    ),
    (
        "blocked",
        (
            r"\bblocked\b",
            r"access denied",
        ),
    ),
    (
        "rejected",
        (r"\bsender\b.*\brejected\b",),
    ),
    (
        "policyviolation",
        (r"\bpolicy\b",),
    ),
)


def _compile(
    rules: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((reason, re.compile("|".join(phrases))) for reason, phrases in rules)


_DECISIVE_RE = _compile(_DECISIVE)
_WEAK_RE = _compile(_WEAK)


def _worded(text: str, rules: tuple[tuple[str, re.Pattern[str]], ...]) -> tuple[str, str] | None:
    """The first rule whose phrase is in ``text``: (reason, evidence)."""
    for reason, pattern in rules:
        match = pattern.search(text)
        if match is not None:
            return reason, f"wording '{match[0].strip()}'"
    return None


# -- codes ---------------------------------------------------------------------------------------

# By (subject, detail), class-independent unless noted in _status_reason.
_STATUS_REASONS = {
    (1, 1): "userunknown",
    (1, 2): "hostunknown",
    (1, 3): "userunknown",
    (1, 4): "filtered",
    (1, 5): "delivered",
    (1, 6): "hasmoved",
    (1, 7): "rejected",
    (1, 8): "rejected",
    (1, 9): "systemerror",
    (1, 10): "notaccept",
    (2, 0): "filtered",
    (2, 1): "filtered",
    (2, 2): "mailboxfull",
    (2, 3): "exceedlimit",
    (2, 4): "filtered",
    (3, 0): "systemerror",
    (3, 1): "systemfull",
    (3, 2): "notaccept",
    (3, 3): "systemerror",
    (3, 4): "mesgtoobig",
    (3, 5): "systemerror",
    (4, 0): "networkerror",
    (4, 1): "expired",
    (4, 2): "networkerror",
    (4, 3): "systemerror",
    (4, 4): "hostunknown",
    (4, 5): "systemfull",
    (4, 6): "networkerror",
    (4, 7): "expired",
    (4, 8): "networkerror",
    (5, 1): "syntaxerror",
    (5, 2): "syntaxerror",
    (5, 3): "toomanyconn",
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
    (7, 27): "rejected",
    (7, 28): "blocked",
    (7, 29): "authfailure",
    (7, 30): "failedstarttls",
}
# Codes that only say "something about the address / the system / security": the wording, even
# weak wording, says more.
_GENERIC = frozenset({(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (7, 0), (7, 1)})
# Microsoft Exchange Online's own X.7.5xx-X.7.7xx codes (learn.microsoft.com, "NDRs in
# Exchange Online"), by detail.
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


def _status_reason(status: EnhancedStatus, code: int | None, command: str | None) -> str | None:
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


def _by_status(
    status: EnhancedStatus, code: int | None, command: str | None
) -> tuple[str, str] | None:
    reason = _status_reason(status, code, command)
    return (reason, f"enhanced code {status}") if reason is not None else None


def _basic_reason(code: int, command: str | None) -> str | None:
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


# -- putting it together -------------------------------------------------------------------------

_RETRY_WORDS = re.compile(
    r"delayed|will be retried|try again later|temporar|try later|deferred|greylist"
)


def _refine(reason: str, facts: _Facts) -> str:
    """Corrections where one piece of evidence reads differently in the light of another."""
    status = facts.status
    if reason in ("mesgtoobig", "exceedlimit") and status is not None:
        # The enhanced code tells a per-mailbox limit (X.2.3) from a system limit (X.3.4).
        if (status.subject, status.detail) == (2, 3):
            return "exceedlimit"
        if (status.subject, status.detail) == (3, 4):
            return "mesgtoobig"
    if reason == "userunknown" and facts.command == "DATA":
        # Every recipient was accepted at RCPT; "unknown" after the message is a filter.
        return "filtered"
    if reason == "userunknown" and facts.command == "MAIL":
        return "rejected"
    return reason


def _action(reason: str, facts: _Facts) -> Action:
    if reason in ("delivered", "vacation"):
        return "delivered"
    klass = facts.code // 100 if facts.code is not None else None
    if klass is None and facts.status is not None:
        klass = facts.status.status_class
    if klass == 2:
        return "delivered"
    if klass == 4:
        return "retry"
    if klass == 5:
        return "bounce"
    if "permanent" in facts.text:
        return "bounce"
    if _RETRY_WORDS.search(facts.text):
        return "retry"
    return "bounce"


def classify(
    reply: Reply | str | bytes,
    *,
    command: str | None = None,
    code: int | None = None,
    status: EnhancedStatus | str | None = None,
) -> Classification:
    """Classify a reply: the action a sender takes and the reason, with the evidence.

    ``reply`` is a parsed :class:`Reply`, or the text of a reply or of a bounce's diagnostic
    (any MTA's wording, codes optional). ``command`` is the SMTP command the reply answered
    (``"RCPT"``, ``"MAIL"``, ``"DATA"``, ``"CONNECT"``, …) when the caller knows it; otherwise
    it is read from the text where the reporting MTA says it. ``code`` and ``status`` are
    hints for text that lacks them, such as a DSN's ``Status:`` field beside its
    ``Diagnostic-Code:`` (RFC 3464); codes in the text itself come first.
    """
    facts = _facts(reply, command, code, status)
    if not facts.text:
        return Classification("bounce", "undefined", None, None, facts.command, "no text")
    reason: str | None = None
    evidence = ""
    code, status = facts.code, facts.status  # as found (the hints fill gaps only)
    positive = (code is not None and code < 300) or (
        code is None and status is not None and status.status_class == 2
    )
    if positive:
        reason, evidence = "delivered", f"reply code {code or status}"
    else:
        generic = status is not None and (status.subject, status.detail) in _GENERIC
        found = _provider_label(facts.text)
        if found is None:
            found = _worded(facts.inner, _DECISIVE_RE)
        if found is None and status is not None and not generic:
            found = _by_status(status, code, facts.command)
        if found is None and facts.inner != facts.text:
            found = _worded(facts.text, _DECISIVE_RE)
        if found is None:
            found = _worded(facts.text, _WEAK_RE)
        if found is None and status is not None and generic:
            found = _by_status(status, code, facts.command)
        if found is None and code is not None:
            by_code = _basic_reason(code, facts.command)
            if by_code is not None:
                found = (
                    by_code,
                    f"reply code {code}" + (f" to {facts.command}" if facts.command else ""),
                )
        if found is None:
            found = ("onhold", "nothing specific in the reply")
        reason, evidence = found
        reason = _refine(reason, facts)
    return Classification(_action(reason, facts), reason, code, status, facts.command, evidence)
