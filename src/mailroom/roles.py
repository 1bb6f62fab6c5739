"""What each kind of listener offers (the ``role`` of a listener in ``mailroom.toml``), as the
protocol settings of its sessions. The composition root hands the SMTP server one
``SessionSettings`` per listener; the server itself knows no roles.

- ``catcher``: the embedded default: any recipient is accepted into one mailbox; AUTH as
  ``--auth`` says.
- ``mx`` (port 25): mail for the local domains from anyone; no AUTH, so no relaying.
- ``submission`` (port 587, RFC 6409): STARTTLS, then AUTH is required; authenticated users
  may relay. TLS is required for the whole session (no AUTH is offered before it, and AUTH or
  MAIL before STARTTLS get 530 5.7.0), unless ``allow_insecure_auth`` says otherwise.
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
        max_header_section=config.max_header_section,
        max_recipients=config.max_recipients,
        max_bad_commands=config.max_bad_commands,
        max_junk_commands=config.max_junk_commands,
        max_refused_recipients=config.max_refused_recipients,
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
    if config.mail is not None and listener.role in ("mx", "submission", "submissions"):
        # The mail server's own extensions: MT-PRIORITY (RFC 6710) and RRVS (RFC 7293).
        rules = config.mail.rules
        settings = replace(settings, mt_priority=rules.mt_priority, rrvs=rules.rrvs)
    if listener.role == "mx":
        return replace(settings, auth_mechanisms=())
    if listener.role in ("submission", "submissions"):
        # A submission in the clear would carry the password (or, with SCRAM, the exchange a
        # STARTTLS-stripping attacker relays) and the mail: TLS first, as Postfix's
        # submission service with smtpd_tls_security_level=encrypt.
        require_tls = config.tls_enabled and not config.allow_insecure_auth
        if config.mail is not None and config.mail.burl is not None:
            # RFC 4468: BURL imap where an IMAP server to fetch from is configured.
            settings = replace(settings, burl=("imap",))
        return replace(
            settings, auth_mechanisms=mechanisms, require_auth=True, require_tls=require_tls
        )
    return replace(settings, auth_mechanisms=mechanisms, require_auth=config.require_auth)
