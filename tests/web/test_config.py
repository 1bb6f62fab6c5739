"""The web's settings: flags, the TOML file, and `mailroom serve` printing where the UI is."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mailroom.cli import _serve_overrides, build_parser
from mailroom.config import Config, ConfigError, Listener, load_config
from tests.live import wait_for


def test_defaults() -> None:
    config = Config()
    assert config.web == Listener("127.0.0.1", 8025)
    assert config.web_auth is None and config.release_smtp is None


@pytest.mark.parametrize(
    ("flags", "web", "auth", "release"),
    [
        ([], Listener("127.0.0.1", 8025), None, None),
        (["--web", "off"], None, None, None),
        (["--web", "OFF"], None, None, None),
        (["--web", "0.0.0.0:9025", "--web-auth", "me:pw:with:colons"], Listener("0.0.0.0", 9025), "me:pw:with:colons", None),
        (["--web", "[::1]:8026", "--release-smtp", "smtp.example.test:587"], Listener("::1", 8026), None, Listener("smtp.example.test", 587)),
    ],
)  # fmt: skip
def test_flags(flags: list[str], web: Any, auth: Any, release: Any) -> None:
    args = build_parser().parse_args(["serve", *flags])
    config = load_config(None, _serve_overrides(args))
    assert (config.web, config.web_auth, config.release_smtp) == (web, auth, release)


@pytest.mark.parametrize("auth", ["nopassword", ":pw", "user:", ""])
def test_bad_web_auth(auth: str) -> None:
    with pytest.raises(ConfigError, match="web_auth is USER:PASSWORD"):
        load_config(None, {"web_auth": auth})


def test_bad_web_address() -> None:
    with pytest.raises(ConfigError, match="not HOST:PORT"):
        load_config(None, {"web": "localhost"})


def test_toml(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.toml"
    path.write_text('web = "off"\nrelease_smtp = "127.0.0.1:2525"\n')
    config = load_config(path)
    assert config.web is None and config.release_smtp == Listener("127.0.0.1", 2525)
    path.write_text('web = "127.0.0.1:18025"\nweb_auth = "a:b"\n')
    config = load_config(path)
    assert config.web == Listener("127.0.0.1", 18025) and config.web_auth == "a:b"


def test_web_allowed_hosts(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["serve", "--web-allowed-host", "Mail.Internal.", "--web-allowed-host", "*"]
    )
    assert load_config(None, _serve_overrides(args)).web_allowed_hosts == ("mail.internal", "*")
    assert Config().web_allowed_hosts == ()
    path = tmp_path / "mailroom.toml"
    path.write_text('web_allowed_hosts = "a.test"\n')
    assert load_config(path).web_allowed_hosts == ("a.test",)
    path.write_text('web_allowed_hosts = ["a.test", "b.test"]\n')
    assert load_config(path).web_allowed_hosts == ("a.test", "b.test")
    for bad in ("http://a.test/", "a.test:8025", ""):
        with pytest.raises(ConfigError, match="not a host name"):
            load_config(None, {"web_allowed_hosts": [bad]})


def test_serve_prints_where_the_ui_is(serve_process: Any) -> None:
    process = serve_process("--web", "127.0.0.1:0")
    match = wait_for(
        lambda: re.search(r"mailroom: web UI and API on (http://\S+/)", process.stderr)
    )
    with urllib.request.urlopen(match[1] + "livez", timeout=10) as response:
        assert response.read() == b"ok"
    with urllib.request.urlopen(match[1], timeout=10) as response:
        assert b"<title>mailroom</title>" in response.read()
    assert process.terminate() == 0


def test_web_auth_from_the_environment_and_a_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MAILROOM_WEB_AUTH", raising=False)
    secret = tmp_path / "web-auth"
    secret.write_text("file:pw\n")
    assert load_config(None, {"web_auth_file": str(secret)}).web_auth == "file:pw"
    path = tmp_path / "mailroom.toml"
    path.write_text(f'web_auth_file = "{secret}"\n')
    assert load_config(path).web_auth == "file:pw"
    monkeypatch.setenv("MAILROOM_WEB_AUTH", "env:pw")
    assert load_config(path).web_auth == "env:pw"  # the environment wins over the file
    assert load_config(path, {"web_auth": "flag:pw"}).web_auth == "flag:pw"  # a flag over both
    monkeypatch.delenv("MAILROOM_WEB_AUTH")
    with pytest.raises(ConfigError, match="web_auth_file"):
        load_config(None, {"web_auth_file": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="USER:PASSWORD on its first line"):
        load_config(None, {"web_auth_file": str(tmp_path / "empty")})


def test_web_users(tmp_path: Path) -> None:
    from mailroom.policy.credentials import password_line

    users = tmp_path / "users"
    users.write_text(password_line("admin", "pw") + "\n")
    assert load_config(None, {"web_users": str(users)}).web_credentials
    with pytest.raises(ConfigError, match="give one way"):
        load_config(None, {"web_users": str(users), "web_auth": "a:b"})
    users.write_text("admin:not-a-hash\n")
    with pytest.raises(ConfigError, match="web_users"):
        load_config(None, {"web_users": str(users)})
