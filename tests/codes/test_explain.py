import json
import subprocess
import sys

import pytest

from mailroom.codes import ExplainError, explain


def run(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "mailroom", "explain", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_basic_code():
    result = explain("550")
    assert result.code == 550 and result.status is None
    assert result.basic.category == "Permanent Negative Completion"
    assert result.basic.area == "Mail system"
    assert result.action == "do not retry as is"
    assert not result.warnings


def test_enhanced_code():
    result = explain("5.7.1")
    assert result.status.entry.title.startswith("Delivery not authorized")
    assert result.action == "do not retry as is"
    assert explain("4.2.2").action == "retry later"
    assert explain("2.0.0").action == "done"


def test_reply_line():
    result = explain("550 5.1.1 <x@y>: no such user")
    assert result.code == 550 and str(result.status) == "5.1.1"
    assert result.text_lines == ["<x@y>: no such user"]
    assert "MAILBOX_UNKNOWN" in result.mailroom_names()


def test_intermediate_and_transient():
    assert explain("354 go ahead").action == "continue"
    result = explain("421 4.4.2 timeout")
    assert result.action == "retry later" and "closing" in result.advice


def test_warnings_for_mismatch_nonstandard_and_unregistered():
    assert any("disagrees" in w for w in explain("550 2.1.1 odd").warnings)
    assert any("non-standard" in w for w in explain("240").warnings)
    assert any("not enumerated" in w for w in explain("5.1.99").warnings)
    assert any("not defined" in w for w in explain("5.9.1").warnings)
    assert any("non-standard" in w for w in explain("523").warnings)


@pytest.mark.parametrize("text", ["", "hello", "650", "3.1.1", "55", "5.1", "250-unfinished"])
def test_bad_input_raises_explain_error(text):
    with pytest.raises(ExplainError):
        explain(text)


def test_cli_forms():
    out = run("550")
    assert out.returncode == 0 and "Permanent Negative Completion" in out.stdout
    out = run("5.7.1")
    assert out.returncode == 0 and "Delivery not authorized" in out.stdout
    out = run("550 5.1.1 <x@y>: no such user")
    assert out.returncode == 0 and "Bad destination mailbox address" in out.stdout
    assert "do not retry as is" in out.stdout


def test_cli_stdin_multi_line_and_json():
    out = run("-", "--json", stdin="452-4.5.3 Too many recipients\r\n452 4.5.3 try later\r\n")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["code"] == 452
    assert data["enhanced"]["code"] == "4.5.3"
    assert data["enhanced"]["title"] == "Too many recipients"
    assert data["text"] == ["Too many recipients", "try later"]
    assert data["action"] == "retry later"


@pytest.mark.parametrize("arg", ["nonsense", "999", "1.2.3"])
def test_cli_bad_input_exits_2_without_traceback(arg):
    out = run(arg)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.startswith("mailroom explain:")


def _sent_statuses() -> set[str]:
    from mailroom.codes.catalogue import CATALOGUE
    from mailroom.codes.reports import REPORTS

    found = {str(t.status) for t in CATALOGUE.values() if t.status is not None}
    return found | {str(r.status) for r in REPORTS.values()}


@pytest.mark.parametrize("code", sorted(_sent_statuses()))
def test_every_code_mailroom_sends_is_explained_with_where_it_sends_it(code):
    """Issue 17: `mailroom explain` explains every code mailroom can send: the registry's
    entry, and the replies or report statuses that carry it."""
    result = explain(code)
    assert result.status.entry is not None, f"{code} is not in the registry"
    assert result.mailroom_names() or result.report_names(), code
    text = result.render()
    assert "mailroom sends this as" in text or "mailroom reports this as" in text


def test_a_code_mailroom_never_sends_says_why():
    text = explain("5.7.7").render()
    assert "mailroom does not send this: RFC 3463 §3.8 defines it" in text
    assert "mailroom does not send this" not in explain("5.7.23").render()  # email auth landed
    assert "mailroom sends this as: SPF_FAIL" in explain("5.7.23").render()
    assert "mailroom reports this as REQUIRETLS_TLS_FAILED" in explain("5.7.10").render()
    assert "mailroom reports this as MX_LOOPS_BACK" in run("5.4.6").stdout
