"""What happened, for whoever looks: session transcripts (:mod:`.transcript`), live events
(:mod:`.hub`), counters (:mod:`.metrics`) and the mail log's lines (:mod:`.maillog`).

The SMTP server writes them as sessions run; the web UI reads them. Neither knows the other:
the composition root (:mod:`mailroom.app`) hands the same objects to both.
"""

from mailroom.activity.hub import Hub
from mailroom.activity.maillog import MailLog
from mailroom.activity.metrics import Metrics
from mailroom.activity.transcript import Transcript, TranscriptLog

__all__ = ["Hub", "MailLog", "Metrics", "Transcript", "TranscriptLog"]
