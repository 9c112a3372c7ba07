"""A rotating client's health in one frozen value: ``rc.health()``, for readiness and liveness probes.

Two inputs, both read without a lock and without I/O: the live generation
(its credentials and schedule, published by one attribute store) and what
the client's own events said so far (:class:`RefreshHistory`, a subscriber
the shell adds before the first read, so it sees every event). The snapshot
itself is a pure function of them and the clock, :func:`client_health`.

The rule behind ``ok`` (one verdict, the same for both clients):

* **not ok** when the client is closed, when it has not started (the asyncio
  client before ``start()``), or when the database refused the live login
  *and* the last repair failed: no version of the secret logs in, so no
  client is usable;
* **ok** otherwise, including while Secrets Manager fails, a secret is
  malformed or a login check fails (the old credentials keep working: the
  failures are counted in ``consecutive_failures``), past the upper bound
  (the cached user stays valid until the rotation after the one that
  replaced it), and while a refused login is being repaired.

A readiness probe that failed on a Secrets Manager outage would take a
whole fleet out of service for a problem that does not stop it serving;
alert on ``consecutive_failures`` and ``past_upper_bound`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from .credentials import MongoCredentials
from .events import ClientEvent

__all__ = ["ClientHealth", "LiveState", "RefreshHistory", "RefreshOutcome", "RefreshRecord", "client_health"]

RefreshOutcome = Literal["ok", "refresh_failed", "malformed_secret", "check_failed", "recovery_failed"]
"""How the last read of the secret ended: ``ok`` (read, and switched if it changed), or why not."""

_FAILED_READS = frozenset({"refresh_failed", "malformed_secret", "check_failed"})


class LiveState(Protocol):
    """What the snapshot reads from the live generation (:class:`client.state.Generation` has it)."""

    @property
    def number(self) -> int: ...  # 0 before the first client was built
    @property
    def credentials(self) -> MongoCredentials: ...
    @property
    def fetched_at(self) -> float: ...
    @property
    def refresh_at(self) -> float: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def retry_at(self) -> float | None: ...
    @property
    def refused(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """What the events said so far (see :class:`ClientHealth` for the fields)."""

    last_refresh_at: float | None = None
    last_refresh_outcome: RefreshOutcome | None = None
    consecutive_failures: int = 0
    recovery_failed: bool = False


class RefreshHistory:
    """What the client's events said about its reads of the secret; subscribe :meth:`on_event`.

    Events reach subscribers one at a time, in order, so one writer replaces
    a frozen value and readers on any thread see the old or the new one.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen = RefreshRecord()

    @property
    def seen(self) -> RefreshRecord:
        return self._seen

    def on_event(self, event: ClientEvent) -> None:
        seen = self._seen
        kind = event.kind
        if kind == "refreshed":
            # A changed secret whose login check then fails is followed by check_failed.
            seen = replace(seen, last_refresh_at=event.at, last_refresh_outcome="ok", consecutive_failures=0)
        elif kind in _FAILED_READS:
            seen = replace(
                seen,
                last_refresh_at=event.at,
                last_refresh_outcome=kind,  # type: ignore[arg-type]  # narrowed by _FAILED_READS
                consecutive_failures=event.failures,
            )
        elif kind == "auth_recovered":
            seen = replace(
                seen, last_refresh_at=event.at, last_refresh_outcome="ok", consecutive_failures=0, recovery_failed=False
            )
        elif kind == "auth_recovery_failed":
            seen = replace(seen, last_refresh_at=event.at, last_refresh_outcome="recovery_failed", recovery_failed=True)
        elif kind == "switched":
            seen = replace(seen, recovery_failed=False)
        else:
            return
        self._seen = seen

    def snapshot(self, secret_id: str, live: LiveState, *, closed: bool, now: float) -> ClientHealth:
        """The health of a client whose live generation is ``live`` at ``now``."""
        return client_health(secret_id, live, self._seen, closed=closed, now=now)


@dataclass(frozen=True, slots=True)
class ClientHealth:
    """A rotating client's health at one moment (``rc.health()``); see the module docstring for the rule.

    Times are the client's clock (monotonic seconds unless a clock was
    injected); durations are seconds of that clock.

    Attributes:
        ok: the verdict for a readiness or liveness probe.
        detail: one line that says why (never a secret value).
        secret_id: the secret's name or ARN.
        active_user: the MongoDB user the live client logs in as (``None`` before start).
        version_id: the secret version of those credentials.
        credential_age: seconds since those credentials were last read from Secrets Manager.
        last_refresh_at: when the secret was last read (successfully or not), or ``None``.
        last_refresh_outcome: how that read ended (``ok``, ``refresh_failed``,
            ``malformed_secret``, ``check_failed``, ``recovery_failed``), or ``None``.
        consecutive_failures: failed refreshes in the current streak (0 after a good read).
        next_refresh_due: when the next refresh is due (the backoff's retry time while failing).
        seconds_until_refresh: ``next_refresh_due - checked_at`` (negative: overdue).
        past_upper_bound: the credentials were last read more than ``refresh_interval`` ago.
        refused: the database refused the live login; the next call repairs the client.
        closed: ``close()`` was called.
        checked_at: the clock when the snapshot was taken.
    """

    ok: bool
    detail: str
    secret_id: str
    active_user: str | None
    version_id: str | None
    credential_age: float | None
    last_refresh_at: float | None
    last_refresh_outcome: RefreshOutcome | None
    consecutive_failures: int
    next_refresh_due: float | None
    seconds_until_refresh: float | None
    past_upper_bound: bool
    refused: bool
    closed: bool
    checked_at: float

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (for a ``/healthz`` body)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def client_health(secret_id: str, live: LiveState, seen: RefreshRecord, *, closed: bool, now: float) -> ClientHealth:
    """The snapshot and its verdict (pure: the same inputs give the same answer)."""
    started = live.number > 0
    if not started:
        return ClientHealth(
            ok=False,
            detail="closed" if closed else "not started: await start() (or use async with) first",
            secret_id=secret_id,
            active_user=None,
            version_id=None,
            credential_age=None,
            last_refresh_at=seen.last_refresh_at,
            last_refresh_outcome=seen.last_refresh_outcome,
            consecutive_failures=seen.consecutive_failures,
            next_refresh_due=None,
            seconds_until_refresh=None,
            past_upper_bound=False,
            refused=False,
            closed=closed,
            checked_at=now,
        )
    user = live.credentials.username
    due = live.retry_at if live.retry_at is not None else live.refresh_at
    past_upper_bound = now >= live.expires_at
    if closed:
        ok, detail = False, "closed"
    elif live.refused and seen.recovery_failed:
        ok, detail = False, f"MongoDB refused user {user!r} and no version of the secret logs in"
    else:
        ok, detail = True, _serving(user, live, seen, past_upper_bound=past_upper_bound)
    return ClientHealth(
        ok=ok,
        detail=detail,
        secret_id=secret_id,
        active_user=user,
        version_id=live.credentials.version_id,
        credential_age=now - live.fetched_at,
        last_refresh_at=seen.last_refresh_at,
        last_refresh_outcome=seen.last_refresh_outcome,
        consecutive_failures=seen.consecutive_failures,
        next_refresh_due=due,
        seconds_until_refresh=due - now,
        past_upper_bound=past_upper_bound,
        refused=live.refused,
        closed=closed,
        checked_at=now,
    )


def _serving(user: str, live: LiveState, seen: RefreshRecord, *, past_upper_bound: bool) -> str:
    notes = []
    if live.refused:
        notes.append("login refused, repairing on the next call")
    if seen.consecutive_failures:
        notes.append(f"{seen.consecutive_failures} failed refresh(es) in a row, last {seen.last_refresh_outcome}")
    if past_upper_bound:
        notes.append("past the upper bound")
    return f"serving user {user!r}" + (f" ({'; '.join(notes)})" if notes else "")
