"""How far ``mailroom.bounces`` agrees with Sisimai on whole bounce messages.

    python bench/bounces_agreement.py [--mirrors /work/.mirror] [--corpus bsd|round4|REPO]
                                      [--list FIELD] [--limit N]

For every message of a corpus, Sisimai (sisimai/p5-sisimai at ``SISIMAI_COMMIT``, BSD-2-Clause,
its ``lib/`` exported to a temporary directory and run, nothing of it copied here) and
:func:`mailroom.bounces.parse` each give their records; they are paired by (message, recipient
address lower-cased). Sisimai is asked for every fact it has, delivered and vacation included
(feedback reports it always gives).

Corpora: ``bsd`` (the default) is Sisimai's ``set-of-emails/maildir/bsd`` at the pinned
commit; ``round4`` is every corpus of ``bench/sisimai_sets_4.py``'s ``CORPORA``, a message
whose content is already in maildir/bsd or read before left out as round 4 left it out; any
other value names one repository of ``CORPORA`` (``wRAR/flufl.bounce``). MIRRORS holds bare
git copies as ``owner+name/repo``.

It prints: messages; messages where only Sisimai or only mailroom found records; recipients
matched, only Sisimai's, only mailroom's; among the matched, agreement on reason, status
(Sisimai's pseudo statuses X.0.9yz, which it makes up from its reason, left out), SMTP command,
action and hard/soft; and agreement per Sisimai reason. ``--list FIELD`` prints the
disagreements of one field (``reason``, ``status``, ``command``, ``action``, ``hard``,
``only-sisimai``, ``only-mailroom``) for reading. Round 4's replies are a held-out set for
the classifier: on any corpus but ``bsd`` the per-reason table is not printed (unless
``--per-reason``), ``--list reason`` and ``--list hard`` are refused, and listings show no
reason (and no reply text for a recipient only Sisimai found).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Round 4's corpora and the way it reads a bare mirror and its messages.
from sisimai_sets_4 import CORPORA, SISIMAI, SISIMAI_COMMIT, Corpus, git, messages, normal

import mailroom.bounces

# Our own few lines of Perl, as bench/sisimai_sets.py's DUMPER: Sisimai's documented API
# (Sisimai->rise and the Fact accessors), one tab-separated line per record, more fields.
DUMPER = r"""
use strict; use warnings;
use Sisimai;
binmode STDOUT;
for my $path (@ARGV) {
    my $facts = Sisimai->rise($path, 'delivered' => 1, 'vacation' => 1) || [];
    (my $name = $path) =~ s{.*/}{};
    for my $fact (@$facts) {
        my @out = map { my $v = $_ // ''; $v =~ s/[\t\r\n]+/ /g; $v } (
            $fact->recipient->address, $fact->reason, $fact->deliverystatus,
            $fact->smtpcommand, $fact->action, $fact->hardbounce, $fact->smtpagent,
            $fact->diagnosticcode);
        print join("\t", $name, @out), "\n";
    }
}
"""
SISIMAI_FIELDS = ("recipient", "reason", "status", "command", "action", "hard", "agent", "diag")
NO_FAILURE = frozenset({"delivered", "vacation", "feedback"})
LISTABLE = ("reason", "status", "command", "action", "hard", "only-sisimai", "only-mailroom")


@dataclass
class Pair:
    message: str
    recipient: str
    sisimai: dict[str, str] | None
    mailroom: mailroom.bounces.BounceRecord | None


def corpus_messages(mirrors: Path, which: str) -> list[tuple[str, bytes]]:
    if which == "bsd":
        bsd = Corpus(
            SISIMAI,
            SISIMAI_COMMIT,
            "BSD-2-Clause",
            lambda p: p.startswith("set-of-emails/maildir/bsd/") and p.endswith(".eml"),
        )
        return messages(mirrors, bsd)
    chosen = [c for c in CORPORA if which == "round4" or c.repo == which]
    if not chosen:
        raise SystemExit(f"no corpus {which!r}: bsd, round4 or one of {[c.repo for c in CORPORA]}")
    # As round 4 made its sets: a message already in maildir/bsd (forks and ports share
    # files), or already read here, is left out, so the measure is of messages not tuned on.
    seen = {normal(blob) for _, blob in corpus_messages(mirrors, "bsd")}
    out: list[tuple[str, bytes]] = []
    dropped = 0
    for corpus in chosen:
        for name, blob in messages(mirrors, corpus):
            key = normal(blob)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            out.append((name, blob))
    print(f"({dropped} messages left out: the same as one in maildir/bsd or read before)")
    return out


def run_sisimai(mirrors: Path, named: list[tuple[str, bytes]]) -> dict[int, list[dict[str, str]]]:
    """Sisimai's facts per message index."""
    found: dict[int, list[dict[str, str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = git(mirrors, SISIMAI, "archive", SISIMAI_COMMIT, "lib")
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        (root / "m").mkdir()
        paths = []
        for i, (_, blob) in enumerate(named):
            path = root / "m" / f"{i:05d}.eml"
            path.write_bytes(blob)
            paths.append(str(path))
        out = subprocess.run(
            ["perl", "-I", str(root / "lib"), "-e", DUMPER, *paths],
            capture_output=True,
            check=True,
        ).stdout.decode("utf-8", "replace")
    for line in out.splitlines():
        index, *values = line.split("\t")
        fact = dict(zip(SISIMAI_FIELDS, values, strict=True))
        found.setdefault(int(index.removesuffix(".eml")), []).append(fact)
    return found


def pairs_of(
    name: str, facts: list[dict[str, str]], records: list[mailroom.bounces.BounceRecord]
) -> list[Pair]:
    by_sisimai: dict[str, dict[str, str]] = {}
    for fact in facts:
        by_sisimai.setdefault(fact["recipient"].lower(), fact)
    by_mailroom: dict[str, mailroom.bounces.BounceRecord] = {}
    for record in records:
        by_mailroom.setdefault(record.recipient.lower(), record)
    return [
        Pair(name, key, by_sisimai.get(key), by_mailroom.get(key))
        for key in sorted(set(by_sisimai) | set(by_mailroom))
    ]


def _pseudo(status: str) -> bool:
    """Sisimai's made-up statuses (X.0.9yz): what its reason implies, not what a report said."""
    parts = status.split(".")
    return len(parts) == 3 and parts[1] == "0" and len(parts[2]) == 3 and parts[2].startswith("9")


def _hard(pair: Pair) -> tuple[str, str] | None:
    assert pair.sisimai is not None and pair.mailroom is not None
    if pair.sisimai["reason"] in NO_FAILURE or pair.mailroom.kind != "bounce":
        return None
    return ("hard" if pair.sisimai["hard"] == "1" else "soft", pair.mailroom.bounce_type)


def compared(pair: Pair, field: str) -> tuple[str, str] | None:
    """(Sisimai's, mailroom's) value of a field for a matched pair; None when not comparable."""
    s, m = pair.sisimai, pair.mailroom
    assert s is not None and m is not None
    if field == "reason":
        return s["reason"], m.reason
    if field == "status":
        if not s["status"] or _pseudo(s["status"]):
            return None
        return s["status"], m.status
    if field == "command":
        # Sisimai names EHLO, mailroom the HELO family; LHLO likewise.
        same = {"EHLO": "HELO", "LHLO": "HELO"}
        theirs, ours = s["command"].upper(), m.command.upper()
        return same.get(theirs, theirs), same.get(ours, ours)
    if field == "action":
        return s["action"].lower(), m.action.lower()
    if field == "hard":
        return _hard(pair)
    raise ValueError(field)


def percent(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "0/0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--corpus", default="bsd", help="bsd, round4, or a repository of CORPORA")
    parser.add_argument("--list", choices=LISTABLE, help="print the disagreements of a field")
    parser.add_argument("--limit", type=int, default=0, help="at most N listed (0: all)")
    parser.add_argument(
        "--per-reason", action="store_true", help="the per-reason table on a held-out corpus"
    )
    args = parser.parse_args(argv)
    held_out = args.corpus != "bsd"
    if held_out and args.list in ("reason", "hard"):
        parser.error("round 4's reasons are held out: no --list reason or hard on them")

    named = corpus_messages(args.mirrors, args.corpus)
    facts = run_sisimai(args.mirrors, named)
    pairs: list[Pair] = []
    only_s_msgs = only_m_msgs = 0
    for index, (name, blob) in enumerate(named):
        records = mailroom.bounces.parse(blob, name)
        theirs = facts.get(index, [])
        only_s_msgs += bool(theirs) and not records
        only_m_msgs += bool(records) and not theirs
        pairs.extend(pairs_of(name, theirs, records))

    matched = [p for p in pairs if p.sisimai is not None and p.mailroom is not None]
    only_s = [p for p in pairs if p.mailroom is None]
    only_m = [p for p in pairs if p.sisimai is None]
    print(f"corpus: {args.corpus} (sisimai {SISIMAI_COMMIT[:12]})")
    print(f"messages: {len(named)}")
    print(f"  Sisimai records, mailroom none: {only_s_msgs}")
    print(f"  mailroom records, Sisimai none: {only_m_msgs}")
    print(
        f"recipients: matched {len(matched)}, only Sisimai {len(only_s)}, "
        f"only mailroom {len(only_m)}"
    )
    for field in ("reason", "status", "command", "action", "hard"):
        values = [v for p in matched if (v := compared(p, field)) is not None]
        same = sum(a == b for a, b in values)
        print(f"  {field:8s} agree {percent(same, len(values))}")

    if held_out and not args.per_reason:
        table_wanted = False
    else:
        table_wanted = True
        print("per Sisimai reason (matched recipients): agree/total, mailroom's most common other")
    table: dict[str, Counter[str]] = {}
    for p in matched:
        assert p.sisimai is not None and p.mailroom is not None
        table.setdefault(p.sisimai["reason"], Counter())[p.mailroom.reason] += 1
    for reason, counts in sorted(table.items(), key=lambda kv: -sum(kv[1].values())):
        if not table_wanted:
            break
        total = sum(counts.values())
        others = [(r, n) for r, n in counts.most_common() if r != reason][:3]
        other = ", ".join(f"{r} {n}" for r, n in others)
        print(f"  {reason:16s} {percent(counts[reason], total):18s} {other}")

    if args.list:
        listed = 0
        print(f"\n--- disagreements: {args.list}")
        for p in pairs:
            if args.list == "only-sisimai":
                if p.mailroom is not None:
                    continue
                assert p.sisimai is not None
                said = "" if held_out else f"{p.sisimai['reason']}/"
                line = f"{p.recipient}  S={said}{p.sisimai['agent']}"
                if not held_out:
                    line += f"  diag={p.sisimai['diag'][:120]}"
            elif args.list == "only-mailroom":
                if p.sisimai is not None:
                    continue
                assert p.mailroom is not None
                said = "" if held_out else f"/{p.mailroom.reason}"
                line = f"{p.recipient}  M={p.mailroom.kind}{said}"
                line += f"/{p.mailroom.format}"
            else:
                if p.sisimai is None or p.mailroom is None:
                    continue
                value = compared(p, args.list)
                if value is None or value[0] == value[1]:
                    continue
                line = f"{p.recipient}  S={value[0]!r} M={value[1]!r}"
                line += f"  [{p.sisimai['agent']} / {p.mailroom.format}]"
                line += f"  diag={(p.mailroom.diagnostic_code or p.sisimai['diag'])[:120]}"
            print(f"{p.message}: {line}")
            listed += 1
            if args.limit and listed >= args.limit:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
