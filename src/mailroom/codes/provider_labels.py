"""Error labels that large mail providers put in their replies and document, by reason.

A label names the reason more exactly than the words around it ("550 5.1.0 sender rejected …
AUP#CXBL" is Cox's block list, not the sender's address): Cox and Spectrum ``AUP#…``, GoDaddy
``IB…``, Orange and La Poste ``OFR…``/``LPN…``, Yahoo's ``[TS01]``…, Facebook's ``RCP-P2``…,
the names of Gmail's help pages (``?p=NoSuchUser``), and Google's own report of a DNS failure
(``DNS Error: … lookup of … responded with code …``). Each table cites the provider's
published list.

Data for :mod:`mailroom.codes.classify`. Pure: no I/O.
"""

from __future__ import annotations

import re

__all__ = ["provider_label"]

# Cox (cox.com, "email error codes"): "AUP#CXBL", "AUP#IPBL1010", "AUP#URLBL011", …
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
# Yahoo ("SMTP error codes", senders.yahooinc.com): TS01/TS02 deferrals for complaints and
# volume (the sending IP's reputation), TS03/TSS09-style permanent deferrals (a block).
_YAHOO = {
    "ts01": "badreputation",
    "ts02": "badreputation",
    "tss04": "badreputation",
    "ts04": "badreputation",
    "ts03": "blocked",
    "tss09": "blocked",
}
# Gmail's help pages named in its replies (support.google.com/mail/?p=NAME).
_GMAIL_PAGES = {
    "nosuchuser": "userunknown",
    "disableduser": "suspend",
    "overquotaperm": "mailboxfull",
    "overquotatemp": "mailboxfull",
    "receivingrate": "speeding",
    "receivingrateperm": "speeding",
    "maxsizeerror": "mesgtoobig",
    "unsolicitedmessageerror": "spamdetected",
    "unsolicitedratelimiterror": "speeding",
    "dmarcrejection": "authfailure",
    "customfromdenied": "rejected",
    "blockedmessage": "policyviolation",
}
# Facebook ("SMTP response codes", postmaster.facebook.com/response_codes): "RCP-P2", "POL-T1".
_FACEBOOK = {
    "rcp-p1": "userunknown",  # the recipient address does not exist
    "int-p1": "userunknown",
    "int-p3": "userunknown",  # the group address does not exist
    "int-p4": "userunknown",
    "rcp-p2": "filtered",  # the recipient's preferences
    "rcp-p3": "filtered",  # the recipient's privacy settings
    "rcp-t4": "suspend",  # the address is deactivated
    "pol-p1": "blocked",  # the client's IP on a block list
    "pol-p2": "blocked",
    "pol-p5": "virusdetected",
    "msg-p1": "mesgtoobig",
    "int-p2": "mesgtoobig",
    "msg-p2": "contenterror",  # attachment type, repeated header field
    "msg-p3": "contenterror",
    "dns-p1": "rejected",  # the MAIL FROM domain does not exist or resolve
    "dns-p2": "rejected",
    "dns-t1": "rejected",
    "con-t2": "toomanyconn",
    "con-t3": "toomanyconn",
    "con-t1": "systemerror",  # Facebook's own servers are busy
    "rcp-t1": "systemerror",
}
_COX_LABEL = re.compile(r"aup#([a-z]+\d*)")
_SPECTRUM_LABEL = re.compile(r"aup#(?:in?|o(?:ut)?)?-?(\d{4})\b")
_GODADDY_LABEL = re.compile(r"(?<![\w])(ib\d{3})\b")
_ORANGE_LABEL = re.compile(r"\b(?:ofr|lpn|ouk)[a-z0-9]*_(\d{3})\b")
_YAHOO_LABEL = re.compile(r"\[(tss?\d\d)\]")
_FACEBOOK_LABEL = re.compile(r"\b((?:rcp|int|pol|msg|dns|con)-[pt]\d)\b")
# Yahoo's refusal of an address it has no account for: "554 delivery error: dd This user
# doesn't have a yahoo.com account".
_YAHOO_NO_ACCOUNT = re.compile(r"delivery error: dd this user doesn't have an? \S+ account")
_GMAIL_PAGE = re.compile(r"support\.google\.com/mail/\S*[?&]p=([a-z]+)")
# Google reports its own failed lookups so, whatever the answer was (NXDOMAIN, no data, a
# timeout): the sending side's DNS failed to give a route.
_GOOGLE_DNS = re.compile(r"dns error: (?:\d+ )?dns type '\w+' lookup of")


def provider_label(text: str) -> tuple[str, str] | None:
    """(reason, evidence) from a documented provider label in ``text``, if there is one."""
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
    for match in _YAHOO_LABEL.finditer(text):
        if match[1] in _YAHOO:
            return _YAHOO[match[1]], f"Yahoo error [{match[1].upper()}]"
    for match in _FACEBOOK_LABEL.finditer(text):
        if match[1] in _FACEBOOK:
            return _FACEBOOK[match[1]], f"Facebook error {match[1].upper()}"
    for match in _GMAIL_PAGE.finditer(text):
        if match[1] in _GMAIL_PAGES:
            return _GMAIL_PAGES[match[1]], f"Gmail help page p={match[1]}"
    if _YAHOO_NO_ACCOUNT.search(text):
        return "userunknown", "Yahoo's 'delivery error: dd' (no such account)"
    if _GOOGLE_DNS.search(text):
        return "networkerror", "Google's 'DNS Error' report of a failed lookup"
    return None
