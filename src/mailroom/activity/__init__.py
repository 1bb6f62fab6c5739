"""What happened, for whoever looks: session transcripts (:mod:`.transcript`), live events
(:mod:`.hub`) and counters (:mod:`.metrics`).

The SMTP server writes them as sessions run; the web UI reads them. Neither knows the other:
the composition root (:mod:`mailroom.app`) hands the same objects to both.
"""

from mailroom.activity.hub import Hub
from mailroom.activity.metrics import Metrics
from mailroom.activity.transcript import Transcript, TranscriptLog

__all__ = ["Hub", "Metrics", "Transcript", "TranscriptLog"]
