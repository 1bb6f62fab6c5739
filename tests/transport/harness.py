"""The pieces each transport security test puts together: a receiving mailroom with a
certificate of the test CA (the MX), the queue runner pointed at the test's validating
resolver and trusting the test CA, and ways to read what the queue says."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mailroom.app import Mailroom
from mailroom.delivery import commands as queue_command
from mailroom.queue.entry import QueueEntry, QueueSpool
from mailroom.queue.settings import QueueSettings
from mailroom.queue.tls_settings import TLSPolicySettings
from tests.delivery.peers import fast, port_of, receiver
from tests.transport.tlspeers import Issued, TestCA


def tls_policy(test_ca: TestCA, **changes: Any) -> TLSPolicySettings:
    values: dict[str, Any] = {
        "ca_file": str(test_ca.path),
        "mta_sts_retry_after": 0.0,  # every attempt may fetch again (tests change policies)
        "mta_sts_timeout": 10.0,
    }
    values.update(changes)
    return TLSPolicySettings(**values)


def queue_settings(
    dns_address: str, mx_port: int, tls: TLSPolicySettings, **changes: Any
) -> QueueSettings:
    return fast(dns_servers=(dns_address,), mx_port=mx_port, tls=tls, **changes)


@asynccontextmanager
async def mx(data: Path, cert: Issued, **overrides: Any) -> AsyncIterator[Mailroom]:
    """A receiving mailroom (catcher) with STARTTLS and ``cert``."""
    async with receiver(
        data, tls="files", tls_cert=cert.cert_path, tls_key=cert.key_path, **overrides
    ) as server:
        yield server


def show(spool: QueueSpool, queue_id: str) -> str:
    """What ``mailroom queue show ID`` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert queue_command.main(["show", queue_id, "--data", str(spool.root.parent)]) == 0
    return out.getvalue()


def entry(spool: QueueSpool, queue_id: str) -> QueueEntry:
    found = spool.load(queue_id)
    assert found is not None, f"{queue_id} left the queue"
    return found


def delivery_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "mailroom.delivery" and "to=<" in r.getMessage()
    ]


def capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailroom")


__all__ = [
    "capture",
    "delivery_lines",
    "entry",
    "mx",
    "port_of",
    "queue_settings",
    "show",
    "tls_policy",
]
