"""Fixtures: mailroom running in this process or as a subprocess (tests/live.py)."""

from tests.live import serve, serve_process

__all__ = ["serve", "serve_process"]
