"""Build held-5 from bounce corpora used by no earlier round, labelled by Sisimai.

    python bench/sisimai_sets_5.py MIRRORS [--out tests/data]

MIRRORS holds bare git copies as ``owner+name/repo``, as for ``bench/sisimai_sets_4.py``:
those of round 4's corpora (its ``CORPORA``, Sisimai's p5-sisimai among them) and those of
``CORPORA`` here, each read at the commit named with ``git show``, never checked out. Sisimai
is run as round 4 runs it (the same p5-sisimai commit, the same few lines of Perl), and the
rows are made the same way (same columns, whitespace collapsed, one row per distinct text per
message, ``feedback``/``delivered``/``vacation``/``undefined`` and empty texts left out).

To keep the set unseen:

- a message whose content (line ends and trailing blanks aside) is one of Sisimai's
  ``set-of-emails/maildir/bsd`` messages (dev, dev-2, dev-3, held-3), one of round 4's
  corpora's messages (dev-4, held-4), or an earlier message here, is left out (the bounce
  parsers copy each other's samples);
- a row whose text (case aside) is in dev, dev-2, dev-3, held-3, dev-4 or held-4, or in an
  earlier row here, is left out.

All rows go to ``real-replies-held-5.tsv``: a judge only, scored and never read.

Only real bounces are taken (most are anonymised upstream). Looked at and not taken:
Exim/exim ``test/mail/`` (bounces Exim wrote in its test harness, to replies its scripts
invent: "550 Go away", "forced failure", pipe paths), mailpiece/mailbounce's fixtures (edge
cases made for its parser), and forks that only copy a corpus here or of round 4 (every message
already seen: ikvk/imap_tools, macdabby, Rambomst and deepaknverma's PHP-Bounce-Handler,
eNichers and boreevyuri's node-bounce-handler). discourse/discourse, zammad/zammad and
civicrm/civicrm-core hold a few bounces too but are larger than a copy can be here. One real
bounce is left out by name: postalsys/emailengine's ``163.eml``, whose GBK HTML body Sisimai
reads line by line as 18 recipients' replies (markup, none of them a reply).

The corpora here are small, and many of their messages are copies of each other's and of
earlier rounds' (left out by content): the set is what is left, not a sample of a size chosen.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

# Rounds 3 and 4's scripts (beside this one): the columns and the way a set is written, the
# labels that are not a failure, a corpus and how its messages are read, Sisimai run on them.
from sisimai_sets import NOT_A_FAILURE, write_and_tell
from sisimai_sets_4 import CORPORA as ROUND_4
from sisimai_sets_4 import EXISTING as ROUND_3_SETS
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

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
EXISTING = (*ROUND_3_SETS, "real-replies-dev-4.tsv", "real-replies-held-4.tsv")
OUT = "real-replies-held-5.tsv"


def _in(*paths: str) -> Callable[[str], bool]:
    wanted = frozenset(paths)
    return lambda path: path in wanted


CORPORA = (
    Corpus(
        "mikel/mail",
        "d645d7b5b7d03218b0bc8971ef041c991a63f5f7",
        "MIT",
        _under("spec/fixtures/emails/multipart_report_emails/", ".eml"),
    ),
    Corpus(
        "mailgun/flanker",
        "c7f70738dbb39eda2861b03917b63ec9fa828f5d",
        "Apache-2.0",
        _under("tests/fixtures/messages/bounce/", ".eml"),
    ),
    Corpus(
        "jstedfast/MimeKit",
        "cf6d38dd0a1a26b5145c10b35e971efc133e1fb3",
        "MIT",
        lambda p: (
            p.startswith("UnitTests/TestData/messages/")
            and ("bounce" in p or "delivery-status" in p)
        ),
    ),
    Corpus(
        "osandum/bounce-parser",
        "a1df46c615c98c46644e1c4569f2b106f853a1c6",
        "?",
        _under("src/test/resources/", ".eml"),
    ),
    Corpus(
        "crazy-max/CwsMailBounceHandler",
        "27be8e9c0dd1667369fb193d8fd79e96fc5ae12e",
        "MIT",
        _under("tests/emls/", ".eml"),
    ),
    Corpus(
        "rgl/MailBounceDetector",
        "05719306a7b903c07294d89386f84caa2912cd38",
        "MIT",
        _under("MailBounceDetector.Tests/Fixtures/", ".eml"),
    ),
    Corpus(
        "wikimedia/mediawiki-extensions-BounceHandler",
        "360a47ba56f7d9e7bf0e654a884c70262d3d7290",
        "GPL-2.0+",
        _under("tests/phpunit/bounce_emails/", ""),
    ),
    Corpus(
        "prasad83/node-bounce-handler",
        "f42b05003a31e600d56d67a9d31083612d4a6d92",
        "MIT",
        _under("eml/", ".eml", ".txt"),
    ),
    Corpus(
        "findemdev/node-bounce-handler",  # a later fork of prasad83's, with newer samples
        "4f92b483ea755979874b705fa04ae9abbef09490",
        "MIT",
        _under("test/eml/", ".eml"),
    ),
    Corpus(
        "LoneStarInternet/mail_manager",
        "331f00deac68cf12ce58c1cdaa3cdee77ac66644",
        "MIT",
        _under("spec/test_app/spec/support/files/bounce-", ".txt", ".eml"),
    ),
    Corpus(
        "postalserver/postal",
        "8ef89606bc34146fffba77a604dd824e6b1cdcc2",
        "MIT",
        _in("resource/postfix-bounce.msg"),
    ),
    Corpus(
        "openHPI/bounced_emails",
        "3230e73d9461facdd25a3ce9a5beef5ed5ded073",
        "?",
        _in("tests/testmail"),
    ),
    Corpus(
        "ronbeltran/bounce_email",
        "0126263ab0e2be318ed65cec77b0141be3812cee",
        "MIT",
        _under("tests/bounces/", ""),
    ),
    Corpus(
        "whatcould/bounce-email",
        "68a2d3be4946681da1fd6877b5e7c23be4ef9770",
        "MIT",
        _under("test/bounces/", ""),
    ),
    Corpus(
        "okfde/froide",
        "6e855bdd1935d741aa354c8c5bd681a955fd5c89",
        "MIT",
        lambda p: (
            p.startswith("froide/bounce/testdata/")
            or p
            in (
                "froide/foirequest/tests/testdata/test_mail_09.txt",
                "froide/foirequest/tests/testdata/test_mail_12.txt",
            )
        ),
    ),
    Corpus(
        "bestpractical/rt",
        "72106ba9935f3a2bab3d55572066cbfbbdc7f9ab",
        "GPL-2.0",
        _in("t/data/emails/multipart-report"),
    ),
    Corpus(
        "nodemailer/mailparser",
        "bb1881eb35c0d406c68c8613443827ccbad00065",
        "MIT",
        _in("test/fixtures/delivery-status.eml"),
    ),
    Corpus(
        "SpamScope/mail-parser",
        "01c177fecddd9db1def23ba509ab31b12ab4fbc5",
        "Apache-2.0",
        _in("tests/mails/mail_malformed_2"),
    ),
    Corpus(
        "sendgrid/go-gmime",
        "9326dd0f4619b06caff9c384596c30caa59882fb",
        "MIT",
        _in(
            "gmime/fixtures/DSN-bounce.eml",
            "gmime/fixtures/DSN-spam.eml",
            "gmime/fixtures/NDR-block.eml",
        ),
    ),
    Corpus(
        "postalsys/emailengine",
        "aea4535093276c90d942e0e1723088f316b23754",
        "EmailEngine licence (source-available)",
        # 163.eml left out: Sisimai reads each line of its GBK HTML body as a recipient's
        # reply (18 rows of markup, none a reply)
        lambda p: p.startswith("test/fixtures/bounces/") and p != "test/fixtures/bounces/163.eml",
    ),
    Corpus(
        "apache/spamassassin",
        "f7fe7b82a2db63ee1406d74d88ce564b69881954",
        "Apache-2.0",
        # the messages of the bounce rules' tests (a .cf beside each is the rule's expectation)
        lambda p: (
            p.startswith(("t.rules/BOUNCE_MESSAGE/", "t.rules/VBOUNCE_MESSAGE/"))
            and not p.endswith(".cf")
        ),
    ),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mirrors", type=Path, help="bare copies as owner+name/repo")
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args(argv)
    mirrors = args.mirrors

    seen_texts: set[str] = set()
    for name in EXISTING:
        with (DATA / name).open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            seen_texts.update(row["reply_text"].casefold() for row in reader)
    seen_content: set[str] = set()
    bsd = git(mirrors, SISIMAI, "ls-tree", "-r", "--name-only", SISIMAI_COMMIT)
    for path in bsd.decode().splitlines():
        if path.startswith("set-of-emails/maildir/bsd/"):
            seen_content.add(normal(git(mirrors, SISIMAI, "show", f"{SISIMAI_COMMIT}:{path}")))
    for corpus in ROUND_4:
        seen_content.update(normal(blob) for _, blob in messages(mirrors, corpus))

    named: list[tuple[str, bytes, Corpus]] = []
    read: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for corpus in CORPORA:
        for name, blob in messages(mirrors, corpus):
            read[corpus.repo] += 1
            key = normal(blob)
            if key in seen_content:
                dropped[corpus.repo] += 1
                continue
            seen_content.add(key)
            named.append((name, blob, corpus))

    rows: list[dict[str, str]] = []
    repeated: Counter[str] = Counter()
    for index, fields in run_sisimai(mirrors, named):
        name, _, corpus = named[index]
        text, reason, code, status, command = fields.split("\t")
        text = " ".join(text.split())
        if reason in NOT_A_FAILURE or not text:
            continue
        if text.casefold() in seen_texts:
            repeated[corpus.repo] += 1
            continue
        seen_texts.add(text.casefold())
        repo, path = name.split(":", 1)
        rows.append(
            {
                "reply_text": text,
                "reason": reason,
                "replycode": code,
                "status": status,
                "smtp_command": command,
                "source": f"{repo}@{corpus.commit[:12]}:{path}",
            }
        )
    sources = [(corpus.repo, corpus.commit) for corpus in CORPORA]
    write_and_tell(args.out / OUT, rows, sources, read, dropped, repeated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
