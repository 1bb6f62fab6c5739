"""``mailroom bounces FILE|DIR|-``: the records of every bounce in a message, an mbox, a
Maildir or a directory, as JSON lines (one object per record) or CSV (``--csv``, a header row
with the field names, then one row per record).

    mailroom bounces ~/Maildir/.Bounces                 # JSON lines
    mailroom bounces --csv bounces.mbox > bounces.csv
    mailroom bounces --kind bounce --hard -            # hard bounces only, from stdin
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from mailroom.bounces import FIELDS, BounceRecord, read

__all__ = ["add_bounces_command", "write_records"]

KINDS = ("bounce", "delay", "success", "autoreply", "feedback")


def write_records(records: Any, out: TextIO, *, as_csv: bool = False) -> int:
    """Write ``records`` (BounceRecord values) to ``out``; how many were written."""
    count = 0
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n") if as_csv else None
    if writer is not None:
        writer.writeheader()
    for record in records:
        if writer is not None:
            writer.writerow(record.to_dict())
        else:
            out.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        count += 1
    return count


def _wanted(record: BounceRecord, args: argparse.Namespace) -> bool:
    if args.kind and record.kind not in args.kind:
        return False
    return not (args.hard and record.bounce_type != "hard")


def _cmd_bounces(args: argparse.Namespace) -> int:
    source = args.source
    if source != "-" and not Path(source).exists():
        print(f"mailroom bounces: {source}: no such file or directory", file=sys.stderr)
        return 2
    records = (r for r in read(source) if _wanted(r, args))
    try:
        write_records(records, sys.stdout, as_csv=args.csv)
    except BrokenPipeError:  # `mailroom bounces … | head`
        return 0
    return 0


def add_bounces_command(commands: Any) -> None:
    parser = commands.add_parser(
        "bounces",
        help="read bounces (a message, mbox, Maildir or -) into one record per recipient",
        description=(
            "Read delivery reports (RFC 3464 and the common non-standard formats), complaint "
            "reports (RFC 5965) and automatic replies, and write one record per recipient: "
            "recipient, sender, action, status, diagnostic, MTAs, command, reason and its "
            "evidence, time, original Message-ID, hard or soft."
        ),
    )
    parser.add_argument("source", help="a message file, an mbox, a Maildir, a directory, or -")
    parser.add_argument("--csv", action="store_true", help="CSV with a header row")
    parser.add_argument(
        "--kind",
        action="append",
        choices=KINDS,
        help="only records of this kind (repeat for several); default: all",
    )
    parser.add_argument("--hard", action="store_true", help="only hard bounces")
    parser.set_defaults(func=_cmd_bounces)
