"""Fixtures: mailroom running in this process with its web UI and API on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveServer, serve, serve_process, wait_for
from tests.web.http import Api

__all__ = ["api", "serve", "serve_process", "spamd", "web"]

SPAMD = shutil.which("spamd") or "/usr/sbin/spamd"


@pytest.fixture
def web(serve: Callable[..., LiveServer]) -> Iterator[Callable[..., tuple[LiveServer, Api]]]:
    """``web(**settings)``: a running server with the web on 127.0.0.1:0; the server and an
    API client for it."""

    def start(**overrides: Any) -> tuple[LiveServer, Api]:
        overrides.setdefault("web", "127.0.0.1:0")
        live = serve(**overrides)
        assert live.mail_server.web is not None
        return live, Api(live.mail_server.web.url)

    yield start


@pytest.fixture
def api(web: Callable[..., tuple[LiveServer, Api]]) -> tuple[LiveServer, Api]:
    return web()


@pytest.fixture(scope="module")
def spamd() -> Iterator[str]:
    """SpamAssassin's spamd on a free loopback port, local tests only (no DNS, no network)."""
    if not Path(SPAMD).exists():
        if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
            pytest.skip("spamd is not installed")
        raise AssertionError("spamd is not installed (Debian: spamd)")
    # Its configuration: Debian's plugin list (the .pre files) and no network at all. spamd
    # runs its children as nobody when started as root, so the folder is world-readable (and
    # not under pytest's own, which is not).
    home = Path(tempfile.mkdtemp(prefix="mailroom-spamd-"))
    home.chmod(0o755)
    for pre in Path("/etc/spamassassin").glob("*.pre"):
        shutil.copy(pre, home / pre.name)
    (home / "local.cf").write_text("dns_available no\nskip_rbl_checks 1\nuse_bayes 0\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (home / "spamd.log").open("wb")
    process = subprocess.Popen(
        [
            SPAMD,
            f"--listen=127.0.0.1:{port}",
            "--allowed-ips=127.0.0.1",
            "--local",
            "--nouser-config",
            "--max-children=1",
            f"--siteconfigpath={home}",
            "--syslog=stderr",
            f"--pidfile={home / 'spamd.pid'}",
            "--username=nobody" if os.geteuid() == 0 else "--max-conn-per-child=100",
        ],
        stdout=log,
        stderr=log,
    )

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, timeout=120, interval=0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)
