"""The store's command line against what a running server stored: ``mailroom list``, ``show``
and ``reindex`` (the index can be rebuilt from the Maildir alone)."""

from __future__ import annotations

import json
import smtplib
import subprocess
from pathlib import Path

from tests.interop.messages import UTF8_MESSAGE, UTF8_RECIPIENT, UTF8_SENDER, message
from tests.live import LiveServer, cli_list, mailroom_command, queue_id_of, run_cli, tls_context

# Every column the index keeps, except the time, which the rebuilt index reads from the
# queue id (to the millisecond) and so matches only closely.
COLUMNS = (
    "id",
    "mailbox",
    "path",
    "sender",
    "recipients",
    "from_header",
    "to_header",
    "cc_header",
    "subject",
    "message_id",
    "size",
    "client_ip",
    "helo",
    "auth_user",
    "tls",
    "read",
)

FOLDED = (
    b"From: =?utf-8?q?Ren=C3=A9e?= <renee@example.test>\r\n"
    b"To: a@example.test,\r\n"
    b"\tb@example.test\r\n"
    b"Cc: c@example.test\r\n"
    b"Subject: =?utf-8?b?R3LDvMOfZQ==?= and a\r\n"
    b"  folded subject line\r\n"
    b"Message-ID: <folded@example.test>\r\n"
    b"\r\n"
    b"Body.\r\n"
)


def send_a_variety(live: LiveServer) -> list[str]:
    """Messages that differ in every column of the index; their queue ids."""
    ids = []
    host, port = live.smtp
    with smtplib.SMTP(host, port, local_hostname="one.example.test") as client:
        client.ehlo()
        for sender, recipients, body in (
            ("alice@example.test", ["bob@example.test"], message("plain")),
            ("", ["postmaster@example.test"], message("bounce")),
            ('"john smith"@example.test', ["x@example.test", "y@example.test"], FOLDED),
            # Quoted local parts that whitespace folding or RFC 2047 decoding would change.
            ('"two  spaces"@example.test', ['"=?utf-8?q?not_a_word?="@example.test'], FOLDED),
        ):
            client.mail(sender or "<>")
            for recipient in recipients:
                client.rcpt(recipient)
            ids.append(queue_id_of(client.data(body)[1]))
        client.mail(UTF8_SENDER, ["SMTPUTF8", "BODY=8BITMIME"])
        client.rcpt(UTF8_RECIPIENT)
        ids.append(queue_id_of(client.data(UTF8_MESSAGE)[1]))
    with smtplib.SMTP(host, port, local_hostname="two.example.test") as client:
        client.starttls(context=tls_context(live.data))
        client.login("someone@example.test", "password")
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        ids.append(queue_id_of(client.data(message("tls and auth"))[1]))
    with smtplib.SMTP(host, port) as client:
        client.starttls(context=tls_context(live.data))
        client.login("o'brien (ops) \\ x)", "password")  # a comment's specials
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        ids.append(queue_id_of(client.data(message("odd user"))[1]))
    return ids


def test_reindex_rebuilds_the_same_index(serve) -> None:
    live: LiveServer = serve(tls="self-signed", auth="accept-any")
    ids = send_a_variety(live)
    live.stop()
    data = live.data
    before = {row["id"]: row for row in cli_list(data)}
    assert set(before) == set(ids)
    assert before[ids[1]]["sender"] == ""
    assert before[ids[2]]["sender"] == '"john smith"@example.test'
    assert before[ids[2]]["subject"] == "Grüße and a folded subject line"
    assert before[ids[2]]["from_header"] == "Renée <renee@example.test>"
    assert before[ids[2]]["to_header"] == "a@example.test, b@example.test"
    assert before[ids[4]]["recipients"] == [UTF8_RECIPIENT]
    assert before[ids[3]]["sender"] == '"two  spaces"@example.test'
    assert before[ids[3]]["recipients"] == ['"=?utf-8?q?not_a_word?="@example.test']
    assert before[ids[5]]["auth_user"] == "someone@example.test"
    assert before[ids[5]]["tls"] is True
    assert before[ids[6]]["auth_user"] == "o'brien (ops) \\ x)"

    # Rebuilt over the old index, and from nothing.
    for remove in (False, True):
        if remove:
            for path in data.glob("index.sqlite*"):
                path.unlink()
        out = run_cli("reindex", "--data", str(data)).decode()
        assert f"indexed {len(ids)} messages" in out
        after = {row["id"]: row for row in cli_list(data)}
        assert set(after) == set(before)
        for queue_id, row in before.items():
            rebuilt = after[queue_id]
            assert {c: rebuilt[c] for c in COLUMNS} == {c: row[c] for c in COLUMNS}
            assert abs(rebuilt["received"] - row["received"]) < 1.0


def test_list_and_show(serve) -> None:
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        first = _send(client, message("first"))
        second = _send(client, message("second"))
    text = run_cli("list", "--data", str(live.data)).decode()
    lines = text.splitlines()
    assert [line.split()[0] for line in lines] == [second, first]  # newest first
    assert lines[0].endswith("  second") and "<alice@example.test> -> bob@example.test" in lines[0]
    assert len(json.loads(run_cli("list", "--data", str(live.data), "--json", "--limit", "1"))) == 1
    shown = json.loads(run_cli("show", first, "--data", str(live.data), "--json"))
    assert shown["id"] == first and shown["subject"] == "first"
    assert shown["raw"].endswith(message("first").decode())


def _send(client: smtplib.SMTP, body: bytes) -> str:
    client.ehlo_or_helo_if_needed()
    client.mail("alice@example.test")
    client.rcpt("bob@example.test")
    code, text = client.data(body)
    assert code == 250
    return queue_id_of(text)


def test_list_and_show_report_what_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    done = subprocess.run(
        mailroom_command("list", "--data", str(empty)), capture_output=True, timeout=60
    )
    assert done.returncode == 1 and b"no index" in done.stderr
    assert not empty.exists()  # listing does not create the data directory


def test_show_unknown_id(serve) -> None:
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        _send(client, message("only one"))
    done = subprocess.run(
        mailroom_command("show", "NOSUCHID", "--data", str(live.data)),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1 and b"no message NOSUCHID" in done.stderr


def test_show_after_a_mail_reader_moved_the_message(serve) -> None:
    """mutt and Dovecot move a message they have seen from new/ to cur/ and add flags to its
    name (":2,S"): show still finds it, and reindex keeps its id."""
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        queue_id = _send(client, message("seen"))
    live.stop()
    (path,) = (live.data / "mail" / "catchall" / "new").iterdir()
    raw = path.read_bytes()
    seen = live.data / "mail" / "catchall" / "cur" / f"{path.name}:2,S"
    path.rename(seen)
    assert run_cli("show", queue_id, "--data", str(live.data)) == raw
    run_cli("reindex", "--data", str(live.data))
    (row,) = cli_list(live.data)
    assert row["id"] == queue_id and row["path"] == str(seen.relative_to(live.data))
    assert run_cli("show", queue_id, "--data", str(live.data)) == raw


def test_passwd(tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    line = run_cli("passwd", "carol", "--password-stdin", stdin=b"correct horse\n").decode()
    user, hashed, scram = line.rstrip("\n").split(":", 2)
    assert user == "carol" and PasswordHasher().verify(hashed, "correct horse")
    assert scram.startswith("SCRAM-SHA-256$")
    for args, stdin, error in (
        (["passwd", "carol", "--password-stdin"], b"\n", b"empty password"),
        (["passwd", "ca:rol", "--password-stdin"], b"pw\n", b"holds no ':'"),
    ):
        done = subprocess.run(mailroom_command(*args), input=stdin, capture_output=True, timeout=60)
        assert done.returncode == 2 and error in done.stderr, done.stderr


def test_list_finds_the_data_directory_as_serve_does(serve, tmp_path: Path) -> None:
    """From another folder: MAILROOM_DATA, a --config file's data, and where it looked."""
    import os

    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        queue_id = _send(client, message("found it"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            mailroom_command(*args),
            capture_output=True,
            timeout=60,
            cwd=elsewhere,
            env={**os.environ, **env},
        )

    nothing = run("list")
    assert nothing.returncode == 1
    assert str(elsewhere / "mailroom-data") in nothing.stderr.decode()
    assert b"the default; give --data DIR, MAILROOM_DATA or --config FILE" in nothing.stderr
    by_env = run("list", MAILROOM_DATA=str(live.data))
    assert by_env.returncode == 0 and queue_id.encode() in by_env.stdout
    (elsewhere / "mailroom.toml").write_text(f'data = "{live.data}"\n')
    by_file = run("list", "--config", "mailroom.toml")
    assert by_file.returncode == 0 and queue_id.encode() in by_file.stdout
    empty = tmp_path / "empty"
    (empty / "mail").mkdir(parents=True)
    run("reindex", "--data", str(empty))
    none = run("list", "--data", str(empty))
    assert none.returncode == 0 and f"no messages in {empty}".encode() in none.stderr


def test_show_an_ambiguous_prefix_lists_the_candidates(serve) -> None:
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        ids = [_send(client, message(f"number {n}")) for n in range(3)]
    prefix = ids[0][:2]  # ids begin with the time: three sent now share their first characters
    assert all(i.startswith(prefix) for i in ids)
    done = subprocess.run(
        mailroom_command("show", prefix, "--data", str(live.data)), capture_output=True, timeout=60
    )
    assert done.returncode == 1
    assert f"{prefix} is ambiguous".encode() in done.stderr
    assert all(i.encode() in done.stderr for i in ids) and b"number 1" in done.stderr


def test_list_into_a_closed_pipe_and_passwd_without_a_terminal(serve) -> None:
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        for n in range(200):
            _send(client, message(f"line {n}"))
    # `mailroom list --limit 200 | head -1`: the reader goes away after one line
    listing = subprocess.Popen(
        mailroom_command("list", "--limit", "200", "--data", str(live.data)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None
    listing.stdout.readline()
    listing.stdout.close()
    _, errors = listing.communicate(timeout=60)
    assert b"Traceback" not in errors and b"BrokenPipe" not in errors, errors
    passwd = subprocess.run(
        mailroom_command("passwd", "alice@example.test"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        start_new_session=True,  # no controlling terminal: getpass reads stdin
    )
    assert passwd.returncode == 2 and b"Traceback" not in passwd.stderr
    assert b"--password-stdin" in passwd.stderr


def test_serve_says_each_address_once_and_names_active_fault_rules(serve_process) -> None:
    process = serve_process("--fault", "rcpt:*@bounce.test:550 5.1.1 No such user")
    process.wait_started()
    from tests.live import wait_for

    wait_for(lambda: "fault rule" in process.stderr)
    log = process.stderr
    host, port = process.smtp
    assert log.count(f"{host}:{port}") == 1, log
    assert "1 fault rule active" in log and "rcpt:*@bounce.test:550 5.1.1 No such user" in log
