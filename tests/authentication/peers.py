"""Independent verifiers for the email authentication tests, run as the test's own processes
in temporary directories: OpenDKIM (Debian ``opendkim``) in its test mode, verifying or signing
one message with DNS through a libunbound configuration that forwards to the test's Unbound.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
OPENDKIM_GENKEY = shutil.which("opendkim-genkey") or "/usr/sbin/opendkim-genkey"


def need(binary: str) -> None:
    if not os.path.exists(binary):
        if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
            pytest.skip(f"{binary} is not installed")
        pytest.fail(f"{binary} is not installed (.ci/run installs it)")


def _inserted(output: str, name: str) -> list[str]:
    """The header fields a milter's test mode says it would insert (``### INSHEADER``)."""
    found = re.findall(r"### INSHEADER: idx=\d+ hname='([^']+)' hvalue='([^']*)'", output)
    return [value for hname, value in found if hname.lower() == name.lower()]


class OpenDKIM:
    """``opendkim -t FILE`` with a configuration of our own: verifies (or signs) one message,
    and says what it would add (an Authentication-Results, or a DKIM-Signature)."""

    def __init__(self, resolver_port: int, *, authserv_id: str = "opendkim.test") -> None:
        need(OPENDKIM)
        self._tmp = tempfile.TemporaryDirectory(prefix="mailroom-opendkim-")
        self.dir = Path(self._tmp.name)
        self.authserv_id = authserv_id
        # libunbound, as OpenDKIM is built with it: everything to the test's Unbound. The
        # test zones are under .test, which libunbound would otherwise answer itself.
        (self.dir / "unbound.conf").write_text(
            "server:\n"
            "  do-not-query-localhost: no\n"
            '  module-config: "iterator"\n'
            '  local-zone: "test." nodefault\n'
            "forward-zone:\n"
            '  name: "."\n'
            f"  forward-addr: 127.0.0.1@{resolver_port}\n"
        )

    def close(self) -> None:
        self._tmp.cleanup()

    def _run(self, config: str, message: bytes) -> str:
        (self.dir / "opendkim.conf").write_text(
            config
            + f"ResolverConfiguration {self.dir / 'unbound.conf'}\n"
            + f"AuthservID {self.authserv_id}\nSyslog no\nSoftwareHeader no\n"
        )
        path = self.dir / "message.eml"
        path.write_bytes(message)
        result = subprocess.run(
            [OPENDKIM, "-x", str(self.dir / "opendkim.conf"), "-t", str(path), "-vvv"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"opendkim failed: {result.stdout}{result.stderr}")
        return result.stdout

    def verify(self, message: bytes) -> str:
        """The Authentication-Results value OpenDKIM makes for the message."""
        output = self._run("Mode v\nAlwaysAddARHeader yes\nMinimumKeyBits 1024\n", message)
        [results] = _inserted(output, "Authentication-Results")
        return results

    def genkey(self, domain: str, selector: str) -> tuple[Path, str]:
        """A key made by opendkim-genkey: its private key file and its record's text."""
        need(OPENDKIM_GENKEY)
        subprocess.run(
            [OPENDKIM_GENKEY, "-b", "2048", "-d", domain, "-s", selector, "-D", str(self.dir)],
            check=True,
            timeout=60,
        )
        text = (self.dir / f"{selector}.txt").read_text()
        record = "".join(re.findall(r'"([^"]*)"', text))
        return self.dir / f"{selector}.private", record

    def sign(self, message: bytes, domain: str, selector: str, key: Path) -> bytes:
        """The message with OpenDKIM's DKIM-Signature on top."""
        output = self._run(
            f"Mode s\nDomain {domain}\nSelector {selector}\nKeyFile {key}\n"
            "Canonicalization relaxed/simple\nOversignHeaders From\n"
            # the key is in a temporary directory, under /tmp (writable by all)
            "RequireSafeKeys false\n",
            message,
        )
        [value] = _inserted(output, "DKIM-Signature")
        return b"DKIM-Signature: " + value.replace("\n", "\r\n").encode() + b"\r\n" + message
