"""Build held-7 from bounces no earlier round read, labelled by Sisimai.

    python bench/sisimai_sets_7.py MIRRORS [--out tests/data]

MIRRORS holds bare git copies as ``owner+name/repo``, as for ``bench/sisimai_sets_6.py``: those
of rounds 4, 5 and 6's corpora and archives (their ``CORPORA`` and round 6's ``ARCHIVES``,
Sisimai's p5-sisimai among them) and those named here, each read at the commit named with git,
never checked out. Sisimai is run as earlier rounds run it (the same p5-sisimai commit, the
same few lines of Perl) and the rows are made the same way (same columns, whitespace collapsed,
one row per distinct text per message, ``feedback``/``delivered``/``vacation``/``undefined``
and empty texts left out).

Sources, as in round 6: ``CORPORA`` (bounce samples kept in a repository's files) and
``ARCHIVES`` (public-inbox mailing-list archives, one message per commit in ``m``, of which
only a message with a ``message/delivery-status`` part whose own ``From:`` names a mail system
is read: round 6's ``is_bounce``). Every row's addresses have their local part written as
``user`` (domain kept), whatever the source: Sisimai's samples are anonymised upstream already
(``kijitora@`` becomes ``user@``), the others are not all.

To keep the set unseen (round 6's checks, with round 6's sources and held-6 added):

- a message whose content (line ends and trailing blanks aside) is one of Sisimai's
  ``set-of-emails/maildir/bsd`` messages, one of rounds 4, 5 or 6's corpora's messages (all of
  GNU Mailman 2's ``tests/bounces``, not only the nine round 6 read), one of round 6's
  archives' bounces, or an earlier message here, is left out;
- a row whose text (case and whitespace aside) is in any earlier set (dev, dev-2, dev-3,
  held-3, dev-4, held-4, held-5, held-6) or an earlier row here is left out, and so is a row
  whose *shape* (round 6's ``shape``: IDs, numbers, addresses and host names made one
  placeholder, reply and status codes kept) is an earlier set's or row's. Both are checked on
  the text as Sisimai reads it and as it is written (anonymised).

Corpora and rows (messages read, already seen by content):

- sisimai/set-of-emails@18e585c22288 ``maildir/bsd/`` (Sisimai's corpus on its own, Dec 2025:
  the samples added since the p5-sisimai and go-sisimai commits earlier rounds read;
  BSD-2-Clause): 629 (611), 9 rows;
- ardiesaeidi/node-baunsu@741bc21bce7b ``tests/emails/bounce_*.txt`` (MIT): 12, 6 rows;
- tangofoxtrot/tmail_bouncer@f6c0fd982747 (2009; MIT): 4, 3 rows;
- voku/PHPMailer-BMH@679dbf7cd055 ``tests/fixtures/instaclick/`` (GPL-2.0-only): 5 (1), 3 rows;
- instaclick/ICBaseMailBundle@7faea85d3f1a (an mbox; MIT): 2 (2), 0 rows;
- kszr/cpython@bb5b68305960, three of ``Lib/test/test_email/data/`` (PSF-2.0): 3, 2 rows;
- MailCore/mailcore2@8f0923db493a, two of jwz's 1990s mbox (BSD-2-Clause): 2, 1 row;
- zedshaw/lamson@8a8ad546ea74 ``tests/bounce.msg`` (BSD-3-Clause): 1, 0 rows;
- Webklex/php-imap@5656386a3597, two of ``tests/messages/`` (MIT): 2, 1 row;
- laminas/laminas-mail@75e02574979a ``test/_files/laminas-mail-19.eml`` (BSD-3-Clause): 1, 1 row;
- GOVCERT-LU/eml_parser@5b8060a7efad, one of ``samples/`` (AGPL-3.0): 1, 0 rows;
- zaxbux/email-samples@1ab283e38ade, Gmail's three reports (2022; no licence stated, "for
  research purposes"): 3, 3 rows;
- mikel/mail@d645d7b5b7d0, one of ``spec/fixtures/emails/mime_emails/`` (MIT): 1, 1 row.

No archive is read: none of those looked at this round holds a bounce no earlier round read
(``ARCHIVES`` is empty, its machinery kept for the next round). Some rows are not a remote
host's reply but the reporting MTA's own words (a local procmail error, a queue's "could not be
delivered for 5 days", a MIME preamble before the transcript): kept, as earlier rounds keep
what Sisimai reads.

Looked at and not taken: public-inbox archives with no bounce (``is_bounce``) at all, most with no
delivery report of any kind (linux-mailinglist-archives' blinux-list, linux-cachefs, linux-audit,
cluster-devel and dm-devel at redhat.com; bridge, netem, iommu and virtualization at
lists.linux-foundation.org; libertas-dev, linux-parport, linux-unisoc, wcn36xx at infradead;
linux-nvdimm and linux-nfc at 01.org; apparmor at ubuntu.com; greybus-dev at linaro; linux-stm32 at
stormreply; kvmarm at cs.columbia.edu; samba-technical; openwrt-devel; cake at bufferbloat;
pvrusb2; kernel-hardening at openwall; drbd-dev at linbit; isdn4linux; linux-oxnas at groups.io;
codalist at coda.cs.cmu.edu; freedreno at freedesktop; round 6's six archives have no commit newer
than round 6's); archives larger than a copy can be here (linux-kernel epoch 0, xen-devel, amd-gfx,
intel-gfx, sjp38/lore-linux-mm, ammarfaizi2/lore-inbox) or with no copy to be had
(joemalcolm/oss-security-inbox, alphalinux-org/mailing-list-archives,
r-mailing-lists/rforge-archive); cromwellian/extropians (the list's 1996-2003 mboxes: its delivery
reports are forwarded inside members' posts, and its few bounces from a mail system are plain text,
mostly one Quix notice repeated, besides spam from "postmaster.co.uk"); the history of Sisimai's
corpora (p5, rb and set-of-emails' removed or earlier versions of messages earlier rounds read, 31
rows past the checks: left out as the same bounces re-edited, and as Exim test-harness bounces
round 5 did not take) and of earlier rounds' corpora (files since removed or renamed); forks that
only copy a corpus read here or before (digineo/sisimai-web and chlec's node-baunsu: node-baunsu's;
livebg's bounce_email: mitio's; rtd, rapofran and acipm's bounce_email; cwd/bounce-detection,
hippich's and andrzejdziekonski's PHPMailer-BMH; clear01's CwsMailBounceHandler; tonythomas01's
BounceHandler; makovskyy's p5-Sisimai; Rambomst, deepaknverma, macdabby, sezsul's
PHP-Bounce-Handler; eNichers and boreevyuri's node-bounce-handler); MimeKit's
``content-length.mbox.txt`` and MailKit's IMAP ``message.20.msg`` (jwz's bounces again);
repositories with no bounce message (rf-peixoto/phishing_pot, rjbs/Email-Corpus, mattdavidlucas's
and sergei-galichev's email-samples, mxaiorg/sample-emails, dlaz/gmail-corpus,
GlitchyZorua/E-mail-SPAM-Archive, moggers87/salmon and prashant1325/lamson (lamson's one again),
erizocosmico/go-bouncespy, kovyrin/bounces-handler, olelishna/handle-bounces,
bramley/phplist-plugin-bounces, pretix/pretix-bounces, mqais/Bounces.Collect,
damaru00/analyze_bounce_emails, Emre10/PHP-FindingBounceMail,
OstinUA/Failed-Recipient-Extractor-Bounce-Mail, prathamesh-sonpatki/bounce-email,
Tungnt24/bounce-mail-counter, sharevb/email-bounce-parser, yshiga/q2a-email-bounce,
hpmta/mailerq_bounce_monitor, jflessau/mail-bouncer, Soomrojb/pmta-bounce-parser,
silverstripe-archive's emailbouncehandler, mattorb/appengine_py_emailbouncehandler,
phucpnt/sugarcrm-email-bounce-handling, halon-extras/bounce-classifier, otherio/threadable.com,
sisimai/mailer-goemon, hiroyuki-sato/embulk-parser-sisimai, ytnobody's azure-functions-sisimai and
docker-sisimai-api, takeyoda/sisimai-server, carahsoft/sisimai-api, stalwartlabs/mail-parser,
emersion/go-message, ddeboer/imap, barbushin/php-imap, mailgun/talon, DirectoryTree/ImapEngine,
postalsys/postal-mime, Webklex/laravel-imap, andris9/mailparser, djcb/mu,
neomutt/neomutt-test-files, jhillyerd/inbucket, axllent/mailpit, staktrace/mailparse, foens/hpop,
notmuch/notmuch, apache/tika, horde's Mime and Imap_Client,
php-mime-mail-parser/php-mime-mail-parser); zammad, discourse, civicrm-core and chatwoot (larger
than a copy can be here).

All rows go to ``real-replies-held-7.tsv``: a judge only, scored and never read.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

# Earlier rounds' scripts (beside this one): the columns and the way a set is written, the
# labels that are not a failure, a corpus and how its messages are read, Sisimai run on them,
# an archive and how its bounces are found, a row's shape and anonymisation.
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
from sisimai_sets_5 import _in
from sisimai_sets_6 import ARCHIVES as ROUND_6_ARCHIVES
from sisimai_sets_6 import CORPORA as ROUND_6
from sisimai_sets_6 import EXISTING as ROUND_5_SETS
from sisimai_sets_6 import (
    Archive,
    Source,
    anonymised,
    archive_messages,
    seen_reply_texts,
    shape,
    unseen_messages,
)

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
EXISTING = (*ROUND_5_SETS, "real-replies-held-6.tsv")
OUT = "real-replies-held-7.tsv"

CORPORA = (
    # Sisimai's own corpus, kept apart since 2015 and newer than the copies p5-sisimai and
    # go-sisimai hold (their commits, above): the messages added since (2025).
    Corpus(
        "sisimai/set-of-emails",
        "18e585c22288b83c1f6943949cb86b2623b362ce",
        "BSD-2-Clause",
        _under("maildir/bsd/", ".eml"),
    ),
    # node-baunsu (Node.js, 2012, by its author; seppuku/node-baunsu, whence others copy it, can
    # not be had here): its bounces, anonymised as sender.com.
    Corpus(
        "ardiesaeidi/node-baunsu",
        "741bc21bce7b46005e3247845058e583f5228a0f",
        "MIT",
        _under("tests/emails/bounce_", ".txt"),
    ),
    # The Ruby tmail_bouncer's bounces (2009; the others there are not bounces).
    Corpus(
        "tangofoxtrot/tmail_bouncer",
        "f6c0fd9827473612bd5fb0dddd476de6febed338",
        "MIT",
        _in(
            "test/fixtures/aol.eml",
            "test/fixtures/box_full.eml",
            "test/fixtures/verizon.eml",
            "test/fixtures/yahoo.eml",
        ),
    ),
    # PHPMailer-BMH's corpus gathers other parsers' (all read before, or here) and five of
    # InstaClick's; and InstaClick's own mail bundle holds two more, in an mbox.
    Corpus(
        "voku/PHPMailer-BMH",
        "679dbf7cd055eff5d9eb9bc1ab22e6d44e181a38",
        "GPL-2.0-only",
        _under("tests/fixtures/instaclick/", ".eml"),
    ),
    Corpus(
        "instaclick/ICBaseMailBundle",
        "7faea85d3f1a86af0364a1616175386b3fbe7d54",
        "MIT",
        _in("Tests/DataFixtures/inbox.eml"),
        mbox=True,
    ),
    # CPython's email package tests: the three bounces among them (a copy of CPython's
    # history; python/cpython itself is larger than a copy can be here).
    Corpus(
        "kszr/cpython",
        "bb5b683059600fcaaffe0ecb141e93016089de94",
        "PSF-2.0",
        _in(
            "Lib/test/test_email/data/msg_16.txt",
            "Lib/test/test_email/data/msg_25.txt",
            "Lib/test/test_email/data/msg_43.txt",
        ),
    ),
    # MailCore 2's parser tests hold jwz's 1990s Netscape mbox split into messages: the two
    # bounces among them (a mail system's From:).
    Corpus(
        "MailCore/mailcore2",
        "8f0923db493ad8fc3e0f33fd0c70f3633e8787a7",
        "BSD-2-Clause",
        _in(
            "unittest/data/parser/input/mbox/jwz/21",
            "unittest/data/parser/input/mbox/jwz/132",
        ),
    ),
    # Lamson (Zed Shaw's mail server framework): the bounce its tests read.
    Corpus(
        "zedshaw/lamson",
        "8a8ad546ea746b129fa5f069bf9278f87d01473a",
        "BSD-3-Clause",
        _in("tests/bounce.msg"),
    ),
    # Mail parsers' test messages, sent in by their users with bug reports: the bounces.
    Corpus(
        "Webklex/php-imap",
        "5656386a3597dacf93f8887d2016ed3cea2adbb7",
        "MIT",
        _in("tests/messages/example_bounce.eml", "tests/messages/issue-462.eml"),
    ),
    Corpus(
        "laminas/laminas-mail",
        "75e02574979a58b123cf9cb19a0fbad7d5eebf21",
        "BSD-3-Clause",
        _in("test/_files/laminas-mail-19.eml"),
    ),
    Corpus(
        "GOVCERT-LU/eml_parser",
        "5b8060a7efadd2e0324bc026c350cac129269635",
        "AGPL-3.0",
        _in("samples/sample_fail_github_issue_38.eml"),
    ),
    # A collection of received notices (2022, placeholders put in): Gmail's three reports (the
    # files beside them, in folders, are their decoded parts).
    Corpus(
        "zaxbux/email-samples",
        "1ab283e38ade8ae51ba1991bc7287d6138debde8",
        "(none stated: 'for research purposes')",
        _in(
            "googlemail.com/[sample] Delivery_Status_Notification_Address_Not_Found.eml",
            "googlemail.com/[sample] Delivery_Status_Notification_Delay.eml",
            "googlemail.com/[sample] Delivery_Status_Notification_Failure.eml",
        ),
    ),
    # The Ruby mail gem at round 5's commit: a bounce among its MIME fixtures (round 5 read
    # its multipart_report_emails/ only).
    Corpus(
        "mikel/mail",
        "d645d7b5b7d03218b0bc8971ef041c991a63f5f7",
        "MIT",
        _in("spec/fixtures/emails/mime_emails/raw_email_with_mimepart_without_content_type.eml"),
    ),
)

# None this round (see the docstring); an entry is an Archive(repo, commit, licence).
ARCHIVES: tuple[Archive, ...] = ()


def seen_before(mirrors: Path) -> set[str]:
    """The content of every message an earlier round read (see the docstring)."""
    seen: set[str] = set()
    bsd = git(mirrors, SISIMAI, "ls-tree", "-r", "--name-only", SISIMAI_COMMIT)
    for path in bsd.decode().splitlines():
        if path.startswith("set-of-emails/maildir/bsd/"):
            seen.add(normal(git(mirrors, SISIMAI, "show", f"{SISIMAI_COMMIT}:{path}")))
    for corpus in (*ROUND_4, *ROUND_5, *ROUND_6):
        seen.update(normal(blob) for _, blob in messages(mirrors, corpus))
    for archive in ROUND_6_ARCHIVES:
        seen.update(normal(blob) for _, blob in archive_messages(mirrors, archive))
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("mirrors", type=Path, help="bare copies as owner+name/repo")
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args(argv)
    mirrors = args.mirrors

    seen_texts = seen_reply_texts(EXISTING)
    seen_shapes = {shape(text) for text in seen_texts}
    seen_content = seen_before(mirrors)

    sources: list[Source] = []
    for corpus in CORPORA:
        sources.append((corpus.repo, corpus.commit, messages(mirrors, corpus)))
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
        written = anonymised(text)
        texts = {text.casefold(), written.casefold()}
        if texts & seen_texts or {shape(t) for t in texts} & seen_shapes:
            repeated[repo] += 1
            continue
        seen_texts.update(texts)
        seen_shapes.update(shape(t) for t in texts)
        is_archive = any(archive.repo == repo for archive in ARCHIVES)
        source = f"{repo}@{path[:12]}:m" if is_archive else f"{repo}@{commit[:12]}:{path}"
        rows.append(
            {
                "reply_text": written,
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
