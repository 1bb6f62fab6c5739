"""Fixtures: mailroom running in this process with its web UI and API on a free port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.live import LiveServer, serve, serve_process
from tests.web.http import Api

__all__ = ["api", "serve", "serve_process", "web"]


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
