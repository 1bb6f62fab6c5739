"""What a reply from another server means for the message: deliver, retry or bounce, and why.

:func:`classify` reads a reply (a :class:`~mailroom.codes.Reply`, or text from any server or
bounce message, with or without codes, possibly wrapped in another MTA's words) and returns a
:class:`Classification`: the action and a reason named as Sisimai names them (``userunknown``,
``mailboxfull``, ``mesgtoobig``, ``blocked``, ``spamdetected``, ``policyviolation``, …; see
:mod:`mailroom.codes.reasons`), with ``why``: the words or codes that decided.

The facts come first (:mod:`~mailroom.codes.reply_facts`: the codes, the command the reply
answered, which words are the remote server's); the reason is then decided the way Sisimai
decides it, in the order :mod:`~mailroom.codes.reason_order` describes: the reporting MTA's own
verdict, a provider's own vocabulary, the reasons tried in a fixed order by their enhanced
code or their words (:mod:`~mailroom.codes.reason_phrases`) with the command, and what the
enhanced code names (:mod:`~mailroom.codes.reason_codes`).

The action comes from the class (2: delivered, 4: retry, 5: bounce); without any code, from
the wording ("delayed", "will be retried", "temporary" mean retry).

Pure: no I/O. Rules are about codes and phrasing, never about particular messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailroom.codes.enhanced import EnhancedStatus
from mailroom.codes.reason_order import decide
from mailroom.codes.reasons import NAMES_THE_CAUSE, REASONS, Action, Basis
from mailroom.codes.reply import Reply
from mailroom.codes.reply_facts import ReplyFacts, read_facts

__all__ = ["REASONS", "Action", "Basis", "Classification", "classify"]


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one reply: ``action`` is what a sender does next, ``reason`` why, and
    ``why`` the evidence that decided, in words ("words 'mailbox full' in the remote reply",
    "enhanced code 5.1.1", "reply code 550 to RCPT"), and ``basis`` what kind of evidence it
    is (:data:`~mailroom.codes.reasons.Basis`)."""

    action: Action
    reason: str
    code: int | None  # the basic code found, if any
    status: EnhancedStatus | None  # the enhanced code found, if any
    command: str | None  # the command the reply answered, when known: MAIL, RCPT, DATA, …
    why: str
    basis: Basis

    @property
    def names_cause(self) -> bool:
        """Whether the verdict names what went wrong, in words (the reply's, the reporting
        MTA's, a provider's) or by an enhanced code that names the reason itself (4.4.2, bad
        connection: networkerror), rather than guessing it from a loose hint, a basic code, a
        code's subject or registry text (4.3.0), where it was said, or nothing at all."""
        return self.basis in NAMES_THE_CAUSE

    @property
    def evidence(self) -> str:
        """The same as ``why`` (the name this field had first)."""
        return self.why

    @property
    def description(self) -> str:
        return REASONS.get(self.reason, "")

    def __str__(self) -> str:
        return f"{self.action}: {self.reason} ({self.why})"


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
        return Classification(
            "bounce", "undefined", None, None, facts.command, "no text", "nothing"
        )
    code, status = facts.code, facts.status
    if (code is not None and code < 300) or (
        code is None and status is not None and status.status_class == 2
    ):
        # The class alone decides: a 2xx reply code, or a 2.x.x code's class.
        basis: Basis = "reply code" if code is not None else "code reading"
        reason, why = "delivered", f"reply code {code or status}"
    else:
        reason, why, basis = decide(facts)
    return Classification(
        _action(reason, facts), reason, facts.code, facts.status, facts.command, why, basis
    )
