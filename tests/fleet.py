"""A fleet of ``mailroom serve`` processes sharing one PostgreSQL database, for tests: each node
on its own loopback address (127.0.0.2, 127.0.0.3, ...), with its own data directory and log,
and able to die by ``kill -9``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.live import HOSTNAME, ServeProcess, wait_for

__all__ = ["FleetNode", "fleet"]

WEB_LINE = re.compile(r"mailroom: web UI and API on (?P<url>http://\S+)")


class FleetNode(ServeProcess):
    def __init__(self, name: str, address: str, args: list[str], log: Path) -> None:
        super().__init__(args, log)
        self.name = name
        self.address = address
        self.web_url: str | None = None

    def wait_started(self) -> FleetNode:
        super().wait_started()
        if "--web" in self.process.args and "off" not in self.process.args:  # type: ignore[operator]
            match = wait_for(lambda: WEB_LINE.search(self.stderr), timeout=30)
            self.web_url = match["url"].rstrip("/")
        return self

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Callable[..., FleetNode]]:
    """``fleet(name, address, url, *flags, web=False)``: a node started on ``address``."""
    started: list[FleetNode] = []

    def start(name: str, address: str, url: str, *flags: str, web: bool = False) -> FleetNode:
        args = [
            "--data",
            str(tmp_path / f"data-{name}"),
            "--smtp",
            f"{address}:0",
            "--hostname",
            HOSTNAME,
            "--store",
            url,
            "--node",
            name,
            "--web",
            f"{address}:0" if web else "off",
            *flags,
        ]
        node = FleetNode(name, address, args, tmp_path / f"node-{name}-{len(started)}.log")
        started.append(node)
        return node.wait_started()

    yield start
    for node in started:
        node.terminate(timeout=30) if node.alive else node.kill()
