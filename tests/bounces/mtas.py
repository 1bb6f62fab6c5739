"""Real mail servers on loopback that produce bounces: private Postfix instances, Exim from its
Debian packages, Dovecot's LMTP server and LDA, each from a config written here into a
temporary directory, on free ports of 127.0.0.1, as root (as CI runs), stopped afterwards.

- :class:`Postfix` — ``postfix -c DIR start`` with its own main.cf/master.cf, queue and log.
- :class:`Exim` — the ``exim4`` binary unpacked from ``exim4-daemon-light`` (Debian's package
  conflicts with postfix; ``.ci/run`` unpacks it with ``dpkg -x`` into ``EXIM_ROOT``), run as a
  foreground daemon with ``-C``; :func:`with_exim_user` gives it the ``Debian-exim`` user it
  was built for without adding that user to the machine.
- :func:`dovecot_lmtp` — Dovecot's LMTP server (tests.interop.dovecot) with a quota plugin.
- :func:`dovecot_lda_reject` — ``dovecot-lda`` refusing a message over quota, which sends its
  rejection (RFC 3798 MDN) over SMTP.

A missing binary fails the test, unless MAILROOM_ALLOW_SKIP=1 is set (then it skips).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.dovecot import free_port, running_dovecot

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
EXIM_ROOT = Path(os.environ.get("MAILROOM_EXIM_ROOT", "/opt/mailroom-exim"))
EXIM = EXIM_ROOT / "usr" / "sbin" / "exim4"
DOVECOT_LDA = Path("/usr/lib/dovecot/dovecot-lda")
NOBODY = pwd.getpwnam("nobody")


def require(path: str | Path, what: str) -> None:
    """Fail (or, with MAILROOM_ALLOW_SKIP=1, skip) when a binary the test needs is missing."""
    if Path(path).exists() and os.geteuid() == 0:
        return
    message = f"needs {what} ({path}) and root"
    if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message + "; .ci/run installs it")


def wait_for_port(port: int, what: str, log: Path | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                text = log.read_text(errors="replace") if log and log.exists() else ""
                pytest.fail(f"{what} did not start on port {port}:\n{text[-4000:]}")
            time.sleep(0.1)


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    return free_port()


# -- Postfix -------------------------------------------------------------------------------------

_POSTFIX_SERVICES = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix: main.cf from ``settings``, texthash maps from ``maps`` (name to
    text, referred to in settings as ``texthash:{root}/NAME``), listening on ``port``."""

    def __init__(
        self, root: Path, hostname: str, settings: dict[str, str], maps: dict[str, str]
    ) -> None:
        self.root = root
        self.port = free_port()
        self.hostname = hostname
        self.settings = {
            "compatibility_level": "3.6",
            "queue_directory": f"{root}/queue",
            "data_directory": f"{root}/data",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": hostname,
            "mydomain": hostname,
            "myorigin": hostname,
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "maillog_file": f"{root}/maillog",
            "maillog_file_prefixes": str(root),
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "smtputf8_enable": "no",
            "notify_classes": "",
            "biff": "no",
            "smtp_connect_timeout": "10s",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            **settings,
        }
        self.maps = maps

    @property
    def log(self) -> Path:
        return self.root / "maillog"

    def postfix(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [POSTFIX, "-c", str(self.root), *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self) -> Postfix:
        require(POSTFIX, "Postfix (Debian postfix)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the postfix user must reach its queue and data directories
        for name in ("queue", "data"):
            (self.root / name).mkdir(exist_ok=True)
        os.chown(self.root / "data", pwd.getpwnam("postfix").pw_uid, -1)
        for name, text in self.maps.items():
            (self.root / name).write_text(text)
        main = "".join(f"{key} = {value}\n" for key, value in self.settings.items())
        (self.root / "main.cf").write_text(main.replace("{root}", str(self.root)))
        listen = f"127.0.0.1:{self.port}"
        (self.root / "master.cf").write_text(_POSTFIX_SERVICES.format(listen=listen))
        result = self.postfix("start")
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            pytest.fail(f"postfix did not start: {result.stdout}{result.stderr}{log}")
        wait_for_port(self.port, "postfix", self.log)
        return self

    def stop(self) -> None:
        self.postfix("stop")
        pid_file = self.root / "queue" / "pid" / "master.pid"
        deadline = time.monotonic() + 20
        while pid_file.exists() and time.monotonic() < deadline:
            try:
                os.kill(int(pid_file.read_text().split()[0]), 0)
            except (OSError, ValueError):
                break
            time.sleep(0.1)

    def flush(self) -> None:
        """Try the deferred mail again now."""
        self.postfix("flush")


@contextlib.contextmanager
def running(server: Postfix | Exim) -> Iterator[Postfix | Exim]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- Exim ----------------------------------------------------------------------------------------

# Run in a mount namespace of its own, where the test's passwd and group files stand in for the
# machine's: Exim looks up its compiled-in user, Debian-exim, at every start, and so do the
# copies of itself it runs for queue runs and deliveries. (nss_wrapper through LD_PRELOAD
# answered the first but not the children once Debian's 4.96-15+deb12u11 came: they failed
# with 'failed to find uid for user name "Debian-exim"'.) A bind mount changes nothing outside.
_OWN_USERS = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"'


def with_exim_user(argv: list[str], directory: Path) -> list[str]:
    """``argv`` run where the passwd and group files are the machine's plus a ``Debian-exim``
    user and group (nobody's ids), written into ``directory``; needs root, as Exim does."""
    passwd = Path("/etc/passwd").read_text().rstrip("\n") + "\n"
    passwd += f"Debian-exim:x:{NOBODY.pw_uid}:{NOBODY.pw_gid}::/nonexistent:/bin/false\n"
    group = Path("/etc/group").read_text().rstrip("\n") + f"\nDebian-exim:x:{NOBODY.pw_gid}:\n"
    (directory / "passwd").write_text(passwd)
    (directory / "group").write_text(group)
    for name in ("passwd", "group"):
        (directory / name).chmod(0o644)
    unshare = ["unshare", "--mount", "--propagation", "private"]
    files = [str(directory / "passwd"), str(directory / "group")]
    return [*unshare, "sh", "-c", _OWN_USERS, "sh", *files, *argv]


class Exim:
    """Exim as a foreground daemon (``-bdf``) with queue runs every second, from ``config``
    (its text, with ``{root}`` and ``{port}`` filled in)."""

    def __init__(self, root: Path, config: str) -> None:
        self.root = root
        self.port = free_port()
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / "log" / "mainlog"

    def start(self) -> Exim:
        require(EXIM, "Exim (exim4-daemon-light, unpacked by .ci/run)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for name in ("spool", "log", "mail"):
            (self.root / name).mkdir(exist_ok=True)
            os.chown(self.root / name, NOBODY.pw_uid, NOBODY.pw_gid)
        config = self.config.replace("{root}", str(self.root)).replace("{port}", str(self.port))
        (self.root / "exim.conf").write_text(config)
        stderr = (self.root / "stderr.log").open("wb")
        self.process = subprocess.Popen(
            with_exim_user(
                [str(EXIM), "-C", str(self.root / "exim.conf"), "-bdf", "-q1s"], self.root
            ),
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdout=stderr,
            stderr=stderr,
        )
        wait_for_port(self.port, "exim", self.root / "stderr.log")
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- Dovecot -------------------------------------------------------------------------------------

DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = lmtp
ssl = no
mail_location = maildir:{root}/mail/%d/%n
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
mail_plugins = $mail_plugins quota
hostname = dovecot.test
postmaster_address = postmaster@dovecot.test
submission_host = 127.0.0.1:{submission_port}
quota_full_tempfail = no
lda_mailbox_autocreate = yes
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service anvil {{
  chroot =
}}
"""


@contextlib.contextmanager
def dovecot_lmtp(root: Path, users: dict[str, str], submission_port: int) -> Iterator[int]:
    """Dovecot's LMTP server for ``users`` (address -> extra userdb fields, such as
    ``userdb_quota_rule=*:storage=100B``); yields its port. Its LDA (same config) submits
    rejections to ``submission_port``."""
    require("/usr/lib/dovecot/lmtp", "Dovecot's LMTP server (Debian dovecot-lmtpd)")
    root.chmod(0o711)
    lmtp_port = free_port()
    (root / "mail").mkdir()
    os.chown(root / "mail", NOBODY.pw_uid, NOBODY.pw_gid)
    lines = [
        f"{address}::{NOBODY.pw_uid}:{NOBODY.pw_gid}::{root}/mail::{extra}"
        for address, extra in users.items()
    ]
    (root / "users").write_text("\n".join(lines) + "\n")
    config = DOVECOT_CONF.format(
        root=root,
        uid=NOBODY.pw_uid,
        gid=NOBODY.pw_gid,
        lmtp_port=lmtp_port,
        submission_port=submission_port,
    )
    with running_dovecot(root, config, [lmtp_port]):
        yield lmtp_port


def dovecot_lda_reject(root: Path, recipient: str, sender: str, message: bytes) -> str:
    """Deliver ``message`` with ``dovecot-lda`` to ``recipient`` (over quota): Dovecot
    rejects it and sends the sender its rejection over SMTP; returns the LDA's stderr."""
    require(DOVECOT_LDA, "Dovecot's LDA (Debian dovecot-core)")
    result = subprocess.run(
        [str(DOVECOT_LDA), "-c", str(root / "dovecot.conf"), "-d", recipient, "-f", sender],
        input=message,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return result.stderr.decode(errors="replace")
