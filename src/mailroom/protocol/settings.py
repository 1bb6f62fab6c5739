"""What one server-side SMTP session offers and allows: extensions and limits, named and with
safe defaults. The server builds one per listener (and adjusts it per connection: TLS)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from secrets import token_hex
from typing import Literal

__all__ = ["SessionSettings"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SessionSettings:
    hostname: str = "localhost"

    # -- limits ----------------------------------------------------------------------------
    max_message_size: int = 50 * MiB  # advertised in SIZE; 0 means no limit
    max_recipients: int = 100  # per message; the next RCPT gets 452 4.5.3
    max_command_line: int = 512  # octets with CRLF, RFC 5321 §4.5.3.1.4
    max_text_line: int = 1000  # octets with CRLF, RFC 5321 §4.5.3.1.6
    # Octets of a message's header section (before its empty line); a larger one gets
    # 552 5.3.4 at the end of data, as Exim's header_maxsize; 0 means no limit.
    max_header_section: int = MiB
    max_auth_line: int = 12288  # AUTH lines and SASL responses, RFC 4954 §4
    # Commands refused in a row (4xx or 5xx; a RCPT's 4xx is counted by max_refused_recipients
    # alone) before 421 4.7.0 and close. Postfix's smtpd_hard_error_limit counts the same
    # refusals, since the last message rather than in a row.
    max_bad_commands: int = 20
    # Commands that move no mail (NOOP, RSET, VRFY, EXPN, HELP, HELO, EHLO, BDAT 0 without
    # LAST) since the session began or its last message was taken: the next one gets 421 4.7.0
    # and the session ends (as Postfix's smtpd_junk_command_limit, also 100); 0 means no limit.
    max_junk_commands: int = 100
    # RCPTs refused since the session began or its last message was taken, whatever the
    # reason (past max_recipients, unknown, greylisted, rate-limited, bad syntax): the next RCPT
    # gets 421 4.7.0 and the session ends; 0 means no limit. Postfix bounds the same floods with
    # smtpd_recipient_overshoot_limit (1000 past the recipient limit) and its error count. Generous:
    # a client that pipelines a long list reads its 452s late and sends the rest in a later
    # transaction (RFC 5321 §4.5.3.1.10); a message taken starts the count again.
    max_refused_recipients: int = 1000

    # -- message content -------------------------------------------------------------------
    # A message holding a CR or LF outside CRLF: refuse it at the end of data (the default,
    # against SMTP smuggling) or rewrite those line endings to CRLF and accept.
    bare_line_endings: Literal["reject", "normalize"] = "reject"
    # A text line over max_text_line: refuse the message, or accept it as is.
    long_lines: Literal["reject", "accept"] = "reject"

    # -- extensions offered in EHLO --------------------------------------------------------
    pipelining: bool = True
    size: bool = True
    eightbitmime: bool = True
    smtputf8: bool = True
    enhanced_status_codes: bool = True
    chunking: bool = True
    binarymime: bool = True
    dsn: bool = True
    # RFC 6710 MT-PRIORITY with the name of the priority policy ("MIXER", "STANAG4406",
    # "NSEP"); empty: not offered.
    mt_priority: str = ""
    rrvs: bool = False  # RFC 7293: RCPT TO:<...> RRVS=<date-time>
    # RFC 4468 BURL: the URL schemes this session can fetch message parts from (("imap",) for
    # IMAP URLAUTH); empty: BURL is not offered (502 5.5.1).
    burl: tuple[str, ...] = ()

    # -- TLS and AUTH ----------------------------------------------------------------------
    tls_available: bool = False  # a certificate is configured: offer STARTTLS
    require_tls: bool = False  # 530 5.7.0 to all but NOOP, EHLO, STARTTLS, QUIT before TLS
    auth_mechanisms: tuple[str, ...] = ()  # empty: AUTH is not offered
    auth_plaintext_without_tls: bool = False  # offer PLAIN and LOGIN before TLS
    require_auth: bool = False  # 530 5.7.0 to MAIL and the rest until AUTH succeeds
    # RFC 8689: offer REQUIRETLS (only once TLS is active) and take MAIL FROM ... REQUIRETLS;
    # the server then keeps the message's promise (relayed only over verified TLS). Off in
    # the bare protocol; the server turns it on (its setting ``requiretls``).
    requiretls: bool = False

    # Nonces for CRAM-MD5 and SCRAM challenges; injectable so tests can pin transcripts.
    nonce: Callable[[], str] = field(default=lambda: token_hex(12))

    def __post_init__(self) -> None:
        # A bad setting is a configuration error, found when the listener is built, never an
        # exception in the middle of a session.
        from mailroom.protocol.sasl import SUPPORTED_MECHANISMS

        unsupported = [m for m in self.auth_mechanisms if m not in SUPPORTED_MECHANISMS]
        if unsupported:
            raise ValueError(
                f"unsupported AUTH mechanisms {', '.join(unsupported)}; "
                f"mailroom offers {', '.join(SUPPORTED_MECHANISMS)}"
            )
        for name in ("max_command_line", "max_text_line", "max_auth_line"):
            if getattr(self, name) < 3:
                raise ValueError(f"{name} must hold at least a character and CRLF")
        for name in ("max_recipients", "max_bad_commands"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("max_junk_commands", "max_refused_recipients"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (no limit) or more")
        if self.max_message_size < 0:
            raise ValueError("max_message_size must be 0 (no limit) or more")
        if self.max_header_section < 0:
            raise ValueError("max_header_section must be 0 (no limit) or more")
