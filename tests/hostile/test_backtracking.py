"""Patterns that a stranger's text could make backtrack without end.

Python's ``re`` holds the interpreter lock while it matches, so one pattern that backtracks
exponentially on a few dozen bytes stops every thread of the process: the SMTP event loop as
well as the web worker that parses a caught message. The bounce reader's source-route pattern
(``^(?:@[^:,\\s]+,?)+:``) let a hop's domain hold "@", so a Final-Recipient of 46 "@" had
every way of cutting the run into hops tried before it failed: over a minute of CPU, and the
catcher's web UI asks for a message's bounce records each time the message is opened.

The first test reads every compiled pattern that mailroom keeps in a module or class with
short runs of its own characters and of the usual separators; the second, every pattern
written out inside a function (``re.sub(r"...", ...)``), found in the source. An exponential pattern does not
finish on 64 characters; a linear or quadratic one takes microseconds. (Quadratic patterns on
long runs are guarded where they are used: tests/bounces, tests/codes, tests/web.) The second
third is the attack end to end, against ``mailroom serve``.
"""

from __future__ import annotations

import ast
import importlib
import itertools
import json
import pkgutil
import re
import smtplib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mailroom
from tests.live import queue_id_of, wait_for

_SEPARATORS = " \t-.<>@0a=;:\"\\()/[],_+'*#!%&|{}\r\n"
_RUN_LENGTH = 64


def _patterns_in(value: object, depth: int = 0) -> Iterator[re.Pattern[Any]]:
    if isinstance(value, re.Pattern):
        yield value
    elif depth < 8 and isinstance(value, tuple | list | frozenset | set):
        for item in value:
            yield from _patterns_in(item, depth + 1)
    elif depth < 8 and isinstance(value, dict):
        for key, item in value.items():
            yield from _patterns_in(key, depth + 1)
            yield from _patterns_in(item, depth + 1)


def _every_pattern() -> dict[int, tuple[str, re.Pattern[Any]]]:
    found: dict[int, tuple[str, re.Pattern[Any]]] = {}
    for module_info in pkgutil.walk_packages(mailroom.__path__, "mailroom."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            owner = getattr(value, "__module__", None)
            if isinstance(value, type) and owner == module.__name__:
                values = list(vars(value).values())
            else:
                values = [value]
            for pattern in itertools.chain.from_iterable(map(_patterns_in, values)):
                found.setdefault(id(pattern), (f"{module.__name__}.{name}", pattern))
    return found


def _runs(pattern: re.Pattern[Any]) -> Iterator[str]:
    """Runs of one character and of two (a word character, a space, an "@", a digit or a
    dot beside each other character): the characters the pattern names and the separators."""
    source = pattern.pattern if isinstance(pattern.pattern, str) else pattern.pattern.decode()
    alphabet = sorted({c for c in source if c.isprintable()} | set(_SEPARATORS))
    for first in alphabet:
        yield first * _RUN_LENGTH
        for second in "a @0.":
            yield (second + first) * (_RUN_LENGTH // 2)


@pytest.mark.timeout(120)
def test_no_pattern_backtracks_without_end() -> None:
    patterns = _every_pattern()
    assert len(patterns) > 400  # every module was read (422 when this test was written)
    for _where, pattern in patterns.values():
        _search_runs(pattern)


def _search_runs(pattern: re.Pattern[Any]) -> None:
    """Search each run, and each run with an end the pattern may not expect."""
    for run in _runs(pattern):
        for text in (run, run + "!", run + "\x00"):
            if isinstance(pattern.pattern, bytes):
                pattern.search(text.encode("latin-1", "replace"))
            else:
                pattern.search(text)


_RE_FUNCTIONS = {"compile", "search", "match", "fullmatch", "sub", "subn", "findall", "finditer"}
_RE_FUNCTIONS |= {"split"}


def _patterns_in_functions() -> dict[str, re.Pattern[Any]]:
    """Each pattern written as a literal in a call to ``re`` inside a function, compiled with
    the flags the call gives (``re.sub(r"\\s+", " ", text)``), by file and line."""
    found: dict[str, re.Pattern[Any]] = {}
    root = Path(mailroom.__file__).parent
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = (
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        )
        for function in functions:
            for call in ast.walk(function):
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and isinstance(call.func.value, ast.Name)
                    and call.func.value.id == "re"
                    and call.func.attr in _RE_FUNCTIONS
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    continue
                flags: Any = 0
                flag_nodes = [k.value for k in call.keywords if k.arg == "flags"]
                if call.func.attr == "compile" and len(call.args) > 1:
                    flag_nodes.append(call.args[1])
                for node in flag_nodes:  # re.I | re.M, as the source writes them
                    flags |= eval(compile(ast.Expression(node), str(path), "eval"), {"re": re})
                where = f"{path.relative_to(root)}:{call.lineno}"
                found[where] = re.compile(call.args[0].value, flags)
    return found


@pytest.mark.timeout(120)
def test_no_pattern_written_in_a_function_backtracks_without_end() -> None:
    patterns = _patterns_in_functions()
    assert len(patterns) >= 25  # every file was read (31 when this test was written)
    for _where, pattern in patterns.items():
        _search_runs(pattern)


def _send(smtp: tuple[str, int], raw: bytes) -> str:
    with smtplib.SMTP(*smtp, timeout=30) as client:
        client.ehlo("client.example.test")
        client.mail("MAILER-DAEMON@mx.example.test")
        client.rcpt("sender@example.test")
        code, reply = client.data(raw)
    assert code == 250, reply
    return queue_id_of(reply)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=20) as response:
        return json.loads(response.read())


def test_what_a_stranger_sends_is_shown_at_once(serve_process: Any) -> None:
    """The catcher keeps answering, and the web answers, for a caught report whose
    Final-Recipient is a run of "@" (before: the process spun on one regex without end),
    and for a message whose HTML is "<link " repeated, whose List-Unsubscribe is a run of "<"
    (before: tens of seconds to minutes a request, the interpreter lock held) and whose To is
    a run of "(" (a 500 before)."""
    process = serve_process("--web", "127.0.0.1:0")
    web = wait_for(lambda: re.search(r"mailroom: web UI and API on (http://\S+/)", process.stderr))
    hostile = "@" * 60
    report = (
        "From: MAILER-DAEMON@mx.example.test\r\nTo: sender@example.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.test\r\n\r\n"
        f"Final-Recipient: rfc822; {hostile}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B--\r\n"
    ).encode()
    report_id = _send(process.smtp, report)
    (record,) = _get_json(f"{web[1]}api/v1/message/{report_id}/bounces")["Records"]
    assert (record["recipient"], record["reason"]) == (hostile, "userunknown")

    folded = "\r\n ".join(["<" * 900] * 150)  # 135,000 "<" in lines of 900
    parens = "\r\n ".join(["(" * 900] * 6)
    html = "\r\n".join(["<link " * 150] * 150)  # 22,500 "<link " without an href
    page = (
        f"From: a@example.test\r\nTo: {parens}\r\nSubject: links\r\n"
        f"List-Unsubscribe: {folded}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n{html}\r\n"
    ).encode()
    page_id = _send(process.smtp, page)
    message = _get_json(f"{web[1]}api/v1/message/{page_id}")
    assert message["ListUnsubscribe"]["Links"] == []
    assert message["To"] == []  # nested comments: RecursionError and a 500 before
    assert message["RemoteContent"] is False  # no <link> names an href
    with smtplib.SMTP(*process.smtp, timeout=10) as client:
        assert client.noop()[0] == 250
    assert process.terminate() == 0
