from pathlib import Path

from mailroom.codes.catalogue import CATALOGUE, NOT_SENT
from mailroom.codes.docs import replies_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "replies.md"


def test_docs_replies_md_is_in_sync_with_the_catalogue():
    assert DOC.read_text("utf-8") == replies_markdown(), (
        "docs/replies.md is stale: run `make docs` (mailroom replies --markdown > docs/replies.md)"
    )


def test_docs_list_every_reply_and_every_reason():
    text = replies_markdown()
    for name in CATALOGUE:
        assert f"| {name} |" in text
    for code, status in NOT_SENT:
        assert f"| {f'{code} {status}' if status else code} |" in text
