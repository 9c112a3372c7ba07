"""What the rotating client tells an application: events and a metrics snapshot.

Both are frozen values. Events carry user names, version ids and staging
labels, never a password or a connection string with credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["EVENT_KINDS", "ClientEvent", "ClientMetrics", "EventKind"]

EventKind = Literal[
    "refreshed",
    "switched",
    "auth_recovered",
    "auth_recovery_failed",
    "refresh_failed",
    "check_failed",
    "malformed_secret",
    "schedule_warning",
    "closed",
]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """One thing that happened to a :class:`~client.rotating.RotatingMongoClient`.

    Attributes:
        kind: ``refreshed`` (a read of the secret succeeded), ``switched`` (a
            new MongoClient was swapped in), ``auth_recovered`` (an
            authentication failure was repaired), ``auth_recovery_failed``,
            ``refresh_failed`` (Secrets Manager failed; the old credentials stay),
            ``check_failed`` (new credentials did not log in; the old client
            stays), ``malformed_secret`` (the new secret string is unusable; the
            old credentials stay), ``schedule_warning``, ``closed``.
        at: the client's clock when it happened.
        from_user: the user before (switches and recoveries).
        to_user: the user after, or the user read.
        from_version: the secret version before.
        to_version: the secret version after, or the version read.
        stage: the staging label read (``AWSCURRENT``, ``AWSPENDING``, ``AWSPREVIOUS``).
        message: a human-readable explanation (never a secret value).
        failures: failed attempts in the current failure streak.
    """

    kind: EventKind
    at: float
    from_user: str | None = None
    to_user: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    stage: str | None = None
    message: str = ""
    failures: int = 0


@dataclass(frozen=True, slots=True)
class ClientMetrics:
    """A snapshot of a client's counters.

    Attributes:
        api_calls: Secrets Manager API calls made (failed ones included).
        refreshes: successful reads of the secret.
        switches: MongoClients swapped in after the first one.
        auth_recoveries: authentication failures repaired (a switch and a retry).
        auth_failures: authentication failures seen by ``run``.
        refresh_failures: reads that failed (Secrets Manager errors).
        malformed_secrets: reads that returned an unusable secret string.
        check_failures: new credentials that did not pass the login check.
        retries: operations ``run`` retried on a newer client.
        logins: generations made live: the first login and one per switch
            (``generation`` is the old name, kept as an alias).
    """

    api_calls: int = 0
    refreshes: int = 0
    switches: int = 0
    auth_recoveries: int = 0
    auth_failures: int = 0
    refresh_failures: int = 0
    malformed_secrets: int = 0
    check_failures: int = 0
    retries: int = 0
    logins: int = 0

    @property
    def generation(self) -> int:
        """The old name of :attr:`logins` (kept for existing callers)."""
        return self.logins
