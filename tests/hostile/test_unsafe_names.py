"""Names in mailroom.toml that would put a Maildir outside the data directory: a user
``../../x/escape@example.test``, a domain ``../x``, a local part holding ``/``. ``mailroom
check-config`` and ``mailroom serve`` refuse them at load, naming the line; before, the user
was accepted and mail to the postmaster (who, with no alias, is the first user) was written to
``<data>/x/escape``."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from mailroom.config import ConfigError, load_config
from tests.delivery.dnsserver import dns_that_cannot_answer

HEAD = """hostname = "mx.example.test"
domains = {domains}
dns_servers = ["{dns}"]

[[listeners]]
address = "127.0.0.1:0"
role = "mx"

[users."alice@example.test"]
"""

CASES = [
    # (domains, extra lines, the line of the error, what the error says)
    ('["example.test"]', '[users."../../x/escape@example.test"]\n', 10, "../../x/escape"),
    ('["example.test"]', '[users."x/y@example.test"]\n', 10, "x/y@example.test"),
    ('["example.test"]', '[users."\\"../../q\\"@example.test"]\n', 10, "../../q"),
    ('["example.test", "../x"]', "", 2, "../x"),
    ('["example.test", "a/b"]', "", 2, "a/b"),
    ('["example.test", "[127.0.0.1]"]', "", 2, "[127.0.0.1]"),
    ('["example.test"]', '[aliases]\n"../x@example.test" = "alice@example.test"\n', 11, "../x"),
    (
        '["example.test"]',
        '[aliases]\n"team@example.test" = ["alice@example.test", "../../y@example.test"]\n',
        11,
        "../../y",
    ),
]


def _config(tmp_path: Path, domains: str, extra: str) -> Path:
    path = tmp_path / "mailroom.toml"
    path.write_text(HEAD.format(dns=dns_that_cannot_answer(), domains=domains) + extra)
    return path


@pytest.mark.parametrize(("domains", "extra", "line", "name"), CASES)
def test_check_config_refuses_unsafe_names(
    tmp_path: Path, domains: str, extra: str, line: int, name: str
) -> None:
    config = _config(tmp_path, domains, extra)
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout
    assert f"{config}:{line}:" in result.stderr, result.stderr
    assert name in result.stderr
    with pytest.raises(ConfigError, match=f":{line}:"):
        load_config(config, {"data": str(tmp_path / "data")})


def test_no_maildir_outside_the_data_directory(tmp_path: Path) -> None:
    """The attack itself: the unsafe user is the first, so with no postmaster alias the
    postmaster's mail goes to it. The server refuses to start; nothing is written outside."""
    from mailroom.testing import SMTPTestServer

    config = _config(tmp_path, '["example.test"]', "")
    config.write_text(
        config.read_text().replace(
            '[users."alice@example.test"]', '[users."../../x/escape@example.test"]'
        )
    )
    data = tmp_path / "data"
    try:
        server = SMTPTestServer(data, config_file=config).start()
    except ConfigError as exc:
        assert "../../x/escape" in str(exc)
    else:  # the server before this fix: deliver and look where the mail went
        try:
            client = smtplib.SMTP(*server.address("mx"), timeout=10)
            client.sendmail("a@remote.test", ["postmaster"], b"Subject: x\r\n\r\nx\r\n")
            client.quit()
        finally:
            server.stop()
    assert not (tmp_path / "x").exists()
    assert not (data / "x").exists()
