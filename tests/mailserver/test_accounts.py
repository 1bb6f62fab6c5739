"""Accounts and lists (issue 17), over real sockets with smtplib: disabled users (550 5.2.1 at
RCPT, 535 5.7.13 at AUTH), per-user size limits (552 5.2.3), lists only members may post to
(550 5.7.2), lists that cannot be expanded (450 4.2.4), and addresses that match several users
(550 5.1.4)."""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailroom.config import ConfigError, load_config
from mailroom.policy.credentials import password_line
from mailroom.testing import SMTPTestServer
from tests.delivery.dnsserver import dns_that_cannot_answer

PASSWORD = "correct horse battery staple"
_HASH, _SCRAM = password_line("x@example.test", PASSWORD).split(":", 2)[1:]

CONFIG = f"""
hostname = "mx.example.test"
tls = "self-signed"
domains = ["example.test"]
dns_servers = ["{{dns}}"]
case_insensitive_local_part = {{fold}}

[[listeners]]
address = "127.0.0.1:0"
role = "mx"
[[listeners]]
address = "127.0.0.1:0"
role = "submission"

[users."alice@example.test"]
password = "{_HASH}"
max_message_size = "2K"

[users."bob@example.test"]

[users."jörg@example.test"]

[users."sam@example.test"]
password = "{_HASH}"
scram = "{_SCRAM}"
strong_auth_only = true

[users."eve@example.test"]
password = "{_HASH}"
scram = "{_SCRAM}"
disabled = true

{{extra}}

[aliases]
"everyone@example.test" = ["alice@example.test", "bob@example.test", "eve@example.test"]
"broken@example.test" = ["alice@example.test", "ghost@example.test"]
"loop-a@example.test" = ["loop-b@example.test", "bob@example.test"]
"loop-b@example.test" = ["loop-a@example.test", "alice@example.test"]

[lists."staff@example.test"]
members = ["alice@example.test", "bob@example.test"]
members_only = true

[policy]
check_null_mx = false
check_sender_domain = false
max_list_members = 3
vrfy = "authenticated"
"""


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., SMTPTestServer]]:
    started: list[SMTPTestServer] = []

    def make(*, fold: bool = True, extra: str = "") -> SMTPTestServer:
        directory = tmp_path / f"server{len(started)}"
        directory.mkdir()
        config = directory / "mailroom.toml"
        config.write_text(
            CONFIG.format(
                dns=dns_that_cannot_answer(), fold="true" if fold else "false", extra=extra
            )
        )
        server = SMTPTestServer(directory / "data", config_file=config)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


def _mx(server: SMTPTestServer, sender: str = "someone@remote.test") -> smtplib.SMTP:
    client = smtplib.SMTP(*server.address("mx"), timeout=10)
    client.ehlo("client.remote.test")
    assert client.mail(sender)[0] == 250
    return client


def _unverified() -> ssl.SSLContext:
    """The test server's certificate is self-signed: TLS without checking it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _submission(server: SMTPTestServer) -> smtplib.SMTP:
    """An smtplib session on the submission listener, after STARTTLS and EHLO."""
    client = smtplib.SMTP(*server.address("submission"), timeout=10)
    client.starttls(context=_unverified())
    client.ehlo("client.example.test")
    return client


def test_a_disabled_mailbox_is_refused_at_rcpt(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = server_factory()
    client = _mx(server)
    assert client.rcpt("eve@example.test") == (
        550,
        b"5.2.1 <eve@example.test>: Recipient address rejected: mailbox disabled, not "
        b"accepting messages",
    )
    # A list that holds her delivers to the others; she is left out, not the list refused.
    assert client.rcpt("everyone@example.test") == (250, b"2.1.5 Ok")
    client.quit()


def test_a_disabled_account_cannot_authenticate(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = server_factory()

    def login(password: str) -> smtplib.SMTPAuthenticationError:
        client = _submission(server)
        client.user, client.password = "eve@example.test", password
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("PLAIN", client.auth_plain)  # one mechanism, one try
        client.quit()
        return refused.value

    wrong = login("not her password")
    assert (wrong.smtp_code, wrong.smtp_error[:5]) == (535, b"5.7.8")
    right = login(PASSWORD)
    assert (right.smtp_code, right.smtp_error) == (
        535,
        b"5.7.13 User account disabled; ask your administrator",
    )
    # SCRAM proves the password without sending it: the account is still off.
    from mailroom.client import AuthenticationFailed, SyncClient

    with (
        SyncClient(
            *server.address("submission"), tls="starttls", ssl_context=_unverified(), timeout=10
        ) as mailroom_client,
        pytest.raises(AuthenticationFailed) as scram,
    ):
        mailroom_client.login("eve@example.test", PASSWORD, mechanism="SCRAM-SHA-256")
    assert str(scram.value.reply.status) == "5.7.13"


def _login(server: SMTPTestServer, user: str, mechanism: str) -> tuple[int, str]:
    """One AUTH in a fresh session with mailroom's own client: (code, enhanced code)."""
    from mailroom.client import AuthenticationFailed, SyncClient

    with SyncClient(
        *server.address("submission"), tls="starttls", ssl_context=_unverified(), timeout=10
    ) as client:
        try:
            reply = client.login(user, PASSWORD, mechanism=mechanism)
        except AuthenticationFailed as failed:
            reply = failed.reply
    return reply.code, str(reply.status)


def test_a_password_transition_to_scram(server_factory: Callable[..., SMTPTestServer]) -> None:
    """alice has a password but no SCRAM secret: SCRAM first gets 432 4.7.12 (log in once with
    PLAIN); after one PLAIN login it works (RFC 4954 §6)."""
    server = server_factory()
    assert _login(server, "alice@example.test", "SCRAM-SHA-256") == (432, "4.7.12")
    assert _login(server, "alice@example.test", "PLAIN") == (235, "2.7.0")
    assert _login(server, "alice@example.test", "SCRAM-SHA-256") == (235, "2.7.0")


def test_a_user_who_may_use_scram_only(server_factory: Callable[..., SMTPTestServer]) -> None:
    server = server_factory()
    assert _login(server, "sam@example.test", "PLAIN") == (534, "5.7.9")
    assert _login(server, "sam@example.test", "SCRAM-SHA-256") == (235, "2.7.0")


def test_a_mailbox_size_limit_at_rcpt_and_at_the_end_of_data(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = server_factory()
    client = smtplib.SMTP(*server.address("mx"), timeout=10)
    client.ehlo("client.remote.test")
    assert client.mail("someone@remote.test", ["SIZE=5000"])[0] == 250
    assert client.rcpt("alice@example.test") == (
        552,
        b"5.2.3 <alice@example.test>: message exceeds the mailbox's size limit of 2048 octets",
    )
    assert client.rcpt("bob@example.test")[0] == 250  # bob has the server's limit only
    client.rset()
    # Without SIZE, the limit is found at the end of data, for the whole transaction.
    assert client.mail("someone@remote.test")[0] == 250
    assert client.rcpt("alice@example.test")[0] == 250
    code, text = client.data(b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 40)
    assert (code, text[:6]) == (552, b"5.2.3 ")
    # A small one goes through.
    client.sendmail("someone@remote.test", ["alice@example.test"], b"Subject: small\r\n\r\nhi\r\n")
    client.quit()
    assert [m["Subject"] for m in server.messages] == ["small"]


def test_only_members_may_post_to_a_members_only_list(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = server_factory()
    outsider = _mx(server, "someone@remote.test")
    assert outsider.rcpt("staff@example.test") == (
        550,
        b"5.7.2 <staff@example.test>: Recipient address rejected: only members may post to "
        b"this list",
    )
    outsider.quit()
    member = _mx(server, "Bob@Example.TEST")
    assert member.rcpt("staff@example.test") == (250, b"2.1.5 Ok")
    assert member.data(b"Subject: staff\r\n\r\nmeeting\r\n")[0] == 250
    member.quit()
    [message] = server.messages
    assert message["Subject"] == "staff"


def test_a_list_that_cannot_be_expanded(server_factory: Callable[..., SMTPTestServer]) -> None:
    server = server_factory(
        extra='[lists."big@example.test"]\nmembers = ["a@x.test", '
        '"b@x.test", "c@x.test", "d@x.test"]'
    )
    client = _mx(server)
    assert client.rcpt("broken@example.test") == (
        450,
        b"4.2.4 <broken@example.test>: Recipient address rejected: mailing list expansion "
        b"problem: member <ghost@example.test> does not exist",
    )
    code, text = client.rcpt("loop-a@example.test")
    assert (code, text[:6]) == (450, b"4.2.4 ")
    assert b"aliases loop" in text
    assert client.rcpt("big@example.test") == (
        450,
        b"4.2.4 <big@example.test>: Recipient address rejected: mailing list expansion "
        b"problem: 4 members, more than max_list_members (3)",
    )
    client.quit()


def test_an_address_that_matches_several_users_is_ambiguous(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    server = server_factory(fold=False, extra='[users."Bob@example.test"]')
    client = _mx(server)
    # Exact matches are users of their own; "BOB" matches both only by folding case.
    assert client.rcpt("bob@example.test")[0] == 250
    assert client.rcpt("Bob@example.test")[0] == 250
    assert client.rcpt("BOB@example.test") == (
        550,
        b"5.1.4 <BOB@example.test>: Recipient address rejected: ambiguous, it matches the "
        b"mailboxes of <bob@example.test>, <Bob@example.test>",
    )
    # One user that differs only in case is no guess: it is that user.
    assert client.rcpt("ALICE@example.test")[0] == 250
    client.quit()


def test_vrfy_of_a_utf8_mailbox_needs_smtputf8(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    """RFC 6531 §3.7.4.2: a reply that would show a UTF-8 mailbox name goes only to a client
    that asked for it with the SMTPUTF8 parameter; 553 5.6.8 to the others."""
    server = server_factory()
    client = _submission(server)
    client.user, client.password = "alice@example.test", PASSWORD
    client.auth("PLAIN", client.auth_plain)

    def vrfy(argument: bytes) -> tuple[int, bytes]:
        client.sock.sendall(b"VRFY " + argument + b"\r\n")
        return client.getreply()

    assert vrfy(b"bob@example.test") == (250, b"2.1.5 <bob@example.test>")
    assert vrfy(b"bob") == (250, b"2.1.5 <bob@example.test>")
    assert vrfy(b"nobody@example.test") == (
        550,
        b"5.1.1 <nobody@example.test>: Recipient address rejected: User unknown",
    )
    assert vrfy("jörg@example.test".encode()) == (
        553,
        b"5.6.8 Error: the mailbox's name needs UTF-8; say VRFY <name> SMTPUTF8",
    )
    assert vrfy("jörg@example.test SMTPUTF8".encode()) == (
        250,
        "2.1.5 <jörg@example.test>".encode(),
    )
    assert vrfy(b"everyone@example.test")[0] == 252  # a list: VRFY does not expand lists
    # An unknown name is shown as MAIL and RCPT show theirs: printable ASCII (no UTF-8 to a
    # client that did not ask for it, no terminal escapes), a path's length at most (RFC 5321
    # §4.5.3.1.5: a reply line is 512 octets)
    assert vrfy("nöbody\x1b[31m".encode()) == (
        550,
        b"5.1.1 <n?body?[31m@example.test>: Recipient address rejected: User unknown",
    )
    code, text = vrfy(b"x" * 480)
    assert code == 550
    assert text == b"5.1.1 <" + b"x" * 252 + b"...: Recipient address rejected: User unknown"
    client.quit()
    # Unauthenticated clients learn nothing (RFC 5321 §3.5.3, §7.3).
    mx = smtplib.SMTP(*server.address("mx"), timeout=10)
    mx.ehlo("client.remote.test")
    assert mx.verify("bob@example.test")[0] == 252
    mx.quit()


def test_a_mailbox_that_cannot_be_written(server_factory: Callable[..., SMTPTestServer]) -> None:
    """bob's Maildir cannot be made (a file is where its directory should be; root, as in CI,
    passes any permission, so a file is the honest way to break it): his mail gets 451 4.2.0
    naming him, nothing of it is stored; the other mailboxes go on."""
    server = server_factory()
    domain = Path(server.config.data) / "mail" / "example.test"
    domain.mkdir(parents=True, exist_ok=True)
    (domain / "bob").write_text("not a Maildir")
    client = _mx(server)
    assert client.rcpt("alice@example.test")[0] == 250
    assert client.rcpt("bob@example.test")[0] == 250
    code, text = client.data(b"Subject: to both\r\n\r\nhi\r\n")
    assert (code, text) == (
        451,
        b"4.2.0 Error: the mailbox of <bob@example.test> cannot take mail now (Not a "
        b"directory), try again later",
    )
    assert not client.sendmail(
        "someone@remote.test", ["alice@example.test"], b"Subject: a\r\n\r\nhi\r\n"
    )
    client.quit()
    assert [m["Subject"] for m in server.messages] == ["a"]


def test_case_folded_duplicate_users_are_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text(
        CONFIG.format(dns=dns_that_cannot_answer(), fold="true", extra='[users."Bob@example.test"]')
    )
    with pytest.raises(ConfigError, match="same user"):
        load_config(config)


@pytest.mark.parametrize(
    "extra, message",
    [
        ('[users."x@example.test"]\ndisabeld = true', "unknown setting 'disabeld'"),
        ('[users."x@example.test"]\ndisabled = "yes"', "disabled is true or false"),
        ('[users."x@example.test"]\nmax_message_size = "lots"', "bad max_message_size"),
        ('[lists."l@example.test"]\nmembers = []', "members is a list"),
        ('[lists."l@example.test"]\nmembers = ["a@x.test"]\nopen = true', "unknown setting"),
        ('[lists."bob@example.test"]\nmembers = ["a@x.test"]', "also a user or an alias"),
    ],
)
def test_account_and_list_settings_are_checked(tmp_path: Path, extra: str, message: str) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text(CONFIG.format(dns=dns_that_cannot_answer(), fold="true", extra=extra))
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def _plain_login(server: SMTPTestServer, authzid: str, user: str) -> tuple[int, bytes]:
    """AUTH PLAIN with an authorization identity, over STARTTLS with smtplib."""
    client = _submission(server)
    token = base64.b64encode(f"{authzid}\0{user}\0{PASSWORD}".encode()).decode()
    reply = client.docmd("AUTH", f"PLAIN {token}")
    client.quit()
    return reply


def test_an_authorization_identity_must_be_the_user_who_logs_in(
    server_factory: Callable[..., SMTPTestServer],
) -> None:
    """RFC 4616 §2: the authzid names whom the client acts as; acting as another user is not
    offered, so naming one fails, but naming oneself in another case the directory ignores
    (case_insensitive_local_part = true, domains always) is oneself."""
    server = server_factory()
    assert _plain_login(server, "", "alice@example.test")[0] == 235
    assert _plain_login(server, "alice@example.test", "alice@example.test")[0] == 235
    assert _plain_login(server, "Alice@EXAMPLE.test", "alice@example.test")[0] == 235
    assert _plain_login(server, "bob@example.test", "alice@example.test") == (
        535,
        b"5.7.8 Authentication credentials invalid",
    )
    # Where local parts are compared as written, another case is another user.
    strict = server_factory(fold=False)
    assert _plain_login(strict, "Alice@example.test", "alice@example.test")[0] == 535
    assert _plain_login(strict, "alice@EXAMPLE.TEST", "alice@example.test")[0] == 235


def test_a_scram_authorization_identity_is_checked_as_plain_s_is() -> None:
    """SCRAM's a= (RFC 5802 §5.1): the protocol proves the password, the store decides whom
    the client may act as. It had accepted any a=, while PLAIN refused another user."""
    import asyncio

    from mailroom.policy.credentials import PasswordFile
    from mailroom.protocol import ScramCredentials

    store = PasswordFile(users={"alice": (_HASH, _SCRAM), "bob": (_HASH, _SCRAM)})

    def check(authzid: str) -> int:
        return asyncio.run(store.check(ScramCredentials(authzid, "alice", True))).code

    assert check("") == 235
    assert check("alice") == 235
    assert check("bob") == 535
    assert asyncio.run(store.check(ScramCredentials("", "alice", False))).code == 535
