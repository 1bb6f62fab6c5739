"""The asyncio server: listeners, sessions, TLS, limits, timeouts, graceful shutdown."""

from mailroom.server.app import MailServer

__all__ = ["MailServer"]
