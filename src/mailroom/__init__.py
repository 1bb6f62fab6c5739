"""mailroom: a mail server in Python that speaks SMTP exactly."""

__version__ = "0.1.0"
