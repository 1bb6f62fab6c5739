"""Phrase families about the destination and the way there: a domain that does not exist or
takes no mail, DNS and network failures, loops, a message that waited too long, and systems
that failed (the destination's, or a local delivery program).

Each family is the words a reply (or the reporting MTA) uses when it means that reason; where
a family takes in wording whose plain meaning would point elsewhere, because Sisimai (whose
reason names and labels these are) reads it so, a comment says so.

Data for :mod:`mailroom.codes.reason_phrases`. Pure: strings.
"""

from __future__ import annotations

__all__ = ["SYSTEM_FAMILIES"]

# The recipient's domain does not exist or has no mail host.
HOST_UNKNOWN = (
    r"host (?:or domain name )?not found(?!, try again)",
    r"(?:host|domain) (?:name )?(?:is )?(?:unknown|not found|non-?existent|invalid)",
    r"(?:unknown|invalid|illegal|bad|non-?existent) (?:host|domain)",
    # A bare domain name (not an address) said not to exist.
    r"(?<![@\w.\-])(?:[a-z0-9\-]+\.)+[a-z]{2,}\.? (?:does not|doesn't) exist",
    r"no such (?:host|domain)",
    r"domain (?:name )?(?:does not|doesn't|did not|must) exist",
    r"(?:account or )?domain may not exist",
    r"domain (?:is )?(?:not reachable|unreachable)",
    r"domain\b[^.;:]{0,30}? (?:couldn't|could not|can't|cannot) be (?:found|resolved)",
    r"domain mentioned in (?:the )?e-?mail address is unknown",
    r"(?:couldn't|could not|can't|cannot|unable to) find (?:any )?host",
    r"unrout(?:e)?able (?:mail )?address",
    r"has no (?:mx|a|aaaa|address)(?: or \w+)? records?",
    r"mx (?:records? )?(?:point|points) to non-?existent",
    r"host address lookups failed",
    r"dns lookup fail(?:ure|ed): host",
    r"name or service not known",
    r"nxdomain",
    r"bad destination system",
    r"recipient domain (?:does not exist|not found|is invalid)",
)

# The destination accepts no mail at all (null MX, RFC 7505; RFC 5321's 521/556).
NOT_ACCEPT = (
    r"(?:does not|doesn't|do not|don't) (?:accept|receive) (?:any )?(?:e-?mail|mail|messages)",
    r"not accepting (?:any )?(?:network )?(?:e-?mail|mail|messages)",
    r"accepts no mail",
    r"null ?mx",
    r"no smtp service",
    r"mail receiving disabled",
    r"no route for current request",
    r"smtp protocol returned a permanent error",
    r"reject all mails",
    # The domain names no mail host: it takes no mail (an implicit MX aside).
    r"(?:couldn't|could not|can't|cannot) find a mail exchanger",
    r"no mx (?:record|host|entr|found)",
    r"name server: \.: host not found",
)

# The network or DNS failed on the way, for now; mail loops and hop counts. (A loop that the
# destination itself reports breaking is Sisimai's systemerror, below.)
NETWORK_ERROR = (
    r"malformed (?:or unexpected )?name server reply",
    r"host not found, try again",
    r"host name lookup failure",
    r"no route to host",
    r"network (?:is )?unreachable",
    r"host (?:is )?unreachable",
    r"unable to resolve route",
    r"no valid route",
    r"(?:mail|routing|forwarding) loop",
    r"message (?:looping|loop)",
    r"loop detected",
    r"\blooping\b",
    r"too many hops",
    r"hop count",
    r"maximum hop count",
    r"\d+ hops",
    r"dns records for the destination",
    r"unrouteable mail domain",
    r"could not connect and send",
    r"lost connection with",
    r"connection (?:reset|lost)",
    r"temporary (?:dns|lookup|resolver) (?:failure|error)",
    r"(?:wasn't|was not|unable to|couldn't|could not) (?:able to )?establish (?:an )?smtp "
    r"connection",
    r"temporary failure in (?:mx |dns |name )?(?:lookup|resolution)",
    r"host lookup did not complete",
    r"network error",
    r"dns lookup failed\.",
    r"best-preference mx",
    r"address family mismatch",
    r"routes to destination blocked",
)

# Gave up: the time a message may wait in a queue has run out, or it never got through.
EXPIRED = (
    r"delivery time expired",
    r"delivery expired",
    r"message expired",
    r"expired after",
    r"envelope expired",
    r"queue (?:lifetime|time) (?:exceeded|expired)",
    r"retry time(?:out)? (?:exceeded|not reached)",
    r"retry timeout",
    r"(?:in|sat in|sitting in) (?:the )?queue too long",
    r"too long in (?:the )?queue",
    r"(?:could|was|has|had)(?: not|n't) (?:be |been )?delivered (?:for|within|in) (?:more than |"
    r"the last )?\d",
    r"could not deliver for the last",
    r"not delivered within",
    r"not reachable within the allowed queue",
    r"giving up",
    r"gave up",
    r"time limit (?:exceeded|reached)",
    r"have been failing for a long time",
    r"has been delayed",
    r"will be retried",
    r"delivery (?:is |has been )?delayed",
    r"message delayed",
    r"delivery attempts will continue",
    r"has been frozen|frozen on arrival",
    r"(?:could not|cannot|can't|couldn't) send message for",
    r"could not be delivered for too long",
    r"will be deleted from (?:the )?queue",
    r"unable to deliver (?:\w+ ){0,3}(?:after|for) (?:multiple|repeated|several|\d+)",
    r"(?:failed|tried|after) \d+ (?:delivery )?(?:attempts|retries|times)",
    r"connection timed out",
    r"(?:message|session) timed out",
    r"server did not respond",
    r"did not accept our requests to connect",
    r"could not find a gateway",
    r"failed to deliver to domain",
    r"not been collected after",
    r"could not contact dns servers",
)

# Something broke on the destination system. Sisimai counts a loop the destination reports
# breaking (an alias loop, "loops back to myself") here.
SYSTEM_ERROR = (
    r"resources temporarily unavailable",
    r"(?<!operating )system error",
    r"internal (?:server |system )?error",
    r"local (?:configuration )?error",
    r"local error in processing",
    r"local problem",
    r"temporary system problem",
    r"transaction failed\b",
    r"server (?:is )?(?:too )?busy",
    r"misconfigur",
    r"configuration error",
    r"config error",
    r"out of memory",
    r"i/o error",
    r"(?:queue )?file write error",
    r"insufficient permission",
    r"service currently unavailable",
    r"timeout waiting for input",
    r"interrupted system call",
    r"can't create user output file",
    r"encountered an error while being processed",
    r"operation now in progress",
    r"error reading data",
    r"loop broken",
    r"would create a mail loop",
    r"loop was found",
    r"loops? back to myself",
    r"no mdb\b",
    r"several matches found",
    r"violates rfc 1035",
    r"bad interpreter",
    r"delivery to (?:file|pipe) forbidden",
    r"local delivery failed",
    r"lmtp error after",
    r"unable to (?:contact|chdir|open|read|write|create|stat|fork|access|connect to (?:the )?ldap)",
    r"duplicated message-id",
)

# The destination system's disk.
SYSTEM_FULL = (
    r"insufficient system (?:storage|resources)",
    r"mail system full",
    r"(?:disk|system|spool|server|queue|file ?system) (?:is )?full",
    r"out of disk space",
    r"not enough free space",
)

# The local delivery program (a pipe, procmail, maildrop) failed, not the mailbox.
MAILER_ERROR = (
    r"\bpipe to \|",
    r"procmail",
    r"maildrop",
    r"maidrop",
    r"\bmailer error\b",
    r"unknown mailer error",
    r"delivery program",
    r"command died",
    r"command failed:",
    r"command output:",
    r"child process of \S+ transport returned",
    r"\bx-unix\b",
    r"\|\| exit\b",
    r"operating system error",  # Sendmail: a mailer exited with EX_OSERR
    r"local delivery (?:program|agent) (?:failed|error)",
    r"exit (?:status|code) \d+ from (?:command|program)",
)

SYSTEM_FAMILIES: dict[str, tuple[str, ...]] = {
    "hostunknown": HOST_UNKNOWN,
    "notaccept": NOT_ACCEPT,
    "networkerror": NETWORK_ERROR,
    "expired": EXPIRED,
    "systemerror": SYSTEM_ERROR,
    "systemfull": SYSTEM_FULL,
    "mailererror": MAILER_ERROR,
}
