"""Decisions about a recipient once the directory has resolved it: lists that cannot be expanded
(X.2.4) or take posts from their members only (X.7.2), addresses that match several users
(X.1.4), disabled mailboxes (X.2.1), and mailboxes with a size limit of their own (X.2.3).

Pure: each function takes the resolution and the values it needs and returns the catalogue
reply that refuses the recipient, or None.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.policy.directory import Directory, Resolution, User

__all__ = ["DEFAULT_MAX_LIST_MEMBERS", "recipient_refusal", "size_refusal"]

DEFAULT_MAX_LIST_MEMBERS = 1000  # mailboxes one recipient may expand to


def recipient_refusal(
    resolution: Resolution,
    *,
    address: str,
    sender: str | None,
    directory: Directory,
    max_members: int,
    size: int | None,
) -> Reply | None:
    """Why this resolved recipient is refused, in the order a postmaster would want to hear it:
    what cannot be resolved at all, then who may not post, then what does not fit."""
    if resolution.ambiguous and not resolution.found:
        matches = ", ".join(f"<{m}>" for m in resolution.ambiguous)
        return replies.MAILBOX_AMBIGUOUS(address=address, matches=matches)
    problem = resolution.problem
    total = len(resolution.local) + len(resolution.remote)
    if problem is None and max_members and total > max_members:
        problem = f"{total} members, more than max_list_members ({max_members})"
    if problem is not None:
        return replies.LIST_EXPANSION_FAILED(address=address, problem=problem)
    if not resolution.found and resolution.disabled:
        return replies.MAILBOX_DISABLED(address=address)
    for name in resolution.lists:
        members = directory.members_only.get(name)
        if members is not None and (sender is None or directory.key(sender) not in members):
            return replies.LIST_MEMBERS_ONLY(address=address)
    if size is not None:
        return size_refusal(resolution.local, size, address)
    return None


def size_refusal(users: Iterable[User], size: int, address: str) -> Reply | None:
    """552 5.2.3 when ``size`` octets are more than a mailbox's own limit."""
    for user in users:
        if user.max_message_size and size > user.max_message_size:
            return replies.MESSAGE_TOO_BIG_FOR_MAILBOX(address=address, limit=user.max_message_size)
    return None
