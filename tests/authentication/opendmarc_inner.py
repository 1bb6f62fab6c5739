"""Run inside ``unshare --net --mount`` by tests/authentication/test_opendmarc.py: OpenDMARC
reads DNS only through the system resolver (libresolv: /etc/resolv.conf, port 53), so it gets a
network namespace of its own where the test's records are served by Knot on 127.0.0.1:53, and a
mount namespace where /etc/resolv.conf names it. Reads the records and the messages as JSON on
stdin; prints OpenDMARC's verdict for each message as JSON on stdout."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.dnspeers import Knot


def main() -> None:
    job = json.load(sys.stdin)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    knot = Knot(job["records"], zones=job["zones"])
    knot.port = 53  # this namespace's own loopback: no one else's port
    with knot, tempfile.TemporaryDirectory(prefix="mailroom-opendmarc-") as tmp:
        directory = Path(tmp)
        (directory / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:2\n")
        subprocess.run(
            ["mount", "--bind", str(directory / "resolv.conf"), "/etc/resolv.conf"], check=True
        )
        (directory / "opendmarc.conf").write_text(
            "AuthservID opendmarc.test\n"
            f"TrustedAuthservIDs {job['trusted']}\n"
            f"PublicSuffixList {job['psl']}\n"
            "RejectFailures true\n"
            "SPFSelfValidate false\n"
            "Syslog false\n"
        )
        verdicts = []
        for index, message in enumerate(job["messages"]):
            path = directory / f"{index}.eml"
            path.write_bytes(message.encode("utf-8"))
            result = subprocess.run(
                ["opendmarc", "-c", str(directory / "opendmarc.conf"), "-t", str(path), "-vvv"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            results = re.findall(r"hname='Authentication-Results' hvalue='([^']*)'", result.stdout)
            reply = re.search(r"### SETREPLY: rcode='(\d+)' xcode='([\d.]+)'", result.stdout)
            verdicts.append(
                {
                    "results": results,
                    "reply": [reply.group(1), reply.group(2)] if reply else None,
                    "output": result.stdout[-2000:] + result.stderr[-2000:],
                }
            )
    json.dump(verdicts, sys.stdout)


if __name__ == "__main__":
    main()
