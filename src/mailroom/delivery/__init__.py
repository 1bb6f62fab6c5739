"""Outbound delivery: the queue runner (schedule, MX routing, the SMTP client, retries),
bounces and other delivery reports (RFC 3464 DSNs), and ``mailroom queue``."""

from mailroom.delivery.dsn import DSNOptions, build_dsn
from mailroom.delivery.runner import DeliverLocal, QueueRunner

__all__ = ["DSNOptions", "DeliverLocal", "QueueRunner", "build_dsn"]
