"""Build dev-4 and held-4 from bounce corpora not used before, labelled by Sisimai.

    python bench/sisimai_sets_4.py MIRRORS [--out tests/data]

MIRRORS is a directory holding bare git copies of the repositories in ``CORPORA`` as
``owner+name/repo`` (what the session's fetch tool makes); each is read at the commit named
here with ``git show``, never checked out. Sisimai (sisimai/p5-sisimai, BSD-2-Clause) is run on
every message, its code taken from the same p5-sisimai copy at ``SISIMAI_COMMIT`` (its ``lib/``
exported into a temporary directory; nothing of it is copied here), with the same few lines of
Perl as ``bench/sisimai_sets.py`` (Sisimai's documented API). Perl needs JSON and
Class::Accessor::Lite (Debian's libjson-perl, libclass-accessor-lite-perl).

Rows are made as ``bench/sisimai_sets.py`` makes them (same columns, whitespace collapsed, one
row per distinct text and label per message, ``feedback``/``delivered``/``vacation``/
``undefined`` and empty texts left out), and, to keep the new sets unseen:

- a message whose content (line ends and trailing blanks aside) is already one of Sisimai's
  ``set-of-emails/maildir/bsd`` messages (the corpus of dev, dev-2, dev-3 and held-3), or an
  earlier message here (forks and ports share files), is left out;
- a row whose text (case aside) is already in one of the existing sets, or in an earlier row
  here, is left out: the same reply is not unseen twice.

The rows are split by the SHA-256 of the message's name (``owner/name:path``, ``#n`` for the
n-th message of an mbox): even first byte to ``real-replies-dev-4.tsv`` (its misses may be read),
odd to ``real-replies-held-4.tsv`` (scored only, never read).

Bodies with no headers (crisp-oss/email-bounce-parser's fixtures are the text of the bounce
only) are given the least header a bounce has (From: MAILER-DAEMON, To, Date, a Subject,
text/plain) so that Sisimai reads them; the text is theirs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Round 3's script (beside this one): the set's columns, the labels that are not a failure,
# the Perl that runs Sisimai, the split by the SHA-256 of a name and the way a set is written,
# the same for both rounds.
from sisimai_sets import DUMPER, NOT_A_FAILURE, is_held, write_set

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
EXISTING = (
    "real-replies-dev.tsv",
    "real-replies-dev-2.tsv",
    "real-replies-dev-3.tsv",
    "real-replies-held-3.tsv",
)
SISIMAI = "sisimai/p5-sisimai"
SISIMAI_COMMIT = "21cfb9321ba94f9bc72f2b5a46e2dda70c1d9c45"
WRAP = (
    b"From: Mail Delivery System <MAILER-DAEMON@localhost>\n"
    b"To: sender@localhost\n"
    b"Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
    b"Subject: Undelivered Mail Returned to Sender\n"
    b"Content-Type: text/plain; charset=utf-8\n\n"
)


@dataclass(frozen=True)
class Corpus:
    repo: str
    commit: str
    licence: str
    wanted: Callable[[str], bool]
    wrap: bool = False  # bodies without headers
    mbox: bool = False  # each file is an mbox: one message per "From " line


def _under(prefix: str, *suffixes: str) -> Callable[[str], bool]:
    return lambda path: path.startswith(prefix) and path.endswith(suffixes)


CORPORA = (
    # Sisimai's own messages that are not in maildir/bsd: the err/ set (maildir/dos and mac
    # are maildir/bsd's first messages with other line ends, left out by content anyway).
    Corpus(SISIMAI, SISIMAI_COMMIT, "BSD-2-Clause", _under("set-of-emails/maildir/err/", ".eml")),
    # The Go port's corpus is newer: the messages p5's has not.
    Corpus(
        "sisimai/go-sisimai",
        "ed142ded2c40de1233f82d8405a0acf0b76998c6",
        "BSD-2-Clause",
        _under("set-of-emails/maildir/bsd/", ".eml"),
    ),
    Corpus(
        "wRAR/flufl.bounce",  # a GitHub mirror of GNU Mailman's flufl.bounce
        "796a6b901710175ca367f79c0ac6d963201db91d",
        "LGPL-3.0",
        _under("flufl/bounce/tests/data/", ".txt"),
    ),
    Corpus(
        "mitio/bounce_email",
        "ae6618ebf001643dad177c3e2cdc319459f9cfdf",
        "MIT",
        _under("test/", ".txt"),
    ),
    Corpus(
        "cfortune/PHP-Bounce-Handler",
        "956e65b0d502b1904546c3c46480409ded41d755",
        "BSD-3-Clause",
        _under("eml/", ".eml", ".txt"),
    ),
    Corpus(
        "zoonru/PHP-Bounce-Handler",  # a fork of the above with more samples
        "13f8b3a764ff7d20824c6ed4527fdecc093b3e0a",
        "MIT (fork of BSD-3-Clause)",
        _under("eml/", ".eml", ".txt"),
    ),
    Corpus(
        "rjbs/Mail-DeliveryStatus-BounceParser",
        "3133a16326c596e0e9fc97469930aee535962bcf",
        "Artistic-1.0 or GPL-1.0+ (Perl's terms)",
        _under("t/corpus/", ".msg"),
    ),
    Corpus(
        "crisp-oss/email-bounce-parser",
        "c7ffc73a57d345183ce151ec69076b16738f04c9",
        "MIT",
        lambda p: p.startswith("test/fixtures/") and p.count("/") == 2 and p.endswith(".txt"),
        wrap=True,
    ),
    Corpus(
        SISIMAI,
        SISIMAI_COMMIT,
        "BSD-2-Clause",
        _under("set-of-emails/mailbox/", ""),
        mbox=True,  # mbox-0 holds the err/ messages again: its rows repeat them
    ),
)


def git(mirrors: Path, repo: str, *args: str) -> bytes:
    base = mirrors / repo.replace("/", "+") / "repo"
    git_dir = base / ".git" if (base / ".git").is_dir() else base
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, check=True
    ).stdout


def normal(message: bytes) -> str:
    """A message's content, line ends, trailing blanks and an mbox "From " line aside."""
    lines = [line.rstrip() for line in message.replace(b"\r", b"").split(b"\n")]
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]
    return hashlib.sha256(b"\n".join(lines).strip()).hexdigest()


def messages(mirrors: Path, corpus: Corpus) -> list[tuple[str, bytes]]:
    """(name, bytes) of each message of a corpus, the name as 'owner/name:path[#n]'."""
    paths = git(mirrors, corpus.repo, "ls-tree", "-r", "--name-only", corpus.commit)
    out = []
    for path in sorted(p for p in paths.decode().splitlines() if corpus.wanted(p)):
        blob = git(mirrors, corpus.repo, "show", f"{corpus.commit}:{path}")
        name = f"{corpus.repo}:{path}"
        if corpus.mbox:
            parts = re.split(rb"(?m)^(?=From )", blob)
            for n, part in enumerate((p for p in parts if p.strip()), 1):
                out.append((f"{name}#{n:02d}", part))
        else:
            out.append((name, WRAP + blob if corpus.wrap else blob))
    return out


def run_sisimai(mirrors: Path, named: list[tuple[str, bytes, Corpus]]) -> list[tuple[int, str]]:
    """Sisimai's records for each message: (index into named, the tab-separated fields)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = git(mirrors, SISIMAI, "archive", SISIMAI_COMMIT, "lib")
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        (root / "m").mkdir()
        paths = []
        for i, (_, blob, _) in enumerate(named):
            path = root / "m" / f"{i:05d}.eml"
            path.write_bytes(blob)
            paths.append(str(path))
        out = subprocess.run(
            ["perl", "-I", str(root / "lib"), "-e", DUMPER, *paths],
            capture_output=True,
            check=True,
        ).stdout.decode("utf-8", "replace")
    records = []
    for line in out.splitlines():
        index, fields = line.split("\t", 1)
        records.append((int(index.removesuffix(".eml")), fields))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mirrors", type=Path, help="bare copies as owner+name/repo")
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args(argv)

    seen_texts: set[str] = set()
    for name in EXISTING:
        with (DATA / name).open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            seen_texts.update(row["reply_text"].casefold() for row in reader)
    mirrors = args.mirrors
    bsd = git(mirrors, SISIMAI, "ls-tree", "-r", "--name-only", SISIMAI_COMMIT)
    seen_content: set[str] = set()
    for path in bsd.decode().splitlines():
        if path.startswith("set-of-emails/maildir/bsd/"):
            seen_content.add(normal(git(mirrors, SISIMAI, "show", f"{SISIMAI_COMMIT}:{path}")))

    named: list[tuple[str, bytes, Corpus]] = []
    dropped = 0
    for corpus in CORPORA:
        for name, blob in messages(mirrors, corpus):
            key = normal(blob)
            if key in seen_content:
                dropped += 1
                continue
            seen_content.add(key)
            named.append((name, blob, corpus))
    print(f"{len(named)} messages ({dropped} already seen left out)", file=sys.stderr)

    sets: dict[str, list[dict[str, str]]] = {
        "real-replies-dev-4.tsv": [],
        "real-replies-held-4.tsv": [],
    }
    repeated = 0
    for index, fields in run_sisimai(mirrors, named):
        name, _, corpus = named[index]
        text, reason, code, status, command = fields.split("\t")
        text = " ".join(text.split())
        if reason in NOT_A_FAILURE or not text:
            continue
        if text.casefold() in seen_texts:
            repeated += 1
            continue
        seen_texts.add(text.casefold())
        repo, path = name.split(":", 1)
        row = {
            "reply_text": text,
            "reason": reason,
            "replycode": code,
            "status": status,
            "smtp_command": command,
            "source": f"{repo}@{corpus.commit[:12]}:{path}",
        }
        out_name = "real-replies-held-4.tsv" if is_held(name) else "real-replies-dev-4.tsv"
        sets[out_name].append(row)
    print(f"{repeated} rows left out: their text is in an earlier row or set", file=sys.stderr)
    for out_name, rows in sets.items():
        write_set(args.out / out_name, rows)
        files = len({row["source"] for row in rows})
        print(f"{out_name}: {len(rows)} rows from {files} messages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
