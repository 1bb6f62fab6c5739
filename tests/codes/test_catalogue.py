"""The whole catalogue, walked: every reply mailroom sends is consistent with the RFCs."""

import csv
import io
from importlib import resources

import pytest

from mailroom.codes import Reply, describe_basic_code
from mailroom.codes.catalogue import CATALOGUE, NOT_SENT
from mailroom.codes.registry import command_replies
from mailroom.codes.template import COMMAND_KEYS

ENTRIES = sorted(CATALOGUE.items())


def _sample(template):
    return template(**{name: "x" for name in template.params})


@pytest.mark.parametrize("name, template", ENTRIES)
def test_entry_is_consistent(name, template):
    assert template.name == name
    reply = _sample(template)
    assert isinstance(reply, Reply)
    assert describe_basic_code(template.code).is_standard, (
        f"{name}: {template.code} is non-standard"
    )
    if template.status is not None:
        assert template.status.status_class == template.code // 100
        assert template.status.is_registered, f"{name}: {template.status} is not in the registry"
    else:
        # RFC 2034 §3: only the greeting, EHLO/HELO replies and class-3 replies go without one.
        assert template.code // 100 == 3 or template.commands[0] in ("GREETING", "EHLO", "HELO"), (
            name
        )


@pytest.mark.parametrize("name, template", ENTRIES)
def test_basic_code_is_allowed_for_the_commands_it_answers(name, template):
    rows = command_replies()
    any_command = rows["*ANY*"].allowed
    assert template.commands, f"{name} names no command"
    for key in template.commands:
        allowed = rows[COMMAND_KEYS[key]].allowed | any_command
        assert template.code in allowed, f"{name}: {template.code} not allowed for {key}"


def test_examples_from_the_issue():
    assert _sample(CATALOGUE["MAILBOX_UNKNOWN"]).format().startswith(b"550 5.1.1 ")
    assert CATALOGUE["RELAY_DENIED"].label == "550 5.7.1"
    assert (
        CATALOGUE["TOO_MANY_RECIPIENTS"]().format() == b"452 4.5.3 Error: too many recipients\r\n"
    )
    assert CATALOGUE["BYE"]().format() == b"221 2.0.0 Bye\r\n"


def test_parameters_are_filled_and_cannot_break_the_line():
    reply = CATALOGUE["MAILBOX_UNKNOWN"](address="<bob@example.test>")
    assert (
        reply.format()
        == b"550 5.1.1 <bob@example.test>: Recipient address rejected: User unknown\r\n"
    )
    sneaky = CATALOGUE["MAILBOX_UNKNOWN"](address="<a>\r\n250 ok")
    assert b"\r\n250" not in sneaky.format()
    with pytest.raises(TypeError, match="needs address"):
        CATALOGUE["MAILBOX_UNKNOWN"]()


def test_fixed_replies_are_cached():
    assert CATALOGUE["BYE"]() is CATALOGUE["BYE"]()
    assert CATALOGUE["BYE"].wire == b"221 2.0.0 Bye\r\n"


def _common_replies():
    text = resources.files("mailroom.codes").joinpath("data/common-replies.csv").read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("row", _common_replies(), ids=lambda r: f"{r['code']} {r['enhanced']}")
def test_every_common_reply_has_a_place(row):
    code, enhanced = int(row["code"]), row["enhanced"] or None
    in_catalogue = any(
        t.code == code and (enhanced is None or str(t.status) == enhanced)
        for t in CATALOGUE.values()
    )
    assert in_catalogue or (code, enhanced) in NOT_SENT, f"{code} {enhanced}: no entry, no reason"
    if (code, enhanced) in NOT_SENT:
        assert not in_catalogue, (
            f"{code} {enhanced} is listed as never sent but is in the catalogue"
        )
