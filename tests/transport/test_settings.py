"""The transport security settings of mailroom.toml: read as documented, every mistake named
with its line (``mailroom check-config``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.config import ConfigError, load_config
from mailroom.queue.tls_settings import TLSPolicySettings

BASE = 'hostname = "mx.example.test"\ndomains = ["example.test"]\n\n'


def test_outbound_tls_is_read_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.toml"
    path.write_text(
        BASE
        + '[outbound_tls]\ndefault = "verify"\nca_file = "/etc/ca.pem"\nmta_sts_timeout = "10s"\n'
        + "mta_sts_max_size = 1024\ntrust_remote_dnssec = true\nreports = false\n\n"
        + '[outbound_tls.policy]\n"Partner.Example." = "DANE"\n'
    )
    config = load_config(path)
    assert config.mail is not None
    tls = config.mail.queue.tls
    assert (tls.default, tls.ca_file, tls.mta_sts_timeout, tls.mta_sts_max_size) == (
        "verify",
        "/etc/ca.pem",
        10.0,
        1024,
    )
    assert tls.trust_remote_dnssec and not tls.reports
    assert tls.level_for("partner.example") == "dane"
    assert tls.level_for("other.example") == "verify"
    assert TLSPolicySettings().default == "auto" and TLSPolicySettings().reports


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('[outbound_tls]\ndefault = "strict"\n', r":4: \[outbound_tls\]: default is 'strict'"),
        ("[outbound_tls]\nbogus = 1\n", r":4: \[outbound_tls\]: unknown setting 'bogus'"),
        ('[outbound_tls]\nreports = "yes"\n', r":4: \[outbound_tls\]: reports is true or false"),
        ("[outbound_tls]\nmta_sts_max_size = -1\n", r"mta_sts_max_size is a number"),
        ('[outbound_tls.policy]\n"a.example" = "sometimes"\n', r"policy 'a.example' is"),
        ('[mta_sts]\nmode = "strict"\n', r":4: \[mta_sts\]: mode is enforce"),
        ('[mta_sts]\nmax_age = "2y"\n', r"\[mta_sts\]: "),
        ('[tls_reporting]\nrua = ["ftp://x"]\n', r":4: \[tls_reporting\]: rua 'ftp://x'"),
    ],
)
def test_mistakes_are_named_with_their_line(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "mailroom.toml"
    path.write_text(BASE + section)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_listener_settings(tmp_path: Path) -> None:
    config = load_config(None, {"data": tmp_path})
    assert (config.tls_min_version, config.tls_reload_interval, config.requiretls) == (
        "1.2",
        60.0,
        True,
    )
    with pytest.raises(ConfigError, match=r"tls_min_version is '1\.2' or '1\.3'"):
        load_config(None, {"data": tmp_path, "tls_min_version": "1.1"})
    with pytest.raises(ConfigError, match="tls_reload_interval must not be negative"):
        load_config(None, {"data": tmp_path, "tls_reload_interval": -1})
