"""Fault rules: how they are written (``parse_rule``) and that they fire as written against a
real SMTP session (mailroom in this process, a client on loopback)."""

from __future__ import annotations

import base64
import random
import re
from typing import Any

import pytest

from mailroom.policy.faults import STAGES, FaultError, FaultRule, parse_rule
from tests.live import HOSTNAME, LineClient, LiveServer, maildir_files, wait_for

# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_takes_every_action(stage: str) -> None:
    for action, expected in (
        ("disconnect", ("disconnect", None, 0.0)),
        ("close", ("close", None, 0.0)),
        ("delay=1.5", ("delay", None, 1.5)),
        ("451 4.3.0 Try later", ("reply", "451 4.3.0 Try later", 0.0)),
    ):
        rule = parse_rule(f"{stage}:{action}")
        reply = str(rule.reply) if rule.reply is not None else None
        assert (rule.stage, rule.action, reply, rule.delay) == (stage, *expected)


def test_defaults() -> None:
    rule = parse_rule("rcpt:550 5.1.1 No such user")
    assert (rule.match, rule.probability, rule.every, rule.times) == (None, 1.0, 0, 0)
    assert rule.reply is not None
    assert (rule.reply.code, str(rule.reply.status), rule.reply.lines) == (
        550,
        "5.1.1",
        ("No such user",),
    )


def test_match_and_options_in_any_order() -> None:
    rule = parse_rule("RCPT:*@Bounce.test:times=3:p=0.25:every=2:550 5.1.1 No such user")
    assert rule.stage == "rcpt"
    assert (rule.match, rule.probability, rule.every, rule.times) == ("*@Bounce.test", 0.25, 2, 3)
    again = parse_rule("rcpt:every=2:p=0.25:*@Bounce.test:times=3:550 5.1.1 No such user")
    assert again.describe() == rule.describe()


def test_reply_text_may_hold_colons_and_no_enhanced_code() -> None:
    rule = parse_rule("mail:451 4.7.1 Greylisted: come back in 300 s: thanks")
    assert rule.reply is not None and rule.reply.lines == (
        "Greylisted: come back in 300 s: thanks",
    )
    bare = parse_rule("data:554")
    assert bare.reply is not None
    assert (bare.reply.code, bare.reply.status, bare.reply.lines) == (
        554,
        None,
        ("Fault injected",),
    )


def test_helo_is_ehlo_and_describe_reads_back() -> None:
    assert STAGES[parse_rule("helo:close").stage] == "EHLO"
    for text in (
        "rcpt:*@bounce.test:550 5.1.1 No such user",
        "mail:p=0.1:451 4.3.0 Try again later",
        "connect:every=3:421 4.7.0 Too busy",
        "data:times=2:delay=5",
        "eod:disconnect",
        "ehlo:close",
    ):
        rule = parse_rule(text)
        assert parse_rule(rule.describe()).to_dict() == rule.to_dict(), text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "unknown stage"),
        ("lunch:close", "unknown stage 'lunch'"),
        ("rcpt", "needs an action"),
        ("rcpt:", "needs an action"),
        ("rcpt:*@x.test", "no action"),
        ("rcpt:p=2:close", "bad value in 'p=2'"),
        ("rcpt:p=-0.1:close", "bad value"),
        ("rcpt:p=half:close", "bad value"),
        ("rcpt:every=0:close", "bad value in 'every=0'"),
        ("rcpt:every=x:close", "bad value"),
        ("rcpt:times=0:close", "bad value in 'times=0'"),
        ("data:delay=-1", "bad value in 'delay=-1'"),
        ("data:delay=soon", "bad value"),
        # float() reads these, but a session would wait forever (inf) and the rule's JSON
        # (GET /api/v1/faults, the "faults" event) would hold Infinity or NaN, which is not JSON
        ("data:delay=inf", "bad value in 'delay=inf'"),
        ("data:delay=nan", "bad value in 'delay=nan'"),
        ("data:delay=1e999", "bad value"),
        ("rcpt:550 4.1.1 Wrong class", "4.1.1"),
        ("rcpt:650 Not a code", "650"),
        ("rcpt:frobnicate", "cannot read 'frobnicate'"),
        ("rcpt:disconnect:close", "the action comes last"),
        ("data:delay=5:times=2", "the action comes last: 'times=2' follows 'delay=5'"),
        ("connect:220 2.0.0 Welcome", "a connect rule replaces the greeting"),
    ],
)
def test_invalid_rules(text: str, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        parse_rule(text)


def test_invalid_rules_stop_the_server_from_starting() -> None:
    from mailroom.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=re.escape("fault 'rcpt:550 4.1.1 x'")):
        load_config(None, {"faults": ["rcpt:550 4.1.1 x"]})


# -- firing, against a real session --------------------------------------------------------


def session(live: LiveServer, helo: bool = True) -> LineClient:
    client = LineClient(live.smtp)
    greeting = client.reply()
    assert greeting.startswith(b"220 "), greeting
    if helo:
        assert client.command(b"EHLO client.example.test").startswith(b"250-")
    return client


def rules(live: LiveServer) -> list[FaultRule]:
    return live.mail_server.faults.rules


def add(live: LiveServer, text: str) -> FaultRule:
    rule: FaultRule = live.call(lambda: live.mail_server.faults.add(text))
    return rule


def test_rcpt_rule_matches_recipients(serve: Any) -> None:
    live = serve(faults=("rcpt:*@bounce.test:550 5.1.1 No such user",))
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>") == b"250 2.1.0 Ok\r\n"
    assert client.command(b"RCPT TO:<x@bounce.test>") == b"550 5.1.1 No such user\r\n"
    assert client.command(b"RCPT TO:<X@BOUNCE.TEST>") == b"550 5.1.1 No such user\r\n"
    assert client.command(b"RCPT TO:<x@example.test>") == b"250 2.1.5 Ok\r\n"
    client.close()
    assert rules(live)[0].fired == 2


def test_sender_match_applies_to_mail_and_later_stages(serve: Any) -> None:
    live = serve(faults=("eod:*@spam.test:554 5.7.1 Looks like spam",))
    client = session(live)
    for sender, expected in (
        (b"a@spam.test", b"554 5.7.1 Looks like spam\r\n"),
        (b"a@ok.test", b"250 2.0.0"),
    ):
        assert client.command(b"MAIL FROM:<" + sender + b">").startswith(b"250")
        assert client.command(b"RCPT TO:<b@example.test>").startswith(b"250")
        assert client.command(b"DATA").startswith(b"354")
        assert client.command(b"Subject: x\r\n\r\nhi\r\n.").startswith(expected)
    client.close()
    assert len(maildir_files(live.data)) == 1  # the refused one was not stored


def test_every_nth_time(serve: Any) -> None:
    live = serve(faults=("rcpt:every=3:452 4.5.3 Too many recipients",), max_recipients=20)
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>").startswith(b"250")
    refused = [
        n
        for n in range(1, 10)
        if client.command(b"RCPT TO:<r%d@example.test>" % n).startswith(b"452 4.5.3")
    ]
    client.close()
    assert refused == [3, 6, 9]


def test_the_next_n_times_then_spent(serve: Any) -> None:
    live = serve(faults=("mail:times=2:451 4.3.0 Try again later",))
    client = session(live)
    answers = [
        client.command(b"MAIL FROM:<a@example.test>")[:3] + client.command(b"RSET")[:0]
        for _ in range(4)
    ]
    client.close()
    assert answers == [b"451", b"451", b"250", b"250"]
    rule = rules(live)[0]
    assert rule.spent and rule.fired == 2 and rule.to_dict()["times"] == 0


@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_probability_with_a_seeded_random_source(serve: Any, seed: int) -> None:
    live = serve(max_recipients=50)
    faults = live.mail_server.faults
    live.call(lambda: setattr(faults, "rng", random.Random(seed)))
    add(live, "rcpt:p=0.3:450 4.2.1 Mailbox busy")
    expected_source = random.Random(seed)
    expected = [n for n in range(40) if expected_source.random() < 0.3]
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>").startswith(b"250")
    refused = [
        n
        for n in range(40)
        if client.command(b"RCPT TO:<r%d@example.test>" % n).startswith(b"450 4.2.1")
    ]
    client.close()
    assert refused == expected
    assert 0 < len(refused) < 40  # the seeds chosen give both outcomes


def test_probability_zero_never_fires_and_one_always(serve: Any) -> None:
    live = serve(faults=("rcpt:p=0:550 5.1.1 never", "rcpt:*@always.test:p=1:550 5.1.1 always"))
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>").startswith(b"250")
    for _ in range(5):
        assert client.command(b"RCPT TO:<x@example.test>").startswith(b"250")
        assert client.command(b"RCPT TO:<x@always.test>") == b"550 5.1.1 always\r\n"
    client.close()
    assert [r.fired for r in rules(live)] == [0, 5]


def test_first_matching_rule_wins(serve: Any) -> None:
    live = serve(
        faults=("rcpt:*@a.test:550 5.1.1 first", "rcpt:550 5.1.1 second", "rcpt:550 5.1.1 third")
    )
    client = session(live)
    assert client.command(b"MAIL FROM:<s@example.test>").startswith(b"250")
    assert client.command(b"RCPT TO:<x@a.test>") == b"550 5.1.1 first\r\n"
    assert client.command(b"RCPT TO:<x@b.test>") == b"550 5.1.1 second\r\n"
    client.close()


def test_connect_rules_replace_the_greeting(serve: Any) -> None:
    live = serve(faults=("connect:every=2:421 4.7.0 Too busy, try later",))
    greetings = []
    for _ in range(4):
        client = LineClient(live.smtp)
        greetings.append(client.reply())
        client.close()
    assert greetings[0].startswith(b"220 ") and greetings[2].startswith(b"220 ")
    assert greetings[1] == greetings[3] == b"421 4.7.0 Too busy, try later\r\n"


def test_disconnect_drops_the_connection_without_a_word(serve: Any) -> None:
    live = serve(faults=("ehlo:disconnect",))
    client = LineClient(live.smtp)
    assert client.reply().startswith(b"220 ")
    client.send(b"EHLO client.example.test\r\n")
    assert client.closed()
    client.close()
    transcript = wait_for(
        lambda: (
            live.mail_server.transcripts.list()[0].ended and live.mail_server.transcripts.list()[0]
        )
    )
    notes = [text for _, kind, text in transcript.entries if kind == "I"]
    assert any("fault rule 1 fired: ehlo:disconnect" in str(n) for n in notes)
    assert any("disconnected" in str(n) for n in notes)


def test_close_says_421_and_closes(serve: Any) -> None:
    live = serve(faults=("mail:close",))
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>") == (
        f"421 4.3.2 {HOSTNAME} Service not available, closing transmission channel\r\n".encode()
    )
    assert client.closed()
    client.close()


def test_delay_then_as_usual(serve: Any) -> None:
    live = serve(faults=("data:times=1:delay=0.2",))
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>").startswith(b"250")
    assert client.command(b"RCPT TO:<b@example.test>").startswith(b"250")
    assert client.command(b"DATA").startswith(b"354 ")  # what the server says without the rule
    assert client.command(b"Subject: slow\r\n\r\nhi\r\n.").startswith(b"250 2.0.0")
    client.close()
    assert rules(live)[0].fired == 1
    assert len(maildir_files(live.data)) == 1


def test_bdat_rules_answer_chunks_and_eod_rules_the_last(serve: Any) -> None:
    live = serve(
        faults=(
            "bdat:times=1:452 4.3.1 Chunk refused for this test",
            "eod:times=1:552 5.3.4 Message refused for this test",
        )
    )
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>").startswith(b"250")
    assert client.command(b"RCPT TO:<b@example.test>").startswith(b"250")
    client.send(b"BDAT 12\r\nSubject: x\r\n")
    assert client.reply() == b"452 4.3.1 Chunk refused for this test\r\n"
    assert client.command(b"RSET").startswith(b"250")
    assert client.command(b"MAIL FROM:<a@example.test>").startswith(b"250")
    assert client.command(b"RCPT TO:<b@example.test>").startswith(b"250")
    client.send(b"BDAT 12\r\nSubject: x\r\n")
    assert client.reply().startswith(b"250 ")  # the rule was for one time only
    client.send(b"BDAT 4 LAST\r\nhi\r\n")
    assert client.reply() == b"552 5.3.4 Message refused for this test\r\n"
    client.close()
    assert maildir_files(live.data) == []


def test_a_reply_that_completes_nothing_leaves_the_command_undone(serve: Any) -> None:
    """A rule may imitate a broken server (a 354 to MAIL or RCPT, a 250 to DATA): the reply
    goes out as written, and the session goes on as that server's would, the command not
    done. The core had taken any reply under 400 as a yes (MAIL answered 354 was taken, the
    next RCPT got 250)."""
    live = serve(faults=("mail:354 Go ahead",))
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>") == b"354 Go ahead\r\n"
    assert client.command(b"RCPT TO:<b@example.test>").startswith(b"503 5.5.1 ")
    client.close()
    live = serve(faults=("rcpt:b@example.test:354 Start mail input",))
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>").startswith(b"250 ")
    assert client.command(b"RCPT TO:<b@example.test>") == b"354 Start mail input\r\n"
    assert client.command(b"DATA").startswith(b"554 5.5.1 ")  # no valid recipients
    client.close()
    live = serve(faults=("bdat:354 More",))
    client = session(live)
    assert client.command(b"MAIL FROM:<a@example.test>").startswith(b"250 ")
    assert client.command(b"RCPT TO:<b@example.test>").startswith(b"250 ")
    client.send(b"BDAT 4\r\nhi\r\n")
    assert client.reply() == b"354 More\r\n"
    # The chunk not taken ended the transaction, as a refused chunk does (RFC 3030 §2).
    assert client.command(b"RCPT TO:<c@example.test>").startswith(b"503 5.5.1 ")
    client.close()
    assert maildir_files(live.data) == []


def test_auth_rule(serve: Any) -> None:
    live = serve(auth="accept-any", allow_insecure_auth=True, faults=("auth:535 5.7.8 Not today",))
    client = session(live)
    token = base64.b64encode(b"\0user\0password")
    assert client.command(b"AUTH PLAIN " + token) == b"535 5.7.8 Not today\r\n"
    client.close()


def test_starttls_rule(serve: Any) -> None:
    live = serve(tls="self-signed", faults=("starttls:454 4.7.0 TLS not available now",))
    client = session(live)
    assert client.command(b"STARTTLS") == b"454 4.7.0 TLS not available now\r\n"
    assert client.command(b"NOOP").startswith(b"250")  # still in the clear, still talking
    client.close()


def test_rules_added_while_running_apply_to_the_next_session(serve: Any) -> None:
    live = serve()
    first = session(live)
    assert first.command(b"MAIL FROM:<a@example.test>").startswith(b"250")
    rule = add(live, "mail:550 5.7.1 Sender blocked")
    second = session(live)
    assert second.command(b"MAIL FROM:<a@example.test>") == b"550 5.7.1 Sender blocked\r\n"
    assert live.call(lambda: live.mail_server.faults.remove(rule.id))
    assert second.command(b"MAIL FROM:<a@example.test>").startswith(b"250")
    first.close()
    second.close()
