"""mailroom.policy.content: the fingerprint that tells copies of one mass mailing (a
subscription bomb's confirmation requests) from different letters, and the trace count."""

from __future__ import annotations

import pytest

from mailroom.policy.content import count_received, fingerprint


def _message(subject: str, body: str) -> bytes:
    return f"From: a@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


def test_copies_of_one_mailing_share_a_fingerprint() -> None:
    first = _message(
        "Confirm your subscription #4821",
        "Hello bob@example.test, your code is 8f3a9c21d7e4. Visit https://x.example/c?t=1 now.",
    )
    second = _message(
        "Confirm your subscription #977",
        "Hello alice@example.net, your code is 0b77e2aa9f10. Visit https://x.example/c?t=2 now.",
    )
    assert fingerprint(first) == fingerprint(second)


def test_different_letters_do_not() -> None:
    assert fingerprint(_message("Lunch", "Noon at the usual place?")) != fingerprint(
        _message("Lunch", "Shall we meet at one instead?")
    )


def test_received_fields_are_counted_in_the_header_only() -> None:
    head = b"Received: from a\r\nReceived: from b\r\nSubject: x\r\n\r\nReceived: in the body\r\n"
    assert count_received(head) == 2


# A stranger's message reaches this at the end of DATA on an MX: its Subject may be as long as
# the head policy reads (64 KiB). Runs of what an address may hold once made the address
# pattern scan on to the run's end from every position (60 KB of dots: 40 s of the event
# loop). The bound guards against that hang, a hundred times what it takes now.
@pytest.mark.timeout(10)
@pytest.mark.parametrize("run", [".", "1.", "a%", "-+"])
def test_a_long_subject_is_read_in_linear_time(run: str) -> None:
    subject = run * (60_000 // len(run))
    assert fingerprint(_message(subject, "x")) == fingerprint(_message(subject, "x"))
    assert fingerprint(_message(subject, "x")) != fingerprint(_message(subject, "y"))


# A Subject folded over a million lines (4 MB): each line was added to the value as it came,
# time with the square of the fold (320,000 lines: 4 s). Joined once now. A guard against a
# hang, not a speed measure.
@pytest.mark.timeout(20)
def test_a_long_fold_is_read_in_linear_time() -> None:
    folded = b"From: a@example.org\r\nSubject: start" + b"\r\n a" * 1_000_000 + b"\r\n\r\nbody\r\n"
    short = b"From: a@example.org\r\nSubject: start" + b" a" * 1_000_000 + b"\r\n\r\nbody\r\n"
    assert fingerprint(folded) == fingerprint(short)
