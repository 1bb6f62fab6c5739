"""The decisions of a session: who may relay, which recipients exist, credentials, limits."""

from mailroom.policy.base import Decision, Policy, SessionView
from mailroom.policy.catcher import CatcherPolicy
from mailroom.policy.credentials import AcceptAny, CredentialError, CredentialStore, PasswordFile

__all__ = [
    "AcceptAny",
    "CatcherPolicy",
    "CredentialError",
    "CredentialStore",
    "Decision",
    "PasswordFile",
    "Policy",
    "SessionView",
]
