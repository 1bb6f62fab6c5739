"""MAIL and RCPT arguments (RFC 5321 §4.1.2, §4.1.3) and their ESMTP parameters (SIZE, BODY,
SMTPUTF8, RET, ENVID, AUTH=, NOTIFY, ORCPT), literal line in, literal reply out."""

from __future__ import annotations

import pytest

from mailroom.protocol import Mailbox, MailFrom, MailParameters, RcptParameters, RcptTo
from tests.protocol import wire as w
from tests.protocol.transcript import make_settings, run

EHLO = (w.EHLO, w.EHLO_OK)
MAIL = (w.MAIL, w.SENDER_OK)

MAIL_SYNTAX = b"501 5.5.2 Syntax: MAIL FROM:<address> [parameters]\r\n"
RCPT_SYNTAX = b"501 5.5.2 Syntax: RCPT TO:<address> [parameters]\r\n"
SIZE_EXCEEDS = b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"


def bad_sender(path: bytes) -> bytes:
    return b"501 5.1.7 " + path + b": Bad sender address syntax\r\n"


def bad_recipient(path: bytes) -> bytes:
    return b"501 5.1.3 " + path + b": Bad recipient address syntax\r\n"


def unknown(param: bytes) -> bytes:
    return b"555 5.5.4 Unsupported parameter: " + param + b"\r\n"


def malformed(param: bytes) -> bytes:
    return b"501 5.5.4 Malformed parameter: " + param + b"\r\n"


LOCAL_64 = b"a" * 64
LOCAL_65 = b"a" * 65
LABEL_63 = b"b" * 63
LABEL_64 = b"b" * 64

SENDERS: list[tuple[bytes, bytes]] = [
    # the null reverse-path
    (b"<>", w.SENDER_OK),
    # dot-strings
    (b"<alice@example.test>", w.SENDER_OK),
    (b"<first.last@example.test>", w.SENDER_OK),
    (b"<a!#$%&'*+/=?^_`{|}~-z@example.test>", w.SENDER_OK),
    (b"<.alice@example.test>", bad_sender(b"<.alice@example.test>")),
    (b"<alice.@example.test>", bad_sender(b"<alice.@example.test>")),
    (b"<al..ice@example.test>", bad_sender(b"<al..ice@example.test>")),
    (b"<al(ice@example.test>", bad_sender(b"<al(ice@example.test>")),
    (b"<a b@example.test>", bad_sender(b"<a b@example.test>")),
    # quoted local parts: specials, spaces, quoted pairs, a ">" inside the quotes
    (b'<"john doe"@example.test>', w.SENDER_OK),
    (b'<"a\\"b"@example.test>', w.SENDER_OK),
    (b'<"a\\\\b"@example.test>', w.SENDER_OK),
    (b'<"a>b"@example.test>', w.SENDER_OK),
    (b'<"a@b"@example.test>', w.SENDER_OK),
    (b'<""@example.test>', w.SENDER_OK),
    (b'<"unterminated@example.test>', MAIL_SYNTAX),
    (b'<"a"b"@example.test>', MAIL_SYNTAX),  # the quotes leave no closing bracket
    # domains
    (b"<a@localhost>", w.SENDER_OK),
    (b"<a@xn--bcher-kva.example>", w.SENDER_OK),
    (b"<a@" + LABEL_63 + b".example>", w.SENDER_OK),
    (b"<a@" + LABEL_64 + b".example>", bad_sender(b"<a@" + LABEL_64 + b".example>")),
    (b"<a@-bad.example>", bad_sender(b"<a@-bad.example>")),
    (b"<a@bad-.example>", bad_sender(b"<a@bad-.example>")),
    (b"<a@exa_mple.test>", bad_sender(b"<a@exa_mple.test>")),
    (b"<a@example.test.>", bad_sender(b"<a@example.test.>")),
    (b"<a@example..test>", bad_sender(b"<a@example..test>")),
    (b"<a@>", bad_sender(b"<a@>")),
    (b"<@example.test>", bad_sender(b"<@example.test>")),
    (b"<alice>", bad_sender(b"<alice>")),
    (b"<a@b@example.test>", bad_sender(b"<a@b@example.test>")),
    # address literals: IPv4, IPv6 (all forms), general
    (b"<a@[192.0.2.1]>", w.SENDER_OK),
    (b"<a@[192.000.002.001]>", w.SENDER_OK),
    (b"<a@[192.0.2.256]>", bad_sender(b"<a@[192.0.2.256]>")),
    (b"<a@[192.0.2]>", bad_sender(b"<a@[192.0.2]>")),
    (b"<a@[1234.0.2.1]>", bad_sender(b"<a@[1234.0.2.1]>")),
    (b"<a@[IPv6:2001:db8::1]>", w.SENDER_OK),
    (b"<a@[ipv6:2001:DB8:0:0:0:0:0:1]>", w.SENDER_OK),
    (b"<a@[IPv6:::ffff:192.0.2.1]>", w.SENDER_OK),
    (b"<a@[IPv6:2001:db8::g]>", bad_sender(b"<a@[IPv6:2001:db8::g]>")),
    (b"<a@[IPv6:192.0.2.1]>", bad_sender(b"<a@[IPv6:192.0.2.1]>")),
    # no scope id (RFC 4007), which Python's ipaddress would read, spaces and all
    (b"<a@[IPv6:fe80::1%eth0]>", bad_sender(b"<a@[IPv6:fe80::1%eth0]>")),
    (b"<a@[IPv6:fe80::1%a b]>", bad_sender(b"<a@[IPv6:fe80::1%a b]>")),
    (b"<a@[2001:db8::1]>", bad_sender(b"<a@[2001:db8::1]>")),
    (b"<a@[x-tag:some-thing]>", w.SENDER_OK),
    (b"<a@[x-tag:]>", bad_sender(b"<a@[x-tag:]>")),
    (b"<a@[]>", bad_sender(b"<a@[]>")),
    (b"<a@[192.0.2.1>", bad_sender(b"<a@[192.0.2.1>")),
    # source routes: accepted and ignored (RFC 5321 §3.3, Appendix C)
    (b"<@relay.example:alice@example.test>", w.SENDER_OK),
    (b"<@one.example,@two.example:alice@example.test>", w.SENDER_OK),
    (b"<@[192.0.2.1]:alice@example.test>", w.SENDER_OK),
    (b"<@relay.example alice@example.test>", bad_sender(b"<@relay.example alice@example.test>")),
    (
        b"<@relay.example,two.example:a@example.test>",
        bad_sender(b"<@relay.example,two.example:a@example.test>"),
    ),
    (b"<@-bad.example:alice@example.test>", bad_sender(b"<@-bad.example:alice@example.test>")),
    # lengths: local part 64 octets (RFC 5321 §4.5.3.1.1), path 256 octets (§4.5.3.1.3)
    (b"<" + LOCAL_64 + b"@example.test>", w.SENDER_OK),
    (b"<" + LOCAL_65 + b"@example.test>", bad_sender(b"<" + LOCAL_65 + b"@example.test>")),
    # <postmaster> is a recipient only
    (b"<postmaster>", bad_sender(b"<postmaster>")),
    (b"<postmaster@example.test>", w.SENDER_OK),
    # non-ASCII without SMTPUTF8: 550 at MAIL (RFC 6531 §3.5); the reply itself stays ASCII
    (
        "<jörg@example.test>".encode(),
        b"550 5.6.7 <j?rg@example.test>: Non-ASCII address needs SMTPUTF8\r\n",
    ),
    (
        "<a@bücher.example>".encode(),
        b"550 5.6.7 <a@b?cher.example>: Non-ASCII address needs SMTPUTF8\r\n",
    ),
    # not a path at all
    (b"alice@example.test", MAIL_SYNTAX),
    (b"", MAIL_SYNTAX),
    (b"<alice@example.test", MAIL_SYNTAX),
    (b"<alice@example.test>SIZE=10", MAIL_SYNTAX),
]


@pytest.mark.parametrize(
    "path, reply", SENDERS, ids=[p.decode(errors="replace")[:40] for p, _ in SENDERS]
)
def test_sender(path, reply):
    run([EHLO, (b"MAIL FROM:" + path + b"\r\n", reply), w.NOOP])


@pytest.mark.parametrize(
    "line, reply",
    [
        (b"mail from:<alice@example.test>\r\n", w.SENDER_OK),
        (b"MAIL FROM: <alice@example.test>\r\n", w.SENDER_OK),
        (b"MAIL FROM:<alice@example.test>   \r\n", w.SENDER_OK),
        (b"MAIL FROM <alice@example.test>\r\n", MAIL_SYNTAX),
        (b"MAIL TO:<alice@example.test>\r\n", MAIL_SYNTAX),
        (b"MAIL\r\n", MAIL_SYNTAX),
        (b"MAIL FROM:\r\n", MAIL_SYNTAX),
    ],
)
def test_mail_command_syntax(line, reply):
    run([EHLO, (line, reply), w.NOOP])


def test_long_path_is_refused_and_echoed_short():
    path = b"<" + b"a" * 60 + b"@" + b".".join([b"c" * 60] * 4) + b">"
    assert len(path) > 256
    reply = bad_sender(path[:253] + b"...")
    assert len(reply) <= 512
    run([EHLO, (b"MAIL FROM:" + path + b"\r\n", reply), w.NOOP])


def test_source_route_is_dropped_from_the_sender():
    session = run(
        [EHLO, (b"MAIL FROM:<@one.example,@two.example:alice@example.test>\r\n", w.SENDER_OK)]
    )
    event = session.events[-1]
    assert isinstance(event, MailFrom)
    assert event.sender == Mailbox("alice", "example.test")


def test_null_sender_and_quoted_local_part_are_kept():
    session = run(
        [
            EHLO,
            (b"MAIL FROM:<>\r\n", w.SENDER_OK),
            (b'RCPT TO:<"john doe"@[192.0.2.1]>\r\n', w.RECIPIENT_OK),
        ]
    )
    mail, rcpt = session.events[-2:]
    assert isinstance(mail, MailFrom) and mail.sender is None
    assert isinstance(rcpt, RcptTo)
    assert rcpt.recipient == Mailbox('"john doe"', "[192.0.2.1]")
    assert rcpt.recipient.is_address_literal


RECIPIENTS: list[tuple[bytes, bytes]] = [
    (b"<bob@example.test>", w.RECIPIENT_OK),
    (b"<postmaster>", w.RECIPIENT_OK),
    (b"<PostMaster>", w.RECIPIENT_OK),
    (b"<postmaster@example.test>", w.RECIPIENT_OK),
    (b'<"bob smith"@example.test>', w.RECIPIENT_OK),
    (b"<bob@[IPv6:2001:db8::25]>", w.RECIPIENT_OK),
    (b"<@hop.example:bob@example.test>", w.RECIPIENT_OK),
    (b"<" + LOCAL_64 + b"@example.test>", w.RECIPIENT_OK),
    (b"<" + LOCAL_65 + b"@example.test>", bad_recipient(b"<" + LOCAL_65 + b"@example.test>")),
    (b"<>", bad_recipient(b"<>")),
    (b"<bob>", bad_recipient(b"<bob>")),
    (b"<postmaster@>", bad_recipient(b"<postmaster@>")),
    (b"<bob@[192.0.2.256]>", bad_recipient(b"<bob@[192.0.2.256]>")),
    (b"<bob..smith@example.test>", bad_recipient(b"<bob..smith@example.test>")),
    (
        "<jörg@example.test>".encode(),
        b"553 5.6.7 <j?rg@example.test>: Non-ASCII address needs SMTPUTF8\r\n",
    ),
    (b"bob@example.test", RCPT_SYNTAX),
    (b"<bob@example.test", RCPT_SYNTAX),
    (b"", RCPT_SYNTAX),
]


@pytest.mark.parametrize(
    "path, reply", RECIPIENTS, ids=[p.decode(errors="replace")[:40] for p, _ in RECIPIENTS]
)
def test_recipient(path, reply):
    run([EHLO, MAIL, (b"RCPT TO:" + path + b"\r\n", reply), w.NOOP])


@pytest.mark.parametrize(
    "line, reply",
    [
        (b"rcpt to:<bob@example.test>\r\n", w.RECIPIENT_OK),
        (b"RCPT TO: <bob@example.test>\r\n", w.RECIPIENT_OK),
        (b"RCPT FROM:<bob@example.test>\r\n", RCPT_SYNTAX),
        (b"RCPT\r\n", RCPT_SYNTAX),
    ],
)
def test_rcpt_command_syntax(line, reply):
    run([EHLO, MAIL, (line, reply), w.NOOP])


def test_smtputf8_allows_utf8_addresses():
    run(
        [
            EHLO,
            ("MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n".encode(), w.SENDER_OK),
            ("RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\n".encode(), w.RECIPIENT_OK),
            ("RCPT TO:<用户@例子.广告>\r\n".encode(), w.RECIPIENT_OK),
            # address literals stay ASCII: "١" is a digit to str.isdigit and int
            ("RCPT TO:<a@[١.٢.٣.٤]>\r\n".encode(), bad_recipient(b"<a@[?.?.?.?]>")),
            # still a bad address: the reply does not echo UTF-8 (reply text is ASCII)
            (
                "RCPT TO:<jörg..x@example.test>\r\n".encode(),
                bad_recipient(b"<j?rg..x@example.test>"),
            ),
            (b"DATA\r\n", w.GO_AHEAD),
            (b".\r\n", w.QUEUED),
            # the next transaction has no SMTPUTF8
            (b"MAIL FROM:<a@example.test>\r\n", w.SENDER_OK),
            (
                "RCPT TO:<jörg@example.test>\r\n".encode(),
                b"553 5.6.7 <j?rg@example.test>: Non-ASCII address needs SMTPUTF8\r\n",
            ),
        ]
    )


MAIL_PARAMETERS: list[tuple[bytes, bytes]] = [
    # SIZE (RFC 1870)
    (b"SIZE=0", w.SENDER_OK),
    (b"SIZE=1000", w.SENDER_OK),
    (b"size=1000", w.SENDER_OK),
    (b"SIZE=52428800", w.SENDER_OK),
    (b"SIZE=52428801", SIZE_EXCEEDS),
    (b"SIZE=99999999999999999999", SIZE_EXCEEDS),
    (b"SIZE=999999999999999999999", malformed(b"SIZE")),
    (b"SIZE=-1", malformed(b"SIZE")),
    (b"SIZE=1k", malformed(b"SIZE")),
    (b"SIZE", malformed(b"SIZE")),
    (b"SIZE=", malformed(b"SIZE")),
    (b"SIZE=10 SIZE=10", malformed(b"SIZE")),
    # digits are ASCII (RFC 5234 DIGIT): "²" and "١٢" are digits to str.isdigit, and UTF-8
    # values pass the value syntax where SMTPUTF8 is offered
    ("SIZE=²".encode(), malformed(b"SIZE")),
    ("SIZE=١٢".encode(), malformed(b"SIZE")),
    # BODY (RFC 6152, RFC 3030)
    (b"BODY=7BIT", w.SENDER_OK),
    (b"BODY=8BITMIME", w.SENDER_OK),
    (b"BODY=8bitmime", w.SENDER_OK),
    (b"BODY=BINARYMIME", w.SENDER_OK),
    (b"BODY=9BIT", malformed(b"BODY")),
    (b"BODY", malformed(b"BODY")),
    # SMTPUTF8 (RFC 6531)
    (b"SMTPUTF8", w.SENDER_OK),
    (b"SMTPUTF8=yes", malformed(b"SMTPUTF8")),
    # RET and ENVID (RFC 3461)
    (b"RET=FULL", w.SENDER_OK),
    (b"RET=hdrs", w.SENDER_OK),
    (b"RET=ALL", malformed(b"RET")),
    (b"RET", malformed(b"RET")),
    (b"ENVID=QQ314159", w.SENDER_OK),
    (b"ENVID=a+2Bb+3Dc", w.SENDER_OK),
    (b"ENVID=a+zz", malformed(b"ENVID")),
    (b"ENVID=a+2b", malformed(b"ENVID")),
    (b"ENVID=" + b"x" * 100, w.SENDER_OK),
    (b"ENVID=" + b"x" * 101, malformed(b"ENVID")),
    (b"ENVID", malformed(b"ENVID")),
    # decoded, printable US-ASCII only (RFC 3461 §4.4): no line break, NUL or 8-bit octet
    # may reach the next hop's MAIL or the DSN's Original-Envelope-Id
    (b"ENVID=a+20b+09c", w.SENDER_OK),
    (b"ENVID=x+0D+0AX-Evil:+20yes", malformed(b"ENVID")),
    (b"ENVID=x+00", malformed(b"ENVID")),
    (b"ENVID=x+7F", malformed(b"ENVID")),
    (b"ENVID=+C3+A9", malformed(b"ENVID")),
    # AUTH= without AUTH offered (RFC 4954 §5 applies only where AUTH is advertised)
    (b"AUTH=<>", unknown(b"AUTH")),
    # everything together
    (b"SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x", w.SENDER_OK),
    # unknown and malformed keywords
    (b"FOO=bar", unknown(b"FOO")),
    (b"X-FOO", unknown(b"X-FOO")),
    (b"SIZE=10 FOO", unknown(b"FOO")),
    (b"NOTIFY=NEVER", unknown(b"NOTIFY")),
    (b"ORCPT=rfc822;a@b", unknown(b"ORCPT")),
    (b"=x", malformed(b"=x")),
    (b"-X=1", malformed(b"-X")),
    (b"FOO=a=b", malformed(b"FOO")),
    (b"F_O=1", malformed(b"F_O")),
    (b"K" * 200 + b"=1", unknown(b"K" * 61 + b"...")),
    ("BODY=8BITMIMÉ".encode(), malformed(b"BODY")),
]


@pytest.mark.parametrize(
    "params, reply",
    MAIL_PARAMETERS,
    ids=[p.decode(errors="replace")[:30] for p, _ in MAIL_PARAMETERS],
)
def test_mail_parameter(params, reply):
    run([EHLO, (b"MAIL FROM:<alice@example.test> " + params + b"\r\n", reply), w.NOOP])


def test_mail_parameters_reach_the_event():
    line = b"MAIL FROM:<> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1 SMTPUTF8\r\n"
    session = run([EHLO, (line, w.SENDER_OK)])
    event = session.events[-1]
    assert isinstance(event, MailFrom)
    assert event.parameters == MailParameters(
        size=1000, body="8BITMIME", smtputf8=True, ret="HDRS", envid="QQ+1"
    )


@pytest.mark.parametrize(
    "params, reply, auth",
    [
        (b"AUTH=<>", w.SENDER_OK, "<>"),
        (b"AUTH=alice+40example.test", w.SENDER_OK, "alice@example.test"),
        (b"AUTH=", malformed(b"AUTH"), None),
        (b"AUTH", malformed(b"AUTH"), None),
        (b"AUTH=a+4", malformed(b"AUTH"), None),
    ],
)
def test_auth_parameter_where_auth_is_offered(params, reply, auth):
    settings = make_settings(auth_mechanisms=("CRAM-MD5",))
    ehlo_ok = w.EHLO_OK.replace(b"250-ENHANCED", b"250-AUTH CRAM-MD5\r\n250-ENHANCED")
    session = run(
        [(w.EHLO, ehlo_ok), (b"MAIL FROM:<a@example.test> " + params + b"\r\n", reply)],
        settings=settings,
    )
    if auth is not None:
        event = session.events[-1]
        assert isinstance(event, MailFrom)
        assert event.parameters.auth == auth


def test_parameters_of_extensions_turned_off_are_unknown():
    settings = make_settings(size=False, eightbitmime=False, dsn=False, smtputf8=False)
    ehlo_ok = (
        b"250-mx.example.test Hello client.example.test\r\n"
        b"250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n"
    )
    run(
        [
            (w.EHLO, ehlo_ok),
            (b"MAIL FROM:<a@example.test> SIZE=1\r\n", unknown(b"SIZE")),
            (b"MAIL FROM:<a@example.test> BODY=8BITMIME\r\n", unknown(b"BODY")),
            (b"MAIL FROM:<a@example.test> SMTPUTF8\r\n", unknown(b"SMTPUTF8")),
            (b"MAIL FROM:<a@example.test> RET=FULL\r\n", unknown(b"RET")),
            (b"MAIL FROM:<a@example.test> ENVID=1\r\n", unknown(b"ENVID")),
            (w.MAIL, w.SENDER_OK),
            (b"RCPT TO:<b@example.test> NOTIFY=NEVER\r\n", unknown(b"NOTIFY")),
        ],
        settings=settings,
    )


def test_binarymime_needs_chunking():
    settings = make_settings(chunking=False)
    ehlo_ok = w.EHLO_OK.replace(
        b"250-SMTPUTF8\r\n250-CHUNKING\r\n250 BINARYMIME\r\n", b"250 SMTPUTF8\r\n"
    )
    run(
        [
            (w.EHLO, ehlo_ok),
            (b"MAIL FROM:<a@example.test> BODY=BINARYMIME\r\n", malformed(b"BODY")),
            (b"MAIL FROM:<a@example.test> BODY=8BITMIME\r\n", w.SENDER_OK),
            (w.RCPT, w.RECIPIENT_OK),
            # not offered: refused, but the chunk is still read and dropped, never executed
            (b"BDAT 6 LAST\r\nRSET\r\n", w.NOT_IMPLEMENTED),
            (b"BDAT x\r\n", w.NOT_IMPLEMENTED),
            (b"DATA\r\n", w.GO_AHEAD),
            (b".\r\n", w.QUEUED),
        ],
        settings=settings,
    )


def test_size_without_a_limit():
    settings = make_settings(max_message_size=0)
    ehlo_ok = w.EHLO_OK.replace(b"250-SIZE 52428800\r\n", b"250-SIZE\r\n")
    run(
        [(w.EHLO, ehlo_ok), (b"MAIL FROM:<a@example.test> SIZE=99999999999\r\n", w.SENDER_OK)],
        settings=settings,
    )


def test_rrvs_digits_are_ascii():
    settings = make_settings(rrvs=True)
    ehlo_ok = w.EHLO_OK.replace(b"250 BINARYMIME\r\n", b"250-BINARYMIME\r\n250 RRVS\r\n")
    run(
        [
            (w.EHLO, ehlo_ok),
            (b"MAIL FROM:<a@example.test> SMTPUTF8\r\n", w.SENDER_OK),
            (b"RCPT TO:<b@example.test> RRVS=2022-06-01T00:00:00Z\r\n", w.RECIPIENT_OK),
            ("RCPT TO:<b@example.test> RRVS=٢٠٢٢-06-01T00:00:00Z\r\n".encode(), malformed(b"RRVS")),
        ],
        settings=settings,
    )


RCPT_PARAMETERS: list[tuple[bytes, bytes]] = [
    (b"NOTIFY=NEVER", w.RECIPIENT_OK),
    (b"NOTIFY=SUCCESS", w.RECIPIENT_OK),
    (b"NOTIFY=SUCCESS,FAILURE,DELAY", w.RECIPIENT_OK),
    (b"notify=delay,failure", w.RECIPIENT_OK),
    (b"NOTIFY=NEVER,SUCCESS", malformed(b"NOTIFY")),
    (b"NOTIFY=SUCCESS,SUCCESS", malformed(b"NOTIFY")),
    (b"NOTIFY=SOMETIMES", malformed(b"NOTIFY")),
    (b"NOTIFY=", malformed(b"NOTIFY")),
    (b"NOTIFY", malformed(b"NOTIFY")),
    (b"NOTIFY=SUCCESS,", malformed(b"NOTIFY")),
    (b"ORCPT=rfc822;bob@example.test", w.RECIPIENT_OK),
    (b"ORCPT=rfc822;bob+2Bx@example.test", w.RECIPIENT_OK),
    (b"ORCPT=rfc822", malformed(b"ORCPT")),
    (b"ORCPT=;bob@example.test", malformed(b"ORCPT")),
    (b"ORCPT=rfc822;", malformed(b"ORCPT")),
    (b"ORCPT=rfc822;a+zz", malformed(b"ORCPT")),
    # decoded, printable US-ASCII only (RFC 3461 §4.2)
    (b"ORCPT=rfc822;bob+0D+0AX-Evil:+20yes@example.test", malformed(b"ORCPT")),
    (b"ORCPT=rfc822;bob+00@example.test", malformed(b"ORCPT")),
    (b"ORCPT=rfc822;+FF+FE", malformed(b"ORCPT")),
    (b"NOTIFY=FAILURE ORCPT=rfc822;bob@example.test", w.RECIPIENT_OK),
    (b"SIZE=10", unknown(b"SIZE")),
    (b"BODY=8BITMIME", unknown(b"BODY")),
    (b"FOO", unknown(b"FOO")),
]


@pytest.mark.parametrize(
    "params, reply", RCPT_PARAMETERS, ids=[p.decode()[:30] for p, _ in RCPT_PARAMETERS]
)
def test_rcpt_parameter(params, reply):
    run([EHLO, MAIL, (b"RCPT TO:<bob@example.test> " + params + b"\r\n", reply), w.NOOP])


def test_rcpt_parameters_reach_the_event():
    line = b"RCPT TO:<bob@example.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob+2Bx@example.test\r\n"
    session = run([EHLO, MAIL, (line, w.RECIPIENT_OK)])
    event = session.events[-1]
    assert isinstance(event, RcptTo)
    assert event.parameters == RcptParameters(
        notify=("FAILURE", "DELAY"), orcpt=("rfc822", "bob+x@example.test")
    )


def test_utf8_orcpt_needs_smtputf8():
    run(
        [
            EHLO,
            (w.MAIL, w.SENDER_OK),
            (
                "RCPT TO:<bob@example.test> ORCPT=utf-8;jörg@example.test\r\n".encode(),
                malformed(b"ORCPT"),
            ),
            (b"RSET\r\n", w.OK),
            (b"MAIL FROM:<a@example.test> SMTPUTF8\r\n", w.SENDER_OK),
            (
                "RCPT TO:<bob@example.test> ORCPT=utf-8;jörg@example.test\r\n".encode(),
                w.RECIPIENT_OK,
            ),
        ]
    )
