"""The reporting MTA's own verdict: what Exim, qmail, Gmail, OpenSMTPD, Lotus Domino and other
MTAs say in their own words about a delivery they gave up on.

A bounce's diagnostic is often not a remote reply at all but the reporting MTA's account of
its own attempt: Exim's "retry timeout exceeded" or "Unrouteable address", qmail's "Sorry, I
couldn't find any host named …", Gmail's "DNS Error: Domain name not found", Domino's "User …
not listed in Domino Directory". Each MTA words a few situations always the same way, and
those words name the reason more surely than any general family, so they are read first, the
way Sisimai reads each reporting MTA's format before its general rules.

Some verdicts are final (the MTA saw it itself: a full mailbox it delivers to, a null MX it
looked up). Others are only the MTA's account of what the remote end did or of its own
retries (an unknown user, a host that could not be found, a timeout): those are
``reconsidered`` — a more specific reading of the words may still replace them (see
:mod:`mailroom.codes.reason_order`).

Data and one function. Pure: no I/O.
"""

from __future__ import annotations

import re

__all__ = ["reporter_verdict"]

# (reason, the MTA's own words), the most specific first. Final verdicts.
_FINAL = (
    # A local delivery program that says the mailbox has no room: the mailbox, not the program.
    (
        "mailboxfull",
        r"(?:\bmaildrop|\bprocmail|\bdeliver): [^.]{0,40}(?:over ?quota|quota exceeded)",
    ),
    # A local delivery program's own words: the program failed, whatever it says of the user.
    ("mailererror", r"\bpipe to \||\bprocmail: |\bmaildrop: |command died with status"),
    ("blocked", r"but my name was rejected"),  # refused at HELO: the client itself
    ("mailboxfull", r"disk quota exceeded|\bmailbox is full|error: quota exceed"),  # qmail, Exim
    ("mesgtoobig", r"message size exceeds fixed maximum message size:"),  # qmail
    ("systemfull", r"mailbox unavailable \(not enough free space\)"),  # qmail
    ("notaccept", r"indicated no smtp service|no host found for existing smtp connection"),  # Exim
    ("notaccept", r"couldn't find a mail exchanger or ip address"),  # qmail
    ("notaccept", r"no mx found for (?:domain|destination)|seem to reject all mails"),  # OpenSMTPD
    ("notaccept", r"returned null mx"),  # Gmail's report of a null MX (RFC 7505)
    ("contenterror", r"too many \"?received\"? headers"),  # Exim: a loop, seen in the header
    ("syntaxerror", r"angle-brackets nested|expected word or \"<\"|malformed address:"),  # Exim
    ("syntaxerror", r"domain missing in source-routed address"),
    ("filtered", r"cannot route mail to user"),  # Lotus Domino
    ("filtered", r"^ambiguous recipient\.?$"),  # Exchange 2003: several mailboxes match
    # Gmail relaying for a user: its own TLS or authentication with the next hop failed
    # ("Remote server does not support TLS (state 6)", "SMTP AUTH failed … (state 8)").
    ("systemerror", r"\(state [689]\)\.?$"),
)
# Verdicts a more specific reading may replace.
_RECONSIDERED = (
    ("userunknown", r"no mailbox here by that name|does not like recipient\."),  # qmail
    ("userunknown", r"not listed in (?:the )?(?:domino directory|public name & address book)"),
    ("userunknown", r"no se encuentra en el directorio de domino|répertorié dans l'annuaire"),
    ("userunknown", r"domino ディレクトリには見つかりません|ディレクトリのリストにありません"),
    ("userunknown", r"address couldn't be found\. check for typos"),  # Gmail
    # Outlook.com's refusal carries its own trace in brackets, "(S2017062302)" or
    # "(-0000000022:2222:…)"; the same RFC 5321 sentence bare is any server's (see _filtered).
    ("userunknown", r"requested action not taken: mailbox unavailable\.? \((?:s\d|-?\d+:)"),
    # Reports that looked the recipient up themselves and say so in their fixed words.
    ("userunknown", r"unable to deliver message to <[^>]*> \(and other recipients in the same"),
    ("userunknown", r"invalid final delivery userid"),
    # A report that files the remote reply under its own heading "User unknown: 550 …".
    ("userunknown", r"^user unknown: [45]\d\d\b"),
    # Exchange 2003's own reason heading, when it is all the report says.
    ("userunknown", r"^(?:unknown recipient|recipient not found)\.?$"),
    # Exchange 2000/2003's Internet Mail Service line with its own code for a recipient its
    # directory does not know ("MSEXCH:IMS:host 0 (000C05A6) Unknown Recipient").
    ("userunknown", r"msexch:ims:[^()]*\(000c05a6\)"),
    ("hostunknown", r"all host address lookups failed permanently|unrouteable address"),  # Exim
    ("hostunknown", r"all relevant mx records point to non-existent hosts"),  # Exim
    ("hostunknown", r"couldn't find any host"),  # qmail
    ("hostunknown", r"dns error: (?:domain name not found|dns server returned answer with no)"),
    ("hostunknown", r"invalid domain name|domain does not exist"),  # OpenSMTPD
    ("hostunknown", r"dns lookup failure: host|no such domain\.|illegal host/domain name found"),
    ("hostunknown", r"domain is not reachable"),  # Outlook.com's report
    ("networkerror", r"wasn't able to establish an smtp connection|best-preference mx"),  # qmail
    ("networkerror", r"had no relevant answers|responded with code nxdomain"),  # Google's DNS
    ("networkerror", r"network error on destination mxs|no valid route to|loop detected"),
    ("networkerror", r"address family mismatch|routes to destination blocked"),  # OpenSMTPD
    ("networkerror", r"bad dns lookup error code|temporary failure in mx lookup"),
    ("networkerror", r"could not retrieve source address|dns lookup failed\."),  # Courier
    ("networkerror", r"exceeded maximum hop count"),  # Lotus Notes
    ("systemerror", r"delivery to (?:file|pipe) forbidden|local delivery failed"),  # Exim
    ("systemerror", r"lmtp error after|bad interpreter|several matches found"),
    ("systemerror", r"dns violates rfc 1035"),  # Courier
    ("securityerror", r"could not retrieve credentials"),  # OpenSMTPD
    ("expired", r"retry timeout exceeded|retry time not reached for any host"),  # Exim
    ("expired", r"have been failing for a long time|delivery attempts will continue"),
    ("expired", r"has been frozen|was frozen on arrival|delay reason:"),  # Exim
    ("expired", r"did not accept our requests to connect|could not contact dns servers"),  # Gmail
    ("expired", r"recipient has been delayed"),  # Gmail's delay notice
    ("expired", r"envelope expired|could not deliver for the last|delivery expired"),
)
_FINAL_COMPILED = tuple((reason, re.compile(words)) for reason, words in _FINAL)
_RECONSIDERED_COMPILED = tuple((reason, re.compile(words)) for reason, words in _RECONSIDERED)
# qmail's other own system errors ("Unable to chdir to maildir", "Unable to contact LDAP
# server"): only in its own sentence form, "Sorry, …" or "… (#4.3.0)".
_QMAIL_UNABLE = re.compile(r"(?:^|\. |sorry, )unable to (?!deliver|connect)\w+")
# qmail's own closing words: its verdict when nothing more specific was said before them.
_QMAIL_GAVE_UP = re.compile(r"this message has been in the queue too long")


def reporter_verdict(text: str) -> tuple[str, str, bool] | None:
    """(reason, evidence, final) when ``text`` holds a reporting MTA's own verdict: ``final``
    is False for a verdict that a more specific reading of the words may replace."""
    for reason, pattern in _FINAL_COMPILED:
        match = pattern.search(text)
        if match is not None:
            return reason, f"the reporting MTA's words '{match[0]}'", True
    for reason, pattern in _RECONSIDERED_COMPILED:
        match = pattern.search(text)
        if match is not None:
            return reason, f"the reporting MTA's words '{match[0]}'", False
    match = _QMAIL_UNABLE.search(text)
    if match is not None:
        return "systemerror", f"the reporting MTA's words '{match[0].strip()}'", False
    match = _QMAIL_GAVE_UP.search(text)
    if match is not None:
        return "expired", f"the reporting MTA's words '{match[0]}'", False
    return None
