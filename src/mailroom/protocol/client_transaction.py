"""The client's record of one mail transaction in flight: the envelope and message it sends,
the replies each command got, and from them each recipient's result (SMTP: one reply to the
message for all accepted recipients; LMTP: one reply each, RFC 2033 §4.2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mailroom.codes import Reply
from mailroom.protocol.client_envelope import Recipient
from mailroom.protocol.client_events import RecipientResult, TransactionResult

__all__ = ["PendingTransaction"]


@dataclass
class PendingTransaction:
    sender: str
    recipients: tuple[Recipient, ...]
    payload: bytes  # canonical message (raw for BINARYMIME): what BDAT sends, SIZE declares
    method: Literal["DATA", "BDAT", "BURL"]
    pipelined: bool
    chunk_size: int
    mail_command: str
    rcpt_commands: list[str]
    lmtp: bool = False
    mail_reply: Reply | None = None
    rcpt_replies: list[Reply] = field(default_factory=list)
    final: Reply | None = None  # the reply that settled the message for accepted recipients
    data_replies: list[Reply] = field(default_factory=list)  # LMTP: one per accepted recipient
    chunk_failed: bool = False

    @property
    def mail_ok(self) -> bool:
        return self.mail_reply is not None and self.mail_reply.code < 300

    @property
    def any_accepted(self) -> bool:
        return self.mail_ok and any(r.code < 300 for r in self.rcpt_replies)

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.rcpt_replies if r.code < 300) if self.mail_ok else 0

    def settled(self, closing: Reply | None = None) -> list[RecipientResult]:
        """The results of the recipients whose fate is known, in order. With ``closing``, the
        transaction is over and every recipient gets a result: one still unanswered is settled
        by ``closing``."""
        mail = self.mail_reply
        if mail is None:
            return []
        results = []
        accepted = 0
        for index, rcpt in enumerate(self.recipients):
            rcpt_reply = self.rcpt_replies[index] if index < len(self.rcpt_replies) else None
            command: Literal["MAIL", "RCPT", "DATA"] = "DATA"
            settled: Reply | None
            if not self.mail_ok:
                settled, command = mail, "MAIL"
            elif rcpt_reply is None:
                settled, command = closing, "RCPT"
            elif rcpt_reply.code >= 300:
                settled, command = rcpt_reply, "RCPT"
            else:
                accepted += 1
                if self.lmtp and accepted <= len(self.data_replies):
                    settled = self.data_replies[accepted - 1]
                else:
                    # Without a reply to the message, a transaction that is over leaves it
                    # at the RCPT reply (only when no message was sent at all).
                    settled = self.final or (rcpt_reply if closing is not None else None)
            if settled is not None:
                results.append(RecipientResult(rcpt.address, settled, rcpt_reply, command))
        return results

    def result(self, recipients: list[RecipientResult]) -> TransactionResult:
        assert self.mail_reply is not None
        data_reply = self.final
        if data_reply is None and self.data_replies:
            data_reply = self.data_replies[-1]
        return TransactionResult(
            sender=self.sender,
            mail_reply=self.mail_reply,
            recipients=tuple(recipients),
            data_reply=data_reply,
            method=self.method,
            size=len(self.payload),
            data_replies=tuple(self.data_replies),
        )
