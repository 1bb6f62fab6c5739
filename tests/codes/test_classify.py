"""mailroom.codes.classify: replies from any server as an action and a Sisimai reason.

Three kinds of evidence: a table of replies written for these tests in the words real servers
use (Postfix, Exim, qmail, Exchange, Gmail, Yahoo, …; not the development set's strings), the
catalogue of mailroom's own replies, and the labelled development set of real replies, whose
per-reason accuracy is printed (run with ``-s``) and must stay above a floor.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailroom.codes import Reply, catalogue, classify
from mailroom.codes.classify import REASONS

DATA = Path(__file__).resolve().parent.parent / "data"
# The labelled real replies the rules were written from (the numbers measured before each was
# read are in bench/classify_rounds.tsv), with the floor each must keep. held-3 was kept apart
# for three rounds and read in round 6, after its scores were recorded. real-replies-held-4.tsv
# and real-replies-held-5.tsv were kept apart until round 7, which read their half A (split by
# message, bench/classify_accuracy.py) and is judged on half B: no test scores them
# (bench/classify_accuracy.py --held does); only their sources are compared.
DEV_SETS = {
    "real-replies-dev.tsv": 0.90,
    "real-replies-dev-2.tsv": 0.90,
    "real-replies-dev-3.tsv": 0.90,
    "real-replies-dev-4.tsv": 0.85,
    "real-replies-held-3.tsv": 0.80,
}
# Reasons a set holds few of, all labelled from evidence the text does not carry: dev-4's three
# securityerror rows are a challenge-response system's "sender not pre-approved" and a spam
# verdict at RCPT under 5.7.1 that Sisimai's phrase list does not know (its fallback, X.7:
# securityerror); the words say rejected and spam.
WEAK_KNOWN = {("real-replies-dev-4.tsv", "securityerror")}
LABELLED_SETS = (
    *DEV_SETS,
    "real-replies-held-4.tsv",
    "real-replies-held-5.tsv",
    "real-replies-held-6.tsv",
    "real-replies-held-7.tsv",
)

# (expected reason, expected action, reply text)
WRITTEN = [
    # userunknown: Postfix, Exim, qmail, Exchange, Gmail, Yahoo, sendmail
    (
        "userunknown",
        "bounce",
        "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in local recipient table",
    ),
    (
        "userunknown",
        "bounce",
        "host mx.example.com[192.0.2.1] said: 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
    ),
    (
        "userunknown",
        "bounce",
        "SMTP error from remote mail server after RCPT TO:<bob@example.org>: 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
    ),
    ("userunknown", "bounce", "Sorry, no mailbox here by that name. (#5.1.1)"),
    (
        "userunknown",
        "bounce",
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    ),
    # "User unknown" with neither an X.1.x code nor a reply known to answer RCPT reads as the
    # recipient's filter (Sisimai's convention; see test_user_unknown_is_placed_...).
    ("filtered", "bounce", "552 1 Requested mail action aborted, mailbox not found"),
    (  # Yahoo's own words for an account it does not have
        "userunknown",
        "bounce",
        "554 delivery error: dd This user doesn't have a yahoo.com account (bob@yahoo.com) [0] - mta1234.mail.yahoo.com",
    ),
    (
        "suspend",
        "bounce",
        "554 delivery error: dd Sorry your message to bob@yahoo.com cannot be delivered. This account has been disabled or discontinued [#102].",
    ),
    ("filtered", "bounce", "550 No such user - psmtp"),
    (
        "filtered",
        "bounce",
        "Your message to bob@example.com couldn't be delivered. bob wasn't found at example.com.",
    ),
    (
        "userunknown",
        "bounce",
        "host mx.example.net[192.0.2.1] said: 550 No such user - psmtp (in reply to RCPT TO command)",
    ),
    ("userunknown", "bounce", "550 #5.1.0 Address rejected."),
    # mailboxfull, also as a transient reply (which the queue retries)
    (
        "mailboxfull",
        "bounce",
        "552 5.2.2 <bob@example.com>: Recipient address rejected: Mailbox full",
    ),
    ("mailboxfull", "retry", "452 4.2.2 The email account that you tried to reach is over quota."),
    ("mailboxfull", "bounce", "552 5.2.2 Mailbox size limit exceeded"),
    (
        "mailboxfull",
        "bounce",
        "552 5.2.2 <bob@example.com> Quota exceeded (mailbox for user is full)",
    ),
    (
        "mailboxfull",
        "retry",
        "host mx.example.jp[192.0.2.1] said: 452 4.2.2 <bob@example.jp>: Recipient address rejected: Mailbox full (in reply to RCPT TO command)",
    ),
    # sizes: per message (X.3.4) and per mailbox (X.2.3)
    ("mesgtoobig", "bounce", "552 5.3.4 Error: message file too big"),
    ("mesgtoobig", "bounce", "552 Message size exceeds maximum permitted"),
    ("exceedlimit", "bounce", "552 5.2.3 Message exceeds maximum fixed size"),
    # the client's address, host name or reputation
    (
        "blocked",
        "bounce",
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
    ),
    (
        "blocked",
        "bounce",
        "host mx.example.net[192.0.2.9] refused to talk to me: 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using b.barracudacentral.org",
    ),
    (
        "blocked",
        "bounce",
        "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this list please visit https://sender.office.com/",
    ),
    (
        "blocked",
        "bounce",
        "550 SC-001 (BAY004-MC1F3) Unfortunately, messages from 192.0.2.1 weren't sent. Please contact your Internet service provider since part of their network is on our block list.",
    ),
    (
        "badreputation",
        "bounce",
        "554 5.7.1 Your access to this mail system has been rejected due to the sending MTA's poor reputation.",
    ),
    (
        "requireptr",
        "retry",
        "450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1]",
    ),
    (
        "requireptr",
        "bounce",
        "550 5.7.25 [192.0.2.1] The IP address sending this message does not have a PTR record setup",
    ),
    # authentication of the message: SPF, DKIM, DMARC
    (
        "authfailure",
        "bounce",
        "550 5.7.23 The message was rejected because of Sender Policy Framework violation",
    ),
    ("authfailure", "bounce", "550 5.7.1 Email rejected per DMARC policy for example.com"),
    (
        "authfailure",
        "bounce",
        "550 5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users, and has been blocked.",
    ),
    # content
    ("spamdetected", "bounce", "550 5.7.1 Message rejected as spam by Content Filtering."),
    (
        "spamdetected",
        "bounce",
        "554 5.7.0 Your message has been blocked because it appears to be spam",
    ),
    ("virusdetected", "bounce", "554 5.7.1 Virus found in message"),
    (
        "policyviolation",
        "bounce",
        "554 5.7.1 The message was rejected because it violates our policy",
    ),
    ("policyviolation", "bounce", "550 5.7.1 Message rejected: attachment type not allowed"),
    (
        "contenterror",
        "bounce",
        "550 5.6.11 SMTPSEND.BareLinefeedsAreIllegal; message contains bare linefeeds, which cannot be sent via DATA",
    ),
    (
        "notcompliantrfc",
        "bounce",
        "550 5.7.1 Messages missing a valid address in the From: header, or having no From: header, are not accepted.",
    ),
    # relaying, the sender
    ("norelaying", "bounce", "554 5.7.1 <bob@example.org>: Relay access denied"),
    ("norelaying", "bounce", "550 5.7.1 Unable to relay for bob@example.org"),
    (
        "rejected",
        "retry",
        "450 4.1.8 <alice@nonexist.example>: Sender address rejected: Domain not found",
    ),
    (
        "rejected",
        "bounce",
        "553 5.1.8 <alice@example.com>... Domain of sender address alice@example.com does not exist",
    ),
    # the recipient's account and domain
    (
        "suspend",
        "bounce",
        "554 30 Sorry, your message to bob@yahoo.com cannot be delivered. This mailbox is disabled (554.30).",
    ),
    ("hasmoved", "bounce", "551 5.1.6 User has moved; please try <bob@new.example>"),
    (
        "hostunknown",
        "bounce",
        "Host or domain name not found. Name service error for name=example.invalid type=MX: Host not found",
    ),
    # "try again": the lookup failed for now (SERVFAIL), which does not say the domain is absent
    (
        "networkerror",
        "bounce",
        "Host or domain name not found. Name service error for name=example.invalid type=MX: Host not found, try again",
    ),
    (
        "hostunknown",
        "bounce",
        "550 5.1.2 <bob@nowhere.example>: Recipient address rejected: Domain not found",
    ),
    ("notaccept", "bounce", "556 5.1.10 Recipient address has null MX"),
    # limits and rates
    (
        "toomanyconn",
        "retry",
        "421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later.",
    ),
    ("toomanyconn", "retry", "452 4.5.3 Too many recipients"),
    (
        "speeding",
        "retry",
        "450 4.2.1 The user you are trying to contact is receiving mail too quickly. Please resend your message at a later time.",
    ),
    ("speeding", "bounce", "550 5.4.5 Daily user sending quota exceeded."),
    # the system, the network, the protocol, the session
    ("systemerror", "retry", "451 4.3.0 Error: queue file write error"),
    ("systemfull", "retry", "452 4.3.1 Insufficient system storage"),
    (
        "networkerror",
        "bounce",
        "554 5.4.6 Message exceeded 50 hops, this may indicate a mail loop.",
    ),
    ("syntaxerror", "bounce", "503 5.5.1 Error: need RCPT command"),
    ("securityerror", "bounce", "535 5.7.8 Username and Password not accepted."),
    ("failedstarttls", "bounce", "530 5.7.0 Must issue a STARTTLS command first"),
    (
        "expired",
        "bounce",
        "Delivery to the following recipient failed permanently: Technical details of permanent failure: connection timed out",
    ),
    (
        "expired",
        "retry",
        "4.4.7 Message delayed: unable to deliver for 840 minutes, will be retried",
    ),
    # provider error labels
    (
        "toomanyconn",
        "retry",
        "421 mwinf5c79 ME Trop de connexions, veuillez verifier votre configuration. Too many connections, slow down. OFR005_104 [104]",
    ),
    (
        "requireptr",
        "bounce",
        "554 5.7.1 Connection refused. Reverse DNS failed for 192.0.2.1 AUP#CXDNS",
    ),
    (
        "spamdetected",
        "bounce",
        "552 This message has been rejected due to content judged to be spam by the internet community. IB212",
    ),
    # delivered and auto-replies
    ("delivered", "delivered", "250 2.0.0 OK 1700000000 a1-20020a170000si0000000pla.123 - gsmtp"),
    ("vacation", "delivered", "I am out of the office until Monday and will reply on my return."),
]


@pytest.mark.parametrize(("reason", "action", "text"), WRITTEN, ids=[t[:50] for _, _, t in WRITTEN])
def test_written_replies(reason: str, action: str, text: str) -> None:
    result = classify(text)
    assert (result.reason, result.action) == (reason, action), result


def test_reply_objects_and_bytes_give_the_same_answer() -> None:
    text = "550 5.1.1 <bob@example.test>: Recipient address rejected: User unknown"
    from_text = classify(text)
    from_reply = classify(Reply.parse(text))
    from_bytes = classify(text.encode() + b"\r\n")
    assert from_text.reason == from_reply.reason == from_bytes.reason == "userunknown"
    assert from_reply.code == 550 and str(from_reply.status) == "5.1.1"


def test_multi_line_reply() -> None:
    reply = Reply.parse(
        b"550-5.7.26 This mail is unauthenticated. Gmail requires all senders to\r\n"
        b"550-5.7.26 authenticate with either SPF or DKIM.\r\n"
        b"550 5.7.26 https://support.google.com/mail/answer/81126 - gsmtp\r\n"
    )
    assert classify(reply).reason == "authfailure"


def test_the_command_changes_what_a_bare_code_means() -> None:
    assert classify("550 Requested action not taken", command="RCPT").reason == "userunknown"
    assert classify("550 Requested action not taken", command="MAIL").reason == "rejected"
    assert classify("554 mx.example.test", command="CONNECT").reason == "blocked"
    # A recipient accepted at RCPT cannot be unknown after the message: that is a filter.
    assert classify("550 User unknown", command="DATA").reason == "filtered"
    assert (
        classify(
            "host x[192.0.2.1] said: 550 User unknown (in reply to end of DATA command)"
        ).reason
        == "filtered"
    )


def test_a_refused_rcpt_in_the_transcript_outranks_a_reported_data() -> None:
    """A report that names DATA as the last command, and whose transcript shows DATA refused
    for want of a recipient, failed at RCPT: the user-unknown reply before it answered RCPT."""
    transcript = "550 <carol@example.test>: User unknown 503 5.5.1 Error: need RCPT command"
    assert classify(transcript).command == "RCPT"
    assert classify(transcript, command="DATA").reason == "userunknown"
    assert classify(transcript, command="DATA").command == "RCPT"
    # Without such a transcript the reported DATA stands.
    assert classify("550 <carol@example.test>: User unknown", command="DATA").reason == "filtered"


def test_full_storage_is_the_systems_before_any_recipient_or_under_a_system_code() -> None:
    assert classify("452 4.4.5 Insufficient disk space; try again later").reason == "systemfull"
    assert classify("452 4.3.1 Insufficient disk space").reason == "systemfull"
    assert classify("452 Insufficient disk space", command="MAIL").reason == "systemfull"
    # Said of a recipient, or with no code that names the system, it is the mailbox's.
    assert classify("452 Insufficient disk space", command="RCPT").reason == "mailboxfull"
    assert classify("552 5.2.2 Mailbox full").reason == "mailboxfull"


def test_a_malformed_header_that_names_dkim_is_a_content_error() -> None:
    dup = classify("554 Transaction failed: Duplicate header 'DKIM-Signature'.", command="DATA")
    assert dup.reason == "contenterror", dup
    assert classify("550 5.7.1 DKIM signature verification failed").reason == "authfailure"


def test_the_rfc_5321_mailbox_unavailable_sentence_is_not_a_provider_verdict() -> None:
    """Outlook.com's refusal carries its trace in brackets; the bare sentence of RFC 5321
    §4.2.2 is any server's and places nothing (see test_user_unknown_is_placed_…)."""
    hotmail = "550 Requested action not taken: mailbox unavailable (S2017062302)."
    assert classify(hotmail).reason == "userunknown"
    assert classify("550 Requested action not taken: mailbox unavailable").reason == "filtered"


def test_a_mailbox_filter_said_alone() -> None:
    assert classify("550 5.2.0 Message Filtered").reason == "filtered"


def test_a_reply_that_names_the_recipient_unknown_answered_rcpt() -> None:
    # RFC 5321 §4.2: the reply to RCPT names the recipient; Postfix writes "<bob@…>: User
    # unknown" where Sendmail writes "<bob@…>... User unknown" (Yahoo passes either on).
    for reply in (
        "550: <bob@example.test>: User unknown",
        "550 <bob@example.test>... User unknown",
    ):
        verdict = classify(reply)
        assert (verdict.command, verdict.reason) == ("RCPT", "filtered")


def test_office_365_says_the_remote_server_refused_the_recipient() -> None:
    reply = (
        "550 5.1.351 Remote server returned unknown recipient or mailbox unavailable -> "
        "550 Unknown user bob@example.test"
    )
    assert classify(reply).command == "RCPT"


def test_m_filters_smtp_command_section() -> None:
    said = "550 unknown user <bob@example.test> -------SMTP command DATA"
    assert classify(said).command == "DATA"
    assert classify("550 No such user -------SMTP command RCPT").command == "RCPT"


def test_refused_to_accept_your_message_names_the_command_in_parentheses() -> None:
    said = (
        "SMTP Server <192.0.2.9> refused to accept your message (DATA), with the following "
        "error message: [554 5.4.6 Hop count exceeded - possible mail loop]"
    )
    assert classify(said).command == "DATA"
    assert classify(said.replace("(DATA)", "(RCPT TO)")).command == "RCPT"


def test_a_sendmail_transcript_with_a_reply_before_any_command_is_the_greeting() -> None:
    greeted = "... while talking to mx.example.org.: <<< 554 Go away"
    assert classify(greeted).command == "CONNECT"
    asked = "... while talking to mx.example.org.: >>> RCPT To:<bob@example.org> <<< 550 No"
    assert classify(asked).command == "RCPT"


def test_user_unknown_is_placed_by_code_or_command() -> None:
    """Wording that the user is unknown means userunknown when the reply is known to answer
    RCPT (the caller, the reporting MTA, a local delivery agent say so) or carries an X.1.x
    code; otherwise the refusal cannot be told from a filter's, and Sisimai, whose reason
    names these are, calls it filtered. The evidence says which."""
    bare = classify("550 No such user here")
    assert bare.reason == "filtered" and "not known to answer RCPT" in bare.why
    assert classify("550 No such user here", command="RCPT").reason == "userunknown"
    assert classify("550 5.1.1 No such user here").reason == "userunknown"
    assert classify('unknown user: "bob"').reason == "userunknown"  # Postfix local(8)
    # Sendmail's transcript: mail.local's words, then the reply that passes them on.
    relayed = classify("mail.local: unknown user: bob 554 <bob@example.org>... Service unavailable")
    assert (relayed.reason, relayed.command) == ("userunknown", "RCPT")
    assert classify("User bob not listed in Domino Directory").reason == "userunknown"
    assert classify("550 No such user here", command="DATA").reason == "filtered"


def test_a_dsn_status_field_fills_in_for_the_text() -> None:
    """A bounce (RFC 3464) gives Status: and Diagnostic-Code: apart; the text's own codes
    come first, the hints fill gaps."""
    found = classify("Remote host said: we do not like this one", code=550, status="5.2.2")
    assert (found.reason, found.action, str(found.status)) == ("mailboxfull", "bounce", "5.2.2")
    assert classify("delivery stalled", status="4.4.7").action == "retry"
    assert classify("550 5.1.1 nope", status="5.2.2").reason == "userunknown"


def test_enhanced_code_decides_when_the_words_say_nothing() -> None:
    assert classify("550 5.1.1 nope").reason == "userunknown"
    assert classify("552 5.2.2 nope").reason == "mailboxfull"
    assert classify("554 5.3.4 nope").reason == "mesgtoobig"
    assert classify("550 5.7.25 nope").reason == "requireptr"
    # Generic codes leave it to the words, even weak ones.
    assert classify("550 5.7.1 looks like spam to us").reason == "spamdetected"


def test_action_follows_the_class() -> None:
    assert classify("250 2.1.5 Ok").action == "delivered"
    assert classify("451 4.3.0 Local error").action == "retry"
    assert classify("551 5.1.6 moved").action == "bounce"
    assert classify("Delivery to the following recipients has been delayed.").action == "retry"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # A delivery agent naming the address it looked up itself (round 7).
        ("Unknown user: bob@example.org", "userunknown"),
        ('local: unknown user: "bob"', "userunknown"),
        # A bare address inside the statement does not end it.
        (
            "host mx.example.org[192.0.2.7] said: 550 5.7.1 <bob@example.org>: Recipient address "
            "rejected: user bob@example.org does not exist (in reply to RCPT TO command)",
            "userunknown",
        ),
        # Postfix's "refused to talk to me" wraps the greeting; the reply inside gives why.
        (
            "host mx.example.org[192.0.2.7] refused to talk to me: 421 4.4.2 mx.example.org "
            "Error: timeout exceeded",
            "networkerror",
        ),
        (
            "host mx.example.org[192.0.2.7] refused to talk to me: 421 Service not available, "
            "closing transmission channel",
            "blocked",
        ),
        # A reply naming the recipient it refuses answered RCPT.
        ("550 <bob@example.org> recipient rejected", "userunknown"),
    ],
)
def test_round_7_readings(text: str, reason: str) -> None:
    result = classify(text)
    assert result.reason == reason, result


# A reply a hostile server sends may be long (the client takes lines of up to 64 KiB, a
# thousand of them): runs of what the facts are read from at every position (blanks before a
# queue trailer, a rule of dashes before "smtp command rcpt") once took time growing with the
# square of the run. The bound guards against a hang, thirty times what it takes now; it is not
# a measure of speed.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("run", [" \t", "  \n", "\n", "-", "a.b.c ", "<a@b.c> ", "("])
def test_long_replies_are_read_in_linear_time(run: str) -> None:
    text = "550 5.1.1 " + run * (256 * 1024 // len(run)) + " user unknown"
    assert classify(text).reason == "userunknown"


# Texts without codes, where every family is tried: a hint's "sender … rejected" went from each
# "sender" to the end and back (64 KB: 10 s), the authentication family's rest of a word from
# each "bad" of "badbad…" (48 KB: 12 s), Exim's marker from each "after" (cubic: 3 KB, 2 s).
# A text is read up to MAX_TEXT characters. Guards against a hang, not a measure of speed.
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "run",
    ["sender ", "bad", "smtp error from remote mail server after ", "did not like our ", "554 "],
)
def test_long_texts_without_codes_are_read_in_bounded_time(run: str) -> None:
    short = classify("mailbox unavailable: user unknown " + run * 100)
    long = classify("mailbox unavailable: user unknown " + run * (1024 * 1024 // len(run)))
    assert (long.reason, long.why) == (short.reason, short.why)
    assert long.reason in ("filtered", "onhold")  # no code: Sisimai's reading of the words


def test_nothing_to_go_on() -> None:
    assert classify("").reason == "undefined"
    assert classify("something odd happened").reason == "onhold"


# What kind of evidence decided, and whether it names the cause (the bounce reader trusts a
# reporting MTA's own words over its Status only when they do).
@pytest.mark.parametrize(
    ("text", "command", "reason", "basis", "names_cause"),
    [
        ("552 5.2.2 Over quota", None, "mailboxfull", "enhanced code", True),
        ("421 4.4.2 timeout", None, "networkerror", "enhanced code", True),
        ("550 sorry, mailbox full", None, "mailboxfull", "words", True),
        ("550 5.1.1 <bob@example.org>: no such user", None, "userunknown", "enhanced code", True),
        ("550 Requested action not taken: user unknown", "RCPT", "userunknown", "words", True),
        ("451 4.3.0 Try again", None, "systemerror", "code reading", False),
        ("454 4.7.0 xyz", None, "securityerror", "code reading", False),
        ("550 quota", None, "mailboxfull", "hint", False),
        ("550 xyz", "RCPT", "userunknown", "reply code", False),
        ("421 xyz", "CONNECT", "blocked", "command", False),
        ("something odd happened", None, "onhold", "nothing", False),
        ("", None, "undefined", "nothing", False),
    ],
)
def test_the_kind_of_evidence_is_told(
    text: str, command: str | None, reason: str, basis: str, names_cause: bool
) -> None:
    verdict = classify(text, command=command)
    assert (verdict.reason, verdict.basis, verdict.names_cause) == (reason, basis, names_cause)


def _sample(template):  # type: ignore[no-untyped-def]
    values = {name: "<bob@example.test>" if name == "address" else "x" for name in template.params}
    return template(**values)


# Mailroom's own replies, classified as another mailroom (the outbound queue) would read them.
OWN = {
    "MAILBOX_UNKNOWN": "userunknown",
    "RELAY_DENIED": "norelaying",
    "MESSAGE_TOO_BIG": "mesgtoobig",
    "MESSAGE_SIZE_EXCEEDS_LIMIT": "mesgtoobig",
    "STORAGE_FULL": "systemfull",
    "TOO_MANY_CONNECTIONS": "toomanyconn",
    "TOO_MANY_RECIPIENTS": "toomanyconn",
    "RATE_LIMITED": "speeding",
    "AUTH_REQUIRED": "securityerror",
    "AUTH_INVALID_CREDENTIALS": "securityerror",
    "TLS_REQUIRED": "failedstarttls",
    "USER_MOVED": "hasmoved",
    "DOMAIN_DOES_NOT_ACCEPT_MAIL": "notaccept",
    "NO_MAIL_ACCEPTED": "notaccept",
    "SENDER_DOMAIN_NULL_MX": "rejected",
    "SENDER_SYNTAX": "rejected",
    "BARE_LINE_ENDING": "contenterror",
    "NEED_RCPT": "syntaxerror",
    "UNKNOWN_COMMAND": "syntaxerror",
    "LOCAL_ERROR": "systemerror",
}


@pytest.mark.parametrize("name", sorted(OWN))
def test_mailrooms_own_replies(name: str) -> None:
    result = classify(_sample(catalogue.CATALOGUE[name]))
    assert result.reason == OWN[name], result


@pytest.mark.parametrize("name", sorted(n for n, t in catalogue.CATALOGUE.items() if t.code >= 400))
def test_every_refusal_in_the_catalogue_has_the_action_of_its_class(name: str) -> None:
    template = catalogue.CATALOGUE[name]
    result = classify(_sample(template))
    assert result.action == ("retry" if template.code < 500 else "bounce")
    assert result.reason in REASONS and result.reason not in ("onhold", "undefined", "delivered")


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_any_input_gives_a_verdict(text: str | bytes) -> None:
    result = classify(text)
    assert result.action in ("delivered", "retry", "bounce")
    assert result.reason in REASONS


def _dev_rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.parametrize("name", sorted(DEV_SETS))
def test_development_set_accuracy_per_reason(name: str) -> None:
    """Per-reason accuracy on the labelled real replies (text only, as a queue would see them).

    The floor is well below what the rules reach, so the test fails when a change breaks a
    family of replies, not when one odd label moves."""
    rows = _dev_rows(name)
    assert len(rows) >= 100
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for row in rows:
        total[row["reason"]] += 1
        if classify(row["reply_text"]).reason == row["reason"]:
            right[row["reason"]] += 1
    lines = [f"{'reason':<16} right/total"]
    for reason in sorted(total, key=lambda r: (-total[r], r)):
        lines.append(
            f"{reason:<16} {right[reason]:>3}/{total[reason]:<3} {right[reason] / total[reason]:.0%}"
        )
    accuracy = sum(right.values()) / sum(total.values())
    lines.append(f"{'all':<16} {sum(right.values()):>3}/{sum(total.values()):<3} {accuracy:.1%}")
    print("\n" + "\n".join(lines))
    assert accuracy >= DEV_SETS[name]
    weak = [
        r
        for r in total
        if total[r] >= 3 and right[r] / total[r] < 0.5 and (name, r) not in WEAK_KNOWN
    ]
    assert not weak, f"reasons mostly missed: {weak}"


def test_the_labelled_sets_share_no_bounce() -> None:
    """Each set comes from its own bounce files, so a score on one is not a score on another."""
    seen: dict[str, str] = {}
    for name in LABELLED_SETS:
        with (DATA / name).open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            # The message, by repository and path (the commit aside): dev-4 and held-4 hold
            # files of several corpora, whose names alone may repeat.
            files = {re.sub(r"@[0-9a-f]+:", ":", row["source"]) for row in reader}
        assert files, name
        for file in files:
            assert file not in seen, f"{file} is in {seen.get(file)} and {name}"
            seen[file] = name
