"""The asyncio SMTP server: listeners, sessions, TLS, limits, timeouts, graceful shutdown.

It takes what it needs as arguments (see :class:`SMTPServer`); the composition root
(:mod:`mailroom.app`) builds those and the server. It knows nothing of the web UI or the
configuration.
"""

from mailroom.server.session import Session, SessionHost
from mailroom.server.smtp import ServerLimits, SMTPServer

__all__ = ["SMTPServer", "ServerLimits", "Session", "SessionHost"]
