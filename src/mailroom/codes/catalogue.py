"""Every reply mailroom sends. No other module writes reply text.

Each entry is a :class:`ReplyTemplate`: the basic code, the enhanced status (RFC 3463 / the
IANA registry), a short text that may take parameters, the situation it answers and the
command(s) it answers. ``docs/replies.md`` is generated from this file
(``mailroom replies --markdown``).

Enhanced codes and sessions: RFC 2034 §3 puts the enhanced code on every reply except the
greeting and the replies to HELO and EHLO; 334 and 354 are intermediate replies and class 3 has
no enhanced codes. mailroom sends the same replies to HELO sessions as to EHLO sessions (RFC
2034 allows it and it is harmless: a client that does not know enhanced codes reads them as
text); the server may be told to leave them out altogether.
"""

from __future__ import annotations

from mailroom.codes.enhanced import EnhancedStatus
from mailroom.codes.template import ReplyTemplate

__all__ = ["CATALOGUE", "NOT_SENT", "by_name"]


def _reply(
    code: int,
    status: str | None,
    text: str,
    *,
    when: str,
    commands: tuple[str, ...],
    ref: str,
) -> ReplyTemplate:
    return ReplyTemplate(
        code=code,
        status=EnhancedStatus.parse(status) if status else None,
        text=text,
        when=when,
        commands=commands,
        reference=ref,
    )


# --- connection opening and closing ------------------------------------------------------------

GREETING = _reply(
    220,
    None,
    "{hostname} ESMTP mailroom",
    when="the greeting when a client connects",
    commands=("GREETING",),
    ref="RFC 5321 §4.2, §4.3.1",
)
NO_SMTP_SERVICE = _reply(
    554,
    "5.7.1",
    "{hostname} No SMTP service here",
    when="the greeting for a client on a block list; every later command but QUIT gets "
    "BAD_SEQUENCE_NO_SERVICE",
    commands=("GREETING",),
    ref="RFC 5321 §3.1, §4.3.2",
)
NO_MAIL_ACCEPTED = _reply(
    521,
    "5.3.2",
    "{hostname} does not accept mail",
    when="the greeting of a server configured to accept no mail at all, and again to every "
    "command but QUIT after it",
    commands=("GREETING", "ANY_NO_SERVICE"),
    ref="RFC 7504 §3",
)
NO_SERVICE_COMMAND = _reply(
    503,
    "5.5.1",
    "Error: no SMTP service here, say QUIT",
    when="any command but QUIT after a 554 greeting",
    commands=("ANY_NO_SERVICE",),
    ref="RFC 5321 §3.1",
)
TOO_MANY_CONNECTIONS = _reply(
    421,
    "4.7.0",
    "{hostname} Error: too many connections, try again later",
    when="instead of the greeting when the server holds its maximum of connections",
    commands=("GREETING",),
    ref="RFC 5321 §4.2.3, §3.8",
)
TOO_MANY_CONNECTIONS_FROM_CLIENT = _reply(
    421,
    "4.7.0",
    "{hostname} Error: too many connections from {client}",
    when="instead of the greeting when one client address holds its maximum of connections",
    commands=("GREETING",),
    ref="RFC 5321 §4.2.3, §3.8",
)
IDLE_TIMEOUT = _reply(
    421,
    "4.4.2",
    "{hostname} Error: timeout exceeded, closing connection",
    when="the client sent nothing for longer than the idle timeout",
    commands=("ANY",),
    ref="RFC 5321 §4.5.3.2, §3.8",
)
SHUTTING_DOWN = _reply(
    421,
    "4.3.2",
    "{hostname} Service shutting down, closing transmission channel",
    when="the server is shutting down",
    commands=("ANY",),
    ref="RFC 5321 §3.8",
)
SERVICE_NOT_AVAILABLE = _reply(
    421,
    "4.3.2",
    "{hostname} Service not available, closing transmission channel",
    when="a fault rule that closes the session (the server behaves as one going away)",
    commands=("ANY",),
    ref="RFC 5321 §4.2.3, §3.8",
)
HTTP_REQUEST = _reply(
    421,
    "4.7.0",
    "{hostname} Error: an HTTP request is not SMTP, closing connection",
    when="a command line whose verb is an HTTP method (GET, POST, CONNECT, ...): a web page "
    "posting to the SMTP port through a browser, whose body would be read as SMTP commands",
    commands=("ANY",),
    ref="RFC 5321 §3.8, §4.2.3",
)
TOO_MANY_ERRORS = _reply(
    421,
    "4.7.0",
    "{hostname} Error: too many errors, closing connection",
    when=(
        "the client sent too many refused commands in a row (4xx or 5xx; RCPT's 4xx apart), "
        "more than max_junk_commands that move no mail (NOOP, RSET, VRFY, EXPN, HELP, HELO, "
        "EHLO, BDAT 0) without a message, or "
        "a RCPT after max_refused_recipients were refused"
    ),
    commands=("ANY",),
    ref="RFC 5321 §4.2.3",
)
LOCAL_ERROR = _reply(
    451,
    "4.3.0",
    "Error: local error in processing, try again later",
    when="an unexpected internal error while handling the command (logged, never shown)",
    commands=("MAIL", "RCPT", "END_OF_DATA", "BDAT"),
    ref="RFC 5321 §4.2.3",
)
LOCAL_ERROR_CLOSING = _reply(
    421,
    "4.3.0",
    "{hostname} Error: local error in processing, closing connection",
    when="an unexpected internal error that leaves the session unusable",
    commands=("ANY",),
    ref="RFC 5321 §4.2.3",
)
BYE = _reply(
    221,
    "2.0.0",
    "Bye",
    when="reply to QUIT",
    commands=("QUIT",),
    ref="RFC 5321 §4.1.1.10",
)

# --- EHLO / HELO --------------------------------------------------------------------------------

EHLO_OK = _reply(
    250,
    None,
    "{hostname} Hello {client}",
    when="reply to EHLO; one line per service extension follows",
    commands=("EHLO",),
    ref="RFC 5321 §4.1.1.1",
)
HELO_OK = _reply(
    250,
    None,
    "{hostname} Hello {client}",
    when="reply to HELO",
    commands=("HELO",),
    ref="RFC 5321 §4.1.1.1",
)
HELLO_SYNTAX = _reply(
    501,
    "5.5.4",
    "Syntax: {verb} hostname",
    when="EHLO or HELO without a domain or address literal, or with a malformed one",
    commands=("EHLO",),
    ref="RFC 5321 §4.1.1.1",
)

# --- MAIL ---------------------------------------------------------------------------------------

SENDER_OK = _reply(
    250,
    "2.1.0",
    "Ok",
    when="sender accepted",
    commands=("MAIL",),
    ref="RFC 5321 §4.1.1.2",
)
MAIL_SYNTAX = _reply(
    501,
    "5.5.2",
    "Syntax: MAIL FROM:<address> [parameters]",
    when="MAIL without FROM: or without angle brackets",
    commands=("MAIL",),
    ref="RFC 5321 §4.1.1.2",
)
SENDER_SYNTAX = _reply(
    501,
    "5.1.7",
    "{address}: Bad sender address syntax",
    when="the reverse-path is not a valid mailbox",
    commands=("MAIL",),
    ref="RFC 5321 §4.1.2; RFC 3463 X.1.7",
)
NEED_HELLO = _reply(
    503,
    "5.5.1",
    "Error: send HELO/EHLO first",
    when="MAIL before EHLO or HELO",
    commands=("MAIL",),
    ref="RFC 5321 §4.1.4",
)
NESTED_MAIL = _reply(
    503,
    "5.5.1",
    "Error: nested MAIL command",
    when="MAIL inside a mail transaction",
    commands=("MAIL",),
    ref="RFC 5321 §4.1.4",
)
MESSAGE_SIZE_EXCEEDS_LIMIT = _reply(
    552,
    "5.3.4",
    "Message size exceeds fixed maximum message size",
    when="MAIL with SIZE= over the maximum the server advertised",
    commands=("MAIL", "SIZE"),
    ref="RFC 1870 §6.1",
)
SIZE_NOT_NOW = _reply(
    452,
    "4.3.1",
    "Insufficient system storage for a message of that size",
    when="MAIL with SIZE= the server cannot take now, though it could later",
    commands=("MAIL", "SIZE"),
    ref="RFC 1870 §6.1",
)
PARAMETER_UNKNOWN = _reply(
    555,
    "5.5.4",
    "Unsupported parameter: {param}",
    when="a MAIL or RCPT parameter that is not known or not offered in this session",
    commands=("MAIL", "RCPT"),
    ref="RFC 5321 §4.1.1.11, §4.3.2",
)
# A parameter the server knows but whose value is wrong is a syntax error in the arguments
# (501), not one it does not recognise (555): RFC 3461 §4.5 and §5.1 require 501 for a bad or
# repeated RET, ENVID, NOTIFY or ORCPT, and Postfix ("501 5.5.4 Bad message size syntax") and
# go-smtp answer every extension's bad value so.
PARAMETER_MALFORMED = _reply(
    501,
    "5.5.4",
    "Malformed parameter: {param}",
    when="a known MAIL or RCPT parameter with a bad value, or given twice",
    commands=("MAIL", "RCPT"),
    ref="RFC 5321 §4.2.3 (501); RFC 3461 §4.5, §5.1; RFC 1870, 6152, 6531, 4954",
)
NON_ASCII_SENDER = _reply(
    550,
    "5.6.7",
    "{address}: Non-ASCII address needs SMTPUTF8",
    when="MAIL with a sender address with non-ASCII characters, without SMTPUTF8",
    commands=("MAIL",),
    ref="RFC 6531 §3.5 (550 for MAIL); RFC 6531 X.6.7",
)
NON_ASCII_ADDRESS = _reply(
    553,
    "5.6.7",
    "{address}: Non-ASCII address needs SMTPUTF8",
    when="RCPT with an address with non-ASCII characters in a transaction without SMTPUTF8",
    commands=("RCPT",),
    ref="RFC 6531 §3.5 (553 for RCPT); RFC 6531 X.6.7",
)

PRIORITY_CHANGED = _reply(
    250,
    "2.3.6",
    "{priority} Requested priority was changed: {why}",
    when="MAIL with MT-PRIORITY above what this client may ask for (only authenticated users "
    "named in priority_raisers, and relay_networks, may raise it above 0): accepted at the "
    "priority the text begins with",
    commands=("MAIL",),
    ref="RFC 6710 §4.1; RFC 6710 X.3.6",
)
PRIORITY_TOO_LOW = _reply(
    550,
    "5.7.15",
    "Priority level is too low: {what} takes priority {minimum} and above",
    when="MAIL on a listener with a min_priority, or RCPT for a route with one, when the "
    "message's priority (MT-PRIORITY, 0 when absent) is lower",
    commands=("MAIL", "RCPT"),
    ref="RFC 6710 §4.1; RFC 6710 X.7.15",
)
PRIORITY_TOO_LOW_NOW = _reply(
    451,
    "4.7.15",
    "Priority level is too low while the queue is busy ({queued} messages): try again later",
    when="MAIL with a priority below 0 while the queue holds low_priority_queue_limit entries: "
    "only normal and higher priorities are taken until it drains (451, as RFC 5321 §4.3.2 "
    "lets MAIL answer; RFC 6710 allows any 4yz)",
    commands=("MAIL",),
    ref="RFC 6710 §4.1; RFC 6710 X.7.15",
)
TOO_BIG_FOR_PRIORITY = _reply(
    552,
    "5.7.16",
    "Message is too big for the specified priority {priority}: at most {limit} octets",
    when="a message larger than max_size_by_priority allows for its priority: at MAIL when "
    "SIZE says so, else at the end of data",
    commands=("MAIL", "END_OF_DATA", "BDAT"),
    ref="RFC 6710 §4.1; RFC 6710 X.7.16",
)

# --- RCPT ---------------------------------------------------------------------------------------

RECIPIENT_OK = _reply(
    250,
    "2.1.5",
    "Ok",
    when="recipient accepted",
    commands=("RCPT",),
    ref="RFC 5321 §4.1.1.3",
)
RCPT_SYNTAX = _reply(
    501,
    "5.5.2",
    "Syntax: RCPT TO:<address> [parameters]",
    when="RCPT without TO: or without angle brackets",
    commands=("RCPT",),
    ref="RFC 5321 §4.1.1.3",
)
RECIPIENT_SYNTAX = _reply(
    501,
    "5.1.3",
    "{address}: Bad recipient address syntax",
    when="the forward-path is not a valid mailbox",
    commands=("RCPT",),
    ref="RFC 5321 §4.1.2; RFC 3463 X.1.3",
)
NEED_MAIL = _reply(
    503,
    "5.5.1",
    "Error: need MAIL command",
    when="RCPT outside a mail transaction",
    commands=("RCPT",),
    ref="RFC 5321 §4.1.4",
)
TOO_MANY_RECIPIENTS = _reply(
    452,
    "4.5.3",
    "Error: too many recipients",
    when="one recipient more than the per-message limit; the client should send the rest in "
    "another transaction",
    commands=("RCPT",),
    ref="RFC 5321 §4.5.3.1.10",
)
MAILBOX_UNKNOWN = _reply(
    550,
    "5.1.1",
    "{address}: Recipient address rejected: User unknown",
    when="a local recipient that does not exist",
    commands=("RCPT",),
    ref="RFC 5321 §3.3; RFC 3463 X.1.1",
)
RELAY_DENIED = _reply(
    550,
    "5.7.1",
    "{address}: Relay access denied",
    when="a recipient in a domain this server does not serve, from a client that may not relay",
    commands=("RCPT",),
    ref="RFC 5321 §3.6.2, §4.3.2; RFC 3463 X.7.1",
)

USER_NOT_LOCAL_WILL_FORWARD = _reply(
    251,
    "2.1.5",
    "User not local; will forward to {forward_path}",
    when="a recipient the mail server forwards off-site, where policy says to tell the client",
    commands=("RCPT",),
    ref="RFC 5321 §3.4",
)
USER_MOVED = _reply(
    551,
    "5.1.6",
    "User not local; please try {forward_path}",
    when="a recipient configured as moved, with the new address; the server does not forward",
    commands=("RCPT",),
    ref="RFC 5321 §3.4; RFC 3463 X.1.6",
)
DOMAIN_DOES_NOT_ACCEPT_MAIL = _reply(
    556,
    "5.1.10",
    "{address}: Recipient domain has a null MX and does not accept mail",
    when="a recipient whose domain publishes a null MX (RFC 7505)",
    commands=("RCPT",),
    ref="RFC 7504 §4; RFC 7505 §4.2",
)
SENDER_DOMAIN_NULL_MX = _reply(
    550,
    "5.7.27",
    "{address}: Sender domain has a null MX and does not accept mail",
    when="a sender whose domain publishes a null MX, so no bounce could reach it",
    commands=("MAIL",),
    ref="RFC 7505 §4.3; RFC 7504",
)

SENDER_DOMAIN_UNKNOWN = _reply(
    553,
    "5.1.8",
    "{address}: Sender address rejected: Domain not found",
    when="on an mx listener, a sender whose domain has neither MX nor address records (or does "
    "not exist): no report could ever reach it",
    commands=("MAIL",),
    ref="RFC 5321 §5.1, §4.2.3; RFC 3463 X.1.8",
)
SENDER_DOMAIN_UNKNOWN_NOW = _reply(
    451,
    "4.1.8",
    "{address}: Sender address rejected: Domain lookup failed, try again later",
    when="on an mx listener, a sender whose domain DNS cannot answer for now (timeout, SERVFAIL)",
    commands=("MAIL",),
    ref="RFC 5321 §4.2.3; RFC 3463 X.1.8",
)
SENDER_NOT_OWNED = _reply(
    553,
    "5.7.1",
    "{address}: Sender address rejected: not owned by user {user}",
    when="an authenticated user giving a sender address that is not theirs",
    commands=("MAIL",),
    ref="RFC 5321 §4.3.2; RFC 3463 X.7.1",
)
MAILBOX_NAME_NOT_ALLOWED = _reply(
    553,
    "5.1.3",
    "{address}: Recipient address rejected: mailbox name not allowed",
    when="a local recipient whose name policy forbids (a reserved or malformed local part)",
    commands=("RCPT",),
    ref="RFC 5321 §4.2.3; RFC 3463 X.1.3",
)
MAILBOX_FULL = _reply(
    452,
    "4.2.2",
    "{address}: Recipient address rejected: mailbox full",
    when="a local mailbox over its quota, when a full mailbox is treated as temporary "
    "(the default)",
    commands=("RCPT",),
    ref="RFC 5321 §4.2.3; RFC 3463 X.2.2",
)
MAILBOX_FULL_PERMANENT = _reply(
    552,
    "5.2.2",
    "{address}: Recipient address rejected: mailbox full",
    when="a local mailbox over its quota, when a full mailbox is treated as permanent",
    commands=("RCPT",),
    ref="RFC 5321 §4.2.3; RFC 3463 X.2.2",
)
GREYLISTED = _reply(
    450,
    "4.7.1",
    "{address}: Recipient address rejected: Greylisted, try again in {delay} seconds",
    when="the first attempt of an unknown (client, sender, recipient) triple when greylisting "
    "is on",
    commands=("RCPT",),
    ref="RFC 5321 §4.2.3; RFC 6647",
)
RATE_LIMITED = _reply(
    450,
    "4.7.1",
    "Error: too many messages from {client}, slow down",
    when="a recipient from a client over its configured message rate",
    commands=("RCPT",),
    ref="RFC 5321 §4.2.3",
)

# --- RCPT: accounts and lists ------------------------------------------------------------------

MAILBOX_DISABLED = _reply(
    550,
    "5.2.1",
    "{address}: Recipient address rejected: mailbox disabled, not accepting messages",
    when="a local user whose account is disabled (disabled = true)",
    commands=("RCPT",),
    ref="RFC 5321 §4.2.3; RFC 3463 X.2.1",
)
MAILBOX_AMBIGUOUS = _reply(
    550,
    "5.1.4",
    "{address}: Recipient address rejected: ambiguous, it matches the mailboxes of {matches}",
    when="with case-sensitive local parts, a recipient that matches none exactly but several "
    "users that differ only in case",
    commands=("RCPT",),
    ref="RFC 3463 X.1.4",
)
LIST_EXPANSION_FAILED = _reply(
    450,
    "4.2.4",
    "{address}: Recipient address rejected: mailing list expansion problem: {problem}",
    when="a list (an alias with several members) that cannot be expanded: a member that does "
    "not exist, aliases that loop, more members than max_list_members; temporary, so nothing "
    "is lost while the configuration is mended",
    commands=("RCPT",),
    ref="RFC 3463 X.2.4",
)
LIST_MEMBERS_ONLY = _reply(
    550,
    "5.7.2",
    "{address}: Recipient address rejected: only members may post to this list",
    when="a list with members_only = true, from a sender who is not one of its members",
    commands=("RCPT",),
    ref="RFC 3463 X.7.2",
)
MESSAGE_TOO_BIG_FOR_MAILBOX = _reply(
    552,
    "5.2.3",
    "{address}: message exceeds the mailbox's size limit of {limit} octets",
    when="a local user with a max_message_size of their own, lower than the server's: at RCPT "
    "when MAIL declared a larger SIZE, else at the end of data",
    commands=("RCPT", "END_OF_DATA", "BDAT"),
    ref="RFC 1870 §6; RFC 3463 X.2.3",
)

# --- RCPT: RRVS (RFC 7293) ---------------------------------------------------------------------

MAILBOX_OWNER_CHANGED = _reply(
    550,
    "5.7.17",
    "{address}: Recipient address rejected: mailbox owner has changed",
    when="RCPT with RRVS=<date-time> for a mailbox whose present owner has had it only since "
    "a later time ([owned_since])",
    commands=("RCPT",),
    ref="RFC 7293 §3.1, §4; RFC 7293 X.7.17",
)
DOMAIN_OWNER_CHANGED = _reply(
    550,
    "5.7.18",
    "{address}: Recipient address rejected: domain owner has changed",
    when="RCPT with RRVS=<date-time> for a local domain whose present owner has had it only "
    "since a later time ([owned_since])",
    commands=("RCPT",),
    ref="RFC 7293 §3.1, §4; RFC 7293 X.7.18",
)
RRVS_CANNOT_BE_TESTED = _reply(
    550,
    "5.7.19",
    "{address}: Recipient address rejected: RRVS test cannot be completed: {why}",
    when="RCPT with RRVS=<date-time>;R (reject when the test cannot be made) for a mailbox "
    "whose owned-since time was never recorded",
    commands=("RCPT",),
    ref="RFC 7293 §3.1; RFC 7293 X.7.19",
)

# --- RCPT: the mail system ---------------------------------------------------------------------

LOCAL_DOMAIN_WITHOUT_MAILBOXES = _reply(
    451,
    "4.3.5",
    "{address}: Recipient address rejected: {domain} is a local domain without mailboxes; this "
    "server is misconfigured, try again later",
    when="a recipient in a local domain that has no users, no aliases, no lists and no "
    "catch-all: nothing could ever be accepted there (check-config warns of it); temporary, so "
    "nothing is lost while the configuration is mended",
    commands=("RCPT",),
    ref="RFC 3463 X.3.5",
)
QUEUE_CONGESTED = _reply(
    451,
    "4.4.5",
    "Error: mail system congested ({queued} messages queued), try again later",
    when="a recipient whose mail would go to the outbound queue while it holds "
    "max_queued_messages entries",
    commands=("RCPT",),
    ref="RFC 5321 §4.2.3; RFC 3463 X.4.5",
)

# --- DATA and BDAT ------------------------------------------------------------------------------

START_MAIL_INPUT = _reply(
    354,
    None,
    "End data with <CR><LF>.<CR><LF>",
    when="reply to DATA: send the message",
    commands=("DATA",),
    ref="RFC 5321 §4.1.1.4",
)
NEED_RCPT = _reply(
    503,
    "5.5.1",
    "Error: need RCPT command",
    when="DATA or BDAT before any RCPT",
    commands=("DATA", "BDAT"),
    ref="RFC 5321 §4.1.4",
)
NO_VALID_RECIPIENTS = _reply(
    554,
    "5.5.1",
    "Error: no valid recipients",
    when="DATA or BDAT when every RCPT of the transaction was refused",
    commands=("DATA", "BDAT"),
    ref="RFC 5321 §3.3, §4.1.1.4",
)
DATA_NOT_WITH_BINARYMIME = _reply(
    503,
    "5.5.1",
    "Error: BODY=BINARYMIME requires BDAT",
    when="DATA in a transaction whose MAIL said BODY=BINARYMIME",
    commands=("DATA",),
    ref="RFC 3030 §3",
)
DATA_AFTER_BDAT = _reply(
    503,
    "5.5.1",
    "Error: DATA cannot follow BDAT in one transaction",
    when="DATA after a BDAT chunk of the same transaction",
    commands=("DATA",),
    ref="RFC 3030 §2",
)
MESSAGE_ACCEPTED = _reply(
    250,
    "2.0.0",
    "Ok: queued as {queue_id}",
    when="end of data: the message is on disk and fsync'd",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 5321 §4.1.1.4",
)
MESSAGE_TOO_BIG = _reply(
    552,
    "5.3.4",
    "Error: message exceeds fixed maximum message size",
    when="end of data (or a BDAT chunk) after more octets than the size limit; the rest of the "
    "data was read and discarded",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 1870 §6.3; RFC 5321 §4.5.3.1.7",
)
HEADER_TOO_BIG = _reply(
    552,
    "5.3.4",
    "Error: message header exceeds fixed maximum size of {limit} octets",
    when="end of data (or the last BDAT chunk) of a message whose header section (up to its "
    "empty line, or all of it without one) is over the header limit (1 MiB by default, as "
    "Exim's header_maxsize); the rest was read",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 5321 §4.5.3.1.7; RFC 3463 X.3.4",
)
BARE_LINE_ENDING = _reply(
    554,
    "5.6.0",
    "Error: bare <CR> or <LF> in message data (see RFC 5321 section 2.3.8)",
    when="end of data of a message holding a CR or LF that is not part of CRLF (refused to "
    "prevent SMTP smuggling; a setting normalises instead)",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 5321 §2.3.8, §4.1.1.4",
)
TEXT_LINE_TOO_LONG = _reply(
    554,
    "5.6.0",
    "Error: message has a line longer than {limit} octets",
    when="end of data of a message with a text line over the limit (1000 octets with CRLF)",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 5321 §4.5.3.1.6",
)
NUL_IN_MESSAGE = _reply(
    554,
    "5.6.0",
    "Error: NUL character in message data (declare BODY=BINARYMIME for binary content)",
    when="end of data of a message holding a NUL octet, which RFC 5322 forbids in a message "
    "(a next hop that strips NULs could see a line with a lone dot); BINARYMIME content may",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 5322 §2.3, RFC 3030 §3",
)
CHUNK_OK = _reply(
    250,
    "2.0.0",
    "Ok: {size} octets received",
    when="a BDAT chunk that is not the last",
    commands=("BDAT",),
    ref="RFC 3030 §2",
)
BDAT_SYNTAX = _reply(
    501,
    "5.5.4",
    "Syntax: BDAT chunk-size [LAST]",
    when="BDAT without a valid size, or with an argument other than LAST",
    commands=("BDAT",),
    ref="RFC 3030 §2",
)
BDAT_AFTER_DATA = _reply(
    503,
    "5.5.1",
    "Error: BDAT cannot follow DATA",
    when="BDAT after a failed DATA in the same transaction",
    commands=("BDAT",),
    ref="RFC 3030 §2",
)
BDAT_AFTER_FAILED_CHUNK = _reply(
    503,
    "5.5.1",
    "Error: earlier BDAT chunk was refused, send RSET",
    when="BDAT after a chunk of the same transaction was refused",
    commands=("BDAT",),
    ref="RFC 3030 §2",
)
STORE_UNAVAILABLE = _reply(
    451,
    "4.3.0",
    "Error: message store unavailable, try again later",
    when="the message store (a PostgreSQL database) is out of reach: at MAIL while it is known "
    "to be down, or at end of data when the transaction holding the message did not commit; "
    "nothing was stored",
    commands=("MAIL", "END_OF_DATA", "BDAT"),
    ref="RFC 5321 §4.2.3, §6.1",
)
STORE_UNAVAILABLE_CLOSING = _reply(
    421,
    "4.3.2",
    "{hostname} Service not available: message store unreachable, closing transmission channel",
    when="the greeting while the message store (a PostgreSQL database) is out of reach: the "
    "client tries another MX host or later",
    commands=("GREETING",),
    ref="RFC 5321 §3.1, §4.2.3; RFC 3463 X.3.2",
)
MAILBOX_UNAVAILABLE = _reply(
    451,
    "4.2.0",
    "Error: the mailbox of {addresses} cannot take mail now ({why}), try again later",
    when="end of data when one local mailbox cannot be written (its Maildir cannot be made: a "
    "file where its directory should be, a wrong owner) though the store is fine; nothing was "
    "stored",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 5321 §4.2.3; RFC 3463 X.2.0",
)
STORAGE_FULL = _reply(
    452,
    "4.3.1",
    "Error: insufficient system storage",
    when="end of data when the message could not be written for want of room (the disk or a "
    "quota full); nothing was stored",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 5321 §4.2.3; RFC 3463 X.3.1",
)
STORE_WRITE_FAILED = _reply(
    451,
    "4.3.0",
    "Error: the message could not be stored, try again later",
    when="end of data when writing the message failed for another reason than room (an I/O "
    "error, a database that refused it); nothing was stored",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 5321 §4.2.3; RFC 3463 X.3.0",
)

TOO_MANY_HOPS = _reply(
    554,
    "5.4.6",
    "Error: too many hops ({count} Received header fields): routing loop",
    when="end of data of a message with more Received fields than max_received (100, the "
    "'at least 100' of RFC 5321 §6.3): it has gone round in circles",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 5321 §6.3; RFC 3463 X.4.6",
)
MAIL_FLOOD = _reply(
    450,
    "4.7.28",
    "Error: mail flood detected: {count} similar messages to {address} from different senders, "
    "try again later",
    when="end of data of a message that is one of a burst of near-identical messages to one "
    "recipient from many senders (a subscription bomb): more than flood_senders senders within "
    "flood_window",
    commands=("END_OF_DATA", "BDAT"),
    ref="draft-levine-mailbomb-header; IANA registry X.7.28",
)

# --- BURL (RFC 4468) ----------------------------------------------------------------------------

BURL_OK = _reply(
    250,
    "2.5.0",
    "Ok: {size} octets fetched, waiting for more BURL or BDAT",
    when="a BURL that is not the last: its message part was fetched from the IMAP server",
    commands=("BURL",),
    ref="RFC 4468 §3, §6",
)
BURL_SYNTAX = _reply(
    501,
    "5.5.4",
    "Syntax: BURL absolute-URI [LAST]",
    when="BURL without a URL, or with an argument other than LAST",
    commands=("BURL",),
    ref="RFC 4468 §3",
)
IMAP_SERVER_UNAVAILABLE = _reply(
    451,
    "4.4.1",
    "IMAP server unavailable: {why}",
    when="BURL when the IMAP server that holds the message part cannot be reached, or stops "
    "answering",
    commands=("BURL",),
    ref="RFC 4468 §6; RFC 3463 X.4.1",
)
BURL_MESSAGE_TOO_BIG = _reply(
    554,
    "5.3.4",
    "Message too big for system: the message part of {size} octets would pass the limit of {limit}",
    when="BURL whose message part (announced by the IMAP server before it is read) would make "
    "the message larger than the size limit",
    commands=("BURL",),
    ref="RFC 4468 §6; RFC 3463 X.3.4",
)
BURL_CONTENT_NOT_AVAILABLE = _reply(
    554,
    "5.6.6",
    "IMAP URL resolution failed: {why}",
    when="BURL whose URL the IMAP server will not resolve: a bad or expired URLAUTH, a message "
    "that is gone, a URL without URLAUTH",
    commands=("BURL",),
    ref="RFC 4468 §6; RFC 4468 X.6.6",
)
BURL_TRUST_REQUIRED = _reply(
    554,
    "5.7.14",
    "URL resolution requires trust relationship: {why}",
    when="BURL for an IMAP server this server has no trust relationship with: one it is not "
    "configured for, or one that refuses its login",
    commands=("BURL",),
    ref="RFC 4468 §6; RFC 5248 X.7.14",
)
BURL_SCHEME_NOT_SUPPORTED = _reply(
    554,
    "5.3.3",
    "URL scheme {scheme} not supported: this server fetches {schemes} URLs",
    when="BURL with a URL of a scheme this server does not fetch (it offers BURL imap)",
    commands=("BURL",),
    ref="RFC 4468 §3; RFC 3463 X.3.3",
)

# --- RSET, NOOP, HELP, VRFY, EXPN, QUIT ---------------------------------------------------------

RESET_OK = _reply(
    250,
    "2.0.0",
    "Ok",
    when="reply to RSET",
    commands=("RSET",),
    ref="RFC 5321 §4.1.1.5",
)
NOOP_OK = _reply(
    250,
    "2.0.0",
    "Ok",
    when="reply to NOOP",
    commands=("NOOP",),
    ref="RFC 5321 §4.1.1.9",
)
HELP_OK = _reply(
    214,
    "2.0.0",
    "Commands: {commands}",
    when="reply to HELP (with or without a topic)",
    commands=("HELP",),
    ref="RFC 5321 §4.1.1.8",
)
CANNOT_VERIFY = _reply(
    252,
    "2.5.0",
    "Cannot VRFY user, but will accept message and attempt delivery",
    when="reply to VRFY when the server does not reveal its users",
    commands=("VRFY",),
    ref="RFC 5321 §3.5.3, §7.3",
)
CANNOT_EXPAND = _reply(
    252,
    "2.5.0",
    "Cannot EXPN list, but will accept message and attempt delivery",
    when="reply to EXPN when the server does not reveal its lists",
    commands=("EXPN",),
    ref="RFC 5321 §3.5.3, §7.3",
)
VERIFIED = _reply(
    250,
    "2.1.5",
    "{address}",
    when='reply to VRFY for a known user when VRFY is answered (vrfy = "authenticated": to '
    "authenticated users)",
    commands=("VRFY",),
    ref="RFC 5321 §3.5.1",
)
VERIFY_UNKNOWN = _reply(
    550,
    "5.1.1",
    "{address}: Recipient address rejected: User unknown",
    when="reply to VRFY for an unknown user when VRFY is answered",
    commands=("VRFY",),
    ref="RFC 5321 §3.5.1",
)
VERIFY_NEEDS_UTF8 = _reply(
    553,
    "5.6.8",
    "Error: the mailbox's name needs UTF-8; say VRFY {argument} SMTPUTF8",
    when="VRFY (where it is answered) of a mailbox whose name is not ASCII, from a client that "
    "did not give the SMTPUTF8 parameter: the reply would need UTF-8",
    commands=("VRFY",),
    ref="RFC 6531 §3.7.4.2; RFC 6531 X.6.8",
)
VERIFY_DISABLED = _reply(
    502,
    "5.5.1",
    "Error: VRFY command is disabled",
    when="VRFY when the server is configured to refuse it",
    commands=("VRFY",),
    ref="RFC 5321 §3.5.3, §7.3",
)
EXPAND_DISABLED = _reply(
    502,
    "5.5.1",
    "Error: EXPN command is disabled",
    when="EXPN when the server is configured to refuse it",
    commands=("EXPN",),
    ref="RFC 5321 §3.5.3, §7.3",
)
ARGUMENT_REQUIRED = _reply(
    501,
    "5.5.4",
    "Syntax: {verb} {argument}",
    when="VRFY or EXPN without an argument",
    commands=("VRFY", "EXPN"),
    ref="RFC 5321 §4.1.1.6, §4.1.1.7",
)
NO_ARGUMENTS_ALLOWED = _reply(
    501,
    "5.5.4",
    "Syntax: {verb}",
    when="an argument to a command that takes none (DATA, RSET, QUIT, STARTTLS)",
    commands=("DATA", "RSET", "QUIT", "STARTTLS"),
    ref="RFC 5321 §4.1.1; RFC 3207 §4",
)

# --- unknown, unimplemented and malformed commands ----------------------------------------------

UNKNOWN_COMMAND = _reply(
    500,
    "5.5.1",
    "Error: command not recognized",
    when="a verb mailroom does not know",
    commands=("OTHER",),
    ref="RFC 5321 §4.2.4",
)
NOT_IMPLEMENTED = _reply(
    502,
    "5.5.1",
    "Error: command not implemented",
    when="a verb of SMTP mailroom knows but does not implement (TURN, ETRN, SEND, SOML, "
    "SAML, ATRN; BURL where it is not configured)",
    commands=("OTHER",),
    ref="RFC 5321 §4.2.4",
)
LINE_TOO_LONG = _reply(
    500,
    "5.5.2",
    "Error: line too long (limit {limit} octets)",
    when="a command line over the limit (512 octets with CRLF); the session goes on",
    commands=("ANY",),
    ref="RFC 5321 §4.5.3.1.4, §4.2.2",
)
BAD_CHARACTERS = _reply(
    500,
    "5.5.2",
    "Error: command holds NUL, bare CR/LF or bytes that are not valid here",
    when="a command line with NUL, a bare CR, or 8-bit bytes outside an SMTPUTF8 address",
    commands=("ANY",),
    ref="RFC 5321 §2.3.8, §4.1.1; RFC 6531 §3.3",
)

LMTP_HELLO_ON_SMTP = _reply(
    500,
    "5.5.5",
    "Error: LHLO is LMTP (RFC 2033); this server speaks SMTP, say EHLO",
    when="LHLO on an SMTP listener: the client speaks the wrong protocol",
    commands=("OTHER",),
    ref="RFC 2033 §4.1; RFC 3463 X.5.5",
)

# --- STARTTLS -----------------------------------------------------------------------------------

READY_TO_START_TLS = _reply(
    220,
    "2.0.0",
    "Ready to start TLS",
    when="reply to STARTTLS; the TLS handshake follows",
    commands=("STARTTLS",),
    ref="RFC 3207 §4",
)
TLS_ALREADY_ACTIVE = _reply(
    503,
    "5.5.1",
    "Error: TLS already active",
    when="STARTTLS in a session that already uses TLS",
    commands=("STARTTLS",),
    ref="RFC 3207 §4.2",
)
TLS_NOT_AVAILABLE = _reply(
    454,
    "4.7.0",
    "TLS not available due to temporary reason",
    when="STARTTLS when the server has no certificate or the handshake cannot start",
    commands=("STARTTLS",),
    ref="RFC 3207 §4",
)
TLS_REQUIRED = _reply(
    530,
    "5.7.0",
    "Must issue a STARTTLS command first",
    when="any command but NOOP, EHLO, STARTTLS and QUIT when policy requires TLS",
    commands=("ANY_TLS_REQUIRED",),
    ref="RFC 3207 §4",
)
TLS_HANDSHAKE_FAILED = _reply(
    421,
    "4.7.0",
    "{hostname} Error: TLS handshake failed, closing connection",
    when="the TLS handshake after STARTTLS failed; the session cannot go on",
    commands=("ANY",),
    ref="RFC 3207 §4.1",
)

# --- AUTH ---------------------------------------------------------------------------------------

AUTH_CHALLENGE = _reply(
    334,
    None,
    "{challenge}",
    when="a SASL challenge (base64) during AUTH",
    commands=("AUTH",),
    ref="RFC 4954 §4",
)
AUTH_SUCCEEDED = _reply(
    235,
    "2.7.0",
    "Authentication successful",
    when="AUTH completed",
    commands=("AUTH",),
    ref="RFC 4954 §6",
)
AUTH_INVALID_CREDENTIALS = _reply(
    535,
    "5.7.8",
    "Authentication credentials invalid",
    when="AUTH with a wrong username or password",
    commands=("AUTH",),
    ref="RFC 4954 §6",
)
AUTH_ACCOUNT_DISABLED = _reply(
    535,
    "5.7.13",
    "User account disabled; ask your administrator",
    when="AUTH with the right credentials for an account that is disabled (disabled = true); "
    "unlike 535 5.7.8, asking for the password again will not help",
    commands=("AUTH",),
    ref="RFC 4954 §6; RFC 5248 X.7.13",
)
AUTH_MECHANISM_UNKNOWN = _reply(
    504,
    "5.5.4",
    "Unrecognized authentication type",
    when="AUTH with a mechanism the server does not offer",
    commands=("AUTH",),
    ref="RFC 4954 §4",
)
AUTH_ENCRYPTION_REQUIRED = _reply(
    538,
    "5.7.11",
    "Encryption required for requested authentication mechanism",
    when="a plaintext mechanism (PLAIN, LOGIN) before TLS when policy forbids it",
    commands=("AUTH",),
    ref="RFC 4954 §6",
)
AUTH_MECHANISM_TOO_WEAK = _reply(
    534,
    "5.7.9",
    "Authentication mechanism is too weak",
    when="AUTH PLAIN or LOGIN, with the right password, for a user marked strong_auth_only "
    "(SCRAM-SHA-256 only)",
    commands=("AUTH",),
    ref="RFC 4954 §6",
)
AUTH_REQUIRED = _reply(
    530,
    "5.7.0",
    "Authentication required",
    when="MAIL (and later commands) when policy requires AUTH first",
    commands=("ANY_AUTH_REQUIRED",),
    ref="RFC 4954 §6",
)
AUTH_TEMPORARY_FAILURE = _reply(
    454,
    "4.7.0",
    "Temporary authentication failure",
    when="the credential store cannot be read now",
    commands=("AUTH",),
    ref="RFC 4954 §6",
)
AUTH_TOO_MANY_FAILURES = _reply(
    454,
    "4.7.0",
    "Error: too many failed authentications, try again later",
    when="AUTH from a client address with too many recent failures",
    commands=("AUTH",),
    ref="RFC 4954 §6",
)
AUTH_TOO_MANY_FAILURES_CLOSING = _reply(
    421,
    "4.7.0",
    "{hostname} Error: too many failed authentications, closing connection",
    when="instead of the last refusal of a session whose AUTH failed too many times",
    commands=("AUTH",),
    ref="RFC 4954 §6; RFC 5321 §3.8",
)
AUTH_PASSWORD_TRANSITION = _reply(
    432,
    "4.7.12",
    "A password transition is needed",
    when="AUTH SCRAM-SHA-256 for a user who has a password but no SCRAM secret yet: one login "
    "with PLAIN makes it (kept in memory until a restart; `mailroom passwd` writes one)",
    commands=("AUTH",),
    ref="RFC 4954 §6",
)
AUTH_LINE_TOO_LONG = _reply(
    500,
    "5.5.6",
    "Authentication Exchange line is too long",
    when="an AUTH line or SASL response over the limit",
    commands=("AUTH",),
    ref="RFC 4954 §4, §6",
)
AUTH_BAD_BASE64 = _reply(
    501,
    "5.5.2",
    "Cannot Base64-decode Client responses",
    when="a SASL response or initial response that is not valid base64",
    commands=("AUTH",),
    ref="RFC 4954 §4",
)
AUTH_UNEXPECTED_INITIAL_RESPONSE = _reply(
    501,
    "5.7.0",
    "Client initiated Authentication Exchange not allowed for {mechanism}",
    when="an initial response to a mechanism where the server speaks first (CRAM-MD5)",
    commands=("AUTH",),
    ref="RFC 4954 §4",
)
AUTH_CANCELLED = _reply(
    501,
    "5.7.0",
    "Authentication cancelled",
    when="the client answered a challenge with '*'",
    commands=("AUTH",),
    ref="RFC 4954 §4",
)
AUTH_MALFORMED_RESPONSE = _reply(
    501,
    "5.5.2",
    "Malformed authentication response",
    when="a SASL response that decodes but is not what the mechanism expects",
    commands=("AUTH",),
    ref="RFC 4954 §4",
)
AUTH_SYNTAX = _reply(
    501,
    "5.5.4",
    "Syntax: AUTH mechanism [initial-response]",
    when="AUTH without a mechanism or with extra arguments",
    commands=("AUTH",),
    ref="RFC 4954 §4",
)
AUTH_ALREADY_DONE = _reply(
    503,
    "5.5.1",
    "Error: already authenticated",
    when="AUTH after a successful AUTH",
    commands=("AUTH",),
    ref="RFC 4954 §4",
)
TRANSACTION_IN_PROGRESS = _reply(
    503,
    "5.5.1",
    "Error: MAIL transaction in progress",
    when="AUTH or STARTTLS between MAIL and the end of the transaction",
    commands=("AUTH", "STARTTLS"),
    ref="RFC 4954 §4; RFC 3207 §4",
)
AUTH_NOT_ENABLED = _reply(
    503,
    "5.5.1",
    "Error: authentication not enabled",
    when="AUTH on a server or listener with no authentication configured",
    commands=("AUTH",),
    ref="RFC 4954 §4",
)
EHLO_FIRST = _reply(
    503,
    "5.5.1",
    "Error: send EHLO first",
    when="AUTH, STARTTLS or BDAT before EHLO (or after HELO, which negotiates no extensions)",
    commands=("AUTH", "STARTTLS", "BDAT"),
    ref="RFC 5321 §4.1.1.1; RFC 4954 §4; RFC 3030 §2",
)

# --- email authentication (mailroom.policy.authentication; RFC 7372's codes) -------------------

SPF_FAIL = _reply(
    550,
    "5.7.23",
    "{address}: Sender address rejected: SPF of {domain} does not allow {client}{explanation}",
    when="MAIL on an mx listener whose SPF check failed, for a sender domain where SPF is "
    'enforced (spf = "enforce" or spf_enforce_domains) or in a local domain '
    "(spf_enforce_local_domains); explanation is the domain's exp= "
    "text, if any",
    commands=("MAIL",),
    ref="RFC 7208 §8.4; RFC 7372 §3.2",
)
SPF_TEMPERROR = _reply(
    451,
    "4.7.24",
    "{address}: SPF check of {domain} could not be completed ({problem}), try again later",
    when="MAIL where SPF is enforced and the check met a DNS error or ran out of its time "
    "budget (spf_timeout)",
    commands=("MAIL",),
    ref="RFC 7208 §8.6; RFC 7372 §3.2",
)
SPF_PERMERROR = _reply(
    550,
    "5.7.24",
    "{address}: SPF record of {domain} is in error ({problem})",
    when="MAIL where SPF is enforced and the domain's SPF record is unusable (a syntax error, "
    "two records, more than 10 DNS-querying terms or 2 void lookups)",
    commands=("MAIL",),
    ref="RFC 7208 §8.7; RFC 7372 §3.2",
)
IPREV_FAILED = _reply(
    550,
    "5.7.25",
    "Client host {client} rejected: reverse DNS does not confirm it ({problem})",
    when='MAIL on an mx listener with iprev = "require" from a client whose address has no '
    "PTR record, or whose PTR names do not resolve back to it",
    commands=("MAIL",),
    ref="RFC 8601 §3; RFC 7372 §3.3",
)
IPREV_TEMPERROR = _reply(
    451,
    "4.7.25",
    "Reverse DNS of {client} could not be checked ({problem}), try again later",
    when='MAIL with iprev = "require" when the reverse DNS check met a DNS error or ran out '
    "of its time budget (iprev_timeout)",
    commands=("MAIL",),
    ref="RFC 8601 §3; RFC 7372 §3.3",
)
DKIM_NO_PASSING_SIGNATURE = _reply(
    550,
    "5.7.20",
    "Message rejected: mail from {domain} must carry a DKIM signature that passes, "
    "and this one has none",
    when="the end of a message whose From domain is in dkim_required_domains and that has no "
    "DKIM signature, or none that verifies",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 6376 §6.1; RFC 7372 §3.1",
)
DKIM_NO_ACCEPTABLE_SIGNATURE = _reply(
    550,
    "5.7.21",
    "Message rejected: mail from {domain} must carry an acceptable DKIM signature ({reason})",
    when="the end of a message from a domain in dkim_required_domains whose signatures verify "
    "but are not acceptable: rsa-sha1, an RSA key under 1024 bits, past its x= expiry",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 6376 §6.1; RFC 8301; RFC 7372 §3.1",
)
DKIM_NO_AUTHOR_SIGNATURE = _reply(
    550,
    "5.7.22",
    "Message rejected: mail from {domain} must carry a DKIM signature of {domain}, "
    "and its passing signatures are by {signers}",
    when="the end of a message from a domain in dkim_required_domains whose passing DKIM "
    "signatures are all by other domains",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 6376 §6.1; RFC 7372 §3.1",
)
DKIM_TEMPERROR = _reply(
    451,
    "4.7.20",
    "DKIM signatures of {domain} could not be verified now ({reason}), try again later",
    when="the end of a message from a domain in dkim_required_domains when its signing key "
    "could not be fetched (a DNS error, or dkim_timeout ran out)",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 6376 §6.1.2; RFC 7372 §3.1",
)
DMARC_REJECTED = _reply(
    550,
    "5.7.26",
    "Message rejected: {domain} asks receivers to reject mail that fails DMARC, and this "
    "message has no aligned SPF or DKIM pass",
    when="the end of a message whose From domain publishes DMARC p=reject (or sp=reject) and "
    'that fails DMARC (dmarc = "enforce", the default); quarantine goes to the Junk folder',
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 7489 §6.6.2, §10.3; RFC 7372 §3.4",
)
DMARC_TEMPERROR = _reply(
    451,
    "4.7.26",
    "DMARC check of {domain} could not be completed ({reason}), try again later",
    when="the end of a message whose DMARC result could not be known (the policy record, an "
    "SPF or a DKIM lookup met a DNS error or ran out of its time budget) while the domain's "
    "policy, or not knowing it, might mean a refusal",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 7489 §6.6.2, §6.6.3; RFC 7372 §3.4",
)
ARC_VALIDATION_FAILED = _reply(
    550,
    "5.7.29",
    "Message rejected: it fails the DMARC policy of {domain}, and the ARC chain of "
    "{sealer} it relies on does not validate ({reason})",
    when="the end of a message that fails DMARC p=reject and carries an ARC set from a "
    "trusted forwarder (trusted_arc_sealers) whose chain is broken",
    commands=("END_OF_DATA", "BDAT"),
    ref="RFC 8617 §7.2, §11 (X.7.29)",
)

# --- built from the module: name → template ------------------------------------------------------

CATALOGUE: dict[str, ReplyTemplate] = {}
for _name, _value in list(globals().items()):
    if isinstance(_value, ReplyTemplate):
        object.__setattr__(_value, "name", _name)
        CATALOGUE[_name] = _value
del _name, _value


def by_name(name: str) -> ReplyTemplate:
    return CATALOGUE[name]


# Replies of common-replies.csv (the replies most met in the field) that mailroom never sends,
# and why. Keyed by (basic code, enhanced code or None).
NOT_SENT: dict[tuple[int, str | None], str] = {
    (211, None): "System status: mailroom answers HELP with 214 and has no status command.",
    (240, None): "Defined by no RFC (some references list it for QUIT); QUIT gets 221 2.0.0.",
    (455, None): "Parameters valid but not accommodated now: every parameter mailroom "
    "advertises it can always accommodate (a SIZE it cannot take now gets 452 4.3.1, RFC 1870).",
    (523, "5.7.10"): "Encryption needed: 523 is a registry-only basic code no RFC defines as a "
    "reply; mailroom asks for TLS with 530 5.7.0 (RFC 3207) and for AUTH encryption with "
    "538 5.7.11 (RFC 4954), and writes 5.7.10 only into the report of a REQUIRETLS message "
    "whose TLS failed (RFC 8689 §4.2.1).",
}
