"""AUTH (RFC 4954) as SASL exchanges: PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195) and
SCRAM-SHA-256 (RFC 5802, RFC 7677), with every reply RFC 4954 names for AUTH."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol import (
    Authenticate,
    AuthSecretNeeded,
    CramMD5Credentials,
    Event,
    PlainCredentials,
    ScramCredentials,
    ScramSecret,
    State,
)
from tests.protocol import wire as w
from tests.protocol.transcript import NONCE, Session, default_policy, make_settings, run

ALL = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256")
SETTINGS = make_settings(auth_mechanisms=ALL)
EHLO_ALL = w.EHLO_OK.replace(
    b"250-ENHANCED", b"250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n250-ENHANCED"
)
EHLO_NO_PLAINTEXT = w.EHLO_OK.replace(
    b"250-ENHANCED", b"250-AUTH CRAM-MD5 SCRAM-SHA-256\r\n250-ENHANCED"
)
EHLO = (w.EHLO, EHLO_ALL)  # over TLS

INVALID = b"535 5.7.8 Authentication credentials invalid\r\n"
TOO_WEAK = b"534 5.7.9 Authentication mechanism is too weak\r\n"
TEMPORARY = b"454 4.7.0 Temporary authentication failure\r\n"
TRANSITION = b"432 4.7.12 A password transition is needed\r\n"
UNKNOWN_MECHANISM = b"504 5.5.4 Unrecognized authentication type\r\n"
ENCRYPTION_REQUIRED = b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
LINE_TOO_LONG = b"500 5.5.6 Authentication Exchange line is too long\r\n"
BAD_BASE64 = b"501 5.5.2 Cannot Base64-decode Client responses\r\n"
NO_INITIAL_RESPONSE = (
    b"501 5.7.0 Client initiated Authentication Exchange not allowed for CRAM-MD5\r\n"
)
CANCELLED = b"501 5.7.0 Authentication cancelled\r\n"
MALFORMED = b"501 5.5.2 Malformed authentication response\r\n"
AUTH_SYNTAX = b"501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"
ALREADY = b"503 5.5.1 Error: already authenticated\r\n"


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def checking_policy(event: Event) -> Reply:
    """A user "bob" with password "secret"; SCRAM users are checked by the protocol."""
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


def authenticated(session: Session) -> list[Authenticate]:
    return [e for e in session.events if isinstance(e, Authenticate)]


def test_mechanisms_offered_by_tls_and_configuration():
    run([(w.EHLO, EHLO_ALL)], settings=SETTINGS, tls=True)
    run([(w.EHLO, EHLO_NO_PLAINTEXT)], settings=SETTINGS)
    run(
        [(w.EHLO, EHLO_ALL)],
        settings=make_settings(auth_mechanisms=ALL, auth_plaintext_without_tls=True),
    )
    # only plaintext mechanisms configured and no TLS: no AUTH keyword at all
    run([(w.EHLO, w.EHLO_OK)], settings=make_settings(auth_mechanisms=("PLAIN", "LOGIN")))


# -- PLAIN and LOGIN ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps",
    [
        [(b"AUTH PLAIN " + b64(b"\0bob\0secret") + b"\r\n", w.AUTH_OK)],
        [(b"auth plain " + b64(b"\0bob\0secret") + b"\r\n", w.AUTH_OK)],
        [(b"AUTH PLAIN\r\n", b"334 \r\n"), (b64(b"\0bob\0secret") + b"\r\n", w.AUTH_OK)],
        [(b"AUTH PLAIN " + b64(b"bob\0bob\0secret") + b"\r\n", w.AUTH_OK)],
        [
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (b64(b"bob") + b"\r\n", b"334 UGFzc3dvcmQ6\r\n"),
            (b64(b"secret") + b"\r\n", w.AUTH_OK),
        ],
        [
            (b"AUTH LOGIN " + b64(b"bob") + b"\r\n", b"334 UGFzc3dvcmQ6\r\n"),
            (b64(b"secret") + b"\r\n", w.AUTH_OK),
        ],
    ],
    ids=[
        "plain-initial",
        "lower-case",
        "plain-challenge",
        "plain-authzid",
        "login",
        "login-initial",
    ],
)
def test_plaintext_mechanisms(steps):
    session = run(
        [EHLO, *steps, (w.MAIL, w.SENDER_OK)], settings=SETTINGS, tls=True, policy=checking_policy
    )
    (event,) = authenticated(session)
    assert isinstance(event.credentials, PlainCredentials)
    assert (event.credentials.username, event.credentials.password) == ("bob", "secret")
    assert session.conn.authenticated == "bob"


def test_plain_credentials_carry_the_authzid():
    session = run(
        [EHLO, (b"AUTH PLAIN " + b64(b"alice\0bob\0secret") + b"\r\n", w.AUTH_OK)],
        settings=SETTINGS,
        tls=True,
    )
    (event,) = authenticated(session)
    assert event.credentials == PlainCredentials("alice", "bob", "secret")


@pytest.mark.parametrize(
    "steps",
    [
        [(b"AUTH PLAIN " + b64(b"\0bob\0wrong") + b"\r\n", INVALID)],
        [(b"AUTH PLAIN " + b64(b"bob secret") + b"\r\n", MALFORMED)],
        [(b"AUTH PLAIN " + b64(b"\0\0secret") + b"\r\n", MALFORMED)],
        [(b"AUTH PLAIN " + b64(b"\0bob\0secret\0") + b"\r\n", MALFORMED)],
        [(b"AUTH PLAIN " + b64(b"\0b\xffob\0secret") + b"\r\n", MALFORMED)],
        [(b"AUTH PLAIN =\r\n", MALFORMED)],
        [(b"AUTH PLAIN !!!!\r\n", BAD_BASE64)],
        [(b"AUTH PLAIN AGJvYgBzZWNyZXQ\r\n", BAD_BASE64)],
        [(b"AUTH PLAIN\r\n", b"334 \r\n"), (b"not base64!\r\n", BAD_BASE64)],
        [(b"AUTH PLAIN\r\n", b"334 \r\n"), (b"*\r\n", CANCELLED)],
        [(b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"), (b"*\r\n", CANCELLED)],
        [(b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"), (b"\r\n", MALFORMED)],
        [
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (b64(b"bob") + b"\r\n", b"334 UGFzc3dvcmQ6\r\n"),
            (b"*\r\n", CANCELLED),
        ],
        [(b"AUTH\r\n", AUTH_SYNTAX)],
        [(b"AUTH PLAIN a b\r\n", AUTH_SYNTAX)],
        [(b"AUTH GSSAPI\r\n", UNKNOWN_MECHANISM)],
        [(b"AUTH XOAUTH2 dGVzdA==\r\n", UNKNOWN_MECHANISM)],
    ],
    ids=[
        "wrong-password",
        "no-nul",
        "no-username",
        "extra-nul",
        "not-utf8",
        "empty",
        "bad-base64",
        "bad-padding",
        "bad-base64-response",
        "cancel-plain",
        "cancel-login",
        "login-empty-username",
        "cancel-password",
        "no-mechanism",
        "extra-word",
        "gssapi",
        "xoauth2",
    ],
)
def test_failed_exchange_leaves_the_session_usable(steps):
    session = run(
        [
            EHLO,
            *steps,
            w.NOOP,
            (b"AUTH PLAIN " + b64(b"\0bob\0secret") + b"\r\n", w.AUTH_OK),
            (w.MAIL, w.SENDER_OK),
        ],
        settings=SETTINGS,
        tls=True,
        policy=checking_policy,
    )
    assert session.conn.state is State.MAIL


def test_plaintext_mechanisms_need_tls():
    run(
        [
            (w.EHLO, EHLO_NO_PLAINTEXT),
            (b"AUTH PLAIN " + b64(b"\0bob\0secret") + b"\r\n", ENCRYPTION_REQUIRED),
            (b"AUTH LOGIN\r\n", ENCRYPTION_REQUIRED),
            w.NOOP,
        ],
        settings=SETTINGS,
    )


def test_plaintext_without_tls_when_allowed():
    settings = make_settings(auth_mechanisms=ALL, auth_plaintext_without_tls=True)
    run(
        [(w.EHLO, EHLO_ALL), (b"AUTH PLAIN " + b64(b"\0bob\0secret") + b"\r\n", w.AUTH_OK)],
        settings=settings,
    )


# -- CRAM-MD5 --------------------------------------------------------------------------------

CRAM_CHALLENGE = b"<" + NONCE.encode() + b"@mx.example.test>"


def cram_response(user: bytes, password: bytes) -> bytes:
    digest = hmac.new(password, CRAM_CHALLENGE, hashlib.md5).hexdigest().encode()
    return b64(user + b" " + digest) + b"\r\n"


def test_cram_md5():
    assert b64(CRAM_CHALLENGE) == b"PGMwZmZlZUBteC5leGFtcGxlLnRlc3Q+"
    session = run(
        [
            (w.EHLO, EHLO_NO_PLAINTEXT),
            (b"AUTH CRAM-MD5\r\n", b"334 PGMwZmZlZUBteC5leGFtcGxlLnRlc3Q+\r\n"),
            (cram_response(b"bob", b"wrong"), INVALID),
            (b"AUTH CRAM-MD5\r\n", b"334 PGMwZmZlZUBteC5leGFtcGxlLnRlc3Q+\r\n"),
            (cram_response(b"bob", b"secret"), w.AUTH_OK),
        ],
        settings=SETTINGS,
        policy=checking_policy,
    )
    first, second = authenticated(session)
    assert isinstance(second.credentials, CramMD5Credentials)
    assert second.credentials.challenge == CRAM_CHALLENGE
    assert second.credentials.verify("secret") and not first.credentials.verify("secret")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "steps",
    [
        [(b"AUTH CRAM-MD5 " + b64(b"bob 0123") + b"\r\n", NO_INITIAL_RESPONSE)],
        [(b"AUTH CRAM-MD5 =\r\n", NO_INITIAL_RESPONSE)],
        [
            (b"AUTH CRAM-MD5\r\n", b"334 PGMwZmZlZUBteC5leGFtcGxlLnRlc3Q+\r\n"),
            (b64(b"bob nothex") + b"\r\n", MALFORMED),
        ],
        [
            (b"AUTH CRAM-MD5\r\n", b"334 PGMwZmZlZUBteC5leGFtcGxlLnRlc3Q+\r\n"),
            (b64(b"0123456789abcdef0123456789abcdef") + b"\r\n", MALFORMED),
        ],
        [
            (b"AUTH CRAM-MD5\r\n", b"334 PGMwZmZlZUBteC5leGFtcGxlLnRlc3Q+\r\n"),
            (b"*\r\n", CANCELLED),
        ],
    ],
    ids=["initial-response", "empty-initial-response", "not-hex", "no-user", "cancel"],
)
def test_cram_md5_failures(steps):
    run([(w.EHLO, EHLO_NO_PLAINTEXT), *steps, w.NOOP], settings=SETTINGS)


# -- SCRAM-SHA-256 ---------------------------------------------------------------------------


class ScramClient:
    """The client side of SCRAM-SHA-256 (RFC 5802 §3, RFC 7677), written out step by step."""

    def __init__(self, user: str, password: str, nonce: str) -> None:
        self.user, self.password, self.nonce = user, password, nonce
        self.first_bare = f"n={user},r={nonce}"

    def first(self) -> bytes:
        return ("n,," + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        attributes = dict(item.split("=", 1) for item in server_first.decode().split(","))
        combined, salt, iterations = (
            attributes["r"],
            base64.b64decode(attributes["s"]),
            int(attributes["i"]),
        )
        assert combined.startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={combined}"
        self.auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored_key, self.auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.server_signature = hmac.digest(server_key, self.auth_message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        return server_final == b"v=" + base64.b64encode(self.server_signature)


# The example of RFC 7677 §3: user "user", password "pencil".
RFC7677_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC7677_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC7677_SECRET = ScramSecret.from_password("pencil", salt=RFC7677_SALT, iterations=4096)
SCRAM = make_settings(auth_mechanisms=ALL, nonce=lambda: RFC7677_SERVER_NONCE)


def challenge(reply: bytes) -> bytes:
    assert reply.startswith(b"334 ") and reply.endswith(b"\r\n")
    return base64.b64decode(reply[4:-2])


def test_scram_sha_256_rfc7677_example():
    client = ScramClient("user", "pencil", RFC7677_CLIENT_NONCE)
    session = Session(SCRAM, secret=RFC7677_SECRET, policy=checking_policy)
    assert session.feed(w.EHLO) == EHLO_NO_PLAINTEXT
    assert session.feed(b"AUTH SCRAM-SHA-256\r\n") == b"334 \r\n"
    server_first = challenge(session.feed(b64(client.first()) + b"\r\n"))
    assert server_first == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    client_final = client.final(server_first)
    assert client_final == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    server_final = challenge(session.feed(b64(client_final) + b"\r\n"))
    assert server_final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert client.verify(server_final)
    assert session.feed(b"\r\n") == w.AUTH_OK
    needed = [e for e in session.events if isinstance(e, AuthSecretNeeded)]
    assert [(e.mechanism, e.username) for e in needed] == [("SCRAM-SHA-256", "user")]
    (event,) = authenticated(session)
    assert event.credentials == ScramCredentials("", "user", True)
    assert session.conn.authenticated == "user"


@pytest.mark.parametrize("step", [None, 1])
def test_scram_with_initial_response_and_byte_by_byte(step):
    client = ScramClient("user", "pencil", RFC7677_CLIENT_NONCE)
    session = Session(SCRAM, secret=RFC7677_SECRET, policy=checking_policy)
    assert session.feed(w.EHLO, step=step) == EHLO_NO_PLAINTEXT
    server_first = challenge(
        session.feed(b"AUTH SCRAM-SHA-256 " + b64(client.first()) + b"\r\n", step=step)
    )
    server_final = challenge(session.feed(b64(client.final(server_first)) + b"\r\n", step=step))
    assert client.verify(server_final)
    assert session.feed(b"\r\n" + w.MAIL, step=step) == w.AUTH_OK + w.SENDER_OK


@pytest.mark.parametrize(
    "user, password, secret",
    [("user", "wrong", RFC7677_SECRET), ("nobody", "pencil", None)],
    ids=["wrong-password", "unknown-user"],
)
def test_scram_failure_is_535(user, password, secret):
    client = ScramClient(user, password, RFC7677_CLIENT_NONCE)
    session = Session(SCRAM, secret=secret, policy=checking_policy)
    session.feed(w.EHLO)
    server_first = challenge(session.feed(b"AUTH SCRAM-SHA-256 " + b64(client.first()) + b"\r\n"))
    # an unknown user gets a challenge just like a known one
    assert server_first.startswith(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=")
    assert server_first.endswith(b",i=4096")
    assert session.feed(b64(client.final(server_first)) + b"\r\n") == INVALID
    (event,) = authenticated(session)
    assert event.credentials == ScramCredentials("", user, False)
    assert session.feed(b"NOOP\r\n") == w.OK


@pytest.mark.parametrize(
    "first, final",
    [
        (b"p=tls-unique,,n=user,r=abc", None),
        (b"n,,r=abc,n=user", None),
        (b"n,,n=user", None),
        (b"n,,n=,r=abc", None),
        (b"n,,n=us=er,r=abc", None),
        (b"x,,n=user,r=abc", None),
        (b"n,,n=user,r=abc", b"c=biws,r=wrongnonce,p=AAAA"),
        (b"n,,n=user,r=abc", b"c=eSws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA"),
        (b"n,,n=user,r=abc", b"c=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!"),
        (b"n,,n=user,r=abc", b"c=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"),
    ],
    ids=[
        "channel-binding",
        "order",
        "no-nonce",
        "empty-user",
        "bad-saslname",
        "bad-flag",
        "nonce",
        "binding",
        "proof-base64",
        "no-proof",
    ],
)
def test_scram_malformed(first, final):
    session = Session(SCRAM, secret=RFC7677_SECRET)
    session.feed(w.EHLO)
    reply = session.feed(b"AUTH SCRAM-SHA-256 " + b64(first) + b"\r\n")
    if final is not None:
        assert reply.startswith(b"334 ")
        reply = session.feed(b64(final) + b"\r\n")
    assert reply == MALFORMED
    assert session.feed(b"NOOP\r\n") == w.OK
    assert session.conn.state is State.READY


def test_scram_wrong_last_response():
    client = ScramClient("user", "pencil", RFC7677_CLIENT_NONCE)
    session = Session(SCRAM, secret=RFC7677_SECRET)
    session.feed(w.EHLO)
    server_first = challenge(session.feed(b"AUTH SCRAM-SHA-256 " + b64(client.first()) + b"\r\n"))
    challenge(session.feed(b64(client.final(server_first)) + b"\r\n"))
    assert session.feed(b64(b"not empty") + b"\r\n") == MALFORMED
    assert session.conn.authenticated is None


def test_scram_username_escapes():
    client = ScramClient("a=2Cb=3Dc", "pw", "xyz")
    secret = ScramSecret.from_password("pw", salt=b"salt", iterations=4096)
    session = Session(SCRAM, secret=secret, policy=checking_policy)
    session.feed(w.EHLO)
    server_first = challenge(session.feed(b"AUTH SCRAM-SHA-256 " + b64(client.first()) + b"\r\n"))
    assert challenge(session.feed(b64(client.final(server_first)) + b"\r\n")).startswith(b"v=")
    assert session.feed(b"\r\n") == w.AUTH_OK
    assert session.conn.authenticated == "a,b=c"


# -- policy answers and sequence ---------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, wire",
    [
        (replies.AUTH_INVALID_CREDENTIALS(), INVALID),
        (replies.AUTH_MECHANISM_TOO_WEAK(), TOO_WEAK),
        (replies.AUTH_TEMPORARY_FAILURE(), TEMPORARY),
        (replies.AUTH_PASSWORD_TRANSITION(), TRANSITION),
    ],
    ids=["535", "534", "454", "432"],
)
def test_policy_answer_is_sent_as_is(reply, wire):
    def policy(event: Event) -> Reply:
        return reply if isinstance(event, Authenticate) else default_policy(event)

    session = run(
        [
            EHLO,
            (b"AUTH PLAIN " + b64(b"\0bob\0secret") + b"\r\n", wire),
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (b64(b"bob") + b"\r\n", b"334 UGFzc3dvcmQ6\r\n"),
            (b64(b"secret") + b"\r\n", wire),
            w.NOOP,
            (w.MAIL, w.SENDER_OK),
        ],
        settings=SETTINGS,
        tls=True,
        policy=policy,
    )
    assert session.conn.authenticated is None


def test_auth_sequence_errors():
    plain = b"AUTH PLAIN " + b64(b"\0bob\0secret") + b"\r\n"
    run(
        [
            (plain, w.EHLO_FIRST),
            (w.HELO, w.HELO_OK),
            (plain, w.EHLO_FIRST),
            EHLO,
            (w.MAIL, w.SENDER_OK),
            (plain, w.IN_TRANSACTION),
            (w.RCPT, w.RECIPIENT_OK),
            (plain, w.IN_TRANSACTION),
            (b"RSET\r\n", w.OK),
            (plain, w.AUTH_OK),
            (plain, ALREADY),
            (b"AUTH CRAM-MD5\r\n", ALREADY),
            w.NOOP,
        ],
        settings=SETTINGS,
        tls=True,
    )


def test_auth_line_too_long():
    settings = make_settings(auth_mechanisms=ALL, max_auth_line=100)
    long_response = b"A" * 200 + b"\r\n"
    run(
        [
            EHLO,
            (b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n"),
            (long_response, LINE_TOO_LONG),
            w.NOOP,
            (b"AUTH PLAIN " + b"A" * 200 + b"\r\n", LINE_TOO_LONG),
            w.NOOP,
            (b"AUTH PLAIN " + b"A" * 20_000 + b"\r\n", LINE_TOO_LONG),
            (b"AUTH PLAIN " + b64(b"\0bob\0secret") + b"\r\n", w.AUTH_OK),
        ],
        settings=settings,
        tls=True,
        byte_steps=(None, 1, 333),
    )


def test_default_auth_line_limit_is_12288():
    # RFC 4954 §4: a response line of 12288 octets is allowed
    response = b64(b"\0bob\0" + b"s" * 9000)
    assert len(response) + 2 <= 12288
    run(
        [EHLO, (b"AUTH PLAIN\r\n", b"334 \r\n"), (response + b"\r\n", w.AUTH_OK)],
        settings=SETTINGS,
        tls=True,
    )
    run(
        [EHLO, (b"AUTH PLAIN\r\n", b"334 \r\n"), (b"A" * 12300 + b"\r\n", LINE_TOO_LONG), w.NOOP],
        settings=SETTINGS,
        tls=True,
    )


def test_auth_required():
    settings = make_settings(auth_mechanisms=ALL, require_auth=True)
    run(
        [
            (w.EHLO, EHLO_ALL),
            (w.MAIL, w.AUTH_REQUIRED),
            (w.RCPT, w.AUTH_REQUIRED),
            (b"VRFY bob\r\n", w.AUTH_REQUIRED),
            (b"BDAT 4 LAST\r\nQUIT", w.AUTH_REQUIRED),
            (b"RSET\r\n", w.OK),
            w.NOOP,
            (b"AUTH PLAIN " + b64(b"\0bob\0secret") + b"\r\n", w.AUTH_OK),
            (w.MAIL, w.SENDER_OK),
        ],
        settings=settings,
        tls=True,
    )
