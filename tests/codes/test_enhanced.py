import csv
import io
from importlib import resources

import pytest

from mailroom.codes import EnhancedStatus, EnhancedStatusError
from mailroom.codes.registry import class_entries, enhanced_code_entries, subject_entries


def _registry_codes() -> list[str]:
    text = resources.files("mailroom.codes").joinpath("data/enhanced-status-codes.csv")
    return [row["code"] for row in csv.DictReader(io.StringIO(text.read_text("utf-8")))]


def test_registry_has_all_81_codes_3_classes_8_subjects():
    assert len(enhanced_code_entries()) == 81
    assert sorted(class_entries()) == [2, 4, 5]
    assert sorted(subject_entries()) == list(range(8))


@pytest.mark.parametrize("key", _registry_codes())
@pytest.mark.parametrize("status_class", [2, 4, 5])
def test_every_registry_code_parses_formats_and_finds_its_entry(key, status_class):
    text = key.replace("X", str(status_class))
    status = EnhancedStatus.parse(text)
    assert str(status) == text
    assert status.registry_key == key
    assert status.entry is not None and status.entry.code == key
    assert status.is_registered
    assert status.class_entry.code.startswith(str(status_class))
    assert status.subject_entry is not None


def test_registry_entry_fields():
    entry = EnhancedStatus.parse("5.1.1").entry
    assert entry.title == "Bad destination mailbox address"
    assert entry.basic_codes == ("451", "550")
    assert "RFC3463" in entry.reference
    assert "does not exist" in entry.description
    # Registry quirks are kept: free-text basic codes and the deprecated X.6.10.
    assert EnhancedStatus.parse("4.7.24").entry.basic_codes == ("451", "550")
    assert EnhancedStatus.parse("5.7.17").entry.basic_codes == ("5XX",)
    assert EnhancedStatus.parse("5.6.10").entry.title == ""


def test_unenumerated_code_parses_and_is_explained_by_class_and_subject():
    status = EnhancedStatus.parse("5.1.99")
    assert status.entry is None and not status.is_registered
    assert status.subject_entry.title == "Addressing Status"
    assert status.class_entry.title == "Permanent Failure"


@pytest.mark.parametrize(
    "text",
    ["", "5", "5.1", "3.1.1", "1.0.0", "5.1.1.1", "5.1000.1", "5.1.1000", "x.1.1", "5..1", "5.1.a"],
)
def test_malformed_codes_are_refused(text):
    with pytest.raises(EnhancedStatusError):
        EnhancedStatus.parse(text)


def test_leading_zeros_are_read_and_normalised():
    assert str(EnhancedStatus.parse("5.01.001")) == "5.1.1"


def test_match_prefix_splits_code_from_text():
    assert EnhancedStatus.match_prefix("5.1.1 no such user") == (
        EnhancedStatus(5, 1, 1),
        "no such user",
    )
    assert EnhancedStatus.match_prefix("5.1.1") == (EnhancedStatus(5, 1, 1), "")
    assert EnhancedStatus.match_prefix("5.1.1x") is None
    assert EnhancedStatus.match_prefix("hello") is None


def test_constructor_checks_ranges():
    with pytest.raises(EnhancedStatusError):
        EnhancedStatus(3, 0, 0)
    with pytest.raises(EnhancedStatusError):
        EnhancedStatus(5, 1000, 0)
