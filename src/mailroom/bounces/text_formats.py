"""The words of bounces for a person: which MTA wrote them, and what they say per recipient.

Many reports have no RFC 3464 part (qmail, older Exim and Sendmail, Yahoo, Gmail's and
Exchange's notices), and many that have one leave its Diagnostic-Code empty or generic (Exim
4.96 writes ``Status: 5.0.0`` and puts the reason only in its text). The text says it in the
shape its MTA always uses; each shape is read by structure, not by a particular message:

- Exim: ``The following address(es) failed:`` then, per address, the address indented by two
  spaces and its reason by four;
- Postfix, qmail, Yahoo, mailroom: ``<address>: reason`` or ``<address>:`` with the reason on
  the lines below, up to a blank line;
- Sendmail: ``----- The following addresses had permanent fatal errors -----``, the address,
  ``(reason: …)``, and the transcript (``>>> RCPT To:<…>`` / ``<<< 550 …``);
- Gmail: ``Delivery to the following recipient failed permanently: … Technical details of
  permanent failure: …`` and the newer ``** Address not found ** … wasn't delivered to …``;
- Exchange and Office 365: ``Diagnostic information for administrators:`` with ``Remote Server
  returned '…'``, and the older ``The following recipient(s) could not be reached:`` with
  ``<host #5.1.1 smtp;550 …>``;
- Dovecot's LDA and Sieve: ``Your message to <address> was automatically rejected: …``.
"""

from __future__ import annotations

import re
from email.message import Message

from mailroom.bounces.mime import header

__all__ = ["is_bounce_text", "per_address", "producer"]

_ADDRESS = r"[^\s<>()\"',;:]+@[\w.\-]+[a-z0-9]"


def _blocks_after(text: str, start: re.Pattern[str]) -> str | None:
    found = start.search(text)
    return text[found.end() :] if found else None


# -- Exim ----------------------------------------------------------------------------------------

_EXIM_START = re.compile(
    r"(?:the following address\(es\) failed|has not yet been delivered to the following "
    r"addresses|could not be delivered to one or more of its recipients[^\n]*\n[^\n]*failed)"
    r"[^\n]*\n",
    re.IGNORECASE,
)
_EXIM_ADDRESS = re.compile(rf"^ {{1,3}}({_ADDRESS})\s*$", re.MULTILINE | re.IGNORECASE)


def _exim(text: str) -> list[tuple[str, str]]:
    rest = _blocks_after(text, _EXIM_START)
    if rest is None:
        return []
    found = []
    matches = list(_EXIM_ADDRESS.finditer(rest))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(rest)
        detail: list[str] = []
        for line in rest[match.end() : end].splitlines():
            if not line.strip():
                if detail:
                    break
                continue
            if not line.startswith("    "):
                break
            if line.strip().startswith("(generated from"):
                continue
            detail.append(line.strip())
        found.append((match[1], " ".join(detail)))
    return found


# -- "<address>: reason" (Postfix, qmail, Yahoo, mailroom) ---------------------------------------

_ANGLE = re.compile(
    rf"^[ \t]*<({_ADDRESS})>(?: \(expanded from <[^>]*>\))?:[ \t]*(.*)$",
    re.MULTILINE | re.IGNORECASE,
)


def _angle(text: str) -> list[tuple[str, str]]:
    found = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _ANGLE.match(line)
        if match is None:
            continue
        detail = [match[2].strip()] if match[2].strip() else []
        for follow in lines[index + 1 :]:
            if not follow.strip() or _ANGLE.match(follow) or follow.startswith("---"):
                break
            detail.append(follow.strip())
        found.append((match[1], " ".join(detail)))
    return found


# -- Sendmail ------------------------------------------------------------------------------------

_SENDMAIL_START = re.compile(
    r"-+ ?The following addresses? had (?:permanent fatal|transient non-fatal) errors? ?-+\n",
    re.IGNORECASE,
)
_SENDMAIL_TRANSCRIPT = re.compile(r"-+ ?Transcript of session follows ?-+\n", re.IGNORECASE)
_SENDMAIL_ADDRESS = re.compile(rf"^<?({_ADDRESS})>?\s*$", re.MULTILINE | re.IGNORECASE)
_SENDMAIL_REASON = re.compile(r"^\s+\(reason: (.*)\)\s*$", re.MULTILINE)


def _sendmail(text: str) -> list[tuple[str, str]]:
    rest = _blocks_after(text, _SENDMAIL_START)
    if rest is None:
        return []
    transcript_at = _SENDMAIL_TRANSCRIPT.search(rest)
    head = rest[: transcript_at.start()] if transcript_at else rest
    transcript = rest[transcript_at.end() :] if transcript_at else ""
    found = []
    for match in _SENDMAIL_ADDRESS.finditer(head):
        after = head[match.end() :]
        reason = _SENDMAIL_REASON.match(after.split("\n\n", 1)[0].lstrip("\n") or "")
        reason = reason or _SENDMAIL_REASON.search(after.split("\n\n", 1)[0])
        detail = reason[1] if reason else ""
        said = _transcript_for(transcript, match[1])
        found.append((match[1], f"{said} {detail}".strip() if said else detail))
    return found


def _transcript_for(transcript: str, address: str) -> str:
    """The command naming ``address`` (or the last command) and the replies to it."""
    lines = [line.strip() for line in transcript.splitlines() if line.strip()]
    chosen: list[str] = []
    current: list[str] = []
    for line in lines:
        if line.startswith(">>>"):
            if current and address.lower() in current[0].lower():
                chosen = current
            current = [line]
        elif line.startswith("<<<") and current:
            current.append(line)
    if current and (address.lower() in current[0].lower() or not chosen):
        chosen = current
    return " ".join(chosen)


# -- Gmail ---------------------------------------------------------------------------------------

_GMAIL_OLD = re.compile(
    rf"delivery to the following recipients? (?:failed permanently|has been delayed|"
    rf"failed)[^\n]*\n\s*({_ADDRESS})",
    re.IGNORECASE,
)
_GMAIL_DETAILS = re.compile(
    r"technical details of (?:permanent|temporary) failure:\s*(.*)", re.IGNORECASE | re.DOTALL
)
_GMAIL_NEW = re.compile(
    rf"\*\* [^*\n]+ \*\*.*?(?:wasn't|was not|hasn't been|has not been) delivered to "
    rf"({_ADDRESS})",
    re.IGNORECASE | re.DOTALL,
)


def _gmail(text: str) -> list[tuple[str, str]]:
    old = _GMAIL_OLD.search(text)
    if old is not None:
        details = _GMAIL_DETAILS.search(text)
        said = details[1] if details else text[old.end() :]
        return [(old[1], " ".join(said.split()))]
    new = _GMAIL_NEW.search(text)
    if new is not None:
        return [(new[1], " ".join(text[new.start() :].split()))]
    return []


# -- Exchange and Office 365 ---------------------------------------------------------------------

_EXCHANGE_ADMIN = re.compile(r"diagnostic information for administrators:", re.IGNORECASE)
_EXCHANGE_RETURNED = re.compile(
    r"(?:remote server returned|remote server at [^\n]* returned) '([^'\n]*)'|(#\d{3} [^\n]*##)",
    re.IGNORECASE,
)
_EXCHANGE_OLD = re.compile(r"the following recipient\(s\) could not be reached:", re.IGNORECASE)
_EXCHANGE_OLD_ENTRY = re.compile(
    rf"^\s*({_ADDRESS})(?: on [^\n]*)?\n((?:[ \t]+[^\n]*\n?)*)", re.MULTILINE | re.IGNORECASE
)
_O365_NEW = re.compile(rf"your message to ({_ADDRESS}) couldn't be delivered", re.IGNORECASE)


def _exchange(text: str) -> list[tuple[str, str]]:
    admin = _EXCHANGE_ADMIN.search(text)
    if admin is not None:
        rest = text[admin.end() :]
        found = []
        addresses = list(re.finditer(rf"^\s*({_ADDRESS})\s*$", rest, re.MULTILINE))
        for index, match in enumerate(addresses):
            end = addresses[index + 1].start() if index + 1 < len(addresses) else len(rest)
            said = _EXCHANGE_RETURNED.search(rest[match.end() : end])
            if said is not None:
                found.append((match[1], said[1] or said[2]))
        if found:
            return found
    old = _EXCHANGE_OLD.search(text)
    if old is not None:
        return [
            (m[1], " ".join(m[2].split())) for m in _EXCHANGE_OLD_ENTRY.finditer(text[old.end() :])
        ]
    new = _O365_NEW.search(text)
    if new is not None:
        said = _EXCHANGE_RETURNED.search(text)
        return [(new[1], said[1] or said[2] if said else " ".join(text[new.end() :].split()))]
    return []


# -- Dovecot's rejections ------------------------------------------------------------------------

_DOVECOT = re.compile(
    rf"your message to <?({_ADDRESS})>? was automatically rejected:\s*(.*)",
    re.IGNORECASE | re.DOTALL,
)


def _dovecot(text: str) -> list[tuple[str, str]]:
    found = _DOVECOT.search(text)
    return [(found[1], found[2].strip())] if found else []


# -- all of them ---------------------------------------------------------------------------------

_READERS = (_sendmail, _exim, _gmail, _exchange, _dovecot, _angle)


def per_address(text: str) -> list[tuple[str, str]]:
    """(address, what the text says of it) for each address the report's words name."""
    text = text.replace("\r\n", "\n")
    for reader in _READERS:
        found = [(a, " ".join(d.split())) for a, d in reader(text)]
        if found:
            seen: set[str] = set()
            unique = []
            for address, detail in found:
                if address.lower() not in seen:
                    seen.add(address.lower())
                    unique.append((address, detail))
            return unique
    return []


# -- who wrote it --------------------------------------------------------------------------------

_PRODUCERS = (
    ("mailroom", re.compile(r"^x-mailroom-queue-id:", re.IGNORECASE | re.MULTILINE)),
    ("postfix", re.compile(r"this is the mail system at host|x-postfix", re.IGNORECASE)),
    ("qmail", re.compile(r"this is the qmail-send program|qmail-send", re.IGNORECASE)),
    (
        "exim",
        re.compile(
            r"this message was created automatically by mail delivery software|"
            r"x-failed-recipients|eximdsn",
            re.IGNORECASE,
        ),
    ),
    (
        "sendmail",
        re.compile(
            r"transcript of session follows|the original message was received at", re.IGNORECASE
        ),
    ),
    (
        "gmail",
        re.compile(
            r"delivery to the following recipients? (?:failed|has been delayed)|"
            r"googlemail\.com|\*\* address not found \*\*|support\.google\.com/mail",
            re.IGNORECASE,
        ),
    ),
    (
        "exchange",
        re.compile(
            r"diagnostic information for administrators|the following recipient\(s\) could "
            r"not be reached|x-ms-exchange|couldn't be delivered\.",
            re.IGNORECASE,
        ),
    ),
    (
        "yahoo",
        re.compile(r"unable to deliver your message to the following address", re.IGNORECASE),
    ),
    ("ses", re.compile(r"amazonses\.com|x-ses-", re.IGNORECASE)),
    ("dovecot", re.compile(r"was automatically rejected|dovecot", re.IGNORECASE)),
)


def producer(message: Message, text: str, status_text: str = "") -> str:
    """The MTA that wrote the report, by the shape of its words and fields ("" if unknown)."""
    heads = "\n".join(f"{k}: {v}" for k, v in message.items())
    everything = f"{heads}\n{status_text}\n{text}"
    for name, pattern in _PRODUCERS:
        if pattern.search(everything):
            return name
    return ""


_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery|mdaemon", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (?:status notification|failure|failed|has failed)|"
    r"failure notice|mail delivery failed|delivery problem|non remis|unzustellbar|"
    r"could not be delivered|not delivered|rejected:|returned to sender|nondeliver",
    re.IGNORECASE,
)


def is_bounce_text(message: Message) -> bool:
    """Whether a message without a status part is a bounce by its sender or subject."""
    return bool(
        _BOUNCE_SENDER.search(header(message, "From"))
        or _BOUNCE_SUBJECT.search(header(message, "Subject"))
        or message.get("X-Failed-Recipients")
    )
