"""mailroom's DKIM signatures verify in rspamd (its DKIM module, through the test's DNS)."""

from __future__ import annotations

import pytest

from mailroom.authentication.signing import sign
from tests.authentication.peers import Rspamd
from tests.authentication.test_opendkim import MESSAGE


@pytest.fixture(scope="module")
def rspamd(unbound):
    scanner = Rspamd(unbound.port)
    yield scanner
    scanner.close()


def test_rspamd_verifies_both_of_mailrooms_signatures(rspamd, sender_keys):
    symbols = rspamd.check(sign(MESSAGE, sender_keys) + MESSAGE)
    assert sorted(symbols["R_DKIM_ALLOW"]) == ["sender.test:s=ed1", "sender.test:s=rsa1"]
    assert "R_DKIM_REJECT" not in symbols


def test_rspamd_rejects_what_mailroom_signed_and_someone_changed(rspamd, sender_keys):
    changed = (sign(MESSAGE, sender_keys) + MESSAGE).replace(b"Hello", b"Jello")
    symbols = rspamd.check(changed)
    assert "R_DKIM_ALLOW" not in symbols
    assert sorted(symbols["R_DKIM_REJECT"]) == ["sender.test:s=ed1", "sender.test:s=rsa1"]
