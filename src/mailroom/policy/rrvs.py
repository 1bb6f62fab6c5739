"""RRVS (RFC 7293): "deliver only if this mailbox has had the same owner since <date-time>".

``[owned_since]`` records since when each mailbox (or whole domain) has had its present owner.
A recipient whose owner changed after the sender's date gets 550 5.7.17 (the domain's owner:
550 5.7.18); one whose time was never recorded passes unless the sender asked ``;R`` (reject
when the test cannot be made): 550 5.7.19. Addresses that forward elsewhere carry the test on
to the next hop (the queue passes RRVS to servers that offer it, and returns the message with
5.7.19 for ``;R`` to one that does not).

Pure.
"""

from __future__ import annotations

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.policy.directory import Directory, Resolution
from mailroom.protocol.parameters import parse_rrvs

__all__ = ["rrvs_refusal"]


def rrvs_refusal(
    value: str, *, address: str, domain: str, resolution: Resolution, directory: Directory
) -> Reply | None:
    since, mode = parse_rrvs(value)
    domain_since = directory.owned_since.get(directory.local_domain(domain))
    if domain_since is not None and domain_since > since:
        return replies.DOMAIN_OWNER_CHANGED(address=address)
    for user in resolution.local:
        owned = directory.owned_since.get(user.address)
        if owned is None:
            if mode == "R":
                return replies.RRVS_CANNOT_BE_TESTED(
                    address=address, why="no owned-since time is recorded for the mailbox"
                )
            continue
        if owned > since:
            return replies.MAILBOX_OWNER_CHANGED(address=address)
    return None
