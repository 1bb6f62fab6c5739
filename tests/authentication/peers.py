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


POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SENDMAIL = "/usr/sbin/sendmail"


class Postfix:
    """A private Postfix (Debian ``postfix``) in a temporary directory: no listener of its own
    (master.cf without inet services), mail submitted with its sendmail goes to ``relay``
    (``127.0.0.1:PORT``, no DNS), and its log is ``self.log``. Needs root, as Postfix does."""

    def __init__(self, relay_port: int, *, hostname: str = "client.sender.test") -> None:
        need(POSTFIX)
        if os.geteuid() != 0:
            if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
                pytest.skip("a private Postfix needs root")
            pytest.fail("a private Postfix instance needs root (CI runs as root)")
        self._tmp = tempfile.TemporaryDirectory(prefix="mailroom-postfix-")
        self.dir = Path(self._tmp.name)
        os.chmod(self.dir, 0o755)
        etc = self.dir / "etc"
        etc.mkdir()
        (self.dir / "spool").mkdir()
        (self.dir / "data").mkdir()
        shutil.chown(self.dir / "data", "postfix")
        (etc / "master.cf").write_text(_master_cf())
        (etc / "main.cf").write_text(
            f"compatibility_level = 3.6\n"
            f"queue_directory = {self.dir / 'spool'}\n"
            f"data_directory = {self.dir / 'data'}\n"
            "mail_owner = postfix\nsetgid_group = postdrop\n"
            f"myhostname = {hostname}\nmydomain = sender.test\nmyorigin = sender.test\n"
            "mydestination =\ninet_interfaces = loopback-only\ninet_protocols = ipv4\n"
            f"relayhost = [127.0.0.1]:{relay_port}\n"
            "smtp_dns_support_level = disabled\nsmtp_tls_security_level = none\n"
            "alias_maps =\nalias_database =\nbiff = no\n"
            f"maillog_file = {self.dir / 'maillog'}\nmaillog_file_prefixes = {self.dir}\n"
        )
        self.config = str(etc)
        self._postfix("set-permissions")
        self._postfix("start")

    def _postfix(self, command: str) -> None:
        result = subprocess.run(
            [POSTFIX, "-c", self.config, command], capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(f"postfix {command}: {result.stdout}{result.stderr}{self.log}")

    @property
    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def sendmail(self, sender: str, recipient: str, message: bytes) -> None:
        subprocess.run(
            [SENDMAIL, "-C", self.config, "-f", sender, recipient],
            input=message,
            check=True,
            timeout=60,
        )

    def close(self) -> None:
        subprocess.run([POSTFIX, "-c", self.config, "stop"], capture_output=True, timeout=60)
        self._tmp.cleanup()


def _master_cf() -> str:
    """Debian's master.cf without its listeners, and without chroot."""
    out = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t":
            if out:
                out.append(line)  # an option line of the service above
            continue
        fields = line.split()
        if len(fields) >= 8 and fields[1] == "inet":
            out.append("#" + line)
            continue
        if len(fields) >= 8:
            fields[4] = "n"
            line = " ".join(fields)
        out.append(line)
    # option lines that followed a commented-out listener are comments too
    fixed = []
    for line in out:
        if line[:1] in " \t" and fixed and fixed[-1].startswith("#"):
            fixed.append("#" + line)
        else:
            fixed.append(line)
    return "\n".join(fixed) + "\n"


RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"


class Rspamd:
    """rspamd (Debian ``rspamd``) with a configuration of our own: only its DKIM module (no Lua
    rules, so no maps fetched from anywhere), DNS from the test's Unbound, one scanning worker
    on a free port of 127.0.0.1, asked over its HTTP protocol (``/checkv2``)."""

    def __init__(self, resolver_port: int) -> None:
        need(RSPAMD)
        from tests.dnspeers import free_port

        self._tmp = tempfile.TemporaryDirectory(prefix="mailroom-rspamd-")
        self.dir = Path(self._tmp.name)
        (self.dir / "local").mkdir()
        (self.dir / "db").mkdir()
        self.port = free_port()
        (self.dir / "rspamd.conf").write_text(
            "options {\n"
            '    pidfile = "$RUNDIR/rspamd.pid";\n'
            '    filters = "dkim";\n'
            f'    dns {{ nameserver = ["127.0.0.1:{resolver_port}"]; timeout = 2s; }}\n'
            '    hs_cache_dir = "$DBDIR/";\n'
            '    cache_file = "$DBDIR/symbols.cache";\n'
            "}\n"
            'logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "info"; }\n'
            f'worker "normal" {{ bind_socket = "127.0.0.1:{self.port}"; count = 1; }}\n'
            "dkim { }\n"
        )
        user = ["-u", "root", "-g", "root"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [
                RSPAMD,
                "-f",
                *user,
                "--insecure",
                "-c",
                str(self.dir / "rspamd.conf"),
                f"--var=LOCAL_CONFDIR={self.dir / 'local'}",
                f"--var=DBDIR={self.dir / 'db'}",
                f"--var=RUNDIR={self.dir}",
                f"--var=LOGDIR={self.dir}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        path = self.dir / "rspamd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check(self, message: bytes, *, client_ip: str = "192.0.2.1") -> dict[str, list[str]]:
        """The symbols rspamd gives the message, with their options (a client address beyond
        loopback: rspamd does not check DKIM for local networks)."""
        import json
        import time
        import urllib.request

        deadline = time.monotonic() + 120  # rspamd compiles its rules at start
        while True:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/checkv2", data=message, headers={"IP": client_ip}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.load(response)
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"rspamd did not answer:\n{self.log[-3000:]}") from None
                time.sleep(0.2)
        return {name: s.get("options", []) for name, s in answer["symbols"].items()}

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._tmp.cleanup()
