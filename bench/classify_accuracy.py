"""Accuracy of mailroom.codes.classify per reason on a labelled set of real replies.

    python bench/classify_accuracy.py [FILE.tsv] [--misses]

FILE defaults to tests/data/real-replies-dev.tsv (columns reply_text, reason, replycode,
status, smtp_command, source; labels are Sisimai's). Only reply_text is given to the
classifier, as the outbound queue would give it a reply; --with-command also passes the
smtp_command column, as the queue knows which command a reply answered; --with-hints also
passes replycode and status, as a DSN's Status: field gives them beside the text.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

from mailroom.codes.classify import Classification, classify

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "data" / "real-replies-dev.tsv"


def load(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def evaluate(
    rows: list[dict[str, str]], *, with_command: bool = False, with_hints: bool = False
) -> tuple[Counter[str], Counter[str], list[tuple[str, Classification, str]]]:
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    misses: list[tuple[str, Classification, str]] = []
    for row in rows:
        command = (row.get("smtp_command") or None) if with_command else None
        code = int(row["replycode"]) if with_hints and row.get("replycode") else None
        status = (row.get("status") or None) if with_hints else None
        got = classify(row["reply_text"], command=command, code=code, status=status)
        total[row["reason"]] += 1
        if got.reason == row["reason"]:
            right[row["reason"]] += 1
        else:
            misses.append((row["reason"], got, row["reply_text"]))
    return total, right, misses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--misses", action="store_true", help="print every miss")
    parser.add_argument("--with-command", action="store_true", help="pass smtp_command too")
    parser.add_argument("--with-hints", action="store_true", help="pass replycode, status too")
    args = parser.parse_args(argv)
    total, right, misses = evaluate(
        load(args.file), with_command=args.with_command, with_hints=args.with_hints
    )
    print(f"{'reason':<16} {'right':>5} {'of':>4} {'accuracy':>8}")
    for reason in sorted(total, key=lambda r: (-total[r], r)):
        share = right[reason] / total[reason]
        print(f"{reason:<16} {right[reason]:>5} {total[reason]:>4} {share:>8.0%}")
    n, k = sum(total.values()), sum(right.values())
    print(f"{'all':<16} {k:>5} {n:>4} {k / n:>8.1%}")
    macro = sum(right[r] / total[r] for r in total) / len(total)
    print(f"{'macro average':<16} {'':>5} {'':>4} {macro:>8.1%}")
    if args.misses:
        for expected, got, text in misses:
            found = f"{got.evidence}; {got.code} {got.status} {got.command}"
            print(f"\n[{expected}] got {got.reason} ({found})\n  {text[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
