"""The readers of gateways' and vendors' fewer words in their bounces, and the last resorts.

Each reader takes the report's text and gives (address, what the text says of it) for each
recipient it names, or nothing when the text is not in its shape. The shapes, in the order
tried: ``--- The following addresses had delivery errors ---`` and each address with its reason
beside it; a list of addresses and one reason under a heading below it (``because:``,
``Technical details:``), or above it (``because of`` … ``The following recipients were
affected:``); ``N error(s):`` with a sentence per recipient; ``Recipient: <address>`` with its
dialogue; Apache James's ``Error message below:``; m-FILTER's ``-------server message``; Lotus
Notes' ``Failure Reasons`` with each reason above its address; InterScan's ``Sent <<< RCPT TO:``
/ ``Received >>>``; IMail's ``undeliverable to`` line; Smail's ``Failed addresses follow:``;
Zoho's ``[Status: Error, Address: <…>, ResponseCode 421, …]``; and last, any "could not be
delivered to" with the addresses below it, or a report that opens with ``reason: address``; or,
last of all, addresses alone in brackets and the report's English sentences around them (EZweb),
or a list of the addresses that failed with no reason anywhere.

:data:`UNDELIVERED_TO` (the sentence "could not be delivered to") also tells a bounce by its
words in :func:`mailroom.bounces.text_formats.is_bounce_text`.
"""

from __future__ import annotations

import re

from mailroom.bounces.text_words import ADDRESS, blocks_after, entries

__all__ = [
    "UNDELIVERED_TO",
    "bracketed_status",
    "bracketed_with_sentences",
    "errors_counted",
    "failed_addresses_follow",
    "failed_list_alone",
    "failure_reasons",
    "had_errors",
    "james",
    "reason_above",
    "reason_below",
    "reason_then_address",
    "recipient_dialogues",
    "sent_received",
    "server_message",
    "undeliverable_to",
]


# -- a heading, then each address with its reason on the same line ---------------------------

_HAD_ERRORS = re.compile(
    r"^[ \t]*-+ ?the following addresses? had delivery (?:errors|problems) ?-+[ \t]*\n",
    re.IGNORECASE | re.MULTILINE,
)
_ADDRESS_AND_REASON = re.compile(
    rf"^[ \t]*<?({ADDRESS})>?[ \t]+(?:\[([^\]\n]+)\]|\(([^)\n]+)\))[ \t]*$", re.IGNORECASE
)


def had_errors(text: str) -> list[tuple[str, str]]:
    """Sendmail-like gateways' list under "--- The following addresses had delivery errors
    ---": each address with its reason beside it, in brackets or parentheses."""
    rest = blocks_after(text, _HAD_ERRORS)
    if rest is None:
        return []
    found = []
    for line in rest.splitlines():
        entry = _ADDRESS_AND_REASON.match(line)
        if entry is not None:
            found.append((entry[1], entry[2] or entry[3]))
        elif found and not line.strip():
            break
    return found


# -- the addresses, then a heading and the reason below it -------------------------------------

# The sentence before the list of addresses that failed, and the heading above their reason.
_FAILED_TO = re.compile(
    rf"(?:unable to deliver (?:the )?message to|following address(?:es)? (?:failed|had "
    rf"delivery problems)|was not delivered to|following recipients? (?:failed permanently|"
    rf"was aborted after[^:\n]*))"
    rf"[ \t:\-]*\n?\s*((?:[ \t]*(?:\*[ \t]*)?<?{ADDRESS}>?[ \t]*(?:\n|\Z)(?:[ \t]*\n)*)+)",
    re.IGNORECASE,
)
_REASON_HEADING = re.compile(
    r"^(?:[^\n]*for the following reason|[ \t]*because|[ \t=\-]*technical details|"
    r"[ \t\-]*non-delivered information)[ \t:=\-]*$",
    re.IGNORECASE | re.MULTILINE,
)
_RULE = re.compile(r"^[ \t]*(?:[=\-*_]{3,}[ \t]*)?$")


def reason_below(text: str) -> list[tuple[str, str]]:
    """A few gateways' words: the addresses that failed ("Unable to deliver message to:
    <bob@…>" (MailFoundry), "The following address failed:" (1&1), "was not delivered to:"
    (Lotus Domino), "Delivery to the following recipients failed permanently: * bob@…"), then
    one reason for them in the paragraph below a heading ("… for the following reason:",
    "because:", "Technical details:", "----- Non-delivered information -----")."""
    failed = _FAILED_TO.search(text)
    if failed is None:
        return []
    heading = _REASON_HEADING.search(text, failed.end())
    if heading is None:
        return []
    paragraph: list[str] = []
    for line in text[heading.end() :].splitlines():
        if _RULE.match(line):
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    said = " ".join(paragraph)
    return [(m[0], said) for m in re.finditer(ADDRESS, failed[1], re.IGNORECASE)]


# -- "Recipient: <address>" and the dialogue below it -----------------------------------------

_RECIPIENT_LABEL = re.compile(
    rf"^[ \t]*recipient:[ \t]*<?({ADDRESS})>?[ \t]*\n((?:[ \t]*(?:>>>|<<<)[^\n]*(?:\n|\Z))+)",
    re.IGNORECASE | re.MULTILINE,
)


def recipient_dialogues(text: str) -> list[tuple[str, str]]:
    """EZweb's (au's) report: each "Recipient: <bob@…>" with the command and the remote
    reply below it (">>> RCPT TO:<bob@…>", "<<< 550 … User unknown")."""
    return [(m[1], " ".join(m[2].split())) for m in _RECIPIENT_LABEL.finditer(text)]


# -- Apache James: "Error message below:" and the recipient in the message details -------------

_JAMES_ERROR = re.compile(
    r"^error message below:[ \t]*\n(.*?)(?:\n[ \t]*\n|\Z)", re.I | re.M | re.S
)
_JAMES_RCPT = re.compile(rf"^[ \t]*rcpt to:[ \t]*<?({ADDRESS})>?[ \t]*$", re.I | re.M)


def james(text: str) -> list[tuple[str, str]]:
    """Apache James's bounce: the remote reply under "Error message below:", the recipients
    in "RCPT TO:" lines of its "Message details"."""
    error = _JAMES_ERROR.search(text)
    if error is None:
        return []
    said = " ".join(error[1].split())
    return [(m[1], said) for m in _JAMES_RCPT.finditer(text, error.end())]


# -- m-FILTER: the addresses, then "-------server message" -------------------------------------

_SERVER_MESSAGE = re.compile(
    r"^-{3,} ?server message[ \t]*\n(.*?)(?:\n[ \t]*\n|\n-{3,}|\Z)", re.I | re.M | re.S
)


def server_message(text: str) -> list[tuple[str, str]]:
    """m-FILTER's report: the addresses alone on their lines, then the remote reply under
    "-------server message" (and the command under "-------SMTP command")."""
    reply = _SERVER_MESSAGE.search(text)
    if reply is None:
        return []
    said = " ".join(reply[1].split())
    command = _SMTP_COMMAND.search(text, reply.end())
    if command is not None:
        # The section as written, the command the reply answered: "-------SMTP command DATA".
        said = f"{said} -------SMTP command {command[1]}"
    before = text[: reply.start()]
    return [(m[1], said) for m in re.finditer(_ALONE.pattern, before, re.I | re.M)]


_SMTP_COMMAND = re.compile(r"^-{3,} ?smtp command[ \t]*\n[ \t]*(\S[^\n]*)", re.I | re.M)


# -- InterScan MSS: "Sent <<< RCPT TO:<…>" / "Received >>> 550 …" ------------------------------

_SENT_RECEIVED = re.compile(
    rf"^[ \t]*sent <<< rcpt to:[ \t]*<?({ADDRESS})>?[^\n]*\n"
    rf"((?:[ \t]*received >>> [^\n]*(?:\n|\Z))+)",
    re.IGNORECASE | re.MULTILINE,
)


def sent_received(text: str) -> list[tuple[str, str]]:
    """InterScan MSS's transcript, its arrows the other way round from Sendmail's: "Sent <<<
    RCPT TO:<bob@…>" and the remote reply as "Received >>> 550 5.1.1 … user unknown"."""
    return [
        (m[1], " ".join(f"{m[0].splitlines()[0]} {m[2]}".split()))
        for m in _SENT_RECEIVED.finditer(text)
    ]


# -- IMail: "undeliverable to bob@…" and the response below ---------------------------------

_UNDELIVERABLE_TO = re.compile(
    rf"^[ \t]*undeliverable to <?({ADDRESS})>?[ \t]*\n", re.IGNORECASE | re.MULTILINE
)


def undeliverable_to(text: str) -> list[tuple[str, str]]:
    """IMail's notice: "undeliverable to bob@…" on a line of its own, each address so, then
    what the remote server said ("Body of message generated response:" and its reply
    lines), up to the original message."""
    found = []
    for match, entry in entries(_UNDELIVERABLE_TO, text):
        said = _PASTED_AFTER.split(entry, maxsplit=1)[0]
        found.append((match[1], " ".join(said.split())))
    return found


# -- Smail: "|---- Failed addresses follow: ----|", "address ... reason" ---------------------

_FAILED_ADDRESSES_FOLLOW = re.compile(
    r"^\|?-+ ?failed addresses follow:? ?-+\|?[ \t]*\n", re.IGNORECASE | re.MULTILINE
)
_DOTS_REASON = re.compile(rf"^[ \t]*<?({ADDRESS})>? \.\.\. ([^\n]+)$", re.IGNORECASE)


def failed_addresses_follow(text: str) -> list[tuple[str, str]]:
    """Smail's sections between rules: under "Failed addresses follow:" one "bob@… ...
    reason" line per address, up to the next rule ("Message text follows:")."""
    rest = blocks_after(text, _FAILED_ADDRESSES_FOLLOW)
    if rest is None:
        return []
    found = []
    for line in rest.splitlines():
        if line.lstrip().startswith(("|-", "--")):
            break
        entry = _DOTS_REASON.match(line)
        if entry is not None:
            found.append((entry[1], entry[2].strip()))
    return found


# -- Zoho's bracketed entries: "[Status: Error, Address: <…>, ResponseCode 421, , reason]" -----

_BRACKETED_STATUS = re.compile(
    rf"^[ \t]*\[status: [^,\]]*, address: <?({ADDRESS})>?, responsecode (\d{{3}})[ ,]*"
    rf"([^\]]*)\]",
    re.IGNORECASE | re.MULTILINE,
)


def bracketed_status(text: str) -> list[tuple[str, str]]:
    """Zoho's list (of fatal errors, or a delay's): one bracketed entry per address with the
    remote reply's code and words."""
    return [(m[1], f"{m[2]} {m[3].strip()}") for m in _BRACKETED_STATUS.finditer(text)]


# -- Lotus Notes' SMTP MTA: "------- Failure Reasons --------", each reason above its address --

_FAILURE_REASONS = re.compile(
    r"^-+[ \t]*failure reasons[ \t]*-+[ \t]*\n", re.IGNORECASE | re.MULTILINE
)


def failure_reasons(text: str) -> list[tuple[str, str]]:
    """Lotus Notes' SMTP MTA: under "------- Failure Reasons --------", the reason on its line
    ("User not listed in public Name & Address Book", or in Japanese) and the address alone on
    the next, up to "------- Returned Message --------"."""
    rest = blocks_after(text, _FAILURE_REASONS)
    if rest is None:
        return []
    found = []
    reason: list[str] = []
    for line in rest.splitlines():
        if line.startswith("---"):
            break
        alone = _ALONE.match(line)
        if alone is not None:
            found.append((alone[1], " ".join(reason)))
            reason = []
        elif line.strip():
            reason.append(line.strip())
    return found


# -- a counted list of errors, one sentence per recipient ----------------------------------------

_ERRORS_COUNTED = re.compile(r"^[ \t]*\d+ error\(s\):[ \t]*\n", re.IGNORECASE | re.MULTILINE)


def errors_counted(text: str) -> list[tuple[str, str]]:
    """ "1 error(s):" and below it one sentence per recipient that names it and the reply
    ("SMTP Server <…> rejected recipient <bob@…> (Error following RCPT command). It
    responded as follows: [550 5.1.1 User unknown]")."""
    rest = blocks_after(text, _ERRORS_COUNTED)
    if rest is None:
        return []
    found = []
    for paragraph in re.split(r"\n[ \t]*\n", rest.strip("\n")):
        named = re.search(ADDRESS, paragraph, re.IGNORECASE)
        if named is None:
            break
        found.append((named[0], " ".join(paragraph.split())))
    return found


# -- the reason first, then the recipients it affected ------------------------------------------

_BECAUSE_OF = re.compile(r"^[^\n]*\bbecause of:?[ \t]*\n", re.IGNORECASE | re.MULTILINE)
_AFFECTED = re.compile(
    rf"^[^\n]*the following recipients? (?:were|was) affected:[ \t]*\n"
    rf"((?:[ \t]*<?{ADDRESS}>?[ \t]*(?:\n|\Z))+)",
    re.IGNORECASE | re.MULTILINE,
)


def reason_above(text: str) -> list[tuple[str, str]]:
    """MailMarshal's order: "Could not be delivered because of", the reason, then "The
    following recipients were affected:" and the addresses."""
    because = _BECAUSE_OF.search(text)
    if because is None:
        return []
    affected = _AFFECTED.search(text, because.end())
    if affected is None:
        return []
    said = " ".join(text[because.end() : affected.start()].split())
    return [(m[0], said) for m in re.finditer(ADDRESS, affected[1], re.IGNORECASE)]


# -- the common last resort: "could not be delivered to" and the addresses below ----------------

UNDELIVERED_TO = re.compile(
    r"(?:could not|couldn't|cannot|can't|was not|wasn't) be delivered to(?: the following "
    r"(?:recipients?|address(?:es)?)(?:\([a-z]*\))?)?|did not reach the following "
    r"recipient(?:s|\(s\))?|unable to deliver (?:your )?(?:message|mail) to"
    r"(?: the following (?:recipients?|address(?:es)?))?",
    re.IGNORECASE,
)
_ALONE = re.compile(rf"^[ \t]*<?({ADDRESS})>?[ \t]*$", re.IGNORECASE)
_SENTENCE_GOES_ON = re.compile(rf"^[ \t]*<({ADDRESS})>[ \t]*[(A-Za-z][^\n]*$", re.IGNORECASE)
_BESIDE = re.compile(rf"^[ \t]*<?({ADDRESS})>?[ \t]+([A-Za-z][^\n]{{8,}})$", re.IGNORECASE)


def undelivered_to(text: str) -> list[tuple[str, str]]:
    """Many gateways' few words: a sentence saying the message could not be delivered to, then
    each address alone on its line, its reason (if any) on the lines below it."""
    start = UNDELIVERED_TO.search(text)
    if start is None:
        return []
    first, _, after = text[start.end() :].partition("\n")
    said_with = _SENTENCE_GOES_ON.match(first)
    if said_with is not None:
        # The sentence names the address and goes on to say why (InterScan: "Unable to
        # deliver message to <bob@…> (and other recipients in the same domain)."): the
        # sentence is the reason.
        line_start = text.rfind("\n", 0, start.start()) + 1
        return [(said_with[1], text[line_start : start.end() + len(first)].strip())]
    # The address may follow the sentence on its line: "… the following recipient: bob@…".
    lines = [first.lstrip(" \t:"), *after.splitlines()]
    found: list[tuple[str, str]] = []
    index = skipped = 0
    while index < len(lines) and skipped <= 3:
        alone = _ALONE.match(lines[index].strip().rstrip(":.").strip())
        beside = None if alone is not None else _BESIDE.match(lines[index])
        index += 1
        if beside is not None:
            # The address with its reason on the same line (Zoho: "bob@… Invalid Address,
            # ERROR_CODE :550, …").
            found.append((beside[1], beside[2].strip()))
            continue
        if alone is None:
            if found and not lines[index - 1].strip():
                break
            skipped += bool(lines[index - 1].strip()) and not found
            continue
        detail = []
        while index < len(lines) and lines[index].strip():
            if _ALONE.match(lines[index].strip().rstrip(":.").strip()):
                break
            detail.append(lines[index].strip())
            index += 1
        found.append((alone[1], " ".join(detail)))
    if found and not any(detail for _, detail in found):
        # The list, a blank line, and one reason for all of it (Symantec's "Reason: 550-…").
        while index < len(lines) and not lines[index].strip():
            index += 1
        below = _REASON_LABEL.match(lines[index]) if index < len(lines) else None
        if below is not None:
            paragraph = [below[1]]
            for line in lines[index + 1 :]:
                if not line.strip():
                    break
                paragraph.append(line.strip())
            found = [(address, " ".join(paragraph)) for address, _ in found]
    return found


_REASON_LABEL = re.compile(r"^\s*reason:\s*(.*)$", re.IGNORECASE)


# -- the last resort of a few servers: "reason: address" on a line of its own --------------------

# Words up to the line's first colon, with a space in them (no header field name has one; the
# space is looked for after the match: two lazy runs either side of it would cost time growing
# with the square of a long line), and the address alone.
_REASON_THEN_ADDRESS = re.compile(
    rf"^[ \t]*([A-Za-z][^:\n]*):[ \t]*<?({ADDRESS})>?[ \t.]*$",
    re.IGNORECASE | re.MULTILINE,
)
# ("[ \t]", not "\s": tried at every line of a long blank run, "\s*" would run on over all of
# them each time, a cost growing with the square of the run.)
_PASTED_AFTER = re.compile(r"^[ \t]*original message follows", re.IGNORECASE | re.MULTILINE)


def reason_then_address(text: str) -> list[tuple[str, str]]:
    """IMail's and a few others' one line per recipient, the reason first: "Unknown user:
    bob@…", "User's mailbox is full: <bob@…>", as the report's opening paragraph."""
    text = _PASTED_AFTER.split(text, maxsplit=1)[0].strip("\n")
    opening = re.split(r"\n[ \t]*\n", text, maxsplit=1)[0]
    found = _REASON_THEN_ADDRESS.finditer(opening)
    return [(m[2], m[1].strip()) for m in found if " " in m[1]]


# -- the last resort of all: addresses in brackets alone, the report's sentences around them ----

_BRACKETED_ALONE = re.compile(rf"^[ \t]*<({ADDRESS})>[ \t]*$", re.IGNORECASE | re.MULTILINE)
_RULE_LINE = re.compile(r"^[ \t]*-{5,}[ \t]*$", re.MULTILINE)


def bracketed_with_sentences(text: str) -> list[tuple[str, str]]:
    """EZweb's (au's) other notices: each recipient as "<bob@…>" alone on a line, before or
    after the sentences that say why ("The user(s) account is disabled.", "Your message was
    not delivered within 0 days and 1 hours."), often beside the same in Japanese; the
    English sentences, up to a rule, are the reason."""
    text = _RULE_LINE.split(text, maxsplit=1)[0]
    addresses = [m[1] for m in _BRACKETED_ALONE.finditer(text)]
    if not addresses:
        return []
    sentences = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and line.isascii() and _BRACKETED_ALONE.match(line) is None
    ]
    return [(address, " ".join(sentences)) for address in addresses]


def failed_list_alone(text: str) -> list[tuple[str, str]]:
    """The list of addresses that failed ("Delivery to the following recipients failed
    permanently: * bob@…") with no reason anywhere: the addresses, nothing said of them."""
    failed = _FAILED_TO.search(text)
    if failed is None:
        return []
    return [(m[0], "") for m in re.finditer(ADDRESS, failed[1], re.IGNORECASE)]
