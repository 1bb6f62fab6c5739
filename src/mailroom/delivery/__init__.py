"""Outbound delivery: the queue runner (schedule, MX routing, the SMTP client, retries),
bounces and other delivery reports (RFC 3464 DSNs), and ``mailroom queue``.

The names below load on first use, so ``mailroom queue`` starts without the SMTP client and
dnspython.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailroom.delivery.dsn import DSNOptions, build_dsn
    from mailroom.delivery.runner import DeliverLocal, QueueRunner

__all__ = ["DSNOptions", "DeliverLocal", "QueueRunner", "build_dsn"]


def __getattr__(name: str) -> Any:
    if name in ("DSNOptions", "build_dsn"):
        from mailroom.delivery import dsn

        return getattr(dsn, name)
    if name in ("DeliverLocal", "QueueRunner"):
        from mailroom.delivery import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'mailroom.delivery' has no attribute {name!r}")
