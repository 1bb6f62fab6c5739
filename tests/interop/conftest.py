"""Fixtures: mailroom running in this process or as a subprocess (tests/live.py)."""

from tests.live import client_timeouts, serve, serve_process

__all__ = ["client_timeouts", "serve", "serve_process"]
