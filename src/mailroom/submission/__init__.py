"""What a submission server does beyond receiving: BURL (RFC 4468), fetching message parts
from the user's IMAP server by URLAUTH URL (:mod:`mailroom.submission.burl`)."""
