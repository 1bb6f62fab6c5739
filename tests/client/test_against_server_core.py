"""The sans-IO client against mailroom's own sans-IO server, in memory: two independent state
machines must agree on every exchange (PIPELINING and CHUNKING on and off, AUTH with every
mechanism and real credential checks, SIZE, DSN and SMTPUTF8 parameters)."""

from __future__ import annotations

import dataclasses

import pytest

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol import (
    Authenticate,
    CramMD5Credentials,
    Event,
    MailFrom,
    PlainCredentials,
    RcptTo,
    ScramSecret,
)
from mailroom.protocol.client import (
    AuthCompleted,
    CommandFailed,
    HelloCompleted,
    MailOptions,
    MessageTooLarge,
    Recipient,
    TransactionCompleted,
)
from mailroom.protocol.client_body import canonical_message
from mailroom.protocol.client_sasl import client_mechanism
from tests.client.sansio import converse
from tests.protocol.transcript import Session, default_policy, make_settings

MESSAGES = [
    b"Subject: one\r\n\r\nplain text\r\n",
    b"Subject: two\n\n.leading dot\n..two dots\n.\nsmuggle\r.\rend",
    b"Subject: three\r\n\r\n" + (b"x" * 998 + b"\r\n") * 5,
    b"",
]


def transactions(events: list) -> list:  # type: ignore[type-arg]
    return [e.result for e in events if isinstance(e, TransactionCompleted)]


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("chunking", [True, False])
def test_several_messages_on_one_connection(pipelining: bool, chunking: bool) -> None:
    server = Session(make_settings(pipelining=pipelining, chunking=chunking))
    actions = [lambda c: c.ehlo()] + [
        (
            lambda c, m=m: c.send_mail(
                "a@example.test",
                ["b@example.test", "c@example.test"],
                m,
                MailOptions(chunk_size=1000),
            )
        )
        for m in MESSAGES
    ]
    _client, events = converse(server, actions)
    results = transactions(events)
    assert len(results) == len(MESSAGES)
    assert all(r.all_delivered for r in results)
    assert {r.method for r in results} == {"BDAT" if chunking else "DATA"}
    # What the server stored is the message with CRLF line endings, nothing more, nothing less.
    assert server.messages == [canonical_message(m) for m in MESSAGES]


def test_a_message_the_server_refuses_after_data() -> None:
    """A line over 1000 octets (RFC 5321 §4.5.3.1.6): the client sends it as it is and reports
    the server's refusal for every recipient, then goes on with the next message."""
    server = Session()
    _, events = converse(
        server,
        [
            lambda c: c.ehlo(),
            lambda c: c.send_mail(
                "a@example.test", ["b@example.test", "c@example.test"], b"x" * 1200
            ),
            lambda c: c.send_mail("a@example.test", ["b@example.test"], b"short"),
        ],
    )
    refused, accepted = transactions(events)
    assert [(r.reply.code, str(r.reply.status)) for r in refused.recipients] == [(554, "5.6.0")] * 2
    assert all(r.rcpt_reply is not None and r.rcpt_reply.code == 250 for r in refused.recipients)
    assert accepted.all_delivered and server.messages[-1] == b"short\r\n"


def refusing(event: Event) -> Reply:
    if isinstance(event, RcptTo) and event.recipient.local_part == "nobody":
        return replies.MAILBOX_UNKNOWN(address=f"<{event.recipient}>")
    return default_policy(event)


@pytest.mark.parametrize("pipelining", [True, False])
def test_refused_recipients(pipelining: bool) -> None:
    server = Session(make_settings(pipelining=pipelining), policy=refusing)
    _, events = converse(
        server,
        [
            lambda c: c.ehlo(),
            lambda c: c.send_mail(
                "a@example.test", ["nobody@example.test", "b@example.test"], b"hi"
            ),
            lambda c: c.send_mail("a@example.test", ["nobody@example.test"], b"never sent"),
            lambda c: c.send_mail("a@example.test", ["b@example.test"], b"after"),
        ],
    )
    first, second, third = transactions(events)
    assert [r.delivered for r in first.recipients] == [False, True]
    assert first["nobody@example.test"].reply.code == 550
    assert not second.delivered and second.data_reply is None
    assert third.all_delivered
    assert server.messages == [b"hi\r\n", b"after\r\n"]


def test_size_limit_is_known_before_sending() -> None:
    server = Session(make_settings(max_message_size=100))
    client, _events = converse(server, [lambda c: c.ehlo()])
    assert client.extensions.size == 100
    with pytest.raises(MessageTooLarge):
        client.send_mail("a@example.test", ["b@example.test"], b"x" * 200)
    client.send_mail("a@example.test", ["b@example.test"], b"x" * 98)
    from tests.client.sansio import pump

    assert transactions(pump(client, server))[0].all_delivered


def test_dsn_and_smtputf8_parameters_reach_the_server() -> None:
    server = Session()
    converse(
        server,
        [
            lambda c: c.ehlo(),
            lambda c: c.send_mail(
                "ålice@example.test",
                [
                    Recipient(
                        "bøb@example.test", notify=("FAILURE", "DELAY"), orcpt="bob@example.test"
                    )
                ],
                "Subject: ünïcode\r\n\r\nbody\r\n".encode(),
                MailOptions(ret="HDRS", envid="env+1"),
            ),
        ],
    )
    mail = next(e for e in server.events if isinstance(e, MailFrom))
    rcpt = next(e for e in server.events if isinstance(e, RcptTo))
    assert mail.parameters.smtputf8 and mail.parameters.body == "8BITMIME"
    assert mail.parameters.ret == "HDRS" and mail.parameters.envid == "env+1"
    assert mail.parameters.size == len(b"Subject: \xc3\xbcn\xc3\xafcode\r\n\r\nbody\r\n")
    assert rcpt.parameters.notify == ("FAILURE", "DELAY")
    assert rcpt.parameters.orcpt == ("rfc822", "bob@example.test")
    assert str(rcpt.recipient) == "bøb@example.test"


def checking(event: Event) -> Reply:
    if isinstance(event, Authenticate):
        credentials = event.credentials
        if isinstance(credentials, PlainCredentials):
            ok = (credentials.username, credentials.password) == ("bob", "secret")
        elif isinstance(credentials, CramMD5Credentials):
            ok = credentials.username == "bob" and credentials.verify("secret")
        else:
            ok = credentials.verified
        return replies.AUTH_SUCCEEDED() if ok else replies.AUTH_INVALID_CREDENTIALS()
    return default_policy(event)


MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256")


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize(("password", "succeeds"), [("secret", True), ("wrong", False)])
def test_auth_against_the_server(mechanism: str, password: str, succeeds: bool) -> None:
    settings = make_settings(auth_mechanisms=MECHANISMS)
    server = Session(
        settings, policy=checking, tls=True, secret=ScramSecret.from_password("secret")
    )
    client, events = converse(
        server,
        [
            lambda c: c.ehlo(),
            lambda c: c.authenticate(client_mechanism(mechanism, "bob", password)),
        ],
        tls=True,
    )
    assert isinstance(events[1], HelloCompleted)
    outcome = events[-1]
    if succeeds:
        assert isinstance(outcome, AuthCompleted) and client.authenticated == mechanism
    else:
        assert isinstance(outcome, CommandFailed) and outcome.reply.code == 535
        assert client.authenticated is None


def test_scram_detects_a_server_that_does_not_know_the_password() -> None:
    """An impostor that holds another secret for bob and answers 235 to anything: it cannot
    give the server signature, so the client does not believe its 235."""
    settings = make_settings(auth_mechanisms=("SCRAM-SHA-256",))
    impostor = Session(
        settings,
        policy=lambda e: (
            replies.AUTH_SUCCEEDED() if isinstance(e, Authenticate) else default_policy(e)
        ),
        tls=True,
        secret=ScramSecret.from_password("another"),
    )
    client, events = converse(
        impostor,
        [
            lambda c: c.ehlo(),
            lambda c: c.authenticate(client_mechanism("SCRAM-SHA-256", "bob", "secret")),
        ],
        tls=True,
    )
    assert client.authenticated is None
    assert isinstance(events[-1], CommandFailed) and events[-1].reply.code == 235
    assert "prove" in events[-1].detail


def test_helo_only_server() -> None:
    """A server that does not know EHLO: the client falls back to HELO and sends plain DATA."""

    def no_ehlo(event: Event) -> Reply:
        if getattr(event, "verb", None) == "EHLO":
            return replies.UNKNOWN_COMMAND()
        return default_policy(event)

    server = Session(dataclasses.replace(make_settings()), policy=no_ehlo)
    _client, events = converse(
        server,
        [lambda c: c.ehlo(), lambda c: c.send_mail("a@example.test", ["b@example.test"], b"old")],
    )
    hello = next(e for e in events if isinstance(e, HelloCompleted))
    assert not hello.esmtp
    (result,) = transactions(events)
    assert result.all_delivered and result.method == "DATA"
    assert server.messages == [b"old\r\n"]
