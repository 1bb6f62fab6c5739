"""mailroom.bounces on the corpus: reports Postfix, Exim, Dovecot and mailroom sent back when
they were sent mail that must fail (tests/data/bounces/<mta>/, made by tests.bounces.generate,
each file's records written down as the case was built, in expected.json), and hand-written
samples of the formats no local MTA can produce (tests/data/bounces/synthetic/, each marked
X-Synthetic). Also the sources (mbox, Maildir, stdin), the command line, and robustness."""

from __future__ import annotations

import io
import json
import mailbox
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mailroom.bounces
from mailroom.bounces import FIELDS, BounceRecord
from mailroom.codes.reasons import REASONS

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bounces"


def _expected() -> dict[str, list[dict[str, Any]]]:
    found = json.loads((CORPUS / "expected.json").read_text())
    found.update(json.loads((CORPUS / "synthetic" / "expected.json").read_text()))
    return found


EXPECTED = _expected()


def check(records: list[BounceRecord], wanted: list[dict[str, Any]]) -> None:
    """Every wanted record is there, with the wanted values, and nothing else."""
    by_recipient = {r.recipient: r for r in records}
    assert len(records) == len(wanted), [r.to_dict() for r in records]
    for want in wanted:
        record = by_recipient.get(want["recipient"])
        assert record is not None, f"no record for {want['recipient']}: {records}"
        got = {key: getattr(record, key) for key in want}
        assert got == want, record.to_dict()
        assert record.reason in REASONS, record
        assert record.reason_why, record


def test_the_corpus_has_every_mta_and_format() -> None:
    producers = {name.split("/")[0] for name in EXPECTED}
    assert producers == {"postfix", "exim", "dovecot", "mailroom", "synthetic"}
    assert len([n for n in EXPECTED if not n.startswith("synthetic/")]) >= 30
    for path in (CORPUS / "synthetic").iterdir():
        if path.name != "expected.json":
            assert b"ynthetic" in path.read_bytes()[:300], path  # marked as hand-written


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name: str) -> None:
    records = list(mailroom.bounces.read(CORPUS / name))
    check(records, EXPECTED[name])
    for record in records:
        assert record.source.endswith(Path(name).name)


def test_a_generated_bounce_in_detail() -> None:
    """Exim 4.96 writes Status: 5.0.0 and no command in its DSN; its text says the rest."""
    [record] = mailroom.bounces.read(CORPUS / "exim" / "remote-unknown-user.eml")
    assert record.kind == "bounce"
    assert record.status == "5.1.1"  # from the diagnostic, more specific than 5.0.0
    assert record.command == "RCPT"  # "SMTP error from remote mail server after RCPT TO:"
    assert record.diagnostic_type == "smtp"
    assert record.diagnostic_code.startswith("550 5.1.1 <ghost@receiver.test>")
    assert record.remote_mta == "127.0.0.1"
    assert record.reporting_mta == "exim.test"
    assert record.sender == "sender@collect.test"
    assert record.message_id == "<remote-unknown-user.exim@bounces.test>"
    assert record.subject == "bounce case exim/remote-unknown-user"
    assert record.bounce_type == "hard"
    assert record.format == "rfc3464:exim"
    assert record.timestamp.endswith("Z") and record.timestamp[:2] == "20"


def test_hard_and_soft() -> None:
    kinds = {r.recipient: r.bounce_type for r in mailroom.bounces.read(CORPUS / "postfix")}
    assert kinds["ghost@receiver.test"] == "hard"
    assert kinds["tiny@lmtp.test"] == "soft"  # over quota: may work later
    assert kinds["spam@receiver.test"] == "soft"


def test_not_a_report_gives_no_record() -> None:
    plain = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"
    assert mailroom.bounces.parse(plain) == []
    assert mailroom.bounces.parse(b"") == []
    assert mailroom.bounces.parse(b'{"notificationType": "Delivery"}') == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_records_or_nothing(data: bytes) -> None:
    for record in mailroom.bounces.parse(data):
        assert isinstance(record, BounceRecord)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_damaged_reports_do_not_raise(data: st.DataObject) -> None:
    raw = (CORPUS / "postfix" / "two-unknown-users.eml").read_bytes()
    cut = data.draw(st.integers(0, len(raw)))
    noise = data.draw(st.binary(max_size=50))
    mailroom.bounces.parse(raw[:cut] + noise + raw[cut:])


def _report(subject: str, text: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.org\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        f"--B\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n"
        "\r\nFinal-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 {text}\r\n\r\n--B--\r\n"
    ).encode()


# Long runs of what the text readers look for at every position: words and spaces on one line
# (a reason before an address), dots, addresses, dashes (Sendmail's rules, "--- smtp command"),
# blank lines (indentation read over line ends, a delivery-status block for each), blanks
# before a trailer. Each once took time growing with the square of the run: a minute and more
# for these sizes, where it now takes about a second. The bound is a guard against that, thirty
# times what it takes, not a measure of speed: a report a stranger sends must not hold up
# `mailroom bounces` or the web UI.
_HOSTILE_RUNS = ["word ", "a.b.c ", "a@b.c ", "-", "\n", "  \n", " \t", "(reason: x\n"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("run", _HOSTILE_RUNS)
@pytest.mark.parametrize("subject", ["Undelivered Mail Returned to Sender", "Returned mail"])
def test_long_runs_are_read_in_linear_time(run: str, subject: str) -> None:
    text = run * (128 * 1024 // len(run))
    plain = f"From: MAILER-DAEMON@mx.example.org\r\nSubject: {subject}\r\n\r\n{text}".encode()
    assert mailroom.bounces.parse(plain) == []
    (record,) = mailroom.bounces.parse(_report(subject, text))
    assert (record.recipient, record.reason) == ("bob@example.org", "userunknown")


def _opensmtpd_report(after: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.test\r\nSubject: Delivery status notification: error\r\n"
        "\r\n    Hi!\n\n    This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail.\n\n"
        "    An error has occurred while attempting to deliver a message for\n"
        "    the following list of recipients:\n\n"
        "bob@example.org: 550 5.1.1 <bob@example.org>... User unknown\n"
        "    Below is a copy of the original message:\n\nSubject: hello\n" + after
    ).encode()


def _html_report(after: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.test\r\nSubject: Undeliverable: hello\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
        "<p>Delivery has failed to these recipients or groups:</p>"
        "<p>bob@example.org<br>The e-mail address you entered couldn't be found.</p>"
        "<p>Diagnostic information for administrators:</p><p>Generating server: mx.example.test"
        "</p><p>bob@example.org<br>Remote Server returned '550 5.1.1 User unknown'</p>" + after
    ).encode()


# Two more of the same shape: OpenSMTPD's end of list was looked for with "^\s*" over the
# returned message's blank lines (120,000 of them: minutes), and an HTML report's tags were
# taken out with "<[^>]+>" from each "<" of a run (400,000: minutes). The same hang guard.
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("report", "run"), [(_opensmtpd_report, "  \n" * 120_000), (_html_report, "<" * 400_000)]
)
def test_long_runs_after_a_report_are_read_in_linear_time(
    report: Callable[[str], bytes], run: str
) -> None:
    (record,) = mailroom.bounces.parse(report(run))
    assert (record.recipient, record.reason) == ("bob@example.org", "userunknown")


# -- sources ------------------------------------------------------------------------------------


def _all_reports() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*.eml"))


def test_an_mbox_is_read_message_by_message(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    files = _all_reports()[:6]
    for path in files:
        box.add(path.read_bytes())
    box.flush()
    records = list(mailroom.bounces.read(tmp_path / "bounces.mbox"))
    direct = [r for p in files for r in mailroom.bounces.read(p)]
    assert [(r.recipient, r.reason) for r in records] == [(r.recipient, r.reason) for r in direct]
    assert {r.source.rsplit("#", 1)[1] for r in records} == {str(i) for i in range(1, 7)}


class _GeneratedMbox(io.RawIOBase):
    """An mbox made as it is read, never held whole: ``count`` reports, each returning a
    message whose body is ``body_size`` bytes (one line of ``line_size``, then short lines)."""

    def __init__(self, count: int, body_size: int, line_size: int) -> None:
        self._chunks = self._generate(count, body_size, line_size)
        self._pending = b""

    @staticmethod
    def _generate(count: int, body_size: int, line_size: int) -> Iterator[bytes]:
        for number in range(count):
            yield b"From MAILER-DAEMON Mon Dec  7 00:00:00 2026\n"
            report = _report("Undelivered Mail Returned to Sender", "User unknown")
            yield report.replace(b"bob@example.org", f"bob{number}@example.org".encode())
            yield b"Subject: the returned message\n\n" + b"x" * line_size + b"\n"
            line = b"y" * 999 + b"\n"
            for _ in range((body_size - line_size) // len(line)):
                yield line
            yield b"\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def test_an_mbox_is_read_as_a_stream() -> None:
    """64 MB of mbox (32 reports of 2 MB, each with a 1.5 MB line) is read in far less
    memory than its size: the first megabyte of each message, never the mailbox whole (the
    reader read the whole mbox into memory, and split it into lines, before)."""
    mbox = io.BufferedReader(_GeneratedMbox(32, 2 * 1024 * 1024, 1536 * 1024))
    tracemalloc.start()
    try:
        records = [(r.recipient, r.reason) for r in mailroom.bounces.read(mbox)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert records == [(f"bob{n}@example.org", "userunknown") for n in range(32)]
    assert peak < 32 * 1024 * 1024, peak  # reading one message takes about 15 MB


def test_a_maildir_is_read_each_message_once(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir")
    files = _all_reports()[:5]
    for path in files:
        box.add(path.read_bytes())
    # One message already seen (moved to cur/), one still being written (tmp/: not read).
    key = next(iter(box.keys()))
    message = box[key]
    message.set_subdir("cur")
    box[key] = message
    (tmp_path / "Maildir" / "tmp" / "half-written").write_bytes(files[0].read_bytes())
    records = list(mailroom.bounces.read(tmp_path / "Maildir"))
    direct = [r for p in files for r in mailroom.bounces.read(p)]
    assert sorted((r.recipient, r.message_id) for r in records) == sorted(
        (r.recipient, r.message_id) for r in direct
    )


def test_a_directory_is_read_file_by_file() -> None:
    records = list(mailroom.bounces.read(CORPUS))
    assert len(records) == sum(len(v) for v in EXPECTED.values())


# -- the command line ---------------------------------------------------------------------------


def mailroom_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_command_writes_json_lines() -> None:
    result = mailroom_cli("bounces", str(CORPUS / "postfix"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == sum(len(v) for k, v in EXPECTED.items() if k.startswith("postfix/"))
    assert all(tuple(r) == FIELDS for r in records)


def test_command_writes_csv_and_reads_stdin() -> None:
    raw = (CORPUS / "synthetic" / "qmail-text.eml").read_bytes()
    result = mailroom_cli("bounces", "--csv", "-", stdin=raw)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.decode().splitlines()
    assert header.split(",") == list(FIELDS)
    assert len(rows) == 2 and rows[0].startswith("bounce,nobody@example.org,userunknown,")


def test_command_filters_kinds() -> None:
    result = mailroom_cli("bounces", "--kind", "feedback", "--kind", "autoreply", str(CORPUS))
    kinds = sorted(json.loads(line)["kind"] for line in result.stdout.decode().splitlines())
    assert kinds == ["autoreply", "feedback"]
    hard = mailroom_cli("bounces", "--hard", str(CORPUS / "mailroom"))
    assert {json.loads(line)["bounce_type"] for line in hard.stdout.decode().splitlines()} == {
        "hard"
    }


def test_command_says_when_the_source_is_missing(tmp_path: Path) -> None:
    result = mailroom_cli("bounces", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert b"no such file" in result.stderr


def _nested(levels: int) -> bytes:
    """A report whose text part is ``levels`` multiparts deep."""
    head = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n, n + 1)
        for n in range(levels)
    )
    tail = b"".join(b"--b%d--\r\n" % n for n in reversed(range(levels + 1)))
    return (
        b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b0\r\n\r\n"
        + head
        + b"--b%d\r\nContent-Type: text/plain\r\n\r\n550 5.1.1 user unknown\r\n" % levels
        + tail
    )


def test_a_message_nested_past_the_limit_is_not_parsed() -> None:
    """3,000 nested multiparts made the standard library's parser raise RecursionError: a
    traceback from `mailroom bounces`, a 500 from the web's bounce panel. The message is
    measured first (mailroom.mimeshape, no recursion) and not parsed past 50 levels."""
    with pytest.raises(mailroom.bounces.MessageTooComplex, match="more than 50 levels deep"):
        mailroom.bounces.parse(_nested(3000))
    mailroom.bounces.parse(_nested(40))  # within the limit: read (no records: no fields)
    many = _report("Undelivered", "x").replace(b"--B--", b"--B\r\n\r\n" * 1500 + b"--B--")
    with pytest.raises(mailroom.bounces.MessageTooComplex, match="more than 1000 parts"):
        mailroom.bounces.parse(many)


def test_a_mailbox_with_a_message_too_complex_is_read_past_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    box.add(_nested(3000))
    box.add(_report("Undelivered Mail Returned to Sender", "User unknown"))
    box.flush()
    records = list(mailroom.bounces.read(tmp_path / "bounces.mbox"))
    assert [(r.recipient, r.reason) for r in records] == [("bob@example.org", "userunknown")]
    assert "bounces.mbox#1: not read: its parts nest more than 50 levels deep" in caplog.text
    result = mailroom_cli("bounces", str(tmp_path / "bounces.mbox"))
    assert result.returncode == 0, result.stderr
    assert b"not read: its parts nest more than 50 levels deep" in result.stderr
    assert json.loads(result.stdout)["recipient"] == "bob@example.org"


@pytest.mark.parametrize("field", ["Final-Recipient", "Original-Recipient"])
def test_nested_comments_in_an_address_are_read_without_recursion(field: str) -> None:
    """An address of a few thousand "(" made email.utils recurse until RecursionError."""
    nest = "(" * 5000
    raw = _report("Undelivered", "User unknown")
    if field == "Final-Recipient":
        raw = raw.replace(b"rfc822; bob@", f"rfc822; {nest} bob@".encode())
    else:
        raw = raw.replace(b"Action:", f"Original-Recipient: rfc822; {nest}\r\nAction:".encode())
    (record,) = mailroom.bounces.parse(raw)
    assert (record.recipient, record.reason) == ("bob@example.org", "userunknown")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"notificationType": ' + b"[" * 100_000,
        b'{"Type": "Notification", "Message": "' + b"[" * 100_000 + b'"}',
        b"Subject: SES\r\n\r\n" + b'{"notificationType": ' + b"[" * 100_000,
    ],
    ids=["notification", "in an SNS envelope", "in a mail"],
)
def test_json_nested_too_deep_is_no_notification(raw: bytes) -> None:
    """The JSON decoder raises RecursionError on arrays nested 100,000 deep."""
    assert mailroom.bounces.parse(raw) == []
