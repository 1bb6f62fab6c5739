"""The pytest plugin, as a user of it would run it: pytester writes a test file that uses the
``smtp_server`` fixture and runs pytest on it in a subprocess."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

APP_AND_TESTS = '''
import smtplib
from email.message import EmailMessage

import pytest


def sign_up(host, port, address):
    """The application under test: sends a welcome mail."""
    message = EmailMessage()
    message["From"] = "app@example.test"
    message["To"] = address
    message["Subject"] = "Welcome!"
    message.set_content("Hello and welcome.")
    with smtplib.SMTP(host, port) as smtp:
        smtp.send_message(message)


def test_welcome_mail_is_sent(smtp_server):
    sign_up(smtp_server.host, smtp_server.port, "bob@example.test")
    [mail] = smtp_server.messages
    assert mail["To"] == "bob@example.test"
    assert mail["Subject"] == "Welcome!"
    assert mail.sender == "app@example.test"
    assert mail.recipients == ["bob@example.test"]
    assert mail.message.get_content().strip() == "Hello and welcome."


def test_a_bounce_reaches_the_application(smtp_server):
    smtp_server.fail("rcpt", "550 5.1.1 No such user", match="*@bounce.test")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        sign_up(smtp_server.host, smtp_server.port, "nobody@bounce.test")
    assert refused.value.recipients == {
        "nobody@bounce.test": (550, b"5.1.1 No such user")}
    assert smtp_server.messages == []
    [session] = smtp_server.transcripts
    texts = [entry["text"] for entry in session["entries"]]
    assert "550 5.1.1 No such user" in texts
    assert any(t.startswith("fault rule") for t in texts)


def test_temporary_failure_then_success(smtp_server):
    smtp_server.fail("mail", "451 4.3.0 Try again later", times=1)
    with pytest.raises(smtplib.SMTPSenderRefused):
        sign_up(smtp_server.host, smtp_server.port, "bob@example.test")
    sign_up(smtp_server.host, smtp_server.port, "bob@example.test")
    assert len(smtp_server.messages) == 1


@pytest.fixture
def smtp_server_settings():
    return {"max_message_size": "1K"}


def test_settings_can_be_overridden(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as smtp:
        smtp.ehlo()
        assert smtp.esmtp_features["size"] == "1024"
'''


def test_plugin_fixture_in_a_users_test_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=APP_AND_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_a_failing_expectation_fails(pytester: pytest.Pytester) -> None:
    # The fixture must not make every test pass: a wrong expectation is reported as a failure.
    pytester.makepyfile(
        test_wrong="""
import smtplib

def test_wrong_subject(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as smtp:
        smtp.sendmail("a@example.test", ["b@example.test"], b"Subject: one\\r\\n\\r\\nbody\\r\\n")
    [mail] = smtp_server.messages
    assert mail["Subject"] == "two"
"""
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 'one' == 'two'*"])
