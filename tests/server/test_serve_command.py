"""``mailroom serve`` as a command: a TOML config file with flags over it, and the errors it
reports before serving (exit status 2 for a bad setting, 1 when it cannot listen)."""

from __future__ import annotations

import smtplib
import subprocess
from pathlib import Path

import pytest

from tests.live import LiveServer, ServeProcess, mailroom_command, tls_context


def test_config_file_and_flags(tmp_path: Path, serve_process) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text(
        f'hostname = "from-the-file.test"\n'
        f'data = "{tmp_path / "file-data"}"\n'
        f'smtp = ["127.0.0.1:0"]\n'
        f'max_message_size = "2K"\n'
        f'max_header_section = "1K"\n'
        f"max_recipients = 2\n"
        f'tls = "self-signed"\n'
        f'auth = "accept-any"\n'
        f'web = "off"\n'
    )
    # Flags win over the file.
    process: ServeProcess = serve_process(
        "--config", str(config), "--max-recipients", "3", bare=True, cwd=tmp_path
    )
    data = tmp_path / "file-data"
    with smtplib.SMTP(*process.smtp) as client:
        _, text = client.ehlo()
        assert text.startswith(b"from-the-file.test Hello")
        assert client.esmtp_features["size"] == "2048"
        client.starttls(context=tls_context(data))
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"]
        client.mail("alice@example.test")
        assert [client.rcpt(f"r{n}@example.test")[0] for n in range(4)] == [250, 250, 250, 452]
        code, text = client.data(b"X: y\r\n" * 200 + b"\r\nhi\r\n")  # 1,200 octets of header
        assert (code, text[:5]) == (552, b"5.3.4") and text.endswith(b"of 1024 octets")
    assert process.terminate() == 0
    assert (data / "tls" / "self-signed.pem").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-message-size", "lots"], "not a size"),
        (["--max-header-section", "lots"], "not a size"),
        (["--smtp", "nowhere"], "not HOST:PORT"),
        (["--require-tls"], "require_tls needs TLS"),
        (["--require-auth"], "require_auth needs"),
        (["--smtps", "127.0.0.1:0"], "--smtps needs TLS"),
        (["--max-recipients", "0"], "max_recipients must be at least 1"),
        (["--config", "/nonexistent/mailroom.toml"], "/nonexistent/mailroom.toml"),
    ],
)
def test_bad_settings_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        mailroom_command("serve", "--data", str(tmp_path / "data"), *args),
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    stderr = done.stderr.decode()
    assert stderr.startswith("mailroom serve: ") and message in stderr, stderr
    assert "Traceback" not in stderr


def test_unknown_setting_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("max_mesage_size = 10\n")
    done = subprocess.run(
        mailroom_command("serve", "--config", str(config)),
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "unknown setting 'max_mesage_size'" in done.stderr.decode()


def test_bad_password_file_exits_2(tmp_path: Path) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text("alice:plaintext-password\n")
    done = subprocess.run(
        mailroom_command(
            "serve",
            "--data",
            str(tmp_path / "data"),
            "--smtp",
            "127.0.0.1:0",
            "--auth",
            str(passwords),
            "--web",
            "off",
        ),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    stderr = done.stderr.decode()
    assert f"{passwords}:1" in stderr and "Traceback" not in stderr


def test_port_in_use_exits_1(tmp_path: Path, serve) -> None:
    live: LiveServer = serve()
    host, port = live.smtp
    done = subprocess.run(
        mailroom_command(
            "serve",
            "--data",
            str(tmp_path / "other"),
            "--smtp",
            f"{host}:{port}",
            "--web",
            "off",
        ),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    stderr = done.stderr.decode()
    assert "mailroom serve: " in stderr and "in use" in stderr and "Traceback" not in stderr
    # The running server is unharmed.
    with smtplib.SMTP(host, port) as client:
        assert client.noop()[0] == 250


@pytest.mark.parametrize("broken", ["missing", "not PEM"])
def test_unusable_certificate_is_named(tmp_path: Path, broken: str) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if broken == "not PEM":
        cert.write_text("not a certificate\n")
        key.write_text("not a key\n")
    done = subprocess.run(
        mailroom_command(
            "serve",
            "--data",
            str(tmp_path / "data"),
            "--smtp",
            "127.0.0.1:0",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--web",
            "off",
        ),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    stderr = done.stderr.decode()
    assert f"mailroom serve: cannot load TLS certificate {cert} and key {key}: " in stderr
    assert "Traceback" not in stderr
