"""The spam check: a message scored by SpamAssassin's spamd (``spamassassin = "HOST:PORT"``,
Mailpit's ``--spamassassin``) or by rspamd (``rspamd = "http://HOST:11333"``), answered in
Mailpit's ``SpamAssassinResponse`` shape: ``Score``, ``IsSpam``, ``Rules`` (``Name``,
``Score``, ``Description``) and ``Error`` (a failure is reported there, with ``Rules`` null,
as Mailpit does).

spamd speaks SPAMC/1.5 (SpamAssassin's ``spamd/PROTOCOL``): one request, ``REPORT`` with the
message, and one response, whose ``Spam:`` header gives the verdict, the score and the
threshold, and whose body is the report with a table of the rules that hit. Both are a few
lines, written here with asyncio streams rather than through a client library (aiospamc, the
one kept up, brings loguru, typer and rich for its command line). rspamd is asked over HTTP
(``POST /checkv2``) with aiohttp, which the web already uses.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp

from mailroom.settings_types import parse_hostport

__all__ = ["parse_report", "rspamd_check", "spamd_check"]

PROTOCOL = "SPAMC/1.5"
MAX_RESPONSE = 1024 * 1024  # bytes of spamd's answer read at most
_SPAM_HEADER = re.compile(r"^(True|False|Yes|No)\s*;\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)", re.I)
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Za-z0-9_]+)\s+(.*)$")


def _result(
    score: float, spam: bool, rules: list[dict[str, Any]] | None, error: str = ""
) -> dict[str, Any]:
    return {"IsSpam": spam, "Error": error, "Score": round(score, 1) + 0.0, "Rules": rules}


def failure(error: str) -> dict[str, Any]:
    return _result(0.0, False, None, error)


def parse_report(report: str) -> list[dict[str, Any]]:
    """The rules of SpamAssassin's report table: `` pts rule name  description`` rows after
    the ``---- ----`` line; a description that goes on is on the next lines, indented."""
    rules: list[dict[str, Any]] = []
    in_table = False
    for line in report.splitlines():
        if line.startswith("----"):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        match = _RULE.match(line)
        if match is not None:
            rules.append(
                {
                    "Name": match[2],
                    "Score": round(float(match[1]), 1) + 0.0,  # not -0.0
                    "Description": match[3].strip(),
                }
            )
        elif rules and line.startswith(" "):
            rules[-1]["Description"] += " " + line.strip()
    return rules


async def spamd_check(address: str, message: bytes, timeout: float) -> dict[str, Any]:
    """Ask spamd at ``HOST:PORT`` for a REPORT of ``message``."""
    target = parse_hostport(address)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            try:
                writer.write(
                    f"REPORT {PROTOCOL}\r\nContent-length: {len(message)}\r\n\r\n".encode()
                    + message
                )
                writer.write_eof()  # spamd reads the request to its end
                await writer.drain()
                answer = await reader.read(MAX_RESPONSE)
                while len(answer) < MAX_RESPONSE:
                    more = await reader.read(MAX_RESPONSE - len(answer))
                    if not more:
                        break
                    answer += more
            finally:
                writer.close()
    except TimeoutError:
        return failure(f"spamd at {address} did not answer within {timeout:g} seconds")
    except ConnectionRefusedError:
        return failure(f"spamd at {address}: connection refused (is it running?)")
    except OSError as exc:
        return failure(f"spamd at {address}: {exc.strerror or exc}")
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    status = lines[0].split(None, 2)
    if len(status) < 3 or not status[0].startswith("SPAMD/") or status[1] != "0":
        return failure(f"spamd at {address} answered {lines[0]!r}")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        match = _SPAM_HEADER.match(value.strip()) if name.lower() == "spam" else None
        if match is not None:
            spam = match[1].lower() in ("true", "yes")
            rules = parse_report(body.decode("utf-8", "replace"))
            return _result(float(match[2]), spam, rules)
    return failure(f"spamd at {address} gave no Spam header")


async def rspamd_check(url: str, message: bytes, timeout: float) -> dict[str, Any]:
    """Ask rspamd's controller at ``url`` to check ``message`` (``POST /checkv2``)."""
    endpoint = url.rstrip("/") + "/checkv2"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(endpoint, data=message) as response,
        ):
            if response.status != 200:
                return failure(f"rspamd at {url} answered {response.status}")
            data = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        return failure(f"rspamd at {url}: {exc or type(exc).__name__}")
    symbols = data.get("symbols") or {}
    rules = [
        {
            "Name": name,
            "Score": round(float(symbol.get("score", 0.0)), 1),
            "Description": str(symbol.get("description") or ""),
        }
        for name, symbol in sorted(symbols.items())
    ]
    score = float(data.get("score", 0.0))
    required = float(data.get("required_score", 0.0) or 0.0)
    spam = data.get("action") in ("reject", "add header", "rewrite subject") or (
        required > 0 and score >= required
    )
    return _result(score, spam, rules)
