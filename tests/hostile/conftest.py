"""The hostile suite: attacks, bad input, faults and load against a running mailroom.

The fast part runs with every ``pytest``. Tests marked ``hostile`` are the long versions (big
floods, long soaks, long fuzzing); they are skipped unless asked for with ``-m hostile`` or
with the environment variable ``MAILROOM_HOSTILE=1``. ``make hostile`` does both.
"""

from __future__ import annotations

import os

import pytest

from tests.live import client_timeouts, serve, serve_process
from tests.mailserver.conftest import mail_server, mail_server_factory

__all__ = ["client_timeouts", "mail_server", "mail_server_factory", "serve", "serve_process"]


def long_runs_wanted(config: pytest.Config) -> bool:
    return os.environ.get("MAILROOM_HOSTILE", "") not in ("", "0") or "hostile" in (
        config.option.markexpr or ""
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hostile: a long hostile test (floods, soak, fuzzing); runs with -m hostile or "
        "MAILROOM_HOSTILE=1",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if long_runs_wanted(config):
        return
    skip = pytest.mark.skip(reason="long hostile test: run with -m hostile or MAILROOM_HOSTILE=1")
    for item in items:
        if item.get_closest_marker("hostile") is not None:
            item.add_marker(skip)
