"""Build held-6 from bounces no earlier round read, labelled by Sisimai.

    python bench/sisimai_sets_6.py MIRRORS [--out tests/data]

MIRRORS holds bare git copies as ``owner+name/repo``, as for ``bench/sisimai_sets_5.py``: those
of rounds 4 and 5's corpora (their ``CORPORA``, Sisimai's p5-sisimai among them) and those named
here, each read at the commit named with git, never checked out. Sisimai is run as rounds 4 and
5 run it (the same p5-sisimai commit, the same few lines of Perl) and the rows are made the same
way (same columns, whitespace collapsed, one row per distinct text per message,
``feedback``/``delivered``/``vacation``/``undefined`` and empty texts left out).

Two kinds of source:

- ``CORPORA``: bounce samples kept in a repository's files, as in earlier rounds;
- ``ARCHIVES``: public mailing-list archives kept as public-inbox git repositories (one
  message per commit, in the file ``m``). A few lists take posts from anyone, so spam sent in
  the list's name comes back there as real bounces from real mail systems. Only a message
  with a ``message/delivery-status`` part whose own ``From:`` names a mail system
  (MAILER-DAEMON, postmaster, Mail Delivery ...) is read: spam that only looks like a bounce
  (phishing "delivery failure" notices, in HTML) is not, nor are the lists' other messages,
  which Sisimai would read line by line as replies. (Taking plain-text bounces too was tried:
  it added a 419 scam from a "postmaster" and three copies of one hMailServer notice that
  differ only in a spam's subject, for two or three new replies; not kept.) These bounces
  are not anonymised upstream (the archives publish them as sent): every address's local part
  in their rows is written as ``user`` (its domain kept); a row's ``source`` names the archive
  and the message's own commit (``owner/name@commit:m``, ``git show commit:m``).

To keep the set unseen:

- a message whose content (line ends and trailing blanks aside) is one of Sisimai's
  ``set-of-emails/maildir/bsd`` messages, one of rounds 4 or 5's corpora's messages (all of
  them were compared: Sisimai's err/ and mailbox/ sets, go-sisimai, flufl.bounce, ... and all
  of held-5's corpora), or an earlier message here, is left out;
- a row whose text (case and whitespace aside) is in any earlier set (dev, dev-2, dev-3,
  held-3, dev-4, held-4, held-5) or an earlier row here is left out;
- and, new in this round, so is a row whose *shape* is an earlier set's or row's: its text,
  case aside, with every word that holds an ``@`` or a digit (addresses, numbers, queue and
  session IDs, dates) and every host or domain name made one placeholder, reply codes and
  enhanced status codes kept. The archives hold hundreds of one reply that differ only in an
  ID (qq.com's "SPF check failed [token IP: ...]"), and some corpora hold earlier rounds'
  samples under another anonymisation: the same reply is not unseen twice.

GNU Mailman 2's ``tests/bounces`` files that flufl.bounce (round 4) also holds, by name, are
left out whole: they are the same bounces as flufl.bounce's, re-anonymised (``userx@example.com``
put in, the returned message cut). Their content differs (96 of them pass the content check),
and dev-4 and held-4's replies would come back in as 64 rows past the text check, 11 even past
the shape check. Only the nine files Mailman added later are read.

Corpora and rows (messages read, already seen by content):

- yaslama/bouncehammer@3b5c205da3b4 ``examples/*.eml`` (bounceHammer 2.7.7 by Sisimai's author,
  mboxes; GPL-2.0 or Artistic): 41 (32), 1 row;
- jaredmauch/mailman2-python3@b0de82ecac10 ``tests/bounces/`` not in flufl.bounce (GNU Mailman
  2.1.39's source; GPL-2.0+): 9, 6 rows;
- jhillyerd/enmime@0d919cc223e9 ``dsn/testdata/`` (RFC 3464's own examples and an Exchange
  Online NDR; MIT): 5, 1 row;
- linux-mailinglist-archives/osst-users.lists.sourceforge.net.0@c3c0c7ff0591: 470, 9 rows;
- linux-mailinglist-archives/industrypack-devel.lists.sourceforge.net.0@7b7f4e73c018: 453,
  3 rows;
- linux-mailinglist-archives/linux1394-devel.lists.sourceforge.net.0@f89375f6c60a: 1, 1 row;
- linux-mailinglist-archives/driverdev-devel.linuxdriverproject.org.0@3f618eda022a: 11, 3 rows;
- linux-mailinglist-archives/intel-gvt-dev.lists.freedesktop.org.0@d948ab3d5b48: 4, 4 rows;
- cygwingitgadget/cygwin-patches-list-mirror@a1378f039a26 (sourceware's cygwin-patches): 3,
  1 row.

The archives state no licence; they republish public list traffic. One row is Sisimai's
reading of a bounce's wrong line (an Exim header's "(ultimately generated from ...)"): kept,
as earlier rounds keep what Sisimai reads.

Looked at and not taken: Apache James mime4j's ``mimetools-testmsgs/badbound.msg`` (a real 1996
bounce whose MIME boundary is broken on purpose: Sisimai reads the broken part, no reply);
php-mime-mail-parser's ``tests/mails/failure.eml`` (16 lines, a cut fragment, no reply);
ksami007/php-mail-bounce-handler's ``tests/emls`` and webworka/PHP-Bounce-Handler's examples
(every message a copy of an earlier round's); GNU Mailman 3's history (terencehonles/mailman)
and sarff/bounce-parser, twisted1919/bounce-handler, magicdude4eva/port25-bouncehandler,
Sapistudio/php-bounce-handler, maMykola/emails-bounce-handler, mathsgod/mail-bounce-parser,
agildw/postfix-bounce-parser, masegaloeh/mbox-bounce-parser, akoenig/mailbouncer,
choonkeat/bounce-email, Molnix-open-source/BouncedMailManager, postalsys/bounce-trainer and
bounce-classifier, ressourcenmangel/rsmbouncemailprocessor, fwiessner/php-bounce-mail-parser,
phantasm66/smtp-bounce-classifer (no bounce messages); markov2's Mail-Box and Mail-Message,
jstedfast/gmime (its jwz.mbox is not in the copy), zbateson/mail-mime-parser (no bounces);
python/cpython's ``Lib/test/test_email/data``, zammad, chatwoot, discourse and civicrm-core's
bounce fixtures (each repository is larger than a copy can be here); other public-inbox
archives (SourceForge's v9fs-developer, ibm-acpi-devel, jfs-discussion, kgdb-bugreport,
linux-ntfs-dev, mjpeg-users, openipmi-developer, oprofile-list, tboot-devel, tipc-discussion,
linux-f2fs-devel, squashfs-devel, linux-uvc-devel, legousb-devel, linux-decnet-user;
infradead's ath10k, b43-dev, kexec, linux-afs, linux-i3c, linux-mtd, linux-rpi-kernel,
linux-snps-arc, linux-um; Google Groups' jailhouse-dev, linux-ntb, open-iscsi; freedesktop's
spice-devel, nouveau, etnaviv; usrp-users, usb-storage, uboot-stm32, linaro-mm-sig,
linuxppc-users, ltp, alsa-devel, cip-testing-results, intel-wired-lan: none holds a bounce that
passes the filter above); pipermail and MHonArc archives (mono/mail-archives, tombusby's
cypherpunks archive: a bounce's report part is scrubbed); blog posts that quote a bounce (not
whole messages).

All rows go to ``real-replies-held-6.tsv``: a judge only, scored and never read.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Rounds 3, 4 and 5's scripts (beside this one): the columns and the way a set is written, the
# labels that are not a failure, a corpus and how its messages are read, Sisimai run on them.
from sisimai_sets import NOT_A_FAILURE, write_and_tell
from sisimai_sets_4 import CORPORA as ROUND_4
from sisimai_sets_4 import (
    SISIMAI,
    SISIMAI_COMMIT,
    Corpus,
    _under,
    git,
    messages,
    normal,
    run_sisimai,
)
from sisimai_sets_5 import CORPORA as ROUND_5
from sisimai_sets_5 import EXISTING as ROUND_4_SETS

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
EXISTING = (*ROUND_4_SETS, "real-replies-held-5.tsv")
OUT = "real-replies-held-6.tsv"

FLUFL = next(corpus for corpus in ROUND_4 if corpus.repo == "wRAR/flufl.bounce")
MAILMAN_2 = "jaredmauch/mailman2-python3"  # GNU Mailman 2.1.39's source, imported
MAILMAN_2_COMMIT = "b0de82ecac10b77b38e57ea472d18c6345ffd8c2"


@dataclass(frozen=True)
class Archive:
    """A public-inbox archive: every commit up to ``commit`` adds one message, as ``m``."""

    repo: str
    commit: str
    licence: str


CORPORA = (
    Corpus(
        "yaslama/bouncehammer",  # bounceHammer 2.7.7, Sisimai's predecessor (azumakuniyuki)
        "3b5c205da3b4df0402e9977fa66c9b952caa1dce",
        "GPL-2.0 or Artistic (Perl's terms)",
        _under("examples/", ".eml"),
        mbox=True,
    ),
    # Mailman 2's bounce samples; those flufl.bounce also holds (by name) are dropped in
    # main(), which reads flufl.bounce's names (see the docstring).
    Corpus(
        MAILMAN_2,
        MAILMAN_2_COMMIT,
        "GPL-2.0+",
        lambda p: p.startswith("tests/bounces/") and p.endswith(".txt"),
    ),
    # Go enmime's DSN samples: RFC 3464's own examples (1994) and an Exchange Online NDR.
    Corpus(
        "jhillyerd/enmime",
        "0d919cc223e9cb6c2d45d6c653e7a64156006351",
        "MIT",
        _under("dsn/testdata/", ".raw"),
    ),
)

ARCHIVES = (
    Archive(
        "linux-mailinglist-archives/osst-users.lists.sourceforge.net.0",
        "c3c0c7ff05912d4a43664b41ba44c23a85321ad3",
        "public mailing-list archive",
    ),
    Archive(
        "linux-mailinglist-archives/industrypack-devel.lists.sourceforge.net.0",
        "7b7f4e73c0181f60b1208fdef8582130640b9011",
        "public mailing-list archive",
    ),
    Archive(
        "linux-mailinglist-archives/linux1394-devel.lists.sourceforge.net.0",
        "f89375f6c60aa913502cea4930b86a0fec9e3d00",
        "public mailing-list archive",
    ),
    Archive(
        "linux-mailinglist-archives/driverdev-devel.linuxdriverproject.org.0",
        "3f618eda022a3f4dfc4c365e576ad7a3d3affe49",
        "public mailing-list archive",
    ),
    Archive(
        "linux-mailinglist-archives/intel-gvt-dev.lists.freedesktop.org.0",
        "d948ab3d5b48fa714572ccebf42825e91bf40d8d",
        "public mailing-list archive",
    ),
    Archive(
        "cygwingitgadget/cygwin-patches-list-mirror",  # sourceware's cygwin-patches list
        "a1378f039a264bafabcb29dcfde73700e038ef12",
        "public mailing-list archive",
    ),
)

# A delivery report, and a From: that names a mail system (in the message's own header).
_REPORT = re.compile(rb"(?im)^content-type:[ \t]*message/delivery-status")
_MAIL_SYSTEM = re.compile(rb"(?im)^from:[^\n]*(mailer-daemon|postmaster|mail delivery)")
# A reply code or an enhanced status code, kept in a shape; every other word with a digit or
# an @ in it (an ID, a number, an address) and every host or domain name is made one
# placeholder.
_CODE = re.compile(r"[245]\d\d(-[245]\.\d{1,3}\.\d{1,3})?|[245]\.\d{1,3}\.\d{1,3}")
_HOST = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")


def is_bounce(message: bytes) -> bool:
    """A delivery status report from a mail system, not a message that looks like one."""
    header = message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return _REPORT.search(message) is not None and _MAIL_SYSTEM.search(header) is not None


def shape(text: str) -> str:
    """A reply's text with its IDs, numbers, addresses and host names made one placeholder."""
    words = []
    for word in text.casefold().split():
        core = word.strip("()[]<>{},;:'\".")
        if _CODE.fullmatch(core):
            words.append(word)
        elif "@" in core or any(ch.isdigit() for ch in core) or _HOST.fullmatch(core):
            words.append("#")
        else:
            words.append(word)
    return " ".join(words)


def archive_messages(mirrors: Path, archive: Archive) -> list[tuple[str, bytes]]:
    """(name, bytes) of each bounce in an archive, oldest first, named 'owner/name:<commit>'."""
    log = git(mirrors, archive.repo, "log", "--reverse", "--format=%H", archive.commit)
    commits = log.decode().split()
    base = mirrors / archive.repo.replace("/", "+") / "repo"
    git_dir = base / ".git" if (base / ".git").is_dir() else base
    batch = subprocess.run(
        ["git", f"--git-dir={git_dir}", "cat-file", "--batch"],
        input="".join(f"{commit}:m\n" for commit in commits).encode(),
        capture_output=True,
        check=True,
    ).stdout
    out = []
    at = 0
    for commit in commits:
        end = batch.index(b"\n", at)
        fields = batch[at:end].split()
        at = end + 1
        if fields[-1] == b"missing":
            continue
        size = int(fields[2])
        blob = batch[at : at + size]
        at += size + 1
        if is_bounce(blob):
            out.append((f"{archive.repo}:{commit}", blob))
    return out


# The archives' bounces were not anonymised upstream (the corpora's were): every address's
# local part is replaced in their rows, its domain kept (a provider's name can be evidence).
_LOCAL_PART = re.compile(r"[\w.+\-=']+@(?=[\w\-]+\.[\w.\-]+)")


def anonymised(text: str) -> str:
    return _LOCAL_PART.sub("user@", text)


def seen_reply_texts(names: tuple[str, ...]) -> set[str]:
    """Every reply text of the named sets in DATA, case folded."""
    seen: set[str] = set()
    for name in names:
        with (DATA / name).open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            seen.update(row["reply_text"].casefold() for row in reader)
    return seen


Source = tuple[str, str, list[tuple[str, bytes]]]  # repository, commit, (name, bytes) of each


def unseen_messages(
    sources: list[Source], seen_content: set[str]
) -> tuple[list[tuple[str, bytes, str]], Counter[str], Counter[str]]:
    """The sources' messages whose content is not in ``seen_content`` (which takes each in),
    as (name, bytes, commit); and per repository, the messages read and those left out."""
    named: list[tuple[str, bytes, str]] = []
    read: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for repo, commit, found in sources:
        for name, blob in found:
            read[repo] += 1
            key = normal(blob)
            if key in seen_content:
                dropped[repo] += 1
                continue
            seen_content.add(key)
            named.append((name, blob, commit))
    return named, read, dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mirrors", type=Path, help="bare copies as owner+name/repo")
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args(argv)
    mirrors = args.mirrors

    seen_texts = seen_reply_texts(EXISTING)
    seen_shapes = {shape(text) for text in seen_texts}
    seen_content: set[str] = set()
    bsd = git(mirrors, SISIMAI, "ls-tree", "-r", "--name-only", SISIMAI_COMMIT)
    for path in bsd.decode().splitlines():
        if path.startswith("set-of-emails/maildir/bsd/"):
            seen_content.add(normal(git(mirrors, SISIMAI, "show", f"{SISIMAI_COMMIT}:{path}")))
    for corpus in (*ROUND_4, *ROUND_5):
        seen_content.update(normal(blob) for _, blob in messages(mirrors, corpus))
    flufl = git(mirrors, FLUFL.repo, "ls-tree", "-r", "--name-only", FLUFL.commit)
    flufl_names = {path.rsplit("/", 1)[-1] for path in flufl.decode().splitlines()}

    sources: list[Source] = []
    for corpus in CORPORA:
        found = messages(mirrors, corpus)
        if corpus.repo == MAILMAN_2:
            found = [(n, b) for n, b in found if n.rsplit("/", 1)[-1] not in flufl_names]
        sources.append((corpus.repo, corpus.commit, found))
    for archive in ARCHIVES:
        sources.append((archive.repo, archive.commit, archive_messages(mirrors, archive)))

    named, read, dropped = unseen_messages(sources, seen_content)

    rows: list[dict[str, str]] = []
    repeated: Counter[str] = Counter()
    for index, fields in run_sisimai(mirrors, named):  # type: ignore[arg-type]
        name, _, commit = named[index]
        repo, path = name.split(":", 1)
        text, reason, code, status, command = fields.split("\t")
        text = " ".join(text.split())
        if reason in NOT_A_FAILURE or not text:
            continue
        if text.casefold() in seen_texts or shape(text) in seen_shapes:
            repeated[repo] += 1
            continue
        seen_texts.add(text.casefold())
        seen_shapes.add(shape(text))
        is_archive = any(archive.repo == repo for archive in ARCHIVES)
        source = f"{repo}@{path[:12]}:m" if is_archive else f"{repo}@{commit[:12]}:{path}"
        rows.append(
            {
                "reply_text": anonymised(text) if is_archive else text,
                "reason": reason,
                "replycode": code,
                "status": status,
                "smtp_command": command,
                "source": source,
            }
        )
    told = [(repo, commit) for repo, commit, _ in sources]
    write_and_tell(args.out / OUT, rows, told, read, dropped, repeated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
