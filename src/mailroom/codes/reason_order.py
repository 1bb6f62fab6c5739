"""The order in which reasons are tried, and what each needs to decide.

The reason names are Sisimai's, and so is the way they are decided; this module says that
decision in our own terms. Evidence is read in this order:

1. **The reporting MTA's own verdict** (:mod:`~mailroom.codes.reporter_verdicts`): final for
   what it saw itself; only a first reading for what the remote end did (kept unless a
   family of the first pass that comes before it says otherwise, see below).
2. **The provider's own vocabulary**, when the reply is recognisably Google's, Microsoft's,
   Yahoo's, … (:mod:`~mailroom.codes.provider_replies`), and the error labels providers
   document (:mod:`~mailroom.codes.provider_labels`).
3. **The first pass**: each reason in a fixed order, decided by the enhanced code that names
   it or by its phrase family (:mod:`~mailroom.codes.reason_phrases`), with conditions on the
   enhanced code and the command the reply answered:

   mailboxfull, mesgtoobig, exceedlimit, suspend, hasmoved, norelaying, authfailure,
   userunknown, filtered, requireptr, notcompliantrfc, badreputation, rejected, hostunknown,
   spamdetected, speeding, toomanyconn, blocked.

   The conditions carry Sisimai's conventions: words that the recipient is unknown mean
   ``userunknown`` only with an enhanced code that says so (X.1.0, X.1.1, X.1.3, and then
   only when no refusal of the client, the sender or relaying is also said) or in a reply to
   RCPT; otherwise, unless the reply answered an earlier command, the same words are the
   recipient's filter (``filtered``: many filters answer "user unknown" after the message).
   A refusal worded like the sender's counts only for MAIL, for DATA, or when no more
   specific code was given. Spam and virus verdicts are taken only after the message was
   sent (not at the greeting, MAIL or RCPT).
4. **The fallback**: a reason the enhanced code names for certain (not one of
   :data:`~mailroom.codes.reason_codes.RECONSIDERED`); then the second pass of families
   (mailboxfull, authfailure, badreputation, speeding, spamdetected, virusdetected,
   policyviolation, norelaying, contenterror, systemerror, networkerror, suspend,
   systemfull, notaccept, expired, securityerror, mailererror, then failedstarttls); then
   the enhanced code's first guess; media (X.6) and security (X.7) codes; a syntax reply
   (501-507, 401-407); a temporary reply with no words (``expired``: its bounce came when the
   retries ran out); a refusal at the greeting or HELO (the client).
5. **Our additions** where Sisimai would say ``onhold``: an automatic reply (``vacation``),
   the registry's reading of an enhanced code Sisimai leaves unnamed (4.3.0), weak hints
   ("quota", "spam", "timed out"), the basic code with the command (550 to RCPT: the
   mailbox; to MAIL: the sender; at the greeting: the client), a permanent protocol status
   (X.5: ``syntaxerror``), any other temporary reply (``expired``), then ``onhold``.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from mailroom.codes.provider_labels import provider_label
from mailroom.codes.provider_replies import provider_reply
from mailroom.codes.reason_codes import (
    RECONSIDERED,
    basic_reason,
    registry_reason,
    status_reason,
)
from mailroom.codes.reason_phrases import FAMILIES, WEAK, compile_families
from mailroom.codes.reasons import Basis
from mailroom.codes.reply_facts import ReplyFacts
from mailroom.codes.reporter_verdicts import reporter_verdict

__all__ = ["Decision", "decide"]


class Found(NamedTuple):
    """Evidence for a reason: what it is in words (``why``) and what kind it is."""

    why: str
    basis: Basis

    def plus(self, more: str) -> Found:
        """The same evidence, with what else the decision took into account."""
        return Found(f"{self.why}{more}", self.basis)


class Decision(NamedTuple):
    reason: str
    why: str
    basis: Basis


def _decision(reason: str, found: Found) -> Decision:
    return Decision(reason, found.why, found.basis)


# Commands before the message was offered, and before it was sent.
_BEFORE_MAIL = frozenset({"CONNECT", "HELO"})
_BEFORE_RCPT = frozenset({"CONNECT", "HELO", "MAIL"})
_BEFORE_DATA = frozenset({"CONNECT", "HELO", "MAIL", "RCPT"})
# Whether the recipient is unknown or filtered is the remote server's to say: a reporting MTA's
# own heading ("Address not found", "Unknown address error") names the category it read from
# the code, and is no evidence beyond it. These families are read in the server's own words.
_SAID_BY_THE_SERVER = frozenset({"userunknown", "filtered"})
# Reasons whose words, said with an X.1.1 code, show the code was not about the mailbox.
_NOT_THE_MAILBOX = ("norelaying", "blocked", "mailboxfull", "hasmoved", "rejected", "notaccept")
_WEAK = compile_families(WEAK)
# Refusals that give their reason: a bare "not allowed" at MAIL is the sender's only when the
# reply says no such reason.
_REASONS_GIVEN = ("securityerror", "authfailure", "blocked", "requireptr", "spamdetected")
# Any word at all (a reply that is only its code says nothing).
_WORDS = re.compile(r"[a-z]{3,}")
# A bare refusal, whoever it refuses.
_REFUSED = re.compile(r"access denied|denied|refused|rejected|not allowed|blocked|\bbanned\b")


class _Evidence:
    """The facts with the family matches and the enhanced code's reason, read once."""

    def __init__(self, facts: ReplyFacts) -> None:
        self.facts = facts
        self.named = status_reason(facts.status) if facts.status is not None else None
        # The command as the caller, the reporting MTA or a local delivery agent tells it. A
        # command guessed from the reply's own shape ("Recipient address rejected" is said
        # to RCPT) is not used to decide: Sisimai decides on the command the report states.
        self.command = facts.command if facts.command_from != "reply" else None
        self._said: dict[str, str | None] = {}

    def said(self, reason: str) -> str | None:
        """The words of ``reason``'s family in the text, if any."""
        if reason not in self._said:
            text = self.facts.inner if reason in _SAID_BY_THE_SERVER else self.facts.text
            match = FAMILIES[reason].search(text)
            self._said[reason] = match[0].strip() if match is not None else None
        return self._said[reason]

    def code(self) -> Found:
        """The enhanced code, as the evidence that names its own reason."""
        return Found(f"enhanced code {self.facts.status}", "enhanced code")

    def code_names(self, reason: str) -> Found | None:
        return self.code() if self.named == reason else None

    def words(self, reason: str) -> Found | None:
        found = self.said(reason)
        return Found(f"words '{found}'", "words") if found is not None else None

    def named_or_said(self, reason: str) -> Found | None:
        return self.code_names(reason) or self.words(reason)


Test = Callable[[_Evidence], Found | None]


def _named_or_said(reason: str) -> Test:
    return lambda ev: ev.named_or_said(reason)


def _said(reason: str) -> Test:
    return lambda ev: ev.words(reason)


def _mesgtoobig(ev: _Evidence) -> Found | None:
    # A per-mailbox limit (X.2.3) is exceedlimit, whatever the words.
    if ev.named == "exceedlimit":
        return None
    return ev.named_or_said("mesgtoobig")


def _mailboxfull(ev: _Evidence) -> Found | None:
    if ev.named == "mailboxfull":
        return ev.code()
    if ev.named == "systemfull" or ev.command in _BEFORE_RCPT:
        # "Insufficient disk space" under X.3.1 or X.4.5 (mail system full, congested), or
        # before any recipient was named: no mailbox is meant, the system's storage is.
        return None
    return ev.words("mailboxfull")


def _authfailure(ev: _Evidence) -> Found | None:
    if ev.named == "authfailure":
        return ev.code()
    if ev.said("contenterror") is not None:
        # "Duplicate header 'DKIM-Signature'": the header is malformed; naming an
        # authentication header is not saying that authentication failed.
        return None
    return ev.words("authfailure")


def _suspend(ev: _Evidence) -> Found | None:
    if ev.facts.code == 525:  # RFC 5321 §4.2.3: user account disabled
        return Found("reply code 525", "reply code")
    return ev.words("suspend")


def _norelaying(ev: _Evidence) -> Found | None:
    if ev.command in _BEFORE_MAIL:
        return None  # relaying is about a recipient: none was offered yet
    return ev.words("norelaying")


def _userunknown(ev: _Evidence) -> Found | None:
    if ev.named in ("suspend", "rejected") or ev.command == "MAIL":
        # A code of the sender (X.1.7, X.1.8), or a reply to MAIL FROM: the address refused
        # is the sender's, whatever the report says of "the address" (see _rejected).
        return None
    if ev.named == "userunknown":
        if any(ev.said(other) is not None for other in _NOT_THE_MAILBOX):
            return None
        return ev.code()
    if ev.command == "RCPT":
        found = ev.words("userunknown")
        return found.plus(", in reply to RCPT") if found is not None else None
    return None


def _filtered(ev: _Evidence) -> Found | None:
    # The recipient refused by its own filter; also "user unknown" that cannot be placed at
    # the recipient check (see the module's docstring).
    if ev.named in ("suspend", "rejected"):
        return None
    if ev.named == "filtered":
        found = ev.words("userunknown") or ev.words("filtered")
        return found.plus(f" under {ev.facts.status}") if found is not None else None
    if ev.command in _BEFORE_DATA:
        return None
    found = ev.words("filtered")
    if found is not None:
        return found
    found = ev.words("userunknown")
    if found is None:
        return None
    if ev.command == "DATA":
        return found.plus(", after DATA: the recipient was accepted before")
    return found.plus(", with no X.1.x code and not known to answer RCPT")


def _rejected(ev: _Evidence) -> Found | None:
    if ev.named == "rejected":
        return ev.code()
    command = ev.command
    if command == "MAIL":
        # A refusal in reply to MAIL FROM refuses the sender: "unknown", "does not exist",
        # "access denied" there are said of the envelope sender.
        found = ev.words("rejected") or ev.words("userunknown") or ev.words("hostunknown")
        refused = _REFUSED.search(ev.facts.inner)
        if found is None and refused is not None and not any(map(ev.said, _REASONS_GIVEN)):
            found = Found(f"words '{refused[0]}'", "words")
        return found.plus(", in reply to MAIL") if found is not None else None
    if command == "MAIL" or (command == "DATA" and ev.named != "userunknown"):
        return ev.words("rejected")
    if ev.named in (None, "onhold", "securityerror", "systemerror"):
        return ev.words("rejected")
    return None


def _hostunknown(ev: _Evidence) -> Found | None:
    # X.1.2 and X.4.4 say "no route", and "host not found" that there was no answer; a DNS
    # lookup that failed for now ("try again", a malformed reply) says why, and it is not an
    # answer that the domain does not exist.
    if ev.said("networkerror") is not None:
        return None
    return ev.named_or_said("hostunknown")


def _spamdetected(ev: _Evidence) -> Found | None:
    if ev.named == "spamdetected":
        return ev.code()
    if ev.command in _BEFORE_DATA:
        return None  # a verdict on content needs the content
    return ev.words("spamdetected")


_FIRST_PASS: tuple[tuple[str, Test], ...] = (
    ("mailboxfull", _mailboxfull),
    ("mesgtoobig", _mesgtoobig),
    ("exceedlimit", _named_or_said("exceedlimit")),
    ("suspend", _suspend),
    ("hasmoved", _said("hasmoved")),
    ("norelaying", _norelaying),
    ("authfailure", _authfailure),
    ("userunknown", _userunknown),
    ("filtered", _filtered),
    ("requireptr", _named_or_said("requireptr")),
    ("notcompliantrfc", _said("notcompliantrfc")),
    ("badreputation", _said("badreputation")),
    ("rejected", _rejected),
    ("hostunknown", _hostunknown),
    ("spamdetected", _spamdetected),
    ("speeding", _said("speeding")),
    ("toomanyconn", _named_or_said("toomanyconn")),
    ("blocked", _named_or_said("blocked")),
)
_SECOND_PASS = (
    "mailboxfull",
    "authfailure",
    "badreputation",
    "speeding",
    "spamdetected",
    "virusdetected",
    "policyviolation",
    "norelaying",
    # A malformed message is said more specifically than a failed transaction ("Transaction
    # failed: Duplicate header"): before the system's and the network's errors.
    "contenterror",
    "systemerror",
    "networkerror",
    "suspend",
    "systemfull",
    "notaccept",
    "expired",
    "securityerror",
    "mailererror",
    "failedstarttls",
)


def _first_pass(ev: _Evidence, given: Decision | None) -> Decision | None:
    """The first reason in order whose test holds; a reconsidered verdict ``given`` holds at
    its own place in the order, or after the whole pass when it has no place in it."""
    for reason, test in _FIRST_PASS:
        if given is not None and reason == given.reason:
            return given
        found = test(ev)
        if found is not None:
            return _decision(reason, found)
    return given


def _fallback(ev: _Evidence) -> Decision | None:
    facts = ev.facts
    if ev.named is not None and ev.named not in RECONSIDERED:
        return _decision(ev.named, ev.code())
    for reason in _SECOND_PASS:
        found = ev.words(reason)
        if reason == "authfailure" and ev.said("contenterror") is not None:
            continue  # a malformed header that names DKIM (see _authfailure)
        if found is not None:
            if reason == "mailboxfull" and ev.command in _BEFORE_RCPT:
                storage = found.plus(" before any recipient: the system's storage")
                return _decision("systemfull", storage)
            return _decision(reason, found)
    if ev.named is not None:
        return _decision(ev.named, ev.code())
    if facts.status is not None and facts.status.subject == 6:
        return Decision("contenterror", f"enhanced code {facts.status} (media)", "code reading")
    if facts.status is not None and facts.status.subject == 7:
        why = f"enhanced code {facts.status} (security)"
        return Decision("securityerror", why, "code reading")
    if facts.code is not None and (named := basic_reason(facts.code)) is not None:
        return Decision(named, f"reply code {facts.code}", "reply code")
    if facts.code is not None and facts.code // 100 == 4 and not _WORDS.search(facts.inner[4:]):
        # A temporary reply that says nothing more: its bounce was sent when the retries ran
        # out (Sisimai reads a delayed delivery so, before the command).
        why = f"reply code {facts.code}, temporary, and nothing more said"
        return Decision("expired", why, "reply code")
    if ev.command in _BEFORE_MAIL:
        # Refused at the greeting or HELO (Sisimai reads Postfix's "refused to talk to me" as
        # HELO too): only the client itself can have been refused.
        return Decision("blocked", f"refused at {ev.command}: the client itself", "command")
    return None


def _ours(ev: _Evidence) -> Decision:
    """Where Sisimai's decision has nothing: an auto-reply, weak hints, the basic code read
    with the command, else onhold."""
    facts = ev.facts
    found = ev.words("vacation")
    if found is not None:
        return _decision("vacation", found)
    if facts.status is not None and (reading := registry_reason(facts.status)) is not None:
        return Decision(reading, f"enhanced code {facts.status}", "code reading")
    for reason, pattern in _WEAK:
        match = pattern.search(facts.text)
        if match is not None:
            return Decision(reason, f"words '{match[0].strip()}' (a weak hint)", "hint")
    if facts.code is not None:
        by_command = _by_command(facts.code, facts.command)
        if by_command is not None:
            told = f" ({facts.command_from} says so)" if facts.command_from == "wrapper" else ""
            why = f"reply code {facts.code} to {facts.command}{told}"
            return Decision(by_command, why, "reply code")
    if facts.status is not None and facts.status.subject == 5 and facts.status.status_class == 5:
        # As X.6 is media and X.7 security: a protocol status, a command out of place ("no
        # valid recipients" to DATA, 5.5.1).
        return Decision("syntaxerror", f"enhanced code {facts.status} (protocol)", "code reading")
    if facts.code is not None and facts.code // 100 == 4:
        # A temporary reply whose words say nothing usable: retried until the time ran out.
        why = f"reply code {facts.code}, temporary, and nothing specific said"
        return Decision("expired", why, "reply code")
    return Decision("onhold", "nothing specific in the reply", "nothing")


def _by_command(code: int, command: str | None) -> str | None:
    """What a bare refusal means by the command it answered (RFC 5321 §4.2, §4.3.2)."""
    if command in _BEFORE_MAIL and code in (421, 550, 554):
        return "blocked"  # refused before any mail was offered: the client itself
    if code in (550, 553) and command == "RCPT":
        return "userunknown"
    if code in (550, 553) and command == "MAIL":
        return "rejected"
    if code == 552:
        return "toomanyconn" if command == "RCPT" else "mailboxfull"
    if code in (521, 556):
        return "notaccept"
    if code == 551:
        return "hasmoved"
    if code in (530, 534, 535, 538):
        return "securityerror"
    return None


def decide(facts: ReplyFacts) -> Decision:
    """The reason for a failure reply and the evidence that decided it (see the module's
    docstring for the order)."""
    ev = _Evidence(facts)
    given: Decision | None = None
    verdict = reporter_verdict(facts.text)
    if verdict is not None:
        reason, why, final = verdict
        if final:
            return Decision(reason, why, "words")
        given = Decision(reason, why, "words")
    provider = provider_reply(facts.text, facts.code, facts.status) or provider_label(facts.text)
    if provider is not None and not (provider[0] == "userunknown" and ev.command == "DATA"):
        # (A recipient "not found" after the message was sent had been accepted at RCPT: the
        # first pass reads it as the recipient's filter, as for any other server.)
        return Decision(*provider, "words")
    return _first_pass(ev, given) or _fallback(ev) or _ours(ev)
