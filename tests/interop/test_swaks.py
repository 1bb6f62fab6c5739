"""swaks (the Swiss Army Knife for SMTP, a Debian package) against mailroom on loopback: plain,
PIPELINING, STARTTLS with AUTH, implicit TLS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.interop.messages import DOT_BODY, RECIPIENT, SENDER, message
from tests.live import LiveServer, assert_listed, assert_stored, queue_id_of, run_cli

SWAKS = shutil.which("swaks")
pytestmark = pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (apt install swaks)")


def swaks(
    address: tuple[str, int],
    *args: str,
    data: bytes,
    tmp_path: Path,
    check: bool = True,
) -> str:
    """Run swaks with ``data`` as the whole message; its transcript."""
    path = tmp_path / "swaks-data.eml"
    path.write_bytes(data)
    host, port = address
    assert SWAKS is not None
    done = subprocess.run(
        [
            SWAKS,
            "--server",
            host,
            "--port",
            str(port),
            "--helo",
            "swaks.example.test",
            "--from",
            SENDER,
            "--to",
            RECIPIENT,
            "--data",
            f"@{path}",
            "--timeout",
            "20",
            *args,
        ],
        capture_output=True,
        timeout=60,
    )
    transcript = done.stdout.decode("utf-8", errors="replace")
    if check:
        assert done.returncode == 0, transcript + done.stderr.decode(errors="replace")
    return transcript


# swaks sends the data, then CRLF . CRLF on a line of its own: a message that does not end
# in CRLF is stored with one.
def swaks_message(subject: str, body: bytes = b"Hello from swaks.") -> bytes:
    return message(subject, body)


def test_plain(serve, tmp_path: Path) -> None:
    live: LiveServer = serve()
    data = swaks_message("swaks plain", DOT_BODY + b"no newline at the end")
    transcript = swaks(live.smtp, data=data, tmp_path=tmp_path)
    assert " -> EHLO swaks.example.test" in transcript
    queue_id = queue_id_of(transcript)
    raw = assert_stored(live.data, queue_id, data + b"\r\n", sender=SENDER, recipients=[RECIPIENT])
    assert b"Received: from swaks.example.test ([127.0.0.1])" in raw
    assert_listed(live.data, queue_id, raw, subject="swaks plain", helo="swaks.example.test")


def test_pipelining(serve, tmp_path: Path) -> None:
    live: LiveServer = serve()
    data = swaks_message("swaks pipelining")
    transcript = swaks(
        live.smtp,
        "--pipeline",
        "--to",
        f"{RECIPIENT},carol@example.test",
        data=data,
        tmp_path=tmp_path,
    )
    # The whole envelope went in one write, and came back as one batch of replies.
    commands = transcript.index(" -> MAIL FROM:")
    assert transcript.index(" -> RCPT TO:<carol@example.test>") < transcript.index("<-  250 2.1.0")
    assert transcript.index(" -> DATA") < transcript.index("<-  250 2.1.0") > commands
    queue_id = queue_id_of(transcript)
    assert_stored(
        live.data,
        queue_id,
        data + b"\r\n",
        sender=SENDER,
        recipients=[RECIPIENT, "carol@example.test"],
    )


def test_starttls_with_auth(serve, tmp_path: Path) -> None:
    live: LiveServer = serve(tls="self-signed", auth="accept-any")
    data = swaks_message("swaks tls auth")
    ca = str(live.data / "tls" / "self-signed.pem")
    for mechanism in ("PLAIN", "LOGIN"):
        transcript = swaks(
            live.smtp,
            "-tls",
            "--tls-verify",
            "--tls-ca-path",
            ca,
            "-a",
            mechanism,
            "-au",
            f"user-{mechanism.lower()}",
            "-ap",
            "any password",
            data=data,
            tmp_path=tmp_path,
        )
        assert "<~  235 2.7.0 Authentication successful" in transcript
        queue_id = queue_id_of(transcript)
        raw = assert_stored(
            live.data, queue_id, data + b"\r\n", sender=SENDER, recipients=[RECIPIENT]
        )
        assert f"(Authenticated sender: user-{mechanism.lower()})".encode() in raw
        assert f" with ESMTPSA id {queue_id}".encode() in raw
        assert_listed(live.data, queue_id, raw, auth_user=f"user-{mechanism.lower()}", tls=True)


def test_password_file_and_a_wrong_password(serve, tmp_path: Path) -> None:
    passwords = tmp_path / "passwords"
    run_cli("passwd", "erin", "--file", str(passwords), "--password-stdin", stdin=b"s3cret\n")
    live: LiveServer = serve(
        tls="self-signed", auth=str(passwords), require_auth=True, auth_failure_delay=0
    )
    data = swaks_message("swaks password file")
    common = ["-tls", "-a", "LOGIN", "-au", "erin"]
    transcript = swaks(
        live.smtp, *common, "-ap", "wrong", data=data, tmp_path=tmp_path, check=False
    )
    assert "<~* 535 5.7.8 Authentication credentials invalid" in transcript
    assert not (live.data / "mail" / "catchall" / "new").exists() or not any(
        (live.data / "mail" / "catchall" / "new").iterdir()
    )
    transcript = swaks(live.smtp, *common, "-ap", "s3cret", data=data, tmp_path=tmp_path)
    queue_id = queue_id_of(transcript)
    raw = assert_stored(live.data, queue_id, data + b"\r\n", sender=SENDER, recipients=[RECIPIENT])
    assert b"(Authenticated sender: erin)" in raw


def test_implicit_tls(serve, tmp_path: Path) -> None:
    live: LiveServer = serve(smtps="127.0.0.1:0")
    data = swaks_message("swaks smtps")
    transcript = swaks(live.smtps, "--tls-on-connect", data=data, tmp_path=tmp_path)
    queue_id = queue_id_of(transcript)
    raw = assert_stored(live.data, queue_id, data + b"\r\n", sender=SENDER, recipients=[RECIPIENT])
    assert f" with ESMTPS id {queue_id}".encode() in raw
