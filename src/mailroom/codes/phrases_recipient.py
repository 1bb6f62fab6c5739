"""Phrase families about the recipient's mailbox: missing, refusing by its own filter,
turned off, moved, full, or too small for the message.

Each family is the words a reply uses when it means that reason, built from what is talked
about and what is said of it (:mod:`mailroom.codes.phrase_words`), in the languages that recur
in bounces. Where a family takes in wording whose plain meaning would point elsewhere, because
Sisimai (whose reason names and labels these are) reads it so, a comment says so.

Data for :mod:`mailroom.codes.reason_phrases`. Pure: strings.
"""

from __future__ import annotations

from mailroom.codes.phrase_words import (
    DISABLED,
    FULL,
    MESSAGE,
    MISSING,
    NOT_THERE_BEFORE,
    RECIPIENT,
    TOO_BIG,
    any_of,
    near,
    then,
    then_in_clause,
)

__all__ = ["RECIPIENT_FAMILIES"]

USER_UNKNOWN = (
    then_in_clause(RECIPIENT, MISSING, 48),
    r"address rejected: " + MISSING,  # Postfix: "Recipient address rejected: unknown"
    near(NOT_THERE_BEFORE, RECIPIENT, 2),
    r"no (?:mail ?box|account|user|one|recipient|person)(?: \S+)? (?:here|by that name|with that "
    r"name|at this address|found|available|simil)",
    r"there is no (?:one|user|such)",
    r"nobody (?:here )?by that name",
    r"(?:doesn't|does not|don't) have an? (?:\S+ )?account",
    r"(?:wasn't|was not|couldn't be|could not be) found at",
    r"address couldn't be found",
    r"mail ?box (?:is )?(?:unavailable|not available|not present|inactive)",
    r"recip(?:ient)?notfound",
    r"exrecipnotfound",
    r"recipient address rejected: access denied",  # Microsoft's directory-based edge block
    r"recipient (?:is )?not (?:accepted|ok)\b",
    r"recipient (?:address )?verif(?:y|ication) failed",
    r"not (?:a local|a valid) (?:customer|address|user|recipient)",
    r"(?:not|no) (?:email|e-mail) addresses",
    r"not (?:listed |found )?in (?:the |our |public )?(?:\w+ ){0,3}(?:directory|address book)",
    r"no \S+ in name directory",
    r"ディレクトリ.{0,12}(?:見つかりません|ありません)",
    r"check (?:if|that|whether) (?:the )?(?:e-?mail )?address is (?:correct|valid|spelled)",
    r"check for typos",
    r"\bbad ?(?:rcpt ?to|recipient)",  # qmail's badrcptto list
    r"(?:not in my )?validrcptto",
    r"envelope recipient (?:has been denied|is in my)",
    r"final delivery userid",
    r"(?:\bno|invalid|unknown) (?:virtual )?user\b",
    r"address (?:is )?(?:wrong|no longer valid)",
    r"destination (?:addresses were unknown|server rejected recipients)",
    r"spectator does not exist",
    r"(?:utilisateur|destinataire|adresse) (?:\S+ )?inconnue?",
    r"destinataire invalide",
    r"(?:usuario|destinatario) (?:desconocido|inexistente|no existe)",
    r"no existe (?:dicha persona|ese usuario)",
    r"(?:benutzer|empf[aä]nger|user|adresse) (?:ist )?unbekannt",
    r"unbekannte[rs]? (?:benutzer|empf[aä]nger|adresse)",
    r"utente (?:sconosciuto|inesistente)",
    r"nessun utente",
    r"usu[aá]rio (?:desconhecido|inexistente)",
)

# The recipient's own filter or preferences refused it; also Sisimai's reading of a recipient
# that will take no mail now ("not currently being accepted", "is not accepting any mail").
FILTERED = (
    r"recipient'?s? preferences",
    r"refused due to recipient",
    r"(?:rejected|blocked|filtered|refused) by (?:the )?(?:recipient|user|mailbox owner)'?s? ?"
    r"(?:filter|rules|preferences|settings|request)?(?!\s?domain)",
    r"recipient (?:has )?(?:blocked|refused|rejected) (?:you|the sender|your|mail|messages|"
    r"e-?mail)",
    # ("rejected by the recipient domain" is the domain's server, not the recipient's wish)
    r"(?:blocked|rejected|refused) by the recipient(?!\s?domain)",
    r"(?:does not|doesn't) (?:wish|want) to receive",
    r"(?:user|recipient) refuses? to receive",
    r"refuse to receive mail",
    r"\buser reject",
    r"due to user rules",
    r"only accepting mail from specific",
    r"not (?:currently )?(?:being )?accepted for this mailbox",
    r"is not accepting any mail",
    r"not (?:accepting|receiving|accept) (?:mail|messages|e-?mail) from (?:you|this sender|your "
    r"address|the sender)",
    r"this account is protected by",
    r"restricted sms e-?mail",
    r"not found recipient account",
    r"previously bounced|bounced address",
    r"\bsieve\b",  # the recipient's own Sieve script refused it (RFC 5429)
    r"resolver\.rst\.notauthorized",  # Exchange: not authorised to send to this recipient
    r"cannot route mail to user",  # Lotus Domino's filtered recipient
    r"^[45]\d\d[ -](?:[45]\.\d+\.\d+ )?message filtered",  # the mailbox's own filter, said alone
)

# The recipient's account exists but is turned off.
SUSPEND = (
    then(
        any_of(r"account", r"mail ?box", r"user", r"recipient", r"(?:e-?mail )?address"),
        DISABLED,
        40,
    ),
    r"(?:account|mail ?box) (?:is |has been )?(?:temporarily |permanently )?(?:blocked|expired|"
    r"on hold)",
    r"(?<!delivery )temporar(?:il)?y (?:locked|disabled|suspended|inactive)",
    near(DISABLED, RECIPIENT, 1),
    r"(?:user|recipient) (?:is )?suspend",
    r"suspend the service",
    r"no longer accepts mail",
    # Sisimai reads a mailbox that exists but is closed to the sender this way (and Microsoft's
    # X.7.504/505 "banned recipient").
    r"mail ?box unavailable or access denied",
    r"banned recipient",
    r"compte (?:du destinataire )?(?:est )?(?:bloqu|d[eé]sactiv|suspendu|inactif)",
    r"bo[iî]te (?:du destinataire )?(?:est )?archiv",
    r"cuenta (?:est[aá] )?(?:desactivada|suspendida|bloqueada)",
    r"konto (?:ist )?(?:gesperrt|deaktiviert)",
)

# The mailbox moved and mail is not forwarded (RFC 5321 551).
HAS_MOVED = (
    r"has moved",
    r"moved (?:permanently|away)",
    r"has been replaced by",
    r"no longer on (?:this )?server",
    r"address (?:has )?changed",
    r"user not local; please try",
    r"not our (?:user|customer)",
)

# The recipient's mailbox has no room. Sisimai counts a full disk under the mailbox ("no space
# left on device") here too, and a domain's disk quota.
MAILBOX_FULL = (
    then(
        any_of(
            r"mail ?box",
            r"in ?box",
            r"mail ?folder",
            r"mail ?drop",
            r"maildir",
            r"account",
            r"user(?:'s)?",
            r"recipient",
            r"storage",
            r"disk",
        ),
        FULL,
        40,
    ),
    then(
        any_of(r"mail ?box", r"in ?box", r"mail file"),
        r"exceed(?:s|ed)? (?:the |its )?(?:allowed |maximum |max |local )?(?:size|limit)",
        16,
    ),
    r"(?<!sending )(?<!daily )(?<!submission )quota (?:exceeded|exceed|full|reached|violation|"
    r"usage exceeded)",
    r"over ?quota",
    # The other word order: "a full mailbox", "due to full inbox".
    r"\bfull (?:mail ?box|in ?box|mail ?folder|maildir)",
    r"(?:disk|disc|diskspace|storage) quota",
    r"quotaexceeded",
    r"exceeded storage allocation",
    # Postfix local(8) at mailbox_size_limit: the mailbox file cannot grow.
    r"(?:cannot|can't) update mailbox\b.{0,80}(?:file too large|quota)",
    r"overdrawn",
    # Postfix virtual(8): the mailbox file reached its size limit (EFBIG).
    r"(?:delivery failed to mailbox|error writing message)\b.{0,160}?file too large",
    r"(?:insufficient|not enough|not sufficient) (?:free )?(?:disk )?(?:space|storage)",
    r"no space left on device",
    r"space has been used up",
    r"too much mail data",  # NTT docomo: the mailbox holds too much
    r"(?:mailbox|mail ?box) (?:size )?(?:limit|quota) (?:exceeded|reached)",
    r"too many messages (?:in|on) (?:the |this |user'?s? )?(?:mail ?box|folder|in ?box|server)",
    r"exceeding (?:its |their )?(?:mailbox )?(?:quota|receiving limits)",
    r"bo[iî]te (?:aux lettres )?(?:du destinataire )?(?:est )?pleine",
    r"casella (?:di posta )?piena",
    r"postfach (?:ist )?voll",
    r"buz[oó]n (?:est[aá] )?lleno",
)

# Larger than the destination takes.
MESG_TOO_BIG = (
    then(MESSAGE, TOO_BIG, 24),
    r"(?:message|mail|e-?mail) (?:is |was )?too long",
    r"size (?:limit )?exceed",
    r"\bsize limit",
    r"exceeds? (?:the |our |fixed )?(?:maximum|max|allowed|permitted)(?: \w+)? size",
    r"maximum (?:allowed |permitted |inbound )?(?:message |mail |e-?mail )?size",
    r"too big for (?:the )?system",
    r"message length exceeds",
    r"line limit exceeded",
    r"size of (?:your|the|this) message",
    r"taille (?:limite|maximale)",
)

# A per-recipient size limit (RFC 3463 X.2.3), not the system's; Sisimai also reads a header
# too large for the limit so.
EXCEED_LIMIT = (
    r"message too large for this recipient",
    r"recipsizelimit",
    r"exceeds? (?:the )?(?:per-)?(?:recipient|mailbox)'?s? (?:message )?(?:size )?limit",
    r"(?:per[- ]recipient|recipient) (?:message )?size limit",
    r"header size exceeds limit",
)

# An automatic reply: not a failure at all.
VACATION = (
    r"out of (?:the )?office",
    r"\bon (?:vacation|holiday|leave)\b",
    r"auto(?:matic)?[- ]?(?:reply|response|responder)",
    r"away from (?:the office|my desk|my email)",
)

RECIPIENT_FAMILIES: dict[str, tuple[str, ...]] = {
    "userunknown": USER_UNKNOWN,
    "filtered": FILTERED,
    "suspend": SUSPEND,
    "hasmoved": HAS_MOVED,
    "mailboxfull": MAILBOX_FULL,
    "mesgtoobig": MESG_TOO_BIG,
    "exceedlimit": EXCEED_LIMIT,
    "vacation": VACATION,
}
