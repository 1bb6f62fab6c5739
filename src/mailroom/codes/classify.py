"""What a reply from another server means for the message: deliver, retry or bounce, and why.

:func:`classify` reads a reply (a :class:`~mailroom.codes.Reply`, or text from any server or
bounce message, with or without codes, possibly wrapped in another MTA's words) and returns a
:class:`Classification`: the action and a reason named as Sisimai names them (``userunknown``,
``mailboxfull``, ``mesgtoobig``, ``blocked``, ``spamdetected``, ``policyviolation``, …; see
:mod:`mailroom.codes.reasons`), with ``why``: the words or codes that decided.

The evidence is read in this order, from the most to the least specific:

1. the facts (:mod:`~mailroom.codes.reply_facts`): the remote server's own reply apart from
   the reporting MTA's words, its codes, and the command it answered;
2. an error label a provider documents (:mod:`~mailroom.codes.provider_labels`);
3. decisive wording in the remote server's reply (:mod:`~mailroom.codes.reason_phrases`):
   many servers send generic codes (5.7.1, 5.0.0, 550) and say the reason in words, and some
   send a specific code that their words correct;
4. a specific enhanced code (:mod:`~mailroom.codes.reason_codes`): 5.1.1 userunknown, …;
5. decisive wording anywhere, the reporting MTA's included ("retry timeout exceeded");
6. weak wording (a bare "spam", "timed out", "quota");
7. a generic enhanced code (X.0.0, X.7.1), then the basic code with the command it answered
   (550 to RCPT: userunknown; to MAIL: rejected; 5xx at the greeting: blocked; …);
8. otherwise ``onhold`` (a reply that says nothing usable), or ``undefined`` (no text at all).

The action comes from the class (2: delivered, 4: retry, 5: bounce); without any code, from
the wording ("delayed", "will be retried", "temporary" mean retry).

Pure: no I/O. Rules are about codes and phrasing, never about particular messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailroom.codes.enhanced import EnhancedStatus
from mailroom.codes.provider_labels import provider_label
from mailroom.codes.reason_codes import GENERIC_STATUS, basic_reason, status_reason
from mailroom.codes.reason_phrases import DECISIVE, WEAK, compile_families
from mailroom.codes.reasons import REASONS, Action
from mailroom.codes.reply import Reply
from mailroom.codes.reply_facts import ReplyFacts, read_facts

__all__ = ["REASONS", "Action", "Classification", "classify"]


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one reply: ``action`` is what a sender does next, ``reason`` why, and
    ``why`` the evidence that decided, in words ("words 'mailbox full' in the remote reply",
    "enhanced code 5.1.1", "reply code 550 to RCPT")."""

    action: Action
    reason: str
    code: int | None  # the basic code found, if any
    status: EnhancedStatus | None  # the enhanced code found, if any
    command: str | None  # the command the reply answered, when known: MAIL, RCPT, DATA, …
    why: str

    @property
    def evidence(self) -> str:
        """The same as ``why`` (the name this field had first)."""
        return self.why

    @property
    def description(self) -> str:
        return REASONS.get(self.reason, "")

    def __str__(self) -> str:
        return f"{self.action}: {self.reason} ({self.why})"


_DECISIVE = compile_families(DECISIVE)
_WEAK = compile_families(WEAK)


def _worded(
    text: str, families: tuple[tuple[str, re.Pattern[str]], ...], where: str
) -> tuple[str, str] | None:
    """The first family with a phrase in ``text``: (reason, evidence)."""
    for reason, pattern in families:
        match = pattern.search(text)
        if match is not None:
            return reason, f"words '{match[0].strip()}'" + (f" {where}" if where else "")
    return None


def _by_status(facts: ReplyFacts) -> tuple[str, str] | None:
    if facts.status is None:
        return None
    reason = status_reason(facts.status, facts.code, facts.command)
    return (reason, f"enhanced code {facts.status}") if reason is not None else None


def _by_code(facts: ReplyFacts) -> tuple[str, str] | None:
    if facts.code is None:
        return None
    reason = basic_reason(facts.code, facts.command)
    if reason is None:
        return None
    to = f" to {facts.command}" if facts.command else ""
    told = f" ({facts.command_from} says so)" if facts.command_from == "wrapper" else ""
    return reason, f"reply code {facts.code}{to}{told}"


def _refine(reason: str, why: str, source: str, facts: ReplyFacts) -> tuple[str, str]:
    """Corrections where one piece of evidence reads differently in the light of another."""
    status = facts.status
    if reason in ("mesgtoobig", "exceedlimit") and status is not None:
        # The enhanced code tells a per-mailbox limit (X.2.3) from a system limit (X.3.4).
        if (status.subject, status.detail) == (2, 3):
            return "exceedlimit", f"{why}; enhanced code {status}: a per-mailbox limit"
        if (status.subject, status.detail) == (3, 4):
            return "mesgtoobig", why
    if reason in ("userunknown", "hostunknown") and (
        facts.command == "MAIL"
        or (status is not None and (status.subject, status.detail) in ((1, 7), (1, 8)))
    ):
        # Said of the envelope sender: MAIL FROM's address, or X.1.7/X.1.8 (the sender's).
        return "rejected", f"{why}, of the sender (MAIL, X.1.7/X.1.8)"
    if reason == "userunknown" and facts.command == "DATA":
        # Every recipient was accepted at RCPT; "unknown" after the message is a filter.
        return "filtered", f"{why}, after DATA: the recipient was accepted before"
    if (
        reason == "userunknown"
        and source != "label"
        and not _DIRECTORY.search(facts.text)
        and (status is None or status.subject != 1)
        and facts.command_from not in ("caller", "wrapper", "local")
        and _worded(facts.wrapper, _USER_UNKNOWN, "") is None
    ):
        # "User unknown" with neither an X.1.x code nor a reply known to answer RCPT: a
        # refusal that cannot be placed at the recipient check reads as the recipient's
        # filter (many filters answer "user unknown" to hide which addresses exist). This is
        # Sisimai's reading, whose names these are. A provider's label, and a lookup in a
        # directory or address book (Lotus Domino's words), place it at the recipient check.
        return "filtered", f"{why}, with no X.1.x code and not known to answer RCPT"
    if reason == "contenterror" and status is not None and status.subject == 7:
        # Content refused by a security or policy rule (X.7): the spam filter when it only
        # says "content rejected", a policy otherwise.
        if "content rejected" in facts.inner:
            return "spamdetected", f"{why} under {status}: a content filter"
        return "policyviolation", f"{why} under {status}: a policy rule"
    told = facts.command_from in ("caller", "wrapper")
    before_mail = told and facts.command in ("CONNECT", "HELO")
    if before_mail and (reason in _ABOUT_THE_CLIENT or source == "weak"):
        # Before any mail was offered, only the client itself (its address, its name) can be
        # refused.
        return "blocked", f"{why}, before any mail was offered: the client is refused"
    if reason == "blocked" and facts.command == "MAIL" and source in ("report", "weak"):
        # A vague refusal of MAIL FROM ("access denied") refuses the sender.
        return "rejected", f"{why}, in reply to MAIL: the sender is refused"
    return reason, why


# Reasons that, said before any mail was offered, amount to refusing the client.
_ABOUT_THE_CLIENT = frozenset(
    {
        "requireptr",
        "speeding",
        "securityerror",
        "policyviolation",
        "rejected",
        "spamdetected",
        "hostunknown",
        "syntaxerror",
    }
)
_DIRECTORY = re.compile(r"directory|address book|ディレクトリ")
_USER_UNKNOWN = compile_families(tuple(f for f in DECISIVE if f[0] == "userunknown"))

_RETRY_WORDS = re.compile(
    r"delayed|will be retried|try again later|temporar|try later|deferred|greylist"
)


def _action(reason: str, facts: ReplyFacts) -> Action:
    if reason in ("delivered", "vacation"):
        return "delivered"
    klass = facts.code // 100 if facts.code is not None else None
    if klass is None and facts.status is not None:
        klass = facts.status.status_class
    if klass == 2:
        return "delivered"
    if klass == 4:
        return "retry"
    if klass == 5:
        return "bounce"
    if "permanent" in facts.text:
        return "bounce"
    if _RETRY_WORDS.search(facts.text):
        return "retry"
    return "bounce"


def _decide(facts: ReplyFacts) -> tuple[str, str, str]:
    """(reason, why, source) from the facts, in the order of the module's docstring; the
    source says which kind of evidence decided ("label", "reply", "status", "report",
    "weak", "code" or "none")."""
    code, status = facts.code, facts.status
    if (code is not None and code < 300) or (
        code is None and status is not None and status.status_class == 2
    ):
        return "delivered", f"reply code {code or status}", "code"
    generic = status is not None and (status.subject, status.detail) in GENERIC_STATUS
    wrapped = facts.inner != facts.text
    for source, found in (
        ("label", provider_label(facts.inner)),
        ("reply", _worded(facts.inner, _DECISIVE, "in the remote reply" if wrapped else "")),
        ("status", None if generic else _by_status(facts)),
        ("report", _worded(facts.text, _DECISIVE, "in the report") if wrapped else None),
        ("weak", _worded(facts.text, _WEAK, "(a weak hint)")),
        ("status", _by_status(facts) if generic else None),
        ("code", _by_code(facts)),
    ):
        if found is not None:
            return found[0], found[1], source
    return "onhold", "nothing specific in the reply", "none"


def classify(
    reply: Reply | str | bytes,
    *,
    command: str | None = None,
    code: int | None = None,
    status: EnhancedStatus | str | None = None,
) -> Classification:
    """Classify a reply: the action a sender takes and the reason, with the evidence.

    ``reply`` is a parsed :class:`Reply`, or the text of a reply or of a bounce's diagnostic
    (any MTA's wording, codes optional). ``command`` is the SMTP command the reply answered
    (``"RCPT"``, ``"MAIL"``, ``"DATA"``, ``"CONNECT"``, …) when the caller knows it; otherwise
    it is read from the text where the reporting MTA says it. ``code`` and ``status`` are
    hints for text that lacks them, such as a DSN's ``Status:`` field beside its
    ``Diagnostic-Code:`` (RFC 3464); codes in the text itself come first.
    """
    facts = read_facts(reply, command, code, status)
    if not facts.text:
        return Classification("bounce", "undefined", None, None, facts.command, "no text")
    reason, why, source = _decide(facts)
    if reason != "delivered":
        reason, why = _refine(reason, why, source, facts)
    return Classification(
        _action(reason, facts), reason, facts.code, facts.status, facts.command, why
    )
