"""A real MTA (a private Postfix instance) sends forged mail as a DMARC p=reject domain to a
running mailroom, and gets 550 5.7.26: Postfix's own log says so, and bounces the message."""

from __future__ import annotations

import time

from tests.authentication.peers import Postfix
from tests.authentication.servers import message


def test_postfix_sending_forged_mail_gets_550_5_7_26(make_server):
    server = make_server()
    _, port = server.address("mx")
    postfix = Postfix(port)
    try:
        postfix.sendmail("ceo@sender.test", "bob@example.test", message("ceo@sender.test"))
        deadline = time.monotonic() + 60
        while "status=bounced" not in postfix.log and time.monotonic() < deadline:
            time.sleep(0.2)
        log = postfix.log
    finally:
        postfix.close()
    assert "status=bounced" in log, log
    assert "said: 550 5.7.26 Message rejected: sender.test asks receivers to reject" in log
    assert "(in reply to end of DATA command)" in log
    assert server.messages == []
