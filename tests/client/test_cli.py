"""``mailroom send`` and ``mailroom sendmail`` against mailroom (in a thread) and smtp-sink:
the transcript with explained replies, what is stored, and the exit statuses."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from mailroom.cli import main
from mailroom.client.message import parse_message
from tests.client.servers import SMTP_SINK, free_port, mailroom_in_thread, smtp_sink

needs_sink = pytest.mark.skipif(SMTP_SINK is None, reason="smtp-sink (package postfix) is absent")


def server_flag(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def test_send_from_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    attachment = tmp_path / "notes.txt"
    attachment.write_text("attached text\n")
    with mailroom_in_thread(tmp_path / "data") as m:
        status = main(
            [
                "send",
                "--server",
                server_flag(m.smtp),
                "--from",
                "Alice <alice@example.test>",
                "--to",
                "bob@example.test,carol@example.test",
                "--bcc",
                "dave@example.test",
                "--subject",
                "from the command line",
                "--body",
                "Hello.\n.\nBye.",
                "--attach",
                str(attachment),
                "--header",
                "X-Test: yes",
            ]
        )
        (stored,) = m.stored()
        (trace,) = m.traces()
    out = capsys.readouterr().out
    assert status == 0
    assert "=== Connected to 127.0.0.1." in out
    assert " -> MAIL FROM:<alice@example.test>" in out
    assert "<-  250 2.1.5 Ok" in out
    assert "    = 2.1.5 Destination address valid; done" in out
    assert "=== delivered to all 3 recipients" in out
    message = parse_message(stored)
    assert message["Subject"] == "from the command line" and message["X-Test"] == "yes"
    assert "Bcc" not in message and b"Delivered-To: dave@example.test" in trace
    parts = list(message.iter_attachments())
    assert [p.get_filename() for p in parts] == ["notes.txt"]
    assert message.get_body().get_content().replace("\r\n", "\n") == "Hello.\n.\nBye.\n"


def test_send_starttls_auth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with mailroom_in_thread(tmp_path / "data", tls="self-signed", auth="accept-any") as m:
        status = main(
            [
                "send",
                "--server",
                server_flag(m.smtp),
                "--tls",
                "starttls",
                "--cafile",
                str(m.cafile),
                "--auth",
                "bob:secret",
                "--auth-mech",
                "LOGIN",
                "--from",
                "bob@example.test",
                "--to",
                "carol@example.test",
            ]
        )
        (trace,) = m.traces()
    out = capsys.readouterr().out
    assert status == 0, out
    assert "=== TLS started: TLS" in out
    assert " ~> AUTH LOGIN" in out and " ~> ********" in out and "secret" not in out
    assert "<~  235 2.7.0 Authentication successful" in out
    assert b"(Authenticated sender: bob)" in trace


def test_send_implicit_tls_with_data_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "message.eml"
    data.write_bytes(
        b"From: a@example.test\nTo: b@example.test\nCc: c@example.test\nSubject: file\n\nbody\n"
    )
    with mailroom_in_thread(tmp_path / "data", tls="self-signed", smtps="127.0.0.1:0") as m:
        status = main(
            [
                "send",
                "--server",
                server_flag(m.smtps),
                "--tls",
                "implicit",
                "--insecure",
                "--data",
                str(data),
            ]
        )
        (stored,) = m.stored()
        (trace,) = m.traces()
    assert status == 0, capsys.readouterr().out
    assert stored == data.read_bytes().replace(b"\n", b"\r\n")
    assert b"Delivered-To: b@example.test\r\nDelivered-To: c@example.test\r\n" in trace


def test_send_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "--from", "a@example.test"]) == 2
    assert "at least one --to" in capsys.readouterr().err
    assert main(["send", "--to", "b@example.test", "--server", "host:notaport"]) == 2
    assert (
        main(["send", "--to", "b@example.test", "--data", "/nonexistent/file", "--subject", "x"])
        == 2
    )


def test_send_nothing_listening_is_temporary(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "send",
            "--server",
            f"127.0.0.1:{free_port()}",
            "--to",
            "b@example.test",
            "--timeout",
            "30",
        ]
    )
    assert status == 75
    assert "*** cannot connect" in capsys.readouterr().out


def test_send_untrusted_certificate_is_permanent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with mailroom_in_thread(tmp_path / "data", tls="self-signed") as m:
        status = main(
            ["send", "--server", server_flag(m.smtp), "--tls", "starttls", "--to", "b@example.test"]
        )
    assert status == 69
    assert "*** TLS handshake" in capsys.readouterr().out


def test_send_too_big_is_permanent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with mailroom_in_thread(tmp_path / "data", max_message_size="1K") as m:
        status = main(
            [
                "send",
                "--server",
                server_flag(m.smtp),
                "--to",
                "b@example.test",
                "--body",
                "x" * 2000,
            ]
        )
        assert m.stored() == []
    out = capsys.readouterr().out
    assert status == 69
    assert "*** MAIL refused: 552 5.3.4" in out and "bounce: mesgtoobig" in out


@needs_sink
@pytest.mark.parametrize(
    ("options", "status", "verdict"),
    [
        (("-r", "RCPT", "-b", "450 4.2.1 Mailbox busy, try again"), 75, "retry"),
        (
            ("-f", "RCPT", "-B", "550 5.1.1 Recipient address rejected: User unknown"),
            69,
            "bounce: userunknown",
        ),
        (("-f", "."), 69, "bounce"),
        (("-r", "."), 75, "retry"),
    ],
)
def test_send_exit_status_from_smtp_sink(
    options: tuple[str, ...], status: int, verdict: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with smtp_sink(*options) as sink:
        got = main(
            [
                "send",
                "--server",
                server_flag(sink.address),
                "--to",
                "b@example.test",
                "--to",
                "c@example.test",
            ]
        )
    out = capsys.readouterr().out
    assert got == status, out
    assert "<** " in out and verdict in out


def test_send_partial_delivery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One recipient delivered, one refused for now: the refused one's reply, explained, at
    the end, and the exit status of its failure."""
    with mailroom_in_thread(tmp_path / "data", max_recipients=1) as m:
        status = main(
            [
                "send",
                "--server",
                server_flag(m.smtp),
                "--to",
                "b@example.test",
                "--to",
                "c@example.test",
            ]
        )
        assert len(m.stored()) == 1
    out = capsys.readouterr().out
    assert status == 75  # the one failure is 452 4.5.3: try again later
    assert "*** c@example.test: 452 4.5.3 Error: too many recipients (retry: toomanyconn)" in out


# -- sendmail ------------------------------------------------------------------------------------


def run_sendmail(args: list[str], stdin: bytes, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    return main(["sendmail", *args])


def test_sendmail_t_i_strips_bcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = (
        b"From: Alice <alice@example.test>\n"
        b"To: bob@example.test\n"
        b"Bcc: secret@example.test,\n"
        b"  other@example.test\n"
        b"Subject: cron\n"
        b"\n"
        b"line\n"
        b".\n"
        b"after the dot\n"
    )
    with mailroom_in_thread(tmp_path / "data") as m:
        monkeypatch.setenv("MAILROOM_SERVER", server_flag(m.smtp))
        status = run_sendmail(["-t", "-oi"], message, monkeypatch)
        (stored,) = m.stored()
        (trace,) = m.traces()
    assert status == 0
    parsed = parse_message(stored)
    assert "Bcc" not in parsed and b"secret@example.test" not in stored
    assert parsed["Message-ID"] and parsed["Date"]  # added, as an MTA would
    assert b"line\r\n.\r\nafter the dot\r\n" in stored  # -oi: the dot did not end the input
    assert trace.startswith(b"Return-Path: <alice@example.test>\r\n")
    delivered = [line for line in trace.split(b"\r\n") if line.startswith(b"Delivered-To: ")]
    assert delivered == [
        b"Delivered-To: bob@example.test",
        b"Delivered-To: secret@example.test",
        b"Delivered-To: other@example.test",
    ]


def test_sendmail_dot_ends_input_without_i(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mailroom_in_thread(tmp_path / "data") as m:
        status = run_sendmail(
            [
                "--server",
                server_flag(m.smtp),
                "-f",
                "robot@example.test",
                "-F",
                "The Robot",
                "bob@example.test",
            ],
            b"Subject: no headers but this\n\nfirst\n.\nnever read\n",
            monkeypatch,
        )
        (stored,) = m.stored()
        (trace,) = m.traces()
    assert status == 0
    parsed = parse_message(stored)
    assert parsed["From"] == "The Robot <robot@example.test>"
    assert stored.endswith(b"\r\n\r\nfirst\r\n") and b"never read" not in stored
    assert trace.startswith(b"Return-Path: <robot@example.test>\r\n")


def test_sendmail_no_recipients_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_sendmail(["-t"], b"Subject: nobody\n\nx\n", monkeypatch) == 64
    assert "no recipients" in capsys.readouterr().err
    assert run_sendmail(["--bogus-option"], b"", monkeypatch) == 64


@needs_sink
def test_sendmail_exit_statuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with smtp_sink("-r", "RCPT") as sink:
        monkeypatch.setenv("MAILROOM_SERVER", server_flag(sink.address))
        assert run_sendmail(["bob@example.test"], b"Subject: x\n\ny\n", monkeypatch) == 75
    with smtp_sink(
        "-f", "MAIL", "-B", "553 5.1.8 Sender address rejected: Domain not found"
    ) as sink:
        monkeypatch.setenv("MAILROOM_SERVER", server_flag(sink.address))
        assert run_sendmail(["bob@example.test"], b"Subject: x\n\ny\n", monkeypatch) == 69
    err = capsys.readouterr().err
    assert "mailroom sendmail: bob@example.test: 553 5.1.8 Sender address rejected" in err
    assert "(bounce: rejected)" in err and "(retry: " in err


def test_sendmail_as_a_program_reads_real_stdin(tmp_path: Path) -> None:
    """The way PHP and cron call it: a child process with the message on a pipe."""
    with mailroom_in_thread(tmp_path / "data") as m:
        done = subprocess.run(
            [sys.executable, "-m", "mailroom.cli", "sendmail", "-t", "-i"],
            input=b"From: php@example.test\r\nTo: user@example.test\r\nSubject: from php\r\n\r\nHi\r\n",
            env={"MAILROOM_SERVER": server_flag(m.smtp), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            timeout=120,
            check=False,
        )
        stored = m.stored()
    assert done.returncode == 0, done.stderr
    assert len(stored) == 1 and parse_message(stored[0])["Subject"] == "from php"
