"""Accuracy of mailroom.codes.classify per reason on labelled sets of real replies.

    python bench/classify_accuracy.py [--held] [FILE.tsv ...] [--misses] [--confusion]
                                      [--half A|B] [--with-command] [--with-hints]

With no FILE it prints, held-out numbers first:

1. the measurements on replies the rules were NOT written from, as recorded while the rules
   were built (bench/classify_rounds.tsv: the commit, the rules then, the set scored; check
   one out and run this script on the set named to reproduce it);
2. with ``--held``: the current rules on ``real-replies-held-4.tsv`` and
   ``real-replies-held-5.tsv``, the sets kept apart to judge them, per reason with what each
   was taken for, in the three modes (text only, with the command, with the command and the
   DSN's codes). The rules are never written from their misses (so --misses is refused on
   them), and each scoring while they were built was recorded;
3. the current rules on the sets they have been written from (not held out): held-3 (kept
   apart for rounds 2 to 4, scored three times, read in round 6), dev-4 and dev-3 (each scored
   first, then read), dev-2 (by half, then whole), dev.

Columns of a set: reply_text, reason, replycode, status, smtp_command, source; labels are
Sisimai's (tests/data/README.md). Only reply_text is given to the classifier, as the outbound
queue would give it a reply; --with-command also passes the smtp_command column, as the queue
knows which command a reply answered; --with-hints also passes replycode and status, as a
DSN's Status: field gives them beside the text. A status X.0.9yz is Sisimai's own code, which
it writes from the reason it decided when the report had none: it is the label, not evidence,
and is not passed. --half A keeps the rows whose source MTA's name sorts before "p", --half B
the rest: the two halves of the first cross-check, split by MTA.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from collections import Counter
from pathlib import Path

from mailroom.codes.classify import Classification, classify

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
DEV = DATA / "real-replies-dev.tsv"
DEV_2 = DATA / "real-replies-dev-2.tsv"
DEV_3 = DATA / "real-replies-dev-3.tsv"
HELD_3 = DATA / "real-replies-held-3.tsv"
DEV_4 = DATA / "real-replies-dev-4.tsv"
HELD_4 = DATA / "real-replies-held-4.tsv"
# Made after round 5 from corpora no earlier round used (bench/sisimai_sets_5.py): a judge only.
HELD_5 = DATA / "real-replies-held-5.tsv"
# Made after round 6 from bounces no earlier round read (bench/sisimai_sets_6.py): a judge only.
HELD_6 = DATA / "real-replies-held-6.tsv"
# Made after round 7 from bounces no earlier round read (bench/sisimai_sets_7.py): a judge only.
HELD_7 = DATA / "real-replies-held-7.tsv"
# Round 7 reads one half of held-4 and held-5 (by message, below) and is judged on the other.
READ_HALF, JUDGE_HALF = "A", "B"
SPLIT = (HELD_4, HELD_5)
HELD = (*SPLIT, HELD_6, HELD_7)
ROUNDS = HERE / "classify_rounds.tsv"
# Sisimai's own pseudo-status, written from the reason it decided (SMTP/Status.pm's table).
PSEUDO_STATUS = re.compile(r"[45]\.0\.9\d\d$")
MODES = ((False, False, "text only"), (True, False, "with the command"), (True, True, "with hints"))
Row = dict[str, str]
Miss = tuple[str, Classification, str]


def load(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def source_name(row: Row) -> str:
    """The bounce file a row came from, as 'lhost-exim-12.eml'."""
    return row.get("source", "").rsplit("/", 1)[-1]


def half(rows: list[Row], which: str) -> list[Row]:
    """Half A: MTAs whose file name sorts before 'lhost-p'; half B: the rest."""
    first = [r for r in rows if source_name(r) < "lhost-p"]
    return first if which == "A" else [r for r in rows if source_name(r) >= "lhost-p"]


def held_half(rows: list[Row], which: str) -> list[Row]:
    """Round 7's split of a held set by message: A when the first byte of the SHA-256 of the
    row's source is even, B when odd (every reply of one bounce falls on the same side)."""
    return [r for r in rows if "AB"[hashlib.sha256(r["source"].encode()).digest()[0] % 2] == which]


def evaluate(
    rows: list[Row], *, with_command: bool = False, with_hints: bool = False
) -> tuple[Counter[str], Counter[str], Counter[tuple[str, str]], list[Miss]]:
    """Per-reason totals and hits, the confusion (expected, got) counts, and the misses."""
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    confusion: Counter[tuple[str, str]] = Counter()
    misses: list[Miss] = []
    for row in rows:
        command = (row.get("smtp_command") or None) if with_command else None
        code = int(row["replycode"]) if with_hints and row.get("replycode") else None
        status = (row.get("status") or None) if with_hints else None
        if status is not None and PSEUDO_STATUS.match(status):
            status = None
        got = classify(row["reply_text"], command=command, code=code, status=status)
        total[row["reason"]] += 1
        confusion[(row["reason"], got.reason)] += 1
        if got.reason == row["reason"]:
            right[row["reason"]] += 1
        else:
            misses.append((row["reason"], got, row["reply_text"]))
    return total, right, confusion, misses


def report(
    title: str,
    rows: list[Row],
    args: argparse.Namespace,
    *,
    per_reason: bool = True,
    misses_allowed: bool = True,
) -> None:
    total, right, confusion, misses = evaluate(
        rows, with_command=args.with_command, with_hints=args.with_hints
    )
    n, k = sum(total.values()), sum(right.values())
    print(f"\n== {title}: {k}/{n} = {k / n:.1%}" if n else f"\n== {title}: no rows")
    if not n or not per_reason:
        return
    print(f"{'reason':<16} {'right':>5} {'of':>4} {'accuracy':>8}  taken for")
    for reason in sorted(total, key=lambda r: (-total[r], r)):
        share = right[reason] / total[reason]
        wrong = sorted(
            ((c, got) for (want, got), c in confusion.items() if want == reason and got != want),
            reverse=True,
        )
        taken = ", ".join(f"{got} {c}" for c, got in wrong)
        print(f"{reason:<16} {right[reason]:>5} {total[reason]:>4} {share:>8.0%}  {taken}")
    macro = sum(right[r] / total[r] for r in total) / len(total)
    print(f"{'macro average':<16} {'':>5} {'':>4} {macro:>8.1%}")
    if args.confusion:
        print("\nconfusion (expected -> got: count)")
        for (want, got), c in sorted(confusion.items(), key=lambda x: (-x[1], x[0])):
            if want != got:
                print(f"  {want:>16} -> {got:<16} {c}")
    if args.misses and misses_allowed:
        for expected, got, text in misses:
            found = f"{got.why}; {got.code} {got.status} {got.command}"
            print(f"\n[{expected}] got {got.reason} ({found})\n  {text[:300]}")


def recorded() -> None:
    """The held-out measurements recorded while the rules were built."""
    if not ROUNDS.exists():
        return
    print("== held out: replies the rules were not written from (recorded as they were built)")
    for row in load(ROUNDS):
        mode = f" [{row['mode']}]" if row.get("mode", "text only") != "text only" else ""
        print(
            f"  {row['right']:>3}/{row['total']:<3} {int(row['right']) / int(row['total']):6.1%}"
            f"  {row['scored']:<12}{mode} rules: {row['rules']}  (commit {row['commit']})"
        )


def held(args: argparse.Namespace) -> None:
    """The halves kept apart, in the three modes; never their misses."""
    for path in HELD:
        rows = held_half(load(path), JUDGE_HALF) if path in SPLIT else load(path)
        for with_command, with_hints, name in MODES:
            args.with_command, args.with_hints = with_command, with_hints
            title = f"{path.name}{f' half {JUDGE_HALF}' if path in SPLIT else ''} ({name})"
            report(title, rows, args, misses_allowed=False)
    args.with_command = args.with_hints = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--held", action="store_true", help="score the held-out set too")
    parser.add_argument("--misses", action="store_true", help="print every miss")
    parser.add_argument("--confusion", action="store_true", help="print the confusion pairs")
    parser.add_argument("--half", choices=("A", "B"), help="only one half of each set")
    parser.add_argument(
        "--held-half", choices=("A", "B"), help="only one half of a held set, split by message"
    )
    parser.add_argument("--with-command", action="store_true", help="pass smtp_command too")
    parser.add_argument("--with-hints", action="store_true", help="pass replycode, status too")
    args = parser.parse_args(argv)
    if args.files:
        for path in args.files:
            rows = load(path)
            if args.half:
                rows = half(rows, args.half)
            if args.held_half:
                rows = held_half(rows, args.held_half)
            title = f"{path.name}" + (f" half {args.half}" if args.half else "")
            title += f" held-half {args.held_half}" if args.held_half else ""
            is_held = path.resolve() in {h.resolve() for h in HELD}
            is_split = path.resolve() in {h.resolve() for h in SPLIT}
            read = not is_held or (is_split and args.held_half == READ_HALF)
            report(title, rows, args, misses_allowed=read)
        return 0
    recorded()
    if args.held:
        held(args)
    print("\nThe current rules on the sets they were written from (not held out):")
    for path in SPLIT:
        title = f"{path.name} half {READ_HALF} (read in round 7)"
        report(title, held_half(load(path), READ_HALF), args)
    report(HELD_3.name + " (read in round 6)", load(HELD_3), args)
    report(DEV_4.name, load(DEV_4), args)
    report(DEV_3.name, load(DEV_3), args)
    dev_2 = load(DEV_2)
    for which in ("A", "B"):
        report(f"{DEV_2.name} half {which}", half(dev_2, which), args, per_reason=False)
    report(DEV_2.name, dev_2, args)
    report(DEV.name, load(DEV), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
