"""Settings are checked when they are made, so a session never fails on one."""

from __future__ import annotations

import pytest

from mailroom.protocol import SessionSettings


@pytest.mark.parametrize(
    "changes",
    [
        {"auth_mechanisms": ("GSSAPI",)},
        {"auth_mechanisms": ("PLAIN", "plain")},
        {"max_command_line": 0},
        {"max_text_line": 2},
        {"max_auth_line": -1},
        {"max_recipients": 0},
        {"max_bad_commands": 0},
        {"max_junk_commands": -1},
        {"max_refused_recipients": -1},
        {"max_message_size": -1},
    ],
)
def test_bad_settings_are_refused(changes):
    with pytest.raises(ValueError):
        SessionSettings(**changes)


def test_defaults():
    s = SessionSettings()
    assert (s.max_command_line, s.max_text_line, s.max_auth_line) == (512, 1000, 12288)
    assert (s.max_recipients, s.max_bad_commands, s.max_message_size) == (100, 20, 50 * 1024 * 1024)
    assert (s.max_junk_commands, s.max_refused_recipients) == (100, 1000)
    assert (s.bare_line_endings, s.long_lines) == ("reject", "reject")
    assert not (s.tls_available or s.require_tls or s.auth_mechanisms or s.require_auth)
    assert len({s.nonce() for _ in range(3)}) == 3
