"""Phrase families about the sending side and the message: the envelope sender refused, the
client refused (block lists, reverse DNS, reputation, rates), relaying, authentication, and the
message judged (spam, viruses, policy, format).

Each family is the words a reply uses when it means that reason; where a family takes in
wording whose plain meaning would point elsewhere, because Sisimai (whose reason names and
labels these are) reads it so, a comment says so.

Data for :mod:`mailroom.codes.reason_phrases`. Pure: strings.
"""

from __future__ import annotations

from mailroom.codes.phrase_words import CLIENT, SENDER, any_of, near, then, then_in_clause

__all__ = ["SENDER_FAMILIES"]

# The envelope sender is refused: unknown, unverifiable, on a list, not allowed to send as;
# and a mailing list that refuses the sender's posting. Sisimai also counts a refusal that
# names no one ("address rejected", "administrative prohibition", "delivery not authorized,
# message refused") as the sender's, when the reply answered MAIL or DATA or carries no
# more specific code; classify's order applies that condition.
REJECTED = (
    then_in_clause(  # (within a clause: not across a report's "after MAIL FROM:<…>: 550")
        SENDER,
        r"(?:is |was |has been )?(?:rejected|denied|refused|not (?:allowed|permitted|accepted|"
        r"valid|found|verified|pre-approved)|invalid|unknown|unverified|verif(?:y|ication) "
        r"failed|(?:does not|doesn't) exist|banned|blacklisted|blocked|(?:is )?empty|in my "
        r"black ?list|(?:is )?(?:a )?spammer)(?! for policy reasons)",
        40,
    ),
    near(r"(?:bad|invalid|unknown|unverified|illegal|unacceptable|bogus|unroutable)", SENDER, 1),
    then_in_clause(
        r"(?:sending (?:to/)?from|from|sender) an? (?:e-?mail )?address",
        r"(?:has been |is )?(?:black|block)listed",
    ),
    r"your (?:e-?mail )?address has been (?:black|block)listed",
    r"(?<!recipient )(?<!sender ip )(?<!5\.1\.0 )address rejected",
    r"administrative prohibition",
    r"delivery not authori[sz]ed, message refused",
    r"domain of sender address",
    r"sender domain (?:must|is|has|not|does)",
    r"send(?:ing)? mail as",
    r"different address or alias",
    r"not (?:allowed|permitted|authori[sz]ed) to send (?:as|from|on behalf)",
    r"(?:empty|null) (?:envelope )?senders? (?:is |are )?not allowed",
    r"fully qualified (?:e-?mail )?address required",
    r"mail from not owned by",
    r"\bbatv\b",
    r"backscatter protection",
    r"no third-party dsns|unsigned dsn",
    r"returned mail not accepted",
    r"this server does not accept mail from",
    r"mx records for \S+ (?:do not|don't|does not)",
    r"recursive cname",
    r"envelope blocked",
    r"blocked senders?\b",
    r"rule imposed mailbox access",
    r"senderfilterconfig",
    r"sender isn't on the recipient's list",
    r"your access to submit messages",
    r"spam reporting address",  # SendGrid: the address once reported the sender's mail as spam
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
)

# What authenticates a message's domain, and what is said when it does not.
_AUTHENTICATION = any_of(
    r"dmarc", r"spf", r"dkim", r"domainkeys", r"sender policy framework", r"sender ?id"
)
_NOT_PASSED = any_of(
    r"fail",
    r"not pass",
    r"violat",
    r"bad",
    r"reject",
    r"invalid",
    r"check",
    r"polic",
    r"align",
    r"verif",
    r"error",
    r"signature",
    r"authenticat",
    r"permerror",
    r"temperror",
    r"none",
)

# The rest of a word after its stem ("fail" -> "failed"): possessive and bounded, as it can
# only end where the word does. "\w*" from every "bad" of "badbadbad…" went on to the end of
# the run, and back, at each: 48,000 characters took 12 s.
_REST_OF_WORD = r"\w{0,30}+"

# SPF, DKIM, DMARC: the message could not be tied to its sender's domain ("SPF" said only in
# advice, "set up SPF records", is not a failure).
AUTH_FAILURE = (
    then_in_clause(r"\b" + _AUTHENTICATION, _NOT_PASSED + _REST_OF_WORD, 40),
    then_in_clause(_NOT_PASSED + _REST_OF_WORD, _AUTHENTICATION + r"\b", 24),
    r"\(spf\)",
    r"unauthenticated (?:e-?mail|mail|message)",
    r"(?:mail|message|sender|email) (?:is|was) unauthenticated",
    r"authentication (?:results|checks?) (?:failed|did not pass)",
    r"fails to pass authentication checks",
    r"does not designate \S+ as (?:a )?permitted sender",
    r"required authentication level",
)

# No (or a mismatching) reverse DNS name for the client's address.
REQUIRE_PTR = (
    r"reverse dns",
    r"reverse (?:lookup|hostname|host name|mapping|resolution)",
    r"\brdns\b",
    r"\bptr\b",
    r"fcrdns",
    r"(?:does not|doesn't|not) match (?:the |your )?(?:client|connecting|sending|your)? ?ip",
    r"mismatch(?:es)? (?:the )?client ip",
    r"cannot find your (?:reverse )?hostname",
    r"client host name (?:is )?unknown",
    r"(?:no|without|missing) (?:a )?(?:valid )?(?:reverse|hostname|host name)\b",
    r"unresolvable (?:ip|address|host|relay)",
    r"ip name lookup failed",
    r"unverifi?(?:y|i)able (?:sending )?(?:ip|host|client)",
    r"forward dns entry does not point",
    r"generic dns",
    # Sisimai reads a lookup that failed for now, said to the client, as its name not resolving.
    r"dns lookup failure: \S+ try again later",
)

# The sending IP's or domain's standing: complaints, scores, history.
BAD_REPUTATION = (
    r"reputation",
    r"user complaints",
    r"sender ?score",
    r"(?:poor|low|bad) (?:sending )?(?:history|standing)",
)

# The client itself is refused: its address or name is on a block list or banned, it may not
# connect, or the server hangs up on it. Sisimai counts a connection the server drops or
# refuses, and a refusal at the greeting, as the client blocked.
BLOCKED = (
    r"spamhaus",
    r"spamcop",
    r"sorbs",
    r"barracuda",
    r"cloudmark",
    r"uceprotect",
    r"mailspike",
    r"abuseat",
    r"\bpsbl\b",
    r"\bcbl\b",
    r"\bdnsbl",
    r"\brbl\b",
    # (a listed URL or link in the message is the content's: spamdetected)
    r"black ?list(?!ed (?:url|link))",
    r"block ?list(?!ed (?:url|link))",
    r"deny ?list",
    r"blocked using",
    r"(?:is|are|been|was|currently|ip|host|address) listed (?:on|in|at|by|as) ",
    r"listed (?:on|in|at|by) (?:the )?\S*(?:bl|list|\.org|\.net|\.com)\b",
    then_in_clause(
        CLIENT,
        r"(?:is |are |has been |have been |was )?(?:temporarily |permanently |currently )?"
        # (Postfix's "host x[ip] refused to talk to me" is its wrapper, not the server's verdict:
        # what refused the greeting is in the reply after it)
        r"(?:blocked|banned|blacklisted|blocklisted|denied|refused(?! to talk to me)|rejected|"
        r"not (?:allowed|permitted|authori[sz]ed|welcome|accepted))",
        avoid="but|sender|recipient|message|mail|user",
    ),
    r"connections? (?:from \S+ )?(?:is |are |has been )?(?:blocked|banned|blacklisted|denied)",
    r"banned sending",
    r"banned sender",
    r"bloqu[eé]e?",
    r"ip not in whitelist",
    r"not (?:on|in) (?:the |our )?(?:white|allow) ?list",
    r"(?:dynamic|dial-?up|residential|consumer|zombied) (?:ip|address|pool|range|space|host)",
    r"hosts with dynamic ip",
    r"spamming",
    r"spam source",
    r"known spammer",
    r"(?:currently |you are )sending spam",
    r"too many (?:spams|unwanted messages)",
    r"looks suspiciously like spammer",
    r"your access to this mail system",
    r"permanently deferred",
    r"access denied, (?:bad helo|rejected by recipient|please try again later)",
    r"mail from \S+ refused",
    r"we do not accept mail from (?:your|this) (?:ip|host|server|network)",
    r"not (?:currently )?accepting mail from your ip",
    r"unusual rate of (?:unsolicited )?mail",
    r"(?:is|being) an open relay",  # the client is a known open relay
    r"open proxy",
    r"bad ip profile",
    r"not allowed to (?:connect|send mail from)",
    r"invalid ip for sending",
    r"no access from mail server",
    r"confirm this mail server|server requires confirmation",
    r"may not be mail exchanger",
    r"client host rejected: was not authenticated",
    r"(?:was|is) blocked by\b",
    r"is in an? (?:black ?list|\S*rbl)",
    r"no valid recipients from",
    # A dynamic or residential client told to send through its provider's relay.
    r"use (?:the |your )?(?:smtp|mail|outgoing)[ -]?(?:server|relay|gateway|host) "
    r"(?:of|at|from|provided by) your (?:isp|provider|internet service)",
    r"your (?:isp|provider)'?s? (?:smtp|mail|outgoing) ?(?:server|relay)",
    # The client's HELO name refused: the client, not the message.
    r"helo command rejected",
    r"(?:invalid|bad|bogus|forged) (?:helo|ehlo)",
    r"(?:helo|ehlo)(?: name| hostname)? (?:rejected|invalid|not allowed|refused)",
    # The server hung up or would not talk (Sisimai's reading: the client is refused).
    r"connection (?:dropped|reset by peer|was dropped by remote host)",
    r"connection refused by",
    r"\bgo away\b",
    r"not accepting connections",
    r"no matches to nameserver query",
    r"after initial connection",
)

# Not a relay for this client and destination.
NO_RELAYING = (
    r"relay(?:ing)?\b[^.;]{0,20}\b(?:denied|not (?:permitted|allowed)|prohibited|refused|"
    r"disabled|rejected)",
    r"(?:authorized|configured|allowed|permitted|authorised) to relay",
    r"(?:unable|cannot|can't) (?:to )?relay",
    r"(?:we|i) do not relay",
    r"\bno relaying\b",
    r"relaying mail to",
    r"insecure mail relay",
    r"not an open relay",
    r"as a relay\b",
    r"not a (?:gateway|relay)",
    r"not local host",
    r"we don't handle mail for",
    r"specified domain is not allowed",
    r"authentication when attempting to send to a non-local",
    r"email address is not verified",
    r"rcpthosts",  # qmail: "that domain isn't in my list of allowed rcpthosts"
)

# The message judged as spam by content or by its URLs. Sisimai also reads a bare "message
# filtered", "content rejected" and a refusal "for policy reasons" of the message so.
SPAM_DETECTED = (
    r"spamassassin",
    r"spam ?(?:classification|signature|score|content|message|detected|filter(?:ing)?|check|"
    r"blocked|refused|rejection|rejected|email|not accepted|points|block|list|probability|"
    r"complaints|profiler)",
    r"(?:classified|rejected|refused|blocked|identified|marked|flagged|considered|detected|"
    r"tagged|judged|scored|treated) (?:\w+ ){0,2}as (?:an? )?(?:spam|junk|bulk|unsolicited)",
    r"(?:likely|probably|probable|suspected|potential|possible) (?:to be )?(?:spam|unsolicited|"
    r"junk)",
    r"(?:looks|appears|seems) (?:to be |like |similar to )?(?:spam|junk|unsolicited)",
    r"\bube\b",
    r"\buce\b",
    r"unsolicited bulk",
    r"content (?:judged|considered|determined) (?:to be )?(?:spam|junk)",
    r"message (?:is|was) (?:spam|junk)",
    # A verb of judgement and its object: "identified SPAM", "thinks this email is spam",
    # "may consider spam", "high probability of spam".
    r"(?:identified|thinks|believes|determined|considers?|deemed)\b[^.;]{0,40}?\b(?:is |as |be )?"
    r"(?:spam|junk)\b",
    r"probability of (?:being )?(?:spam|junk)",
    r"high (?:spam|bulk) (?:score|probability)",
    r"\bur[il] ?bl\b",
    r"surbl",
    r"blacklisted url",
    r"spam or virus",
    r"- spam\b",
    r"spam-like",
    r"antispam",
    r"\bspam\b[^.;]{0,20}\b(?:rejected|refused|blocked|detected)",
    r"we (?:do not|dont|don't) accept spam",
    r"(?:message|mail) content (?:rejected|denied)",
    r"content filter rejection",
    r"rejecting (?:banned|mail) content",
    r"unacceptable content",
    r"message rejected for policy reasons",
    r"blocked (?:for abuse|by our filter)",
    r"temporarily blocked by our filter",
    r"recurrent pattern",
    r"our system has detected that this message is",
    r"bulk[ .](?:advertising|email)",
    r"sender domain listed at",
    r"\bis blacklisted on\b",
)

# Malware in the message.
VIRUS_DETECTED = (
    r"\bvirus",
    r"malware",
    r"\binfected\b",
    r"trojan",
    r"\bworm\b",
    r"malicious",
    r"potentially executable attachment",
)

# The destination's policy: attachments, content rules, closed lists, "policy reasons".
POLICY_VIOLATION = (
    r"policy reasons",
    r"violat(?:es|ion of|ed|ing) (?:our |the |local |site )?(?:\S+ )?polic",
    r"policy violation",
    r"(?:denied|rejected|blocked) by (?:\w+ )?policy",
    r"(?:prohibited|banned|forbidden|blocked) (?:attachment|file|content|filename|extension)",
    r"illegal attachment",
    r"attachment (?:type |extension )?(?:is )?(?:not allowed|forbidden|blocked|prohibited|not "
    r"permitted)",
    r"images or other attachments",
    r"not accepting mail with",
    r"content presents a potential",
    r"has a policy that prohibited",
    r"message not allowed",
    r"content (?:filter|policy|restrictions)",
    r"(?:due to|by|against) (?:local|site|company|organization(?:al)?|our|administrative|the|"
    r"security) (?:\w+ )?(?:polic(?:y|ies)|settings)",
    r"organi[sz]ation(?:al)? (?:policy|settings)",
    r"\bdlp\b",
    r"header error",
    r"protocol violation",
    r"header (?:are|is) not accepted",
    r"multiple addresses",
    r"members-only list|closed mailing list|non-member|not subscribed to this group",
    r"low priority",
    r"mass mailer",
    r"captcha",
)

# The message's form breaks the RFCs (RFC 5322 headers and addresses).
NOT_COMPLIANT_RFC = (
    r"\brfc ?(?:5322|2822|822)\b(?!;)",
    r"rfcmessagenoncompliant",
    r"multiple addresses in (?:the )?from:? header",
    r"(?:multiple|duplicate) (?:from|date|subject|message-id|to|sender) headers?",
    r"missing (?:a |the )?(?:valid |required )?(?:address in the from|date|from|message-id|"
    r"subject)\b",
    r"missing a valid (?:address|message-id)",
    r"encoded-word syntax",
    r"not (?:rfc(?: \d+)? )?compliant",
    r"(?:non|not)[- ]compliant",
    r"(?:does not|doesn't) (?:comply|conform) (?:with|to)",
    r"mail message is malformed",
)

# The message's format: headers, MIME, encoding.
CONTENT_ERROR = (
    r"illegal (?:character|header)",
    r"headers? (?:too (?:large|long|big)|line too long|size exceeds)",
    r"too many (?:\"?received\"?:? )?headers",
    r"duplicate headers?",
    r"invalid (?:header|mime|message|characters)",
    r"malformed (?:header|mime|message)",
    r"mime complexity",
    r"8-?bit data",
    r"improperly-formatted binary",
    r"unnecessary base64",
    r"media not supported",
    r"conversion (?:failed|required)",
    r"bare ?line ?feeds?",
    r"lines? too long for transport",
)

# TLS was required and did not happen.
FAILED_STARTTLS = (
    r"must issue a starttls",
    r"starttls (?:is )?required",
    r"tls (?:is )?required",
    r"requires? (?:tls|encryption)",
    r"mta-sts",
    r"tls handshake",
    r"tls not available",
    r"encryption (?:is )?required",
    r"use tls/ssl",
)

# SMTP authentication and other security requirements.
SECURITY_ERROR = (
    r"turn on smtp authentication",
    r"smtp auth(?:entication)? (?:is )?required",
    r"unauthenticated senders? (?:are |is )?not (?:allowed|permitted|accepted)",
    r"authentication (?:is )?required",
    r"auth(?:entication)? required",
    r"authentication turned on",
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
    r"authentification (?:invalide|requise)",
    r"verification failure",
    r"dead domain",
    r"not subscribed to ses|ses:sendrawemail",
    # Sisimai's reading of an archive that hides executables: a security rule, not a virus.
    r"executable files are not allowed in compressed files",
)

# Too many connections or recipients at once: the session's shape, not its pace; Sisimai
# also puts a provider's sending quota refusal ("throttling failure") and "frequency limited"
# here.
TOO_MANY_CONN = (
    r"too many (?:\w+ ){0,2}(?:connections|sessions)",
    r"connection(?:s)? (?:\w+ )?(?:rate |frequency |count )?(?:limit|limited|exceeded)",
    r"(?:connection|connect) (?:rate|frequency)",
    r"maximum (?:number of )?(?:\w+ )?(?:connections|sessions)",
    r"maximum connection limit",
    r"too many (?:recipients|rcpts?)",
    r"(?:recipient|rcpt)s? (?:limit|count) (?:exceeded|reached)",
    r"throttling failure",
    r"frequency limited",
    r"max (?:emails|messages?) per (?:hour|connection)",
    r"too many errors from your",
    r"numerous attempts to deliver",
    r"trop de connexions",
)

# Too much mail too fast: rate limits and sending quotas.
SPEEDING = (
    r"(?<!connection )rate[ -]?limit",  # (a connection rate limit is toomanyconn's)
    r"receiving mail (?:too quickly|at a rate)",
    r"too (?:fast|quickly|frequently)",
    r"try again slower",
    r"too many (?:messages|e-?mails|mails|deliveries)",
    r"(?<!throttling failure: )(?:sending|message|mail|delivery) (?:rate|frequency|volume)",
    r"excessive volume",
    r"(?<!throttling failure: daily message )(?:sending|submission) (?:quota|limit)",
    r"(?<!throttling failure: )(?:daily|hourly|per[- ]hour|per[- ]day|per[- ]minute) "
    r"(?:\w+ ){0,3}(?:quota|limit)",
    r"frequency limit(?!ed)",
    r"throttl(?!ing failure)",
    r"slow down",
    r"message threshold",
    r"sendquotaexceeded",
)

SENDER_FAMILIES: dict[str, tuple[str, ...]] = {
    "rejected": REJECTED,
    "authfailure": AUTH_FAILURE,
    "requireptr": REQUIRE_PTR,
    "badreputation": BAD_REPUTATION,
    "blocked": BLOCKED,
    "norelaying": NO_RELAYING,
    "spamdetected": SPAM_DETECTED,
    "virusdetected": VIRUS_DETECTED,
    "policyviolation": POLICY_VIOLATION,
    "notcompliantrfc": NOT_COMPLIANT_RFC,
    "contenterror": CONTENT_ERROR,
    "failedstarttls": FAILED_STARTTLS,
    "securityerror": SECURITY_ERROR,
    "toomanyconn": TOO_MANY_CONN,
    "speeding": SPEEDING,
}
