"""The web fixtures (a live mailroom with its web UI) for test_web.py."""

from tests.web.conftest import api, serve, web

__all__ = ["api", "serve", "web"]
