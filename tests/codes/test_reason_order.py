"""mailroom.codes.reason_order: the order reasons are tried in and what each needs.

Replies written for these tests in the words real servers and reporting MTAs use (not the
labelled sets' strings), one test per convention of the decision, each with the evidence
(``why``) that must name what decided.
"""

from __future__ import annotations

import pytest

from mailroom.codes import classify
from mailroom.codes.enhanced import EnhancedStatus
from mailroom.codes.reason_codes import registry_reason, status_reason


def test_an_enhanced_code_names_the_mailbox_unless_other_words_refuse_something_else() -> None:
    assert classify("550 5.1.1 nope").reason == "userunknown"
    # X.1.1 beside a block list or relaying words: the code was not about the mailbox.
    assert classify("550 5.1.1 Client host blocked using dnsbl.example").reason == "blocked"
    assert classify("550 5.1.1 Relaying denied for bob@example.org").reason == "norelaying"


def test_user_unknown_words_are_placed_by_the_code_and_the_stated_command() -> None:
    text = "550 5.2.1 <bob@example.test>... User unknown"
    filtered = classify(text)
    assert filtered.reason == "filtered" and "5.2.1" in filtered.why
    assert classify(text, command="RCPT").reason == "userunknown"
    # The reply's own shape ("Recipient address rejected") is kept as a fact but the reason
    # is decided on the command a report or caller states.
    shaped = classify("550 <bob@example.test>: Recipient address rejected: User unknown")
    assert shaped.command == "RCPT" and shaped.reason == "filtered"
    stated = classify(
        "host mx.example.test[192.0.2.1] said: 550 <bob@example.test>: Recipient address "
        "rejected: User unknown (in reply to RCPT TO command)"
    )
    assert stated.reason == "userunknown"


def test_a_refusal_of_mail_from_is_the_senders() -> None:
    told = "SMTP error from remote mail server after MAIL FROM:<a@example.test>: "
    assert classify(told + "550 5.1.1 unknown user").reason == "rejected"
    assert classify(told + "550 Access denied").reason == "rejected"
    # ... unless it gives another reason.
    assert classify(told + "550 Unauthenticated senders not allowed").reason == "securityerror"


def test_spam_is_judged_in_the_first_pass_only_after_the_message_was_sent() -> None:
    text = "554 5.7.1 Message looks like spam; your host is listed on a blocklist"
    assert classify(text).reason == "spamdetected"  # no command: read as after DATA
    # In reply to RCPT no content was seen: the client's listing decides.
    assert classify(text, command="RCPT").reason == "blocked"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Sorry, I couldn't find any host named nowhere.example. (#5.1.2)", "hostunknown"),
        ("all relevant MX records point to non-existent hosts", "hostunknown"),
        ("retry timeout exceeded", "expired"),
        ("Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)", "networkerror"),
        ("procmail: Couldn't create /var/mail/bob: No such user", "mailererror"),
        ("Unable to chdir to maildir. (#4.2.1)", "systemerror"),
        (
            "The recipient name is not recognized MSEXCH:IMS:MAIL:EXAMPLE:HOST 0 (000C05A6) "
            "Unknown Recipient",
            "userunknown",
        ),
    ],
)
def test_the_reporting_mtas_own_words(text: str, reason: str) -> None:
    result = classify(text)
    assert result.reason == reason and "reporting MTA" in result.why, result


def test_a_reconsidered_verdict_gives_way_to_a_family_before_it() -> None:
    # qmail gave up after the queue time, but the remote end said the mailbox was full.
    text = (
        "192.0.2.1 does not like recipient. Remote host said: 552 5.2.2 Mailbox full "
        "I'm not going to try again; this message has been in the queue too long."
    )
    assert classify(text).reason == "mailboxfull"
    assert classify("This message has been in the queue too long.").reason == "expired"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # Microsoft: a blocked recipient, not an unknown one
        (
            "550 5.7.504 Recipient address rejected: Access denied [x.prod.outlook.com]",
            "suspend",
        ),
        ("550 5.7.606 Access denied, banned sending IP [192.0.2.1]", "blocked"),
        # Google: the relay's daily limit is a rate
        ("550 5.4.5 Daily SMTP relay limit exceeded for user. - gsmtp", "speeding"),
        # Yahoo: deferred for volume and complaints: the sending IP's standing
        (
            "host mta5.am0.yahoodns.net[192.0.2.1] said: 421 4.7.0 [TSS04] Messages from "
            "192.0.2.2 temporarily deferred due to unexpected volume or user complaints",
            "badreputation",
        ),
        ("550 5.1.1 RCP-P1 The attempted recipient address does not exist", "userunknown"),
        ("550 RCP-P2 Refused due to recipient preferences", "filtered"),
    ],
)
def test_a_providers_own_vocabulary(text: str, reason: str) -> None:
    assert classify(text).reason == reason


def test_a_provider_vocabulary_needs_the_providers_reply() -> None:
    # Without codes the text is not Google's reply but a report about it.
    result = classify("Your email to group x@googlegroups.com failed. Set up SPF records.")
    assert result.reason != "authfailure"


def test_an_unregistered_detail_reads_as_its_subject() -> None:
    # RFC 3463 §2: report the general error of the subject when the detail is unknown.
    assert status_reason(EnhancedStatus(5, 1, 351)) == "userunknown"
    assert status_reason(EnhancedStatus(5, 2, 121)) == "filtered"
    assert classify("550 5.1.351 Remote server returned unknown recipient").reason == (
        "userunknown"
    )


def test_temporary_codes_name_only_what_holds_for_now() -> None:
    assert status_reason(EnhancedStatus(4, 1, 1)) is None  # a directory may not have answered
    assert status_reason(EnhancedStatus(4, 7, 1)) == "blocked"
    assert status_reason(EnhancedStatus(5, 7, 1)) == "securityerror"
    assert registry_reason(EnhancedStatus(4, 3, 0)) == "systemerror"
    assert classify("451 4.3.0 later").reason == "systemerror"


def test_a_temporary_reply_that_says_nothing_expired() -> None:
    result = classify("421")
    assert (result.reason, result.action) == ("expired", "retry")
    assert classify("421", command="EHLO").reason == "expired"
    assert classify("554", command="EHLO").reason == "blocked"


def test_gmails_session_state_says_the_command() -> None:
    told = "The error that the other server returned was: 550 550 User unknown (state 14)."
    result = classify(told)
    assert (result.command, result.reason) == ("RCPT", "userunknown")
    assert classify(told.replace("14", "18")).reason == "filtered"


def test_a_reporters_heading_is_not_the_servers_word() -> None:
    # Exchange 2003 files the remote reply under "Unknown address error"; the remote server's
    # own code and words decide.
    text = "5.1.0 - Unknown address error 550-'5.7.1 <a@example.test>... Access denied'"
    result = classify(text)
    assert str(result.status) == "5.7.1" and result.reason == "securityerror"


def test_a_refusal_before_data_was_refused_for_want_of_a_recipient_answered_rcpt() -> None:
    # RFC 5321 §3.3: DATA is refused ("503 need RCPT", "554 no valid recipients", "503 no
    # recipients specified", "503 bad sequence") when no RCPT succeeded, so the refusal the
    # transcript shows before it was the answer to RCPT.
    text = (
        "550 <bob@example.test>... User unknown 503 5.0.0 Need RCPT (recipient) "
        "550 <bob@example.test>... User unknown"
    )
    result = classify(text)
    assert (result.command, result.reason) == ("RCPT", "userunknown")
    assert classify("550 5.1.1 nope 554 5.5.1 Error: no valid recipients").command == "RCPT"
    text = "550 <bob@example.test>: User unknown 503 No recipients specified"
    assert (classify(text).command, classify(text).reason) == ("RCPT", "userunknown")
    # A 503 on its own is the protocol's complaint, not a recipient's.
    assert classify("503 Bad sequence of commands").reason == "syntaxerror"


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("lost connection with mx.example.test[192.0.2.1] while sending RCPT TO", "RCPT"),
        ("lost connection with mx.example.test[192.0.2.1] while sending MAIL FROM", "MAIL"),
        ("lost connection with mx.example.test[192.0.2.1] while sending message body", "DATA"),
        (
            "lost connection with mx.example.test[192.0.2.1] while performing the EHLO handshake",
            "HELO",
        ),
        (
            "SMTP error from remote server after RCPT command: host: mx.example.test "
            "5.2.2 <bob@example.test>... Mailbox Full",
            "RCPT",
        ),
        (
            "SMTP error from remote server for TEXT command, host: mx.example.test "
            "(192.0.2.1) reason: 550 5.2.0 Mail rejected",
            "DATA",
        ),
    ],
)
def test_more_reporters_say_the_command(text: str, command: str) -> None:
    # Postfix's words for a lost connection, GMX's and 1&1's Exim-like wrappers.
    assert classify(text).command == command
