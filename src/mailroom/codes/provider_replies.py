"""What large providers' own replies mean, when the reply is recognisably theirs.

Google, Microsoft, Yahoo, Apple, Mimecast, Tencent (QQ), KDDI (au), NTT docomo and i.ua
document their replies, and some of their wording means something else than the same words
from another server (Microsoft's "Recipient address rejected: Access denied" under X.7.504 is
a blocked recipient, not an unknown one; Yahoo's "temporarily deferred due to … user
complaints" refuses the sender). A reply is recognised as a provider's by the host names it
carries (the remote host a reporting MTA names, "… - gsmtp", "[….prod.outlook.com]"), the way
Sisimai (whose reason names these are) picks a provider's rules by the remote host; then the
provider's vocabulary decides before the general families.

Each rule is (reason, words, the enhanced codes it applies to); a provider's rules are tried
in order. Data and one function for :mod:`mailroom.codes.reason_order`. Pure: no I/O.
"""

from __future__ import annotations

import re

from mailroom.codes.enhanced import EnhancedStatus

__all__ = ["provider_reply"]

Rule = tuple[str, str, str]  # (reason, words, the enhanced codes as a pattern; "" for any)

# Google ("SMTP error reference", support.google.com/a/answer/3726730).
_GOOGLE: tuple[Rule, ...] = (
    ("userunknown", r"account that you tried to reach does not exist", ""),
    ("userunknown", r"(?:weren't|were not) able to find the recipient domain", ""),
    ("userunknown", r"not a valid rfc[ -]?5321 address", r"5\.1\.3"),
    ("notcompliantrfc", r"not a valid rfc[ -]?5321 address", ""),
    ("suspend", r"account that you tried to reach is (?:disabled|inactive)", ""),
    ("mailboxfull", r"out of storage space|over quota|email quota exceeded", ""),
    ("exceedlimit", r"exceeded google's message size limit", r"5\.2\.3"),
    ("mesgtoobig", r"google's (?:message size )?limit", ""),
    ("badreputation", r"low reputation", ""),
    ("requireptr", r"ptr record|match the ip address of the hostname", ""),
    ("authfailure", r"\bspf\b|\bdkim\b|\bdmarc\b|authentication checks", ""),
    ("speeding", r"receiving mail (?:too quickly|at a rate)|rate limited", ""),
    ("speeding", r"sending (?:quota|limit)", ""),
    ("speeding", r"relay (?:sending )?limit exceeded", ""),
    ("blocked", r"unusual rate of (?:unsolicited )?mail|ip not in whitelist", ""),
    ("blocked", r"try again later, closing connection|helo/ehlo argument", ""),
    ("spamdetected", r"likely unsolicited mail|nature of the content or the links", ""),
    ("norelaying", r"relay denied|credentials for relay|send email directly to our servers", ""),
    ("notcompliantrfc", r"rfc[ -]?5322|in from: header|message-id: header|malformed", ""),
    ("notcompliantrfc", r"disallowed header|encoded-word syntax", ""),
    ("policyviolation", r"illegal attachment|potential security issue|policy that prohibited", ""),
    ("policyviolation", r"same message-id", ""),
    ("rejected", r"mail sending denied|unauthenticated email is not accepted", ""),
    ("securityerror", r"tls required for rcpt domain|login attempts|web browser", ""),
    ("securityerror", r"authentication required|password (?:required|not accepted)", ""),
    ("securityerror", r"use tls/ssl", ""),
    ("syntaxerror", r"protocol violation|syntax error|unrecognized command|unimplemented", ""),
    ("syntaxerror", r"bad sequence|(?:ehlo/helo|mail|rcpt) first|no data after bdat", ""),
    ("syntaxerror", r"starttls may not be repeated|unauthenticated commands", ""),
    ("systemerror", r"temporary system problem|server busy|temporarily rejected", ""),
    ("systemerror", r"destination domains per transaction|size per transaction", ""),
    ("toomanyconn", r"too many recipients", ""),
    ("networkerror", r"exceeded \d+ hops", ""),
)
# Microsoft Exchange Online ("Email non-delivery reports in Exchange Online",
# learn.microsoft.com), by enhanced code first.
_MICROSOFT: tuple[Rule, ...] = (
    ("authfailure", r"dmarc|sender policy framework|spf or dkim", ""),
    ("authfailure", r"tlsa-invalid|dnssec-invalid|certificate-", r"[45]\.7\.32[2-5]"),
    ("badreputation", r"reputation", r"4\.7\.6\d\d"),
    ("suspend", r"access denied", r"5\.7\.50[45]"),
    ("blocked", r"access denied|banned|block list|ipv6", r"[45]\.7\.(?:5[01]\d|[6-8]\d\d)"),
    ("blocked", r"reverse dns", r"5\.7\.25"),
    ("blocked", r"connection dropped", r"4\.4\.2"),
    ("blocked", r"invalid domain name", r"5\.5\.4"),
    ("speeding", r"exceeded|threshold|traffic not accepted", r"5\.7\.(?:508|7[0-4]\d)"),
    ("speeding", r"submission quota|daily limit|per hour message receive|thread limit", ""),
    ("toomanyconn", r"too many recipients|exceeded their limit", ""),
    ("exceedlimit", r"recipsizelimit|too large for this recipient", ""),
    ("mesgtoobig", r"message size|too big for system", r"5\.3\.4"),
    ("mailboxfull", r"mailbox full", r"5\.2\.2"),
    ("spamdetected", r"content filter agent quarantined", ""),
    ("suspend", r"mailbox cannot be accessed", ""),
    ("networkerror", r"nonexistent domain|loop|invalid arguments", r"5\.4\.(?:4|6|14)"),
    ("networkerror", r"connection refused", r"4\.4\.316"),
    ("expired", r"timed out|delayed|expired", r"[45]\.4\.(?:1|7|300|316)"),
    ("norelaying", r"relay|client was not authenticated", r"5\.(?:7\.1|7\.64|4\.1)"),
    ("norelaying", r"does not exist", r"5\.4\.310"),
    ("userunknown", r"recipient address rejected: access denied", r"5\.4\.1"),
    ("notaccept", r"not accepting network messages|no mail-enabled|storedriver", ""),
    ("policyviolation", r"policy violation|x-dg-ref|message refused", r"5\.(?:0\.350|7\.9\d\d)"),
    ("rejected", r"sender|delivery not authori[sz]ed|spam abuse|unregistered domains", ""),
    ("rejected", r"rfc 5322 section", ""),
    ("securityerror", r"starttls|not authenticated|exchange server authentication", ""),
    ("syntaxerror", r"unrecognized command|send hello first", ""),
    ("systemerror", r"service not (?:available|active)|incorrectly configured", ""),
    ("systemerror", r"server busy|temporary server error|replicated|agent busy", ""),
    ("systemerror", r"ambiguous|expansion problem|misconfigured forwarding|requires domain", ""),
    ("systemfull", r"insufficient system resources", ""),
    ("userunknown", r"recip(?:ient)?notfound|not found|user unknown|invalid recipient", ""),
    ("userunknown", r"bad destination mailbox|mailbox unavailable|rfc 2606|single label", ""),
)
# Yahoo ("SMTP error codes", senders.yahooinc.com).
_YAHOO: tuple[Rule, ...] = (
    ("authfailure", r"authenticate with either spf or dkim", ""),
    ("blocked", r"spamhaus", ""),
    ("norelaying", r"relaying denied", ""),
    ("notcompliantrfc", r"headers are not rfc compliant", ""),
    ("policyviolation", r"not accepted for policy reasons", ""),
    # Deferred for the sender's volume or its recipients' complaints: the sending IP's
    # standing with Yahoo (its [TSS04]); "permanently deferred" refuses the sender.
    ("badreputation", r"unexpected volume or user complaints", ""),
    ("rejected", r"will be permanently deferred", ""),
    ("rejected", r"unresolvable rfc.5321 domain", ""),
    ("speeding", r"receiving mail too quickly", ""),
    ("suspend", r"is no longer valid|mailbox is disabled", ""),
    ("toomanyconn", r"max message per connection", ""),
    ("userunknown", r"this user doesn't have an? \S+ account|mailbox not found", ""),
)
# Apple iCloud ("Email delivery issues", support.apple.com).
_APPLE: tuple[Rule, ...] = (
    ("authfailure", r"dmarc policy|spf and dkim", ""),
    ("blocked", r"spamhaus|dnsbl|not accepting connections", ""),
    ("hasmoved", r"no longer on server", ""),
    ("mailboxfull", r"over quota", ""),
    ("norelaying", r"relay access denied", ""),
    ("notaccept", r"does not accept mail", ""),
    ("policyviolation", r"local policy", ""),
    ("rejected", r"sender address rejected", ""),
    ("speeding", r"excessive volume", ""),
    ("userunknown", r"inactive email address|user does not exist|unknown or illegal alias", ""),
)
# Mimecast ("Mimecast SMTP error codes", community.mimecast.com).
_MIMECAST: tuple[Rule, ...] = (
    ("authfailure", r"(?:spf|dkim|dmarc) sender invalid", ""),
    ("badreputation", r"ip reputation|internal resources are temporarily unavailable", ""),
    ("blocked", r"sender address blocked|recipient temporarily unavailable", ""),
    ("blocked", r"ip temporarily blacklisted", ""),
    ("mesgtoobig", r"maximum email size", ""),
    ("networkerror", r"incorrect hostname|mail loop", ""),
    ("norelaying", r"open relay", ""),
    ("notaccept", r"inbounds disabled", ""),
    ("onhold", r"outbounds disabled|hostname is not authorized|past (?:the )?expiration", ""),
    ("policyviolation", r"anti-spoofing|content examination|host network,? not allowed", ""),
    ("rejected", r"envelope blocked|envelope rejected|blocked senders", ""),
    ("securityerror", r"authentication|route requires|ciphers|certificate", ""),
    ("systemerror", r"unable to process|message ended early", ""),
    ("toomanyconn", r"service is temporarily unavailable|too many recipients|thread limit", ""),
    # Mimecast's wording for a message its scanners refused as malicious.
    ("virusdetected", r"rejected due to security policies", ""),
    ("userunknown", r"invalid address|user unknown|invalid recipient", ""),
)
# Tencent QQ Mail (service.mail.qq.com, "error codes").
_TENCENT: tuple[Rule, ...] = (
    ("authfailure", r"(?:spf|dmarc) check failed", ""),
    ("blocked", r"bounce attacks|spam ip|connection denied", ""),
    ("mesgtoobig", r"message too large", ""),
    ("spamdetected", r"spam is embedded|mail content denied", ""),
    ("rejected", r"suspected spam|rejected by recipients", ""),
    ("suspend", r"deactivated mailbox", ""),
    ("syntaxerror", r"bad address syntax", ""),
    ("toomanyconn", r"frequency limited", ""),
    # QQ's "mailbox unavailable or access denied" refuses for the rate, not the mailbox.
    ("speeding", r"mailbox unavailable or access deni", ""),
    ("userunknown", r"mailbox not found", ""),
)
# KDDI au: a refusal naming no address came after DATA, for all recipients (a filter); one
# naming the address answered RCPT.
_KDDI: tuple[Rule, ...] = (
    ("filtered", r"\b550 ?:? : user unknown", ""),
    ("userunknown", r">: user unknown", ""),
)
# NTT docomo: its own short replies.
_DOCOMO: tuple[Rule, ...] = (
    ("mailboxfull", r"too much mail data", ""),
    ("toomanyconn", r"too many recipients", ""),
    # (only as the reply itself: after a refusal, "503 bad sequence" is its consequence)
    (
        "syntaxerror",
        r"^(?:503 )?(?:bad sequence of commands|command parameter not implemented)",
        "",
    ),
    ("userunknown", r"", r"5\.1\.1"),
    ("filtered", r"", r"5\.2\.0"),
)
# i.ua: its error pages, "mail.i.ua/err/N/".
_IUA_ERRORS = {
    "1": "norelaying",
    "2": "userunknown",
    "3": "suspend",
    "4": "mailboxfull",
    "5": "toomanyconn",
    "6": "norelaying",
    "7": "blocked",
    "8": "rejected",
    "9": "blocked",
    "10": "filtered",
}

# What a reply must carry for a provider's vocabulary to apply: Google's and Microsoft's
# documented replies always carry an enhanced code (and Google's a reply code); a text
# without them is some other MTA's report about the provider, not the provider's reply.
_NEEDS_CODE, _NEEDS_STATUS = 1, 2
_PROVIDERS: tuple[tuple[str, re.Pattern[str], int, tuple[Rule, ...]], ...] = (
    (
        "Google",
        re.compile(r"\bgsmtp\b|\.google\.com\b|googlemail"),
        _NEEDS_CODE | _NEEDS_STATUS,
        _GOOGLE,
    ),
    (
        "Microsoft",
        # Its hosts, or the tokens only Exchange writes (RESOLVER.ADR.…, STOREDRV.…).
        re.compile(
            r"(?:prod|protection)\.outlook\.com|\.hotmail\.com|office365|outlook\.com\[|"
            r"\bresolver\.(?:adr|rst)\.|\bstoredrv\.|\bsmtpsend\."
        ),
        _NEEDS_STATUS,
        _MICROSOFT,
    ),
    ("Yahoo", re.compile(r"yahoodns\.net|\.yahoo\.(?:com|net)\b"), 0, _YAHOO),
    ("Apple", re.compile(r"(?:mail\.icloud|\.me|\.mac|\.apple)\.com\b"), 0, _APPLE),
    ("Mimecast", re.compile(r"mimecast"), _NEEDS_CODE, _MIMECAST),
    ("Tencent", re.compile(r"\bqq\.com\b"), 0, _TENCENT),
    # au and UQ mobile addresses are KDDI's mail system.
    ("KDDI", re.compile(r"ezweb\.ne\.jp|\bau\.com\b|uqmobile\.jp"), 0, _KDDI),
    ("NTT docomo", re.compile(r"docomo\.ne\.jp"), 0, _DOCOMO),
)
_COMPILED = tuple(
    (name, recognised, needs, tuple((r, re.compile(w), re.compile(s)) for r, w, s in rules))
    for name, recognised, needs, rules in _PROVIDERS
)
_IUA = re.compile(r"\.i\.ua/err/(\d+)")


def provider_reply(
    text: str, code: int | None, status: EnhancedStatus | None
) -> tuple[str, str] | None:
    """(reason, evidence) from a provider's own vocabulary, when ``text`` is recognisably the
    provider's reply and its words (and enhanced code) are in that vocabulary."""
    found = _IUA.search(text)
    if found is not None and found[1] in _IUA_ERRORS:
        return _IUA_ERRORS[found[1]], f"i.ua error page {found[1]}"
    enhanced = str(status) if status is not None else ""
    for name, recognised, needs, rules in _COMPILED:
        if (needs & _NEEDS_CODE and code is None) or (needs & _NEEDS_STATUS and not enhanced):
            continue
        if recognised.search(text) is None:
            continue
        for reason, words, codes in rules:
            if codes.pattern and codes.fullmatch(enhanced) is None:
                continue
            match = words.search(text)
            if match is not None:
                said = f"'{match[0]}'" if match[0] else f"code {enhanced}"
                return reason, f"{name}'s {said}"
    return None
