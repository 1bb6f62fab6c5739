"""SMTP TLS reporting (RFC 8460): count each outbound session's TLS outcome per recipient
domain and policy, and once a day send each domain that asks (its ``_smtp._tls`` TXT record)
the JSON aggregate report of the day before.

- :class:`TLSReportRecorder` keeps the counts of each UTC day in memory and on disk
  (``<data>/queue/tlsrpt/YYYY-MM-DD.json``, written at most every ``save_delay`` seconds and
  at stop: a crash loses a few seconds of statistics, never mail).
- :func:`build_report` makes the report (§4.4) and :func:`report_message` the mail that carries
  it (§5.3: ``multipart/report; report-type="tlsrpt"``, the JSON gzip'd as
  ``application/tlsrpt+gzip``, with ``TLS-Report-Domain`` and ``TLS-Report-Submitter``).
- :class:`TLSReporter` sends them, after midnight UTC and a random delay (§4.1): ``mailto:``
  through the queue (with ``TLS-Required: No``, since reports must go despite TLS failures,
  §3, and are not counted themselves), ``https:`` as a POST. A report that fails is tried again
  every ``report_retry`` seconds, up to ``report_max_attempts`` times (§5.5: for a day).

DKIM: RFC 8460 §3 says receivers ignore reports by mail without a DKIM signature of the
reporting domain. :attr:`TLSReporter.sign` is the hook for it: a callable that takes the
message and returns it signed (the email authentication work provides the signer).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import gzip
import inspect
import json
import logging
import random
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from mailroom.filemodes import private_dir, replace_private
from mailroom.logsafe import quoted
from mailroom.resolver import Resolver, ResolverError

__all__ = [
    "ReportPolicy",
    "TLSReportRecorder",
    "TLSReporter",
    "build_report",
    "parse_tlsrpt_record",
    "report_message",
]

log = logging.getLogger("mailroom.delivery.tlsrpt")

MAX_REASON = 200  # characters of a failure-reason-code
MAX_DETAILS = 1000  # distinct failure details kept per policy and day
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

Sign = Callable[[bytes], bytes | Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class ReportPolicy:
    """The policy a TLS report counts a session under (RFC 8460 §4.4)."""

    domain: str
    kind: Literal["tlsa", "sts", "no-policy-found"]
    strings: tuple[str, ...] = ()
    mx_patterns: tuple[str, ...] = ()


def _day(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%d")


class TLSReportRecorder:
    """The day's counts: ``{policy key: {"policy": {...}, "success": n, "failures": {detail
    key: {..., "count": n}}}}``, one file a UTC day."""

    def __init__(
        self,
        directory: Path,
        *,
        clock: Callable[[], float] = time.time,
        save_delay: float = 5.0,
    ) -> None:
        self.directory = directory
        self.clock = clock
        self.save_delay = save_delay
        self._days: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._saver: asyncio.TimerHandle | None = None

    def path(self, day: str) -> Path:
        return self.directory / f"{day}.json"

    def data(self, day: str) -> dict[str, Any]:
        found: dict[str, Any] | None = self._days.get(day)
        if found is None:
            try:
                loaded = json.loads(self.path(day).read_text("utf-8"))
            except (OSError, ValueError):
                loaded = {}
            found = loaded if isinstance(loaded, dict) else {}
            self._days[day] = found
        return found

    def _entry(self, policy: ReportPolicy) -> dict[str, Any]:
        day = _day(self.clock())
        key = json.dumps([policy.domain, policy.kind, policy.strings, policy.mx_patterns])
        entry: dict[str, Any] = self.data(day).setdefault(
            key,
            {
                "policy": {
                    "domain": policy.domain,
                    "kind": policy.kind,
                    "strings": list(policy.strings),
                    "mx": list(policy.mx_patterns),
                },
                "success": 0,
                "failures": {},
            },
        )
        self._changed(day)
        return entry

    def success(self, policy: ReportPolicy) -> None:
        self._entry(policy)["success"] += 1

    def failure(
        self,
        policy: ReportPolicy,
        result_type: str,
        *,
        reason: str,
        mx_host: str | None = None,
        receiving_ip: str | None = None,
        sending_ip: str | None = None,
        helo: str | None = None,
    ) -> None:
        entry = self._entry(policy)
        detail = {
            "result-type": result_type,
            "sending-mta-ip": sending_ip,
            "receiving-mx-hostname": mx_host,
            "receiving-mx-helo": helo,
            "receiving-ip": receiving_ip,
            "failure-reason-code": reason[:MAX_REASON],
        }
        detail = {k: v for k, v in detail.items() if v}
        key = json.dumps(detail, sort_keys=True)
        failures = entry["failures"]
        if key not in failures and len(failures) >= MAX_DETAILS:
            key = json.dumps({"result-type": result_type}, sort_keys=True)
            detail = {"result-type": result_type}
        failures.setdefault(key, {**detail, "count": 0})["count"] += 1

    def _changed(self, day: str) -> None:
        self._dirty.add(day)
        if self._saver is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        self._saver = loop.call_later(self.save_delay, self._save_later)

    def _save_later(self) -> None:
        self._saver = None
        try:
            self.save()
        except OSError:
            log.exception("TLS report counts could not be saved")

    def save(self) -> None:
        """Write the changed days now (atomic: a new file renamed over the old)."""
        if self._saver is not None:
            self._saver.cancel()
            self._saver = None
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return
        private_dir(self.directory)
        for day in dirty:
            replace_private(self.path(day), json.dumps(self._days.get(day, {}), indent=1).encode())

    def domains(self, day: str) -> list[str]:
        return sorted({entry["policy"]["domain"] for entry in self.data(day).values()})

    def days(self) -> list[str]:
        on_disk = {p.stem for p in self.directory.glob("????-??-??.json")}
        return sorted(on_disk | set(self._days))


def parse_tlsrpt_record(records: list[str]) -> list[str]:
    """The ``rua`` URIs of the ``_smtp._tls`` TXT records (RFC 8460 §3): exactly one record
    beginning with ``v=TLSRPTv1``, else none (the domain takes no reports)."""
    candidates = [r for r in records if re.match(r"v=TLSRPTv1[ \t]*(;|$)", r)]
    if len(candidates) != 1:
        return []
    uris: list[str] = []
    for part in candidates[0].split(";")[1:]:
        name, equals, value = part.strip(" \t").partition("=")
        if not part.strip(" \t"):
            continue
        if not equals or not _EXT_NAME.fullmatch(name):
            return []
        if name == "rua" and not uris:
            uris = [u.strip(" \t") for u in value.split(",") if u.strip(" \t")]
    return [u for u in uris if u.lower().startswith(("mailto:", "https:"))]


def _datetime(day: str, end: bool) -> str:
    return f"{day}T23:59:59Z" if end else f"{day}T00:00:00Z"


def build_report(
    day: str,
    domain: str,
    data: dict[str, Any],
    *,
    organization: str,
    contact: str,
    report_id: str,
) -> dict[str, Any]:
    """The aggregate report of ``day`` for ``domain`` (RFC 8460 §4.4)."""
    policies = []
    for entry in data.values():
        policy = entry["policy"]
        if policy["domain"] != domain:
            continue
        described: dict[str, Any] = {"policy-type": policy["kind"], "policy-domain": domain}
        if policy["strings"]:
            described["policy-string"] = policy["strings"]
        if policy["mx"]:
            described["mx-host"] = policy["mx"]
        details = []
        failed = 0
        for detail in entry["failures"].values():
            item = {k: v for k, v in detail.items() if k != "count"}
            item["failed-session-count"] = detail["count"]
            failed += detail["count"]
            details.append(item)
        policies.append(
            {
                "policy": described,
                "summary": {
                    "total-successful-session-count": entry["success"],
                    "total-failure-session-count": failed,
                },
                "failure-details": details,
            }
        )
    return {
        "organization-name": organization,
        "date-range": {
            "start-datetime": _datetime(day, end=False),
            "end-datetime": _datetime(day, end=True),
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    }


def _filename(submitter: str, domain: str, day: str, unique: str) -> str:
    """§5.1: ``sender!policy-domain!begin-timestamp!end-timestamp!unique-id.json.gz``."""
    start = datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.UTC)
    begin = int(start.timestamp())
    return f"{submitter}!{domain}!{begin}!{begin + 86399}!{unique}.json.gz"


def report_message(
    report: dict[str, Any],
    *,
    domain: str,
    submitter: str,
    sender: str,
    recipient: str,
    day: str,
    unique: str,
) -> bytes:
    """The report as a mail (§5.3)."""
    compressed = gzip.compress(json.dumps(report, indent=1).encode("utf-8"), mtime=0)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = f"<{report['report-id']}>"
    message["Subject"] = (
        f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report['report-id']}>"
    )
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = submitter
    # RFC 8460 §3: a report goes despite TLS failures (RFC 8689 §4.2.2 says so to our queue).
    message["TLS-Required"] = "No"
    message.set_content(
        f"This is an aggregate TLS report (RFC 8460) from {submitter} about mail it sent to "
        f"{domain} on {day} (UTC).\n"
    )
    message.add_attachment(
        compressed,
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=_filename(submitter, domain, day, unique),
    )
    message.set_type("multipart/report")  # from multipart/mixed, keeping the boundary
    message.set_param("report-type", "tlsrpt")
    return message.as_bytes(policy=SMTP)


DeliverLocal = Callable[..., Awaitable[str]]


class TLSReporter:
    """Sends each day's reports (see the module's docstring)."""

    def __init__(
        self,
        recorder: TLSReportRecorder,
        resolver: Resolver,
        *,
        hostname: str,
        deliver_local: DeliverLocal,
        ssl_context: Callable[[], ssl.SSLContext],
        organization: str | None = None,
        contact: str | None = None,
        sender: str | None = None,
        delay: float = 3600.0,
        retry: float = 3600.0,
        max_attempts: int = 24,
        https_port: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.recorder = recorder
        self.resolver = resolver
        self.hostname = hostname
        self.deliver_local = deliver_local
        self.ssl_context = ssl_context
        self.organization = organization or hostname
        self.contact = contact or f"postmaster@{hostname}"
        self.sender = sender or f"noreply-tlsrpt@{hostname}"
        self.delay = delay
        self.retry = retry
        self.max_attempts = max_attempts
        self.clock = clock
        # The DKIM hook (RFC 8460 §3): a signer for the report mail; None sends it unsigned.
        self.sign: Sign | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent: list[tuple[str, str, str]] = []  # (day, domain, uri) of reports sent

    # -- the daily loop ----------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.recorder.save)

    async def _loop(self) -> None:
        while True:
            now = self.clock()
            today = _day(now)
            for day in self.recorder.days():
                if day < today:
                    try:
                        await self.send_day(day)
                    except Exception:
                        log.exception("TLS reports of %s", day)
            tomorrow = datetime.datetime.strptime(today, "%Y-%m-%d").replace(
                tzinfo=datetime.UTC
            ) + datetime.timedelta(days=1)
            wait = tomorrow.timestamp() - now + random.uniform(0, self.delay)
            # Days whose reports failed are looked at again sooner.
            await asyncio.sleep(max(1.0, min(wait, self.retry)))

    def _state_path(self, day: str) -> Path:
        return self.recorder.directory / f"{day}.sent.json"

    def _state(self, day: str) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self._state_path(day).read_text("utf-8"))
        except (OSError, ValueError):
            state = {}
        return state

    def _save_state(self, day: str, state: dict[str, Any]) -> None:
        private_dir(self.recorder.directory)
        replace_private(self._state_path(day), json.dumps(state).encode("utf-8"))

    async def send_day(self, day: str) -> dict[str, str]:
        """Send the reports of ``day`` not sent yet; each domain's outcome: ``sent``,
        ``no rua``, or why it failed (tried again later)."""
        await asyncio.to_thread(self.recorder.save)
        state = await asyncio.to_thread(self._state, day)
        outcomes: dict[str, str] = {}
        for domain in self.recorder.domains(day):
            done = state.get(domain, {})
            if done.get("done"):
                continue
            outcome = await self._send_domain(day, domain)
            outcomes[domain] = outcome
            attempts = int(done.get("attempts", 0)) + 1
            finished = outcome in ("sent", "no rua") or attempts >= self.max_attempts
            if not finished:
                log.info(
                    "TLS report of %s for %s failed (%s); tried again later",
                    day,
                    domain,
                    quoted(outcome),
                )
            state[domain] = {"done": finished, "attempts": attempts, "outcome": outcome}
        await asyncio.to_thread(self._save_state, day, state)
        return outcomes

    async def _send_domain(self, day: str, domain: str) -> str:
        try:
            uris = parse_tlsrpt_record(await self.resolver.policy_txt(f"_smtp._tls.{domain}"))
        except ResolverError as exc:
            return f"DNS: {exc}"
        if not uris:
            return "no rua"
        unique = secrets.token_hex(6)
        report_id = f"{day}.{unique}.{domain}@{self.hostname}"
        report = build_report(
            day,
            domain,
            self.recorder.data(day),
            organization=self.organization,
            contact=self.contact,
            report_id=report_id,
        )
        failures = []
        for uri in uris:
            try:
                if uri.lower().startswith("mailto:"):
                    await self._mail(uri, report, domain, day, unique)
                else:
                    await self._post(uri, report)
            except Exception as exc:
                failures.append(f"{uri}: {exc}")
                continue
            self.sent.append((day, domain, uri))
            log.info("TLS report of %s for %s sent to %s", day, domain, quoted(uri))
            # §3: one accepted report is enough.
            return "sent"
        return "; ".join(failures)

    async def _mail(
        self, uri: str, report: dict[str, Any], domain: str, day: str, unique: str
    ) -> None:
        address = unquote(urlsplit(uri).path).split(",")[0].strip()
        if "@" not in address:
            raise ValueError(f"not a mail address: {address!r}")
        message = report_message(
            report,
            domain=domain,
            submitter=self.hostname,
            sender=self.sender,
            recipient=address,
            day=day,
            unique=unique,
        )
        if self.sign is not None:
            signed = self.sign(message)
            message = await signed if inspect.isawaitable(signed) else signed
        await self.deliver_local(sender="", recipients=[address], message=message)

    async def _post(self, uri: str, report: dict[str, Any]) -> None:
        import aiohttp

        from mailroom.delivery.mtasts import _DNSResolver

        body = gzip.compress(json.dumps(report).encode("utf-8"), mtime=0)
        connector = aiohttp.TCPConnector(
            resolver=_DNSResolver(self.resolver), ssl=self.ssl_context(), force_close=True
        )
        async with (
            aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=60),
                trust_env=False,
            ) as session,
            session.post(
                uri,
                data=body,
                headers={"Content-Type": "application/tlsrpt+gzip"},
                allow_redirects=False,
            ) as response,
        ):
            if not 200 <= response.status < 300:
                raise OSError(f"HTTP {response.status}")
