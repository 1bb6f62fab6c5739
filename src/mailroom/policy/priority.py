"""MT-PRIORITY (RFC 6710): who may ask for what priority, and what each priority may be.

A message's priority runs from -9 (lowest) to 9; absent, it is 0. Only trusted senders may
raise it above 0 — authenticated users named in ``priority_raisers`` (``"*"``: every one) and
clients in ``relay_networks`` — the others are accepted at 0 with 250 2.3.6 saying so (RFC 6710
§4.1: a server may lower a priority it does not trust). A listener or a route may take only
priorities from a minimum up (550 5.7.15); while the queue is busy, priorities below 0 wait
(451 4.7.15); ``max_size_by_priority`` caps the size of low priorities (552 5.7.16). The queue
delivers higher priorities first.

Pure: each function takes the values it needs and returns a catalogue reply or None.
"""

from __future__ import annotations

from collections.abc import Mapping

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies

__all__ = ["PrioritySettings", "effective_priority", "size_limit", "size_refusal"]

DEFAULT_PRIORITY = 0


class PrioritySettings:
    """The priority rules of ``[policy]``, checked when the configuration loads."""

    def __init__(
        self,
        *,
        raisers: tuple[str, ...] = (),
        max_size_by_priority: Mapping[int, int] | None = None,
        low_priority_queue_limit: int = 0,
    ) -> None:
        self.raisers = frozenset(r.lower() for r in raisers)
        self.max_size_by_priority = dict(sorted((max_size_by_priority or {}).items()))
        self.low_priority_queue_limit = low_priority_queue_limit

    def may_raise(self, user: str | None, trusted_network: bool) -> bool:
        if trusted_network:
            return True
        return user is not None and ("*" in self.raisers or user.lower() in self.raisers)


def effective_priority(
    requested: int | None, settings: PrioritySettings, *, user: str | None, trusted: bool
) -> tuple[int, Reply | None]:
    """The priority the message is taken at, and the 250 2.3.6 that says it was lowered (or
    None when it is taken as asked)."""
    priority = DEFAULT_PRIORITY if requested is None else requested
    if priority > DEFAULT_PRIORITY and not settings.may_raise(user, trusted):
        why = "only trusted senders may raise the priority above 0"
        return DEFAULT_PRIORITY, replies.PRIORITY_CHANGED(priority=DEFAULT_PRIORITY, why=why)
    return priority, None


def size_limit(priority: int, settings: PrioritySettings) -> int:
    """The largest message of this priority (0: no limit of its own): the entry for the
    smallest priority at or above it, since a lower priority never gets more room."""
    for ceiling, limit in settings.max_size_by_priority.items():
        if priority <= ceiling:
            return limit
    return 0


def size_refusal(priority: int, size: int | None, settings: PrioritySettings) -> Reply | None:
    limit = size_limit(priority, settings)
    if size is not None and limit and size > limit:
        return replies.TOO_BIG_FOR_PRIORITY(priority=priority, limit=limit)
    return None
