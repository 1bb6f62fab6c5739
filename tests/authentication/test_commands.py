"""``mailroom dkim keygen``, ``mailroom dns-records`` and the [authentication] checks of
``mailroom check-config``, run as commands."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

from mailroom.authentication.keys import load_keys

CONFIG = """
hostname = "mx.example.test"
data = "{data}"
domains = ["example.test", "example.org"]
"""


def mailroom(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_keygen_makes_both_keys_privately_and_prints_their_records(tmp_path):
    (tmp_path / "mailroom.toml").write_text(CONFIG.format(data=tmp_path / "data"))
    result = mailroom("dkim", "keygen", "example.test", "--selector", "s1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 's1-rsa._domainkey.example.test. IN TXT "v=DKIM1; k=rsa; p=' in result.stdout
    assert 's1-ed25519._domainkey.example.test. IN TXT "v=DKIM1; k=ed25519; p=' in result.stdout
    folder = tmp_path / "data" / "dkim" / "example.test"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder.parent).stat().st_mode) == 0o700
    for name in ("s1-rsa.key", "s1-ed25519.key"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    keys = load_keys(tmp_path / "data")["example.test"]
    assert [(k.selector, k.algorithm) for k in keys] == [
        ("s1-rsa", "rsa"),
        ("s1-ed25519", "ed25519"),
    ]
    # A record longer than 255 octets is printed as several strings.
    assert '" "' in next(line for line in result.stdout.splitlines() if "k=rsa" in line)
    again = mailroom(
        "dkim", "keygen", "example.test", "--selector", "s1-rsa", "--algorithm", "rsa", cwd=tmp_path
    )
    assert again.returncode == 2 and "exists" in again.stderr


def test_dns_records_names_everything_a_domain_publishes(tmp_path):
    (tmp_path / "mailroom.toml").write_text(CONFIG.format(data=tmp_path / "data"))
    mailroom(
        "dkim", "keygen", "example.test", "--algorithm", "ed25519", "--selector", "ed", cwd=tmp_path
    )
    result = mailroom("dns-records", "--address", "192.0.2.25", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "example.test.                            IN MX    10 mx.example.test.",
        '"v=spf1 ip4:192.0.2.25 mx -all"',
        "ed._domainkey.example.test.",
        '_dmarc.example.test.                     IN TXT   "v=DMARC1; p=none; rua=mailto:postmaster@example.test"',
        "move to p=quarantine, then",
        "_mta-sts.example.test.",
        '"v=TLSRPTv1; rua=mailto:postmaster@example.test"',
        "DKIM: no key yet. Make one: mailroom dkim keygen example.org",
        "25.2.0.192.in-addr.arpa.                 IN PTR   mx.example.test.",
    ):
        assert expected in out, expected
    assert mailroom("dns-records", "--address", "nonsense", cwd=tmp_path).returncode == 2


def test_check_config_reports_the_authentication_settings_and_their_errors(tmp_path):
    config = tmp_path / "mailroom.toml"
    config.write_text(
        CONFIG.format(data=tmp_path / "data") + '\n[authentication]\ndmarc = "record"\n'
    )
    result = mailroom("check-config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dmarc record" in result.stdout
    assert "DKIM example.test: no key" in result.stdout
    for bad, message in (
        ('dmarc = "maybe"', "dmarc is one of off, record, enforce"),
        ('spf_timeout = "soon"', "spf_timeout"),
        ('quarantine_folder = "Junk"', "Maildir++ folder"),
        ("surprise = 1", "unknown setting 'surprise'"),
        ('dkim = "off"\ndkim_required_domains = ["example.test"]', "needs dkim"),
        ('srs_domain = "elsewhere.test"', "not a local domain"),
    ):
        config.write_text(CONFIG.format(data=tmp_path / "data") + f"\n[authentication]\n{bad}\n")
        result = mailroom("check-config", str(config), cwd=tmp_path)
        assert result.returncode == 2, bad
        assert message in result.stderr, result.stderr
        assert re.search(r"mailroom\.toml:[78]: authentication", result.stderr), result.stderr


def test_every_authentication_reply_is_explained(tmp_path):
    from mailroom.codes.catalogue import CATALOGUE

    names = [
        "SPF_FAIL", "SPF_TEMPERROR", "SPF_PERMERROR", "IPREV_FAILED", "IPREV_TEMPERROR",
        "DKIM_NO_PASSING_SIGNATURE", "DKIM_NO_ACCEPTABLE_SIGNATURE", "DKIM_NO_AUTHOR_SIGNATURE",
        "DKIM_TEMPERROR", "DMARC_REJECTED", "DMARC_TEMPERROR", "ARC_VALIDATION_FAILED",
    ]  # fmt: skip
    for name in names:
        template = CATALOGUE[name]
        result = mailroom("explain", f"{template.code} {template.status} x", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"mailroom sends this as: {name}" in result.stdout or name in result.stdout, (
            name,
            result.stdout,
        )
    result = mailroom("explain", "550 5.7.26 Message rejected", cwd=tmp_path)
    assert "Multiple authentication checks failed" in result.stdout
    assert "authfailure" in result.stdout
