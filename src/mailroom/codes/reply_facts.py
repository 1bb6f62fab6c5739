"""The facts a classifier reads from a reply: its codes, the command it answered, and which
words are the remote server's own.

A reply reaches :func:`mailroom.codes.classify` as a parsed :class:`~mailroom.codes.Reply`
or as text: a reply as received, or a bounce's diagnostic, often wrapped in the words of the
MTA that reported it (Postfix ``host mx.example.net[192.0.2.1] said: … (in reply to RCPT TO
command)``, Exim ``SMTP error from remote mail server after RCPT TO:<bob@example.net>: …``,
qmail ``… did not like our RCPT TO: …``, Sendmail's transcript ``>>> RCPT To:<…> <<< 550 …``,
Exchange ``Remote Server returned '550 5.1.1 …'``, Gmail ``The error that the other server
returned was: …``). :func:`read_facts` separates the two — the *inner* reply is the remote
server's text, from its code onwards — and reads the command from the wrapper, or failing
that from the shape of the inner reply itself (Postfix's ``Recipient address rejected`` is
only ever said to RCPT).

Pure: no I/O.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from mailroom.codes.enhanced import EnhancedStatus
from mailroom.codes.reply import Reply, ReplyError

__all__ = ["MAX_TEXT", "ReplyFacts", "read_facts"]


@dataclass(frozen=True, slots=True)
class ReplyFacts:
    """What one reply says before any judgement: lower-cased text, codes and command."""

    text: str  # the whole text, lower-cased, whitespace collapsed
    inner: str  # the remote server's own reply, as far as it can be told apart
    code: int | None  # the basic code (RFC 5321), if any
    status: EnhancedStatus | None  # the enhanced code (RFC 3463), if any
    command: str | None  # MAIL, RCPT, DATA, HELO or CONNECT, when known
    command_from: str  # how it is known: "caller", "wrapper", "local", "reply" or ""

    @property
    def wrapper(self) -> str:
        """The reporting MTA's words around the inner reply (empty when there are none)."""
        start = self.text.find(self.inner) if self.inner else -1
        return self.text[:start] if start > 0 else ""


# A code where a reply's code can stand: not inside a word, a number, an address or a URL.
_NOT_BEFORE = r"(?<![\w.\-/@=&%+$#?])"
# "550 5.1.1", "550-5.1.1", "550: 5.1.1", "550 #5.1.1": a basic code with its enhanced code.
_PAIR = re.compile(
    _NOT_BEFORE + r"([245][0-5]\d)[ \-:]+(?:[#:]\s*)?([245])\.(\d{1,3})\.(\d{1,3})(?![\w.]?\d)"
)
_STATUS = re.compile(r"(?<![\w.\-/=])([245])\.(\d{1,3})\.(\d{1,3})(?![\w]|\.\d)")
_BASIC = re.compile(_NOT_BEFORE + r"([245][0-5]\d)(?![\d%]|\.\d|:\w)")
# Where a reporting MTA hands over to the remote server's words. The runs before the colon
# are possessive ("++", "*+": each can only end at the next ":" or ">") and bounded (Exim's
# "after pipelined MAIL FROM:<address> SIZE=1234" is far shorter). Without that a text with
# no colon had every way of sharing a run between "[^:]+", "[^:]*" and "\s*" tried, from
# each "after" to the end: the time grew with the cube of the text (3,000 characters: 2 s).
_MARKERS = re.compile(
    r"(?:said|the response from the remote server was|the error that the other server returned "
    r"was|remote server returned|the response was|remote host said|did not like our "
    r"[a-z ]{1,100}+|smtp error from remote mail server after [^:]{1,100}+"
    r"(?::<[^>]{0,300}+>)?[^:]{0,100}+)\s*:\s*|"
    # Exchange 2003: "5.1.0 - Unknown address error 550-'5.7.1 … Access denied'": its own
    # category, then the remote reply in quotes.
    r"\b(?:unknown address|smtp protocol returned a permanent) error\s*(?:\d{3}-)?'"
)
# The command a reply answered, as the reporting MTA says it. Postfix: "(in reply to RCPT TO
# command)", and for a lost connection "while sending RCPT TO", "while performing the EHLO
# handshake"; Exim: "after RCPT TO:<…>", "after pipelined MAIL FROM", "after initial
# connection" (GMX's: "after RCPT command", 1&1's "for TEXT command", the message text);
# qmail: "did not like our RCPT TO"; Sendmail's transcript: ">>> RCPT To:<…>"; Office 365's
# "5.1.351 Remote server returned unknown recipient or mailbox unavailable -> 550 …";
# Yahoo's and others' tags "[RCPT_TO]"; Postfix's greeting refusal: "refused to talk to me";
# m-FILTER's section "-------SMTP command" with the command below it; "SMTP Server <…> refused
# to accept your message (DATA)", in a counted list of errors; Sendmail's transcript with a
# reply before any command ("... while talking to mx.example.org.: <<< 554 …"): the greeting.
_WRAPPER_COMMANDS = (
    (
        re.compile(
            r"in reply to (?:the )?(?:rcpt to|rcpt)\b|after (?:pipelined )?rcpt to\b|"
            r"did not like our rcpt|>>> rcpt to|\[rcpt.to\]|does not like recipient|"
            r"smtp:rcpt\b|following rcpt command|most progress was rcpt|"
            r"all rcpt commands were rejected|recipients? (?:was|were) rejected by (?:a |the )?"
            r"remote|after rcpt command|while sending rcpt to|remote server returned unknown "
            r"recipient|(?<!-)-{3,} ?smtp command rcpt|"
            r"refused to accept your message \(rcpt(?: to)?\)"
        ),
        "RCPT",
    ),
    (
        re.compile(
            r"in reply to (?:the )?(?:mail from|mail)\b|after (?:pipelined )?mail from\b|"
            r"did not like our mail|>>> mail from|\[mail.from\]|but sender was rejected|"
            r"while sending mail from|(?<!-)-{3,} ?smtp command mail|"
            r"refused to accept your message \(mail(?: from)?\)"
        ),
        "MAIL",
    ),
    (
        re.compile(
            r"in reply to (?:the )?(?:end of data|data)\b|after (?:pipelined )?(?:end of )?data\b|"
            r"did not like our (?:final )?data|failed after i sent the message|>>> data\b|"
            r"\[data\]|after (?:the )?end of data|failed on data command|error after bdat|"
            r"after pipelined sending data|after sending data block|while sending (?:message "
            r"body|end of data|data command)|for text command|(?<!-)-{3,} ?smtp command data\b|"
            r"refused to accept your message \(data\)"
        ),
        "DATA",
    ),
    (
        re.compile(
            r"in reply to (?:the )?(?:helo|ehlo|lhlo)\b|after (?:helo|ehlo|lhlo)\b|but my name "
            r"was rejected|while performing the (?:helo|ehlo|lhlo) handshake"
        ),
        "HELO",
    ),
    (
        re.compile(
            r"refused to talk to me|after initial connection|in response to initial "
            r"connection|\bgreeting\b|not accepting connections|connected to \S+ but "
            r"(?:greeting|connection) (?:failed|was rejected)|while talking to [^:<>]+:\s*<<<"
        ),
        "CONNECT",
    ),
)
# A transcript whose last reply refuses DATA for want of a recipient ("503 need RCPT", "554 no
# valid recipients", "503 no recipients specified"): the DATA that followed had no recipient
# left, so the refusal before it answered RCPT (RFC 5321 §3.3: DATA is refused when no RCPT
# succeeded). A report that names DATA as the last command is right about the session and
# wrong about the failure, so this is read before the command a caller gives.
_RCPT_BEFORE_REFUSED_DATA = re.compile(
    r"\b[45]\d\d\b.{1,300}\b(?:503[ -][\d.]*\s*(?:error: )?(?:need rcpt|rcpt first|"
    r"no recipients|bad sequence)|valid rcpt command must precede data|"
    r"554[ -][\d.]*\s*(?:error: )?no valid recipients)"
)
# Gmail's reports end with the state of its session: "… User unknown (state 14)."
_GMAIL_STATES = {"6": "MAIL", "8": "AUTH", "9": "AUTH", "12": "AUTH", "13": "HELO"}
_GMAIL_STATES |= {"14": "RCPT", "15": "DATA", "17": "DATA", "18": "DATA"}
_GMAIL_STATE = re.compile(r"\(state (\d+)\)\.?$")
# The command as the remote server's reply itself shows it (RFC 5321 §4.2: replies to RCPT
# name the recipient; Postfix says which address was refused, "<bob@…>: User unknown" as
# Sendmail's "<bob@…>... User unknown"; "need RCPT command").
_REPLY_COMMANDS = (
    (
        re.compile(
            r"recipient (?:address )?rejected|<[^<>@\s]+@[^<>\s]+>(?:\.\.\.|:) user unknown"
        ),
        "RCPT",
    ),
    (re.compile(r"sender address rejected"), "MAIL"),
    # "550 : User unknown": a refusal naming no address came after the message, for all of
    # the recipients at once (au/KDDI and Oracle Messaging Server reply so to DATA).
    (re.compile(r"^[45]\d\d:?\s*:\s*user unknown"), "DATA"),
)


# A local delivery agent's own words ("mail.local: unknown user: bob", Postfix local(8)'s
# 'unknown user: "bob"', "Unknown user: bob@example.org"): it looked up the mailbox it names
# itself, no filter stood between.
_LOCAL_AGENT = re.compile(r"\bmail\.local:|unknown user: (?:\"|[^\s\"@:]+@[\w.\-]+)")
# What reporting MTAs append after the remote reply: their own verdict on the queue, not the
# remote server's words (qmail, Sendmail).
# (The whitespace before a trailer is taken from its start only, "(?<!\s)": tried again at
# every blank of a long run, it would cost time growing with the square of the run.)
_TRAILERS = re.compile(
    r"(?<!\s)\s*(?:/?i'm not going to try again; this message has been in the queue too long\.?|"
    r"message could not be delivered for [^.]*?(?=message will be deleted|$)|"
    r"message will be deleted from queue\.?)"
)


def _says_little(status: EnhancedStatus) -> bool:
    return (status.subject, status.detail) == (0, 0) or str(status) == "4.4.7"


def _status_of(match: re.Match[str], first: int) -> EnhancedStatus | None:
    try:
        return EnhancedStatus(int(match[first]), int(match[first + 1]), int(match[first + 2]))
    except ValueError:
        return None


# The names a caller may give a command by, as this module names them.
_COMMAND_NAMES = {"EHLO": "HELO", "LHLO": "HELO", "CONN": "CONNECT", "BDAT": "DATA"}


def _command(text: str, inner: str, given: str | None, local_agent: bool) -> tuple[str | None, str]:
    if given:
        name = given.strip().upper().split(" ")[0]
        name = _COMMAND_NAMES.get(name, name)
        if name == "DATA" and _RCPT_BEFORE_REFUSED_DATA.search(text):
            return "RCPT", "wrapper"
        return name, "caller"
    if local_agent:
        return "RCPT", "local"
    if _RCPT_BEFORE_REFUSED_DATA.search(text):
        return "RCPT", "wrapper"
    for pattern, name in _WRAPPER_COMMANDS:
        if pattern.search(text):
            return name, "wrapper"
    state = _GMAIL_STATE.search(text)
    if state is not None and state[1] in _GMAIL_STATES:
        return _GMAIL_STATES[state[1]], "wrapper"
    for pattern, name in _REPLY_COMMANDS:
        if pattern.search(inner):
            return name, "reply"
    return None, ""


# The most of a text that is read. No reply or diagnostic comes near it (the longest in every
# corpus here, bounces included, is 2,948 characters); it bounds the time a text a stranger
# wrote can take (the phrase families take time in proportion to the text, about 15 µs a
# character when nothing matches early).
MAX_TEXT = 16 * 1024


def read_facts(
    reply: Reply | str | bytes,
    command: str | None = None,
    code_hint: int | None = None,
    status_hint: EnhancedStatus | str | None = None,
) -> ReplyFacts:
    """Read the codes, the command and the inner reply from ``reply``.

    Codes in the text come first; ``code_hint`` and ``status_hint`` (a DSN's ``Status:`` field,
    say) fill gaps only. A 2yz or 3yz number in free text is more likely a port or a count than
    a reply, so only 4yz and 5yz are taken from free text without an enhanced code beside them.
    """
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
        prefix = f"{code} {status} " if status else f"{code} "
        raw = prefix + " ".join(reply.lines)
        inner_start = 0  # a reply as received: all of it is the server's own words
    else:
        raw = reply
    text = " ".join(raw.split()).lower()[:MAX_TEXT]
    if isinstance(reply, Reply) and 300 <= reply.code < 400:
        # An intermediate reply (354 "end data with …") is never the failure: read on.
        text, code, status, inner_start = text[len(prefix) :], None, None, None
    markers = list(_MARKERS.finditer(text))
    after_marker = markers[-1].end() if markers else 0
    pair = _PAIR.search(text, after_marker) or _PAIR.search(text)
    if pair is not None and code is None:
        code = int(pair[1])
        status = _status_of(pair, 2)
        inner_start = pair.start()
    if code is None:
        basics = [int(m[1]) for m in _BASIC.finditer(text) if m[1][0] in "45"]
        permanent = [c for c in basics if c >= 500]
        code = permanent[0] if permanent else (basics[0] if basics else None)
    if status is None:
        # The remote server's own code (after the reporting MTA's words) before the MTA's.
        found = [
            s
            for m in (*_STATUS.finditer(text, after_marker), *_STATUS.finditer(text))
            if (s := _status_of(m, 1)) is not None
        ]
        matching = [s for s in found if code is None or s.status_class == code // 100]
        status = matching[0] if matching else (found[0] if found and code is None else None)
    if status is not None and _says_little(status):
        # "550 5.0.0 … (#5.1.1)": a specific code further on says more than X.0.0 (or than
        # 4.4.7, "delivery time expired", which any retry that ends says).
        specific = [
            s
            for m in _STATUS.finditer(text)
            if (s := _status_of(m, 1)) is not None
            and s.status_class == status.status_class
            and not _says_little(s)
        ]
        status = specific[0] if specific else status
    if code is None and code_hint is not None and 200 <= code_hint <= 599:
        code = code_hint
    if status is None and status_hint is not None:
        if isinstance(status_hint, str):
            with contextlib.suppress(ValueError):
                status = EnhancedStatus.parse(status_hint)
        else:
            status = status_hint
    if inner_start is None and code is not None:
        basic = re.compile(_NOT_BEFORE + str(code) + r"(?![\d%]|\.\d)")
        found_code = basic.search(text, after_marker) or basic.search(text)
        inner_start = found_code.start() if found_code else None
    if inner_start is None:
        inner_start = after_marker
    local = _LOCAL_AGENT.search(text)
    if local is not None and local.start() < inner_start:
        # The local delivery agent's words before the reply that passes them on (Sendmail's
        # transcript: "mail.local: unknown user: bob", then "554 <bob@…>... Service
        # unavailable"): the agent looked the mailbox up, its words are the reply's own.
        inner_start = local.start()
    inner = _TRAILERS.sub("", text[inner_start:]).strip()
    found_command, command_from = _command(text, inner, command, local is not None)
    return ReplyFacts(text, inner, code, status, found_command, command_from)
