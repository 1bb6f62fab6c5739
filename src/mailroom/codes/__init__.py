"""The reply model: every SMTP reply mailroom sends or reads.

- :class:`Reply` — basic code, enhanced status, text lines; ``format()`` and ``parse()``.
- :class:`EnhancedStatus` — RFC 3463 ``class.subject.detail`` with its IANA registry entry.
- :func:`describe_basic_code` — what a three-digit code means and which RFC defines it.
- :mod:`mailroom.codes.catalogue` — every reply mailroom sends, by name.
- :func:`explain` — what a code or reply means and what a client should do next.
- :func:`classify` — any server's reply (or bounce diagnostic) as an action (delivered, retry,
  bounce) and a reason named as Sisimai names them.

Pure: no I/O beyond reading the package's own data files.
"""

from mailroom.codes import catalogue
from mailroom.codes.basic import BasicCodeInfo, describe_basic_code
from mailroom.codes.classify import Classification, classify
from mailroom.codes.enhanced import EnhancedStatus, EnhancedStatusError
from mailroom.codes.explain import ExplainError, Explanation, explain
from mailroom.codes.reply import Reply, ReplyError
from mailroom.codes.template import ReplyTemplate

__all__ = [
    "BasicCodeInfo",
    "Classification",
    "EnhancedStatus",
    "EnhancedStatusError",
    "ExplainError",
    "Explanation",
    "Reply",
    "ReplyError",
    "ReplyTemplate",
    "catalogue",
    "classify",
    "describe_basic_code",
    "explain",
]
