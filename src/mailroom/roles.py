"""What each kind of listener offers (the ``role`` of a listener in ``mailroom.toml``), as the
protocol settings of its sessions. The composition root hands the SMTP server one
``SessionSettings`` per listener; the server itself knows no roles.

- ``catcher``: the embedded default: any recipient is accepted into one mailbox; AUTH as
  ``--auth`` says.
- ``mx`` (port 25): mail for the local domains from anyone; no AUTH, so no relaying.
- ``submission`` (port 587, RFC 6409): STARTTLS, then AUTH is required; authenticated users
  may relay.
- ``submissions`` (port 465, RFC 8314): the same over implicit TLS.
"""

from __future__ import annotations

from dataclasses import replace

from mailroom.config import Config
from mailroom.policy.credentials import CredentialStore
from mailroom.protocol import SessionSettings
from mailroom.settings_types import Listener

__all__ = ["session_settings_for"]


def base_settings(config: Config) -> SessionSettings:
    return SessionSettings(
        hostname=config.hostname,
        max_message_size=config.max_message_size,
        max_recipients=config.max_recipients,
        max_bad_commands=config.max_bad_commands,
        bare_line_endings=config.bare_line_endings,
        long_lines=config.long_lines,
        tls_available=config.tls_enabled,
        require_tls=config.require_tls,
        auth_plaintext_without_tls=config.allow_insecure_auth,
        requiretls=config.requiretls,
    )


def session_settings_for(
    listener: Listener, config: Config, credentials: CredentialStore | None
) -> SessionSettings:
    settings = base_settings(config)
    mechanisms = credentials.mechanisms if credentials is not None else ()
    if listener.role == "mx":
        return replace(settings, auth_mechanisms=())
    if listener.role in ("submission", "submissions"):
        return replace(settings, auth_mechanisms=mechanisms, require_auth=True)
    return replace(settings, auth_mechanisms=mechanisms, require_auth=config.require_auth)
