"""Fixtures: mailroom running in this process (tests/live.py)."""

from tests.live import serve

__all__ = ["serve"]
