"""Phrase families: the words mail servers use for each reason a delivery fails.

Servers say the same thing in many ways: "user unknown", "unknown user", "no such user",
"the email account that you tried to reach does not exist", "recipient not found",
"utilisateur inconnu". A rule that lists one server's sentence learns that server; a family
names what is being talked about (the recipient: user, mailbox, address, account, …) and what
is said of it (unknown, not found, does not exist, invalid, …), in either order, with a few
words or an address between, and in the languages that recur in bounces. Each family below
says what it means; none is a copy of one message.

The tables are data for :mod:`mailroom.codes.classify`, which decides the order in which they
are consulted (the remote server's own words before the reporting MTA's, decisive wording
before codes, codes before weak wording). Within a table the first family that matches wins,
so more specific reasons come before the ones whose words they share: the sender's address
before the recipient's ("Sender address rejected: User unknown" is about the sender),
reputation and authentication before "blocked … spam", "mailbox full" before a bare "quota",
connection limits before rate limits ("connection rate limit exceeded").

Text is matched lower-cased with whitespace collapsed. Pure: data and regular expressions.
"""

from __future__ import annotations

import re

__all__ = ["DECISIVE", "WEAK", "Family", "compile_families"]

Family = tuple[str, tuple[str, ...]]  # (reason, alternative regular expressions)


def any_of(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


# A few words of one statement: an address in angle brackets or a bare one may stand between,
# but not the end of a sentence.
_GAP = r"(?:\s*<[^<>]{0,80}>\s*|\s[\w.+\-']+@[\w.\-]+\s|[^.;!?<>]){1,COUNT}?"


# The same within one clause: not across a colon either ("host x said: 550 … rejected").
_CLAUSE_GAP = r"(?:\s*<[^<>]{0,80}>\s*|[^.;:!?<>]){1,COUNT}?"


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
# What is said of a mailbox that is not there.
MISSING = any_of(
    r"unknown",
    r"not (?:known|found|exists?|valid|present|listed|recogni[sz]ed|registered|local(?:ly)? "
    r"(?:known|valid))",
    r"(?:does|do|did|dose)(?: not|n't) exists?",
    r"(?:could|can)(?:not|n't| not) be (?:found|located)",
    r"(?:is|was)(?: not|n't) (?:found|known|valid)",
    r"non-?existent",
    r"invalid",
    r"unrecogni[sz]ed",
    r"no longer exists?",
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
# What is said of a mailbox that is turned off.
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
# What is said of a mailbox or a store that has no room.
FULL = any_of(
    r"full",
    r"over ?(?:the |its |his |her |their )?quota",
    r"out of (?:storage|disk|space)",
    r"exceed(?:s|ed)? (?:the |its |his |her |their |your )?(?:storage|quota|disk|space|"
    r"allocation|capacity)",
    r"(?:storage|quota|space|capacity) (?:exceeded|full|reached)",
    r"has (?:no|insufficient) (?:more )?(?:space|storage|room)",
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


# -- the families, most specific first -----------------------------------------------------------

DECISIVE: tuple[Family, ...] = (
    # An auto-reply is not a failure at all.
    (
        "vacation",
        (
            r"out of (?:the )?office",
            r"\bon (?:vacation|holiday|leave)\b",
            r"auto(?:matic)?[- ]?(?:reply|response|responder)",
            r"away from (?:the office|my desk|my email)",
        ),
    ),
    # An ESP's own list of addresses it will not send to.
    ("suppressed", (r"suppression list", r"\bsuppressed\b")),
    # The local delivery program (a pipe, procmail, maildrop) failed, not the mailbox.
    (
        "mailererror",
        (
            r"\bpipe to \|",
            r"procmail",
            r"maildrop",
            r"\bmailer error\b",
            r"unknown mailer error",
            r"delivery program",
            r"command died",
            r"command failed:",
            r"command output:",
            r"child process of \S+ transport returned",
            r"\bx-unix\b",
            r"operating system error",  # Sendmail: a mailer exited with EX_OSERR
            r"local delivery (?:program|agent) (?:failed|error)",
            r"exit (?:status|code) \d+ from (?:command|program)",
        ),
    ),
    # Malware in the message.
    (
        "virusdetected",
        (
            r"\bvirus",
            r"malware",
            r"\binfected\b",
            r"trojan",
            r"\bworm\b",
            r"malicious (?:content|attachment|software|code|file)",
            r"rejected due to security policies",
        ),
    ),
    # The sending IP's or domain's standing: complaints, scores, history.
    (
        "badreputation",
        (
            r"reputation",
            r"user complaints",
            r"sender ?score",
            r"(?:poor|low|bad) (?:sending )?(?:history|standing)",
        ),
    ),
    # The message judged as spam by content or by its URLs.
    (
        "spamdetected",
        (
            r"spamassassin",
            r"spam (?:classification|signature|score|content|message|detected|filter(?:ing)?)",
            r"(?:classified|rejected|refused|blocked|identified|marked|flagged|considered|"
            r"detected|tagged|judged|scored|treated) (?:\w+ ){0,2}as (?:spam|junk|bulk|"
            r"unsolicited)",
            r"(?:likely|probably|suspected|potential) (?:to be )?(?:spam|unsolicited|junk)",
            r"(?:looks|appears|seems) (?:to be |like )?(?:spam|junk|unsolicited)",
            r"\bube\b",
            r"\buce\b",
            r"content (?:judged|considered|determined) (?:to be )?(?:spam|junk)",
            r"message (?:is|was) (?:spam|junk)",
            r"high (?:spam|bulk) (?:score|probability)",
            r"\bur[il] ?bl\b",
            r"surbl",
            r"spam or virus",
            r"- spam\b",
            r"\bspam\b[^.;]{0,20}\b(?:rejected|refused|blocked|detected)",
        ),
    ),
    # SPF, DKIM, DMARC: the message could not be tied to its sender's domain.
    (
        "authfailure",
        (
            r"\bdmarc\b",
            r"\bspf\b",
            r"\bdkim\b",
            r"domainkeys",
            r"sender policy framework",
            r"\bsender ?id\b",
            r"unauthenticated (?:e-?mail|mail|message)",
            r"(?:mail|message|sender|email) (?:is|was) unauthenticated",
            r"authentication (?:results|checks?) (?:failed|did not pass)",
            r"does not designate \S+ as (?:a )?permitted sender",
            r"required authentication level",
        ),
    ),
    # No (or a mismatching) reverse DNS name for the client's address.
    (
        "requireptr",
        (
            r"reverse dns",
            r"reverse (?:lookup|hostname|host name|mapping|resolution)",
            r"\brdns\b",
            r"\bptr\b",
            r"fcrdns",
            r"(?:does not|doesn't|not) match (?:the |your )?(?:client|connecting|sending|your)? "
            r"?ip",
            r"mismatch(?:es)? (?:the )?client ip",
            r"cannot find your (?:reverse )?hostname",
            r"client host name (?:is )?unknown",
            r"(?:no|without|missing) (?:a )?(?:valid )?(?:reverse|hostname|host name)\b",
            r"unresolvable (?:ip|address|host)",
            r"ip name lookup failed",
            r"unverifi?(?:y|i)able (?:sending )?(?:ip|host|client)",
        ),
    ),
    # An envelope address (not the client's IP) on a block list: the sender is refused.
    (
        "rejected",
        (
            then_in_clause(
                r"(?:sending (?:to/)?from|from|sender) an? (?:e-?mail )?address",
                r"(?:has been |is )?(?:black|block)listed",
            ),
        ),
    ),
    # A refusal that names its reason as policy, whoever it names as refused.
    ("policyviolation", (r"(?:rejected|refused|denied|not accepted) for policy reasons",)),
    # The client itself is refused: its address or name is on a block list or banned.
    (
        "blocked",
        (
            r"spamhaus",
            r"spamcop",
            r"sorbs",
            r"barracuda",
            r"cloudmark",
            r"uceprotect",
            r"mailspike",
            r"\bpsbl\b",
            r"\bcbl\b",
            r"\bdnsbl",
            r"\brbl\b",
            r"black ?list",
            r"block ?list",
            r"deny ?list",
            r"blocklisted",
            r"blacklisted",
            r"blocked using",
            r"(?:is|are|been|was|currently|ip|host|address) listed (?:on|in|at|by) ",
            r"listed (?:on|in|at|by) (?:the )?\S*(?:bl|list|\.org|\.net|\.com)\b",
            then_in_clause(
                CLIENT,
                r"(?:is |are |has been |have been |was )?(?:temporarily |permanently |currently )?"
                r"(?:blocked|banned|blacklisted|blocklisted|denied|refused|rejected|not "
                r"(?:allowed|permitted|authori[sz]ed|welcome|accepted))",
                avoid="but|sender|recipient|message|mail|user",
            ),
            r"connections? (?:from \S+ )?(?:is |are |has been )?(?:blocked|banned|blacklisted|"
            r"denied)",
            r"banned sending",
            r"banned sender",
            r"bloqu[eé]e?",
            r"ip not in whitelist",
            r"not (?:on|in) (?:the |our )?(?:white|allow) ?list",
            r"(?:dynamic|dial-?up|residential|consumer) (?:ip|address|pool|range|space|host)",
            r"spamming",
            r"spam source",
            r"known spammer",
            r"your access to this mail system",
            r"permanently deferred",
            r"access denied, (?:bad helo|rejected by recipient|please try again later)",
            r"mail from \S+ refused",
            r"we do not accept mail from (?:your|this) (?:ip|host|server|network)",
            r"unusual rate of (?:unsolicited )?mail",
            r"(?:is|being) an open relay",  # the client is a known open relay
            # A dynamic or residential client told to send through its provider's relay.
            r"use (?:the |your )?(?:smtp|mail|outgoing)[ -]?(?:server|relay|gateway|host) "
            r"(?:of|at|from|provided by) your (?:isp|provider|internet service)",
            r"your (?:isp|provider)'?s? (?:smtp|mail|outgoing) ?(?:server|relay)",
            # The client's HELO name refused: the client, not the message.
            r"helo command rejected",
            r"(?:invalid|bad|bogus|forged) (?:helo|ehlo)",
            r"(?:helo|ehlo)(?: name| hostname)? (?:rejected|invalid|not allowed|refused)",
        ),
    ),
    # The server will not authenticate-free relay; tell the user to authenticate.
    (
        "securityerror",
        (
            r"turn on smtp authentication",
            r"smtp auth(?:entication)? (?:is )?required",
            r"unauthenticated senders? (?:are |is )?not (?:allowed|permitted|accepted)",
        ),
    ),
    # Not a relay for this client and destination.
    (
        "norelaying",
        (
            r"relay(?:ing)?\b[^.;]{0,20}\b(?:denied|not (?:permitted|allowed)|prohibited|"
            r"refused|disabled|rejected)",
            r"(?:authorized|configured|allowed|permitted|authorised) to relay",
            r"(?:unable|cannot|can't) (?:to )?relay",
            r"(?:we|i) do not relay",
            r"\bno relaying\b",
            r"insecure mail relay",
            r"not a (?:gateway|relay)",
            r"email address is not verified",
            r"rcpthosts",  # qmail: "that domain isn't in my list of allowed rcpthosts"
        ),
    ),
    # The envelope sender is refused: unknown, unverifiable, not allowed to send as.
    (
        "rejected",
        (
            then(
                SENDER,
                r"(?:is |was |has been )?(?:rejected|denied|refused|not (?:allowed|permitted|"
                r"accepted|valid|found|verified)|invalid|unknown|unverified|verif(?:y|ication) "
                r"failed|(?:does not|doesn't) exist|banned|blacklisted)",
                40,
            ),
            near(r"(?:bad|invalid|unknown|unverified|illegal|unacceptable)", SENDER, 1),
            r"domain of sender address",
            r"sender domain (?:must|is|has|not|does)",
            r"send(?:ing)? mail as",
            r"different address or alias",
            r"not (?:allowed|permitted|authori[sz]ed) to send (?:as|from|on behalf)",
            r"groups\.google\.com/support",
            r"google group",
            r"permission to post",
            r"not a member of (?:this|the) (?:mailing )?list",
            r"(?:only )?members (?:only )?(?:may|can) post",
            r"not (?:allowed|permitted|authori[sz]ed) to post",
            r"posting (?:is )?(?:restricted|not allowed)",
            r"purported responsible address",  # Sender ID's PRA: the sender's identity
            r"mail sending denied",
            r"not an? (?:registered|authori[sz]ed|permitted) (?:gateway |relay )?(?:user|sender)",
            then(SENDER, r"(?:has )?(?:a )?null mx", 20),  # RFC 7505 §4.2, X.7.27
        ),
    ),
    # Too many connections or recipients at once: the session's shape, not its pace.
    (
        "toomanyconn",
        (
            r"too many (?:\w+ ){0,2}(?:connections|sessions)",
            r"connection(?:s)? (?:\w+ )?(?:rate |frequency |count )?(?:limit|limited|exceeded)",
            r"(?:connection|connect) (?:rate|frequency)",
            r"maximum (?:number of )?(?:\w+ )?(?:connections|sessions)",
            r"too many (?:recipients|rcpts?)",
            r"(?:recipient|rcpt)s? (?:limit|count) (?:exceeded|reached)",
            r"trop de connexions",
        ),
    ),
    # Too much mail too fast: rate limits and sending quotas.
    (
        "speeding",
        (
            r"rate[ -]?limit",
            r"receiving mail (?:too quickly|at a rate)",
            r"too (?:fast|quickly|frequently)",
            r"too many (?:messages|e-?mails|mails|deliveries)",
            r"(?:sending|message|mail|delivery) (?:rate|frequency|volume)",
            r"sending (?:quota|limit)",
            r"(?:daily|hourly|per[- ]hour|per[- ]day|per[- ]minute) (?:\w+ ){0,3}(?:quota|limit)",
            r"frequency limit",
            r"throttl",
            r"slow down",
            r"message threshold",
            r"sendquotaexceeded",
        ),
    ),
    # A per-recipient size limit (RFC 3463 X.2.3), not the system's.
    (
        "exceedlimit",
        (
            r"message too large for this recipient",
            r"recipsizelimit",
            r"exceeds? (?:the )?(?:per-)?(?:recipient|mailbox)'?s? (?:message )?(?:size )?limit",
            r"(?:per[- ]recipient|recipient) (?:message )?size limit",
        ),
    ),
    # The destination system's disk (before a mailbox's "insufficient space").
    (
        "systemfull",
        (
            r"insufficient system (?:storage|resources)",
            r"(?:disk|system|spool|server|queue|file ?system) (?:is )?full",
            r"no space left",
            r"out of disk space",
        ),
    ),
    # The recipient's mailbox has no room.
    (
        "mailboxfull",
        (
            then(
                any_of(
                    r"mail ?box",
                    r"in ?box",
                    r"mail ?folder",
                    r"mail ?drop",
                    r"account",
                    r"user",
                    r"recipient",
                    r"storage",
                    r"disk",
                ),
                FULL,
                40,
            ),
            then(
                any_of(r"mail ?box", r"in ?box"),
                r"exceed(?:s|ed)? (?:the |its )?(?:allowed |maximum |max )?(?:size|limit)",
                16,
            ),
            r"(?<!sending )(?<!daily )quota (?:exceeded|full|reached)",
            r"over ?quota",
            r"quotaexceeded",
            r"exceeded storage allocation",
            # Postfix local(8) at mailbox_size_limit: the mailbox file cannot grow.
            r"(?:cannot|can't) update mailbox\b.{0,80}(?:file too large|quota)",
            r"overdrawn",
            # Postfix virtual(8): the mailbox file reached its size limit (EFBIG).
            r"(?:delivery failed to mailbox|error writing message)\b.{0,160}?file too large",
            r"(?:insufficient|not enough) (?:disk )?(?:space|storage)",
            r"(?:storage|disk) quota",
            r"mailbox (?:size )?(?:limit|quota) (?:exceeded|reached)",
            r"too many messages in (?:the |this |user'?s? )?(?:mail ?box|folder|in ?box)",
            r"bo[iî]te (?:aux lettres )?(?:du destinataire )?(?:est )?pleine",
            r"casella (?:di posta )?piena",
            r"postfach (?:ist )?voll",
            r"buz[oó]n (?:est[aá] )?lleno",
        ),
    ),
    # Larger than the destination takes.
    (
        "mesgtoobig",
        (
            then(MESSAGE, TOO_BIG, 24),
            r"(?:message|mail|e-?mail) (?:is |was )?too long",
            r"size (?:limit )?exceed",
            r"exceeds? (?:the |our |fixed )?(?:maximum|max|allowed|permitted)(?: \w+)? size",
            r"maximum (?:allowed |permitted )?(?:message |mail |e-?mail )?size",
            r"too big for (?:the )?system",
            r"message length exceeds",
            r"size of (?:your|the|this) message",
            r"taille (?:limite|maximale)",
        ),
    ),
    # The recipient's account exists but is turned off.
    (
        "suspend",
        (
            then(
                any_of(r"account", r"mail ?box", r"user", r"recipient", r"(?:e-?mail )?address"),
                DISABLED,
                40,
            ),
            r"(?:account|mail ?box) (?:is |has been )?(?:temporarily |permanently )?"
            r"(?:blocked|expired|on hold)",
            r"(?<!delivery )temporar(?:il)?y (?:locked|disabled|suspended)",
            near(DISABLED, RECIPIENT, 1),
            r"compte (?:du destinataire )?(?:est )?(?:bloqu|d[eé]sactiv|suspendu|inactif)",
            r"bo[iî]te (?:du destinataire )?(?:est )?archiv",
            r"cuenta (?:est[aá] )?(?:desactivada|suspendida|bloqueada)",
            r"konto (?:ist )?(?:gesperrt|deaktiviert)",
        ),
    ),
    # The mailbox moved and mail is not forwarded (RFC 5321 551).
    (
        "hasmoved",
        (
            r"has moved",
            r"moved (?:permanently|away)",
            r"no longer on (?:this )?server",
            r"address (?:has )?changed",
            r"user not local; please try",
            r"not our user",
        ),
    ),
    # The recipient's own filter or preferences refused it.
    (
        "filtered",
        (
            r"recipient'?s? preferences",
            r"refused due to recipient",
            r"(?:rejected|blocked|filtered|refused) by (?:the )?(?:recipient|user|mailbox "
            r"owner)'?s? ?(?:filter|rules|preferences|settings|request)?",
            r"recipient (?:has )?(?:blocked|refused|rejected) (?:you|the sender|your|mail|"
            r"messages|e-?mail)",
            r"(?:does not|doesn't) (?:wish|want) to receive",
            r"not (?:accepting|receiving|accept) (?:mail|messages|e-?mail) from (?:you|this "
            r"sender|your address|the sender)",
            r"message filtered",
            r"\bsieve\b",  # the recipient's own Sieve script refused it (RFC 5429)
        ),
    ),
    # The recipient's mailbox does not exist.
    (
        "userunknown",
        (
            then_in_clause(RECIPIENT, MISSING, 48),
            r"address rejected: " + MISSING,  # Postfix: "Recipient address rejected: unknown"
            near(NOT_THERE_BEFORE, RECIPIENT, 2),
            r"no (?:mail ?box|account|user|one|recipient)(?: \S+)? (?:here|by that name|with that "
            r"name|at this address|found|available)",
            r"there is no (?:one|user|such)",
            r"nobody (?:here )?by that name",
            r"(?:doesn't|does not|don't) have an? (?:\S+ )?account",
            r"(?:wasn't|was not) found at",
            r"mail ?box (?:is )?(?:unavailable|not available)",
            r"recip(?:ient)?notfound",
            r"recipient address rejected: access denied",  # Microsoft's directory-based edge block
            r"recipient (?:address )?verif(?:y|ication) failed",
            r"not our customer",
            r"not (?:listed |found )?in (?:the |our |public )?(?:\w+ ){0,2}(?:directory|"
            r"address book)",
            r"ディレクトリ.{0,12}(?:見つかりません|ありません)",
            r"check (?:if|that|whether) (?:the )?(?:e-?mail )?address is (?:correct|valid|"
            r"spelled)",
            r"(?:utilisateur|destinataire|adresse) (?:\S+ )?inconnue?",
            r"destinataire invalide",
            r"(?:usuario|destinatario) (?:desconocido|inexistente|no existe)",
            r"(?:benutzer|empf[aä]nger|user|adresse) (?:ist )?unbekannt",
            r"unbekannte[rs]? (?:benutzer|empf[aä]nger|adresse)",
            r"utente (?:sconosciuto|inesistente)",
            r"nessun utente",
            r"usu[aá]rio (?:desconhecido|inexistente)",
        ),
    ),
    # The destination accepts no mail at all (null MX, RFC 7505; RFC 5321's 521/556).
    (
        "notaccept",
        (
            r"(?:does not|doesn't|do not|don't) (?:accept|receive) (?:any )?(?:e-?mail|mail|"
            r"messages)",
            r"not accepting (?:any )?(?:network )?(?:e-?mail|mail|messages)",
            r"accepts no mail",
            r"null ?mx",
            r"no smtp service",
            # The domain names no mail host: it takes no mail (an implicit MX aside).
            r"(?:couldn't|could not|can't|cannot) find a mail exchanger",
            r"no mx (?:record|host|entr|found)",
        ),
    ),
    # A DNS lookup that failed for now (SERVFAIL, a timeout, garbage): not an answer that the
    # domain does not exist, so before the words of hostunknown.
    (
        "networkerror",
        (
            r"malformed (?:or unexpected )?name server reply",
            r"host not found, try again",
            r"host name lookup failure",
        ),
    ),
    # The recipient's domain does not exist or has no mail host.
    (
        "hostunknown",
        (
            r"host (?:or domain name )?not found",
            r"(?:host|domain) (?:name )?(?:is )?(?:unknown|not found|non-?existent|invalid)",
            r"(?:unknown|invalid|illegal|bad|non-?existent) (?:host|domain)",
            # A bare domain name (not an address) said not to exist.
            r"(?<![@\w.\-])(?:[a-z0-9\-]+\.)+[a-z]{2,}\.? (?:does not|doesn't) exist",
            r"no such (?:host|domain)",
            r"domain (?:name )?(?:does not|doesn't|did not) exist",
            r"domain (?:is )?(?:not reachable|unreachable)",
            r"domain\b[^.;:]{0,30}? (?:couldn't|could not|can't|cannot) be (?:found|resolved)",
            r"(?:couldn't|could not|can't|cannot|unable to) find (?:any )?host",
            r"unrout(?:e)?able (?:mail )?(?:domain|address)",
            r"has no (?:mx|a|aaaa|address)(?: or \w+)? records?",
            r"mx (?:records? )?(?:point|points) to non-?existent",
            r"dns lookup fail",
            r"name or service not known",
            r"nxdomain",
            r"bad destination system",
            r"recipient domain (?:does not exist|not found|is invalid)",
        ),
    ),
    # The network or DNS failed on the way; mail loops.
    (
        "networkerror",
        (
            r"no route to host",
            r"network (?:is )?unreachable",
            r"host (?:is )?unreachable",
            r"unable to resolve route",
            r"(?:mail|routing|forwarding|message) loop",
            r"loops? back to myself",
            r"loop detected",
            r"\blooping\b",
            r"too many hops",
            r"hop count",
            r"\d+ hops",
            r"dns records for the destination",
            r"lost connection with",
            r"connection (?:reset|dropped|lost)",
            r"temporary (?:dns|lookup|resolver) (?:failure|error)",
            r"(?:wasn't|was not|unable to|couldn't|could not) (?:able to )?establish (?:an )?"
            r"smtp connection",
            r"temporary failure in (?:mx |dns |name )?(?:lookup|resolution)",
            r"host lookup did not complete",
            r"network error",
        ),
    ),
    # Gave up: the time a message may wait in a queue has run out.
    (
        "expired",
        (
            r"delivery time expired",
            r"message expired",
            r"expired after",
            r"queue (?:lifetime|time) (?:exceeded|expired)",
            r"retry time(?:out)? (?:exceeded|not reached)",
            r"retry timeout",
            r"(?:in|sat in|sitting in) the queue too long",
            r"too long in (?:the )?queue",
            r"(?:could|was|has|had)(?: not|n't) (?:be |been )?delivered (?:for|within|in) "
            r"(?:more than )?\d",
            r"not delivered within",
            r"giving up",
            r"gave up",
            r"time limit (?:exceeded|reached)",
            r"have been failing for a long time",
            r"has been delayed",
            r"will be retried",
            r"delivery (?:is |has been )?delayed",
            r"message delayed",
            r"delivery attempts will continue",
            r"(?:could not|cannot|can't|couldn't) send message for",
            r"envelope expired",
            r"could not be delivered for too long",
            r"will be deleted from (?:the )?queue",
            r"unable to deliver (?:\w+ ){0,3}(?:after|for) (?:multiple|repeated|several|\d+)",
            r"(?:failed|tried|after) \d+ (?:delivery )?(?:attempts|retries|times)",
        ),
    ),
    # The message's form breaks the RFCs (RFC 5322 headers and addresses).
    (
        "notcompliantrfc",
        (
            r"\brfc ?(?:5322|2822|822)\b(?!;)",
            r"multiple addresses in from",
            r"(?:multiple|duplicate) (?:from|date|subject|message-id|to|sender) headers?",
            r"missing (?:a |the )?(?:valid |required )?(?:address in the from|date|from|"
            r"message-id|subject)\b",
            r"missing a valid (?:address|message-id)",
            r"duplicate headers?",
            r"encoded-word syntax",
            r"not (?:rfc(?: \d+)? )?compliant",
            r"(?:non|not)[- ]compliant",
            r"(?:does not|doesn't) (?:comply|conform) (?:with|to)",
            r"mail message is malformed",
        ),
    ),
    # The destination's policy: attachments, content rules, "policy reasons".
    (
        "policyviolation",
        (
            r"policy reasons",
            r"violat(?:es|ion of|ed|ing) (?:our |the |local |site )?(?:\S+ )?polic",
            r"policy violation",
            r"(?:prohibited|banned|forbidden|blocked) (?:attachment|file|content|filename|"
            r"extension)",
            r"illegal attachment",
            r"attachment (?:type |extension )?(?:is )?(?:not allowed|forbidden|blocked|"
            r"prohibited|not permitted)",
            r"content presents a potential",
            r"has a policy that prohibited",
            r"message not allowed",
            r"content (?:filter|policy|restrictions)",
            r"(?:due to|by|against) (?:local|site|company|organization(?:al)?|our|"
            r"administrative|the) (?:\w+ )?polic(?:y|ies)",
            r"administrative prohibition",
            r"\bdlp\b",
        ),
    ),
    # The message's format: headers, MIME, encoding.
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
            r"bare ?line ?feeds?",
            r"lines? too long for transport",
        ),
    ),
    # TLS was required and did not happen.
    (
        "failedstarttls",
        (
            r"starttls (?:is )?required",
            r"must issue a starttls",
            r"tls (?:is )?required",
            r"requires? (?:tls|encryption)",
            r"mta-sts",
            r"tls handshake",
            r"tls not available",
            r"encryption (?:is )?required",
            r"use tls/ssl",
        ),
    ),
    # SMTP authentication and other security requirements.
    (
        "securityerror",
        (
            r"authentication (?:is )?required",
            r"auth(?:entication)? required",
            r"must (?:authenticate|log ?in)",
            r"authenticate first",
            r"smtp auth",
            r"authentication (?:failed|failure|unsuccessful|credentials invalid|mechanism)",
            r"failed authentications?",
            r"invalid credentials",
            r"username and password not accepted",
            r"application-specific password",
            r"not authenticated",
            r"authrequired",
            r"notauthorized",
            r"notauthenticated",
            r"login (?:failed|incorrect)",
        ),
    ),
    # Something broke on the destination system.
    (
        "systemerror",
        (
            r"resources temporarily unavailable",
            r"system error",
            r"internal (?:server |system )?error",
            r"local error",
            r"local problem",
            r"temporary system problem",
            r"transaction failed",
            r"server (?:is )?(?:too )?busy",
            r"misconfigur",
            r"configuration error",
            r"out of memory",
            r"i/o error",
            r"(?:queue )?file write error",
            r"insufficient permission",
        ),
    ),
)

# Wording that is no better than a hint: used only when the codes said nothing more specific.
WEAK: tuple[Family, ...] = (
    (
        "expired",
        (
            r"time limit",
            r"retry timeout",
            r"timed? ?out",
            r"queue too long",
            r"did not accept our requests to connect",
            r"(?:failed|unable|could not|couldn't) to connect",
            r"(?:could not|couldn't|can't|cannot) connect",
            r"connection refused",
            r"socket error",
            r"no answer from",
            r"(?:unable|wasn't able|was not able) to establish (?:an )?smtp connection",
            r"(?:server|host) did not respond",
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
    ("rejected", (r"\bsender\b.*\brejected\b",)),
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
