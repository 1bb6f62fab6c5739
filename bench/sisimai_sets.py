"""Build the labelled sets dev-3 and held-3 from Sisimai's public corpus, with Sisimai's labels.

    python bench/sisimai_sets.py SISIMAI_CHECKOUT [--out tests/data] [--commit 21cfb9321ba9]

SISIMAI_CHECKOUT is a checkout of sisimai/p5-sisimai (BSD-2-Clause; its code is not copied
here, it is run). Perl with the modules Sisimai needs (JSON, Class::Accessor::Lite: Debian's
libjson-perl, libclass-accessor-lite-perl) runs Sisimai's public API on every message of
``set-of-emails/maildir/bsd`` and prints, per failed recipient, what the existing sets hold:
the diagnostic code (the reply text a reader of that bounce has), the reason, the reply code,
the delivery status and the SMTP command. The rows are made the way
``real-replies-dev.tsv`` and ``real-replies-dev-2.tsv`` were (whitespace collapsed, one row per
distinct text and label in a file), then:

- every file that either existing set names in its ``source`` column is left out;
- rows that are not a failed delivery's reply are left out, as the existing sets leave them
  out: ``feedback`` (a complaint report), ``delivered``, ``vacation``, ``undefined``, and rows
  with no text;
- the rest is split in two by the file name, deterministically: the first byte of the SHA-256
  of the name, even to ``real-replies-dev-3.tsv`` (rules may be written reading its misses),
  odd to ``real-replies-held-3.tsv`` (scored only, never read).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
EXISTING = ("real-replies-dev.tsv", "real-replies-dev-2.tsv")
COLUMNS = ("reply_text", "reason", "replycode", "status", "smtp_command", "source")
NOT_A_FAILURE = frozenset({"feedback", "delivered", "vacation", "undefined"})

# Our own few lines of Perl: Sisimai's documented API (Sisimai->rise and the Fact accessors),
# one tab-separated line per record. The diagnostic code is printed as the bytes Sisimai has.
DUMPER = r"""
use strict; use warnings;
use Sisimai;
binmode STDOUT;
for my $path (@ARGV) {
    my $facts = Sisimai->rise($path, 'delivered' => 1, 'vacation' => 1) || [];
    (my $name = $path) =~ s{.*/}{};
    for my $fact (@$facts) {
        my @out = map { my $v = $_ // ''; $v =~ s/[\t\r\n]+/ /g; $v } (
            $fact->diagnosticcode, $fact->reason, $fact->replycode,
            $fact->deliverystatus, $fact->smtpcommand);
        print join("\t", $name, @out), "\n";
    }
}
"""


def sisimai_rows(checkout: Path, commit: str) -> list[dict[str, str]]:
    maildir = checkout / "set-of-emails" / "maildir" / "bsd"
    paths = sorted(str(p) for p in maildir.glob("*.eml"))
    out = subprocess.run(
        ["perl", "-I", str(checkout / "lib"), "-e", DUMPER, *paths],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "replace")
    rows = []
    for line in out.splitlines():
        name, text, reason, code, status, command = line.split("\t")
        rows.append(
            {
                "reply_text": " ".join(text.split()),
                "reason": reason,
                "replycode": code,
                "status": status,
                "smtp_command": command,
                "source": f"sisimai/p5-sisimai@{commit}:set-of-emails/maildir/bsd/{name}",
            }
        )
    return rows


def file_name(row: dict[str, str]) -> str:
    return row["source"].rsplit("/", 1)[-1]


def is_held(name: str) -> bool:
    """Which half a file falls in: odd first byte of the SHA-256 of its name."""
    return hashlib.sha256(name.encode()).digest()[0] % 2 == 1


def write_set(path: Path, rows: list[dict[str, str]]) -> None:
    """A labelled set as the tests read it: tab-separated, a header, no quoting."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(
            f,
            COLUMNS,
            delimiter="\t",
            quoting=csv.QUOTE_NONE,
            quotechar=None,
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows(rows)


def write_and_tell(
    path: Path,
    rows: list[dict[str, str]],
    sources: list[tuple[str, str]],
    read: Counter[str],
    dropped: Counter[str],
    repeated: Counter[str],
) -> None:
    """Write a set made from several corpora (``sources``: repository and commit each) and
    tell on stderr what each gave: messages read, left out as seen, rows repeated, rows."""
    for repo, commit in sources:
        mine = [row for row in rows if row["source"].startswith(f"{repo}@")]
        print(
            f"{repo}@{commit[:12]}: {read[repo]} messages, {dropped[repo]} already seen,"
            f" {repeated[repo]} rows repeated, {len(mine)} rows"
            f" from {len({row['source'] for row in mine})} messages",
            file=sys.stderr,
        )
    write_set(path, rows)
    reasons = Counter(row["reason"] for row in rows)
    print(f"{path.name}: {len(rows)} rows; {dict(sorted(reasons.items()))}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of sisimai/p5-sisimai")
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument(
        "--commit", help="the checkout's commit (12 hex digits), when it is not a git checkout"
    )
    args = parser.parse_args(argv)
    commit = (
        args.commit
        or subprocess.run(
            ["git", "-C", str(args.checkout), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    used: set[str] = set()
    for name in EXISTING:
        with (DATA / name).open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            used.update(file_name(row) for row in reader)
    kept: list[dict[str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for row in sisimai_rows(args.checkout, commit):
        key = (file_name(row), row["reply_text"], row["reason"])
        if key[0] in used or row["reason"] in NOT_A_FAILURE or not row["reply_text"]:
            continue
        if key not in seen:
            seen.add(key)
            kept.append(row)
    for out_name, held in (("real-replies-dev-3.tsv", False), ("real-replies-held-3.tsv", True)):
        part = [row for row in kept if is_held(file_name(row)) == held]
        write_set(args.out / out_name, part)
        files = len({file_name(row) for row in part})
        print(f"{out_name}: {len(part)} rows from {files} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
