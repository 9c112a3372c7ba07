"""The cache policy: when to refresh, how to back off, what to try after an auth failure.

Pure code: no boto3, no pymongo, no clock and no sleeping. Every function takes
the current time (a value of the caller's injected clock, in seconds) and a
``random.Random`` where it needs jitter, so the same inputs always give the
same answer. The rotating client (:mod:`client.rotating`) and the fleet
simulation both run exactly this code.

API:

* :class:`RefreshPolicy` — the settings (a frozen dataclass, validated):

  - ``refresh_interval`` (default 5 days, see docs/simulation.md) is an **upper bound**: each refresh
    is scheduled uniformly in ``[refresh_interval * (1 - jitter),
    refresh_interval]`` after the fetch, never beyond
    (:meth:`RefreshPolicy.next_refresh_at`);
  - ``backoff_base`` / ``backoff_cap``: a failed refresh is retried after a
    capped exponential, jittered delay (:meth:`RefreshPolicy.backoff_delay`);
  - ``forced_refresh_gap``: after an authentication failure the client re-reads
    the secret at once, but not more often than this (never a loop).

* :class:`CacheState` and :func:`cache_state` — the state of a cached value at
  a given time: ``EMPTY`` (nothing usable: the caller must fetch and wait),
  ``FRESH`` (serve it), ``REFRESH_DUE`` (serve it; one caller refreshes in the
  background), ``EXPIRED`` (past the upper bound: the refresh is overdue;
  :class:`~client.rotating.RotatingMongoClient` still refreshes in the
  background and keeps serving) and ``BACKING_OFF`` (the last refresh
  failed: serve the last good value until the retry time).

* :func:`recovery_stages` — after an authentication failure and a fresh read
  of ``AWSCURRENT``: which other staging labels to try. When ``AWSCURRENT``
  changed, switch to it; when it did not, the database may already expect the
  password of a rotation in progress (``AWSPENDING``) or the client may hold a
  version the database no longer accepts while the previous one still works
  (``AWSPREVIOUS``).

* :func:`is_auth_failure_code` — MongoDB error codes that mean "the user name
  or password is wrong" (18, and Atlas' 8000 "bad auth").

* :class:`Failure`, :class:`Retry` and :func:`after_failure` — what
  ``run`` does with an operation's error: repair the client and run once
  more, run once more on the live client, or raise.

* :func:`rotation_schedule_warning` and :func:`deadline_before_rotation` — the
  safety check against the secret's rotation schedule (DescribeSecret).
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "AUTH_FAILURE_CODES",
    "DAY",
    "CacheState",
    "Failure",
    "RefreshPolicy",
    "Retry",
    "after_failure",
    "cache_state",
    "deadline_before_rotation",
    "is_auth_failure_code",
    "recovery_stages",
    "rotation_schedule_warning",
]

DAY = 86400.0

AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"
AWSPREVIOUS = "AWSPREVIOUS"

# 18: AuthenticationFailed (mongod, SecantusDB); 8000: Atlas' "bad auth".
AUTH_FAILURE_CODES: frozenset[int] = frozenset({18, 8000})


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """How often the client re-reads the secret and how it backs off.

    All durations are in seconds of the client's clock (the demo scales its
    clock, so they are demo-seconds there).

    Attributes:
        refresh_interval: the longest a fetched value is trusted before it is
            re-read: an upper bound, not an average. Keep it shorter than the
            shortest gap between two rotations minus the rotation's own
            duration: for ``rate(7 days)`` Secrets Manager rotates at a random
            time of a 24-hour window, so two rotations can be 6 days apart,
            and 5 days keeps a day of margin (the fleet simulation measured a
            guaranteed margin of -1 minute at 6 days).
        jitter: the fraction of ``refresh_interval`` over which refreshes are
            spread, so a fleet started together does not refresh together:
            each refresh lands uniformly in ``[interval * (1 - jitter),
            interval]``. ``0`` schedules every refresh exactly at the interval.
        backoff_base: the delay after the first failed refresh.
        backoff_cap: the longest delay between two failed refreshes.
        forced_refresh_gap: the shortest time between two reads forced by
            authentication failures; a failure within the gap reuses the
            last read instead of calling Secrets Manager again.

    Raises:
        ConfigurationError: a value is negative, not finite or out of range.
    """

    refresh_interval: float = 5 * DAY
    jitter: float = 0.1
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    forced_refresh_gap: float = 1.0

    def __post_init__(self) -> None:
        for name in ("refresh_interval", "jitter", "backoff_base", "backoff_cap", "forced_refresh_gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigurationError(f"RefreshPolicy.{name} must be a finite number of seconds, got {value!r}")
        if self.refresh_interval <= 0:
            raise ConfigurationError(
                f"RefreshPolicy.refresh_interval must be positive, got {self.refresh_interval!r}; "
                "use a few days, shorter than the secret's rotation interval"
            )
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(f"RefreshPolicy.jitter must be in [0, 1), got {self.jitter!r}")
        if self.backoff_base <= 0:
            raise ConfigurationError(f"RefreshPolicy.backoff_base must be positive, got {self.backoff_base!r}")
        if self.backoff_cap < self.backoff_base:
            raise ConfigurationError(
                f"RefreshPolicy.backoff_cap ({self.backoff_cap!r}) must not be below "
                f"backoff_base ({self.backoff_base!r})"
            )
        if self.forced_refresh_gap < 0:
            raise ConfigurationError(
                f"RefreshPolicy.forced_refresh_gap must not be negative, got {self.forced_refresh_gap!r}"
            )

    @property
    def earliest_refresh(self) -> float:
        """The shortest delay :meth:`next_refresh_at` can give."""
        return self.refresh_interval * (1.0 - self.jitter)

    def next_refresh_at(self, fetched_at: float, rng: random.Random) -> float:
        """When a value fetched at ``fetched_at`` is due for a refresh.

        Args:
            fetched_at: the clock value when the value was read.
            rng: the source of jitter.

        Returns:
            A time in ``[fetched_at + refresh_interval * (1 - jitter),
            fetched_at + refresh_interval]``.
        """
        if self.jitter == 0:
            return fetched_at + self.refresh_interval
        delay = rng.uniform(self.earliest_refresh, self.refresh_interval)
        # uniform() may round to just above its upper end; the interval is a bound.
        return fetched_at + min(delay, self.refresh_interval)

    def expires_at(self, fetched_at: float) -> float:
        """The upper bound: past it the value is ``EXPIRED``."""
        return fetched_at + self.refresh_interval

    def backoff_delay(self, failures: int, rng: random.Random) -> float:
        """The delay before retrying after ``failures`` failed refreshes in a row.

        Capped exponential with "equal jitter": the nominal delay is
        ``min(backoff_cap, backoff_base * 2 ** (failures - 1))`` and the result
        is uniform in ``[nominal / 2, nominal]``, so retries from many clients
        spread out but never wait longer than the cap.

        Args:
            failures: failed refreshes in the current streak (1 for the first).
            rng: the source of jitter.

        Raises:
            ConfigurationError: ``failures`` is below 1.
        """
        if failures < 1:
            raise ConfigurationError(f"backoff_delay needs failures >= 1, got {failures!r}")
        # Bound the exponent: 2 ** 1100 overflows a float.
        nominal = min(self.backoff_cap, self.backoff_base * 2.0 ** min(failures - 1, 1000))
        return rng.uniform(nominal / 2.0, nominal)


class CacheState(enum.Enum):
    """What a cached value is good for at a given time (see :func:`cache_state`)."""

    EMPTY = "empty"
    """No usable value: the caller must fetch one and wait for it."""
    FRESH = "fresh"
    """Serve it; nothing to do."""
    REFRESH_DUE = "refresh_due"
    """Serve it; one caller starts a refresh in the background."""
    EXPIRED = "expired"
    """Past the upper bound: the refresh is overdue (the rotating client still refreshes in the background)."""
    BACKING_OFF = "backing_off"
    """The last refresh failed: serve the last good value until the retry time."""


def cache_state(
    now: float,
    *,
    has_value: bool,
    refresh_at: float,
    expires_at: float,
    retry_at: float | None = None,
) -> CacheState:
    """The state of a cached value at time ``now``.

    Args:
        now: the current clock value.
        has_value: whether a good value has ever been fetched.
        refresh_at: the (jittered) time the value is due for a refresh.
        expires_at: the upper bound (fetch time + ``refresh_interval``).
        retry_at: after a failed refresh, when to try again; ``None`` when
            the last refresh succeeded.

    Returns:
        ``EMPTY`` without a value (whatever the times), ``BACKING_OFF`` before
        ``retry_at``, else ``FRESH`` before ``refresh_at``, ``REFRESH_DUE``
        before ``expires_at`` and ``EXPIRED`` from then on.
    """
    if not has_value:
        return CacheState.EMPTY
    if retry_at is not None and now < retry_at:
        return CacheState.BACKING_OFF
    if now < refresh_at:
        return CacheState.FRESH
    if now < expires_at:
        return CacheState.REFRESH_DUE
    return CacheState.EXPIRED


def is_auth_failure_code(code: int | None) -> bool:
    """True for MongoDB error codes meaning the user name or password was refused."""
    return code in AUTH_FAILURE_CODES


class Failure(enum.Enum):
    """How an operation failed, as far as running it again is concerned (see ``client.mongo.classify_failure``)."""

    AUTH = "auth"
    """The database refused the login (18/8000), also when pymongo reports it inside a server selection timeout."""
    NOT_SENT = "not_sent"
    """No server was selected, or the client was closed under it: the command never left."""
    CONNECTION = "connection"
    """A network error: the command may have run."""
    OTHER = "other"
    """Anything else (a duplicate key, a bad query, ...): the application's to handle."""


class Retry(enum.Enum):
    """What ``run`` does after an operation failed (see :func:`after_failure`)."""

    REPAIR = "repair"
    """Replace the refused client (single flight), then run the operation once more."""
    RETRY = "retry"
    """Run the operation once more on the live client."""
    RAISE = "raise"
    """Let the error reach the application."""


def after_failure(failure: Failure, *, replaced: bool, retry_connection_errors: bool) -> Retry:
    """Whether an operation that failed is run once more, and how.

    Args:
        failure: how it failed.
        replaced: the client it ran on has been replaced (or is being repaired) since.
        retry_connection_errors: a network error from a replaced client may be
            retried (reads; not writes, which may have been applied).

    Returns:
        ``REPAIR`` after a refused login (the command never reached the
        database); ``RETRY`` when the client was replaced and the command was
        never sent, or, if allowed, after a network error on it; else ``RAISE``.
    """
    if failure is Failure.AUTH:
        return Retry.REPAIR
    if replaced and (failure is Failure.NOT_SENT or (retry_connection_errors and failure is Failure.CONNECTION)):
        return Retry.RETRY
    return Retry.RAISE


def recovery_stages(failed_version: str | None, current_version: str | None) -> tuple[str, ...]:
    """The staging labels to try, in order, after an authentication failure.

    Called once ``AWSCURRENT`` has been re-read.

    Args:
        failed_version: the version id of the credentials the database refused.
        current_version: the version id ``AWSCURRENT`` has now.

    Returns:
        ``("AWSCURRENT",)`` when ``AWSCURRENT`` moved (switch to it);
        ``("AWSPENDING", "AWSPREVIOUS")`` when it did not (a rotation is in
        progress or was rolled back). The caller tries each label until one
        logs in, and gives up after the last: never a loop.
    """
    if current_version is None or current_version != failed_version:
        return (AWSCURRENT,)
    return (AWSPENDING, AWSPREVIOUS)


def rotation_schedule_warning(
    policy: RefreshPolicy,
    rotation_interval: float | None,
    *,
    rotation_window: float = DAY,
    rotation_duration: float = 3600.0,
) -> str | None:
    """A warning when a cached user could be rotated twice before it is re-read.

    With alternating users, a cached user keeps working until the rotation
    after the one that demoted it. Secrets Manager starts each rotation at a
    random time of its window, so two rotations can be as close as
    ``rotation_interval - rotation_window``; and a value read while a rotation
    is running names the user the *next* rotation changes. The refresh
    interval (already an upper bound, jitter included) must be shorter than
    ``rotation_interval - rotation_window - rotation_duration``.

    Args:
        policy: the client's policy.
        rotation_interval: the secret's rotation interval in seconds, or
            ``None`` when rotation is off or unreadable.
        rotation_window: the length of the rotation window (``Duration``;
            a day for ``rate(N days)`` without one).
        rotation_duration: how long one rotation may take, createSecret to
            finishSecret.

    Returns:
        A message without any secret value, or ``None`` when the schedule is safe.
    """
    if rotation_interval is None:
        return None
    shortest_gap = rotation_interval - rotation_window
    if policy.refresh_interval < shortest_gap - rotation_duration:
        return None
    return (
        f"refresh interval {policy.refresh_interval / DAY:.2f} days is not shorter than the shortest gap between "
        f"two rotations ({rotation_interval / DAY:.2f}-day rotation, {rotation_window / 3600:.0f}-hour window: "
        f"{shortest_gap / DAY:.2f} days) minus {rotation_duration / 60:.0f} minutes for a rotation to run: a cached "
        "user may be rotated twice before it is re-read; lower RefreshPolicy.refresh_interval "
        "or derive the deadline from the schedule"
    )


def deadline_before_rotation(now: float, seconds_until_next_rotation: float, *, margin: float) -> float:
    """A refresh deadline (clock value) derived from the secret's next rotation date.

    With alternating users the credentials cached before a rotation keep
    working until the rotation after it, so the best time to re-read is just
    after the next rotation has finished: ``margin`` seconds after it (give a
    rotation time to complete; a negative margin refreshes before it).

    Args:
        now: the current clock value.
        seconds_until_next_rotation: time from now to the secret's next rotation.
        margin: seconds added to the next rotation time.

    Returns:
        The deadline, never earlier than ``now``.
    """
    return max(now, now + seconds_until_next_rotation + margin)
