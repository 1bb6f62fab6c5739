"""``mailroom queue list`` and ``show`` on a fleet's node: they read the queue in PostgreSQL
(every node's entries, with the node holding each), not the node's empty queue directory;
``retry`` and ``delete`` say clearly that they do not act on it yet."""

from __future__ import annotations

import json
import smtplib
import subprocess
from pathlib import Path

from tests.fleet import fleet
from tests.live import mailroom_command, queue_id_of, run_cli, wait_for

__all__ = ["fleet"]

NODE_CONFIG = """
store = "{url}"
hostname = "mx.test"
domains = ["example.test"]
dns_servers = ["127.0.0.1:1"]

[policy]
check_null_mx = false
check_sender_domain = false
relay_networks = ["127.0.0.0/8"]

[queue]
retry_schedule = ["1h"]

[routes]
"far.test" = "127.0.0.1:1"

[authentication]
spf = "off"
dkim = "off"
dmarc = "off"
iprev = "off"
arc = "off"
"""


def _send(address: tuple[str, int], subject: str) -> str:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("sender@example.test")
        client.rcpt("someone@far.test")
        code, text = client.data(f"Subject: {subject}\r\n\r\nhello\r\n".encode())
    assert code == 250, text
    return queue_id_of(text)


def test_queue_list_and_show_read_the_fleets_queue(fleet, pg_url, tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(NODE_CONFIG.format(url=pg_url))
    a = fleet("a", "127.0.0.2", pg_url, "--config", str(config))
    b = fleet("b", "127.0.0.3", pg_url, "--config", str(config))
    first, second = _send(a.smtp, "through a"), _send(b.smtp, "through b")

    def attempted() -> list[dict]:
        out = run_cli("queue", "list", "--json", "--config", str(config))
        entries = json.loads(out)
        return entries if all(e["attempts"] >= 1 for e in entries) else []

    # The first attempt (a refused connection) is recorded in the database by whichever node
    # took the entry; the listing is the fleet's, from either node's configuration.
    entries = wait_for(lambda: len(attempted()) == 2 and attempted(), timeout=60)
    assert sorted(e["id"] for e in entries) == sorted([first, second])
    for entry in entries:
        assert [r["address"] for r in entry["recipients"]] == ["someone@far.test"]
        assert entry["recipients"][0]["state"] == "pending"

    listing = run_cli("queue", "list", "--config", str(config)).decode()
    assert first in listing and second in listing
    assert "someone@far.test" in listing
    assert "-- 2 messages" in listing and "2 recipients pending" in listing
    assert "(held by a/" in listing or "(held by b/" in listing  # the lease holders

    shown = run_cli("queue", "show", first, "--config", str(config)).decode()
    assert f"Queue ID:     {first}" in shown
    assert "Sender:       <sender@example.test>" in shown
    assert "Attempts:     1" in shown
    assert "Held by:      " in shown
    assert "<someone@far.test>  pending" in shown
    message = run_cli("queue", "show", first, "--message", "--config", str(config))
    assert message.startswith(b"Received: ") and b"Subject: through a\r\n" in message
    size = int(listing.split(first, 1)[1].split()[0])
    assert size == len(message)

    for action in (["retry", first], ["delete", first]):
        done = subprocess.run(
            mailroom_command("queue", *action, "--config", str(config)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "keeps its queue in PostgreSQL" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
