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

* **The rotation gap**, one rule for three callers (the client's
  ``check_rotation_schedule()``, the rotation function's guard and
  ``secretswitch status``): a rotation changes the password of the user that
  was ``AWSCURRENT`` until the previous rotation, and a reader may hold that
  user for up to its refresh interval after it last read it. So a user's
  password may change only when the user stopped being ``AWSCURRENT`` at
  least a *gap* ago, the gap being longer than every reader's refresh
  interval. :func:`shortest_rotation_gap` / :func:`schedule_keeps_gap` say
  whether a schedule keeps a gap; :class:`RotationRecord`, :func:`last_switch`
  and :func:`rotation_gap_decision` decide whether one rotation may start now
  (:data:`DEFAULT_MIN_ROTATION_GAP`: the client's default refresh interval
  plus :data:`ROTATION_GAP_MARGIN`).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import random
from dataclasses import dataclass

from .errors import ConfigurationError
from .names import AWSCURRENT, AWSPENDING, AWSPREVIOUS

__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "AUTH_FAILURE_CODES",
    "DAY",
    "DEFAULT_MIN_ROTATION_GAP",
    "MAX_GUARD_OVERRIDE",
    "ROTATION_DURATION",
    "ROTATION_GAP_MARGIN",
    "CacheState",
    "Failure",
    "GapDecision",
    "RefreshPolicy",
    "Retry",
    "RotationRecord",
    "after_failure",
    "cache_state",
    "deadline_before_rotation",
    "is_auth_failure_code",
    "last_switch",
    "recovery_stages",
    "rotation_gap_decision",
    "rotation_schedule_warning",
    "schedule_keeps_gap",
    "shortest_rotation_gap",
]

DAY = 86400.0


# 18: AuthenticationFailed (mongod, SecantusDB); 8000: Atlas' "bad auth".
AUTH_FAILURE_CODES: frozenset[int] = frozenset({18, 8000})

ROTATION_DURATION = 3600.0
"""How long one rotation may take, createSecret to finishSecret (the budget every gap check allows it)."""


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
    rotation_duration: float = ROTATION_DURATION,
) -> str | None:
    """A warning when a cached user could be rotated twice before it is re-read.

    The rotation-gap rule (see the module docstring) with the client's
    refresh interval as the gap: Secrets Manager starts each rotation at a
    random time of its window, so two rotations can be as close as
    ``rotation_interval - rotation_window``, and a value read while a rotation
    is running names the user the *next* rotation changes. The refresh
    interval (already an upper bound, jitter included) must be shorter than
    :func:`shortest_rotation_gap`.

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
    if rotation_interval is None or schedule_keeps_gap(
        policy.refresh_interval, rotation_interval, rotation_window=rotation_window, rotation_duration=rotation_duration
    ):
        return None
    shortest_gap = rotation_interval - rotation_window
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


# -- the rotation gap --------------------------------------------------------------------------

ROTATION_GAP_MARGIN = 12 * 3600.0
"""What :data:`DEFAULT_MIN_ROTATION_GAP` adds to the client's default refresh interval.

At least :data:`ROTATION_DURATION` (Secrets Manager records a rotation's start
or end, and a reader may read the old user until its end), at most a day
minus that duration, so that ``rate(7 days)`` keeps the gap even with a
24-hour window (6 days minus an hour between two rotations)."""

DEFAULT_MIN_ROTATION_GAP = RefreshPolicy().refresh_interval + ROTATION_GAP_MARGIN
"""The rotation guard's default: 5 days (the client's refresh interval) + 12 hours = 5.5 days."""

MAX_GUARD_OVERRIDE = 3600.0
"""The furthest ahead an emergency override may expire: one set for longer is ignored, never honoured."""


def shortest_rotation_gap(
    rotation_interval: float, *, rotation_window: float = DAY, rotation_duration: float = ROTATION_DURATION
) -> float:
    """The least time a schedule leaves from the end of one rotation to the start of the next (seconds).

    Secrets Manager starts a rotation anywhere in its window, so two starts
    can be ``rotation_interval - rotation_window`` apart, and the first one may
    still run for ``rotation_duration``.
    """
    return rotation_interval - rotation_window - rotation_duration


def schedule_keeps_gap(
    gap: float,
    rotation_interval: float | None,
    *,
    rotation_window: float = DAY,
    rotation_duration: float = ROTATION_DURATION,
) -> bool:
    """Whether every two scheduled rotations are more than ``gap`` apart (True when rotation is off).

    ``gap`` is a client's refresh interval (``check_rotation_schedule()``) or
    the rotation guard's minimum gap (``secretswitch status``): the same rule.
    """
    if rotation_interval is None:
        return True
    shortest = shortest_rotation_gap(
        rotation_interval, rotation_window=rotation_window, rotation_duration=rotation_duration
    )
    return gap < shortest


@dataclass(frozen=True, slots=True)
class RotationRecord:
    """What Secrets Manager itself records about a secret's past switches: dates and counts, never a value.

    Times are seconds of the wall clock (epoch). Only Secrets Manager writes
    these: nobody sets a ``CreatedDate`` or ``LastRotatedDate``, whatever the
    secret's value says.

    Attributes:
        last_rotated: ``DescribeSecret``'s ``LastRotatedDate`` (``None`` when
            never rotated, or while rotation is disabled).
        current_created: the ``CreatedDate`` of the ``AWSCURRENT`` version
            (``ListSecretVersionIds``).
        other_versions: versions other than ``AWSCURRENT`` and the rotation's
            own pending version, deprecated ones (no label) included.
        rotation_started: the ``CreatedDate`` of the rotation's own pending
            version, when one is being decided; a ``LastRotatedDate`` from then
            on belongs to this rotation, not to the previous one.
    """

    last_rotated: float | None
    current_created: float | None
    other_versions: int
    rotation_started: float | None = None


def last_switch(record: RotationRecord) -> float | None:
    """When ``AWSCURRENT`` last moved, as far as Secrets Manager records it.

    The later of ``LastRotatedDate`` (the previous rotation) and the
    ``AWSCURRENT`` version's ``CreatedDate`` (that rotation's createSecret, or
    a ``PutSecretValue`` since, which moves ``AWSCURRENT`` too). Both are at or
    before the real move; :data:`ROTATION_DURATION` in the gap covers the
    difference.

    Returns:
        The time, ``None`` when the secret has no history (one version, never
        rotated: its first rotation), or ``-inf`` when it has history but no
        date (the caller refuses: it cannot tell).
    """
    if record.last_rotated is None and record.other_versions == 0:
        return None
    dates = [record.current_created] if record.current_created is not None else []
    if record.last_rotated is not None and (
        record.rotation_started is None or record.last_rotated < record.rotation_started
    ):
        dates.append(record.last_rotated)
    return max(dates) if dates else -math.inf


@dataclass(frozen=True, slots=True)
class GapDecision:
    """Whether a rotation may start now (see :func:`rotation_gap_decision`).

    Attributes:
        allowed: the rotation may change a password.
        reason: one line for a person: why (names times, never a value).
        last_switch: when ``AWSCURRENT`` last moved (``None``: no history).
        safe_at: the earliest time the gap allows the next rotation (``None``: now).
        overridden: allowed only by the emergency override.
    """

    allowed: bool
    reason: str
    last_switch: float | None
    safe_at: float | None
    overridden: bool = False


def _when(seconds: float) -> str:
    if not math.isfinite(seconds) or not -1e11 < seconds < 1e11:
        return str(seconds)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(seconds: float) -> str:
    if abs(seconds) >= DAY:
        return f"{seconds / DAY:.2f} d"
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s"


def rotation_gap_decision(
    now: float,
    record: RotationRecord,
    *,
    min_gap: float,
    override_until: float | None = None,
    max_override: float = MAX_GUARD_OVERRIDE,
) -> GapDecision:
    """The rotation guard: may a rotation change the current user's partner now?

    The partner was ``AWSCURRENT`` until the last switch, so readers may hold
    it until their refresh: refused until ``last_switch + min_gap``. A secret
    without history (its first rotation) is allowed; ``min_gap <= 0`` turns
    the guard off. An emergency override is honoured while ``now <
    override_until <= now + max_override``: a far-future one (left on by
    accident) and an expired one are ignored.

    Args:
        now: the current wall-clock time (epoch seconds).
        record: what Secrets Manager recorded (never the secret's value).
        min_gap: the minimum gap in seconds.
        override_until: the emergency override's expiry, if one is set.
        max_override: the furthest ahead an override may expire.
    """
    if min_gap <= 0:
        return GapDecision(True, "the rotation guard is off", last_switch(record), None)
    switch = last_switch(record)
    if switch is None:
        return GapDecision(True, "first rotation: the secret has no rotation history", None, None)
    if switch == -math.inf:
        safe_at: float = math.inf
        why = "Secrets Manager reports no date for the last switch, so the gap cannot be checked"
    else:
        safe_at = switch + min_gap
        if now >= safe_at:
            return GapDecision(
                True, f"AWSCURRENT last moved {_span(now - switch)} ago (gap {_span(min_gap)})", switch, None
            )
        why = (
            f"AWSCURRENT last moved at {_when(switch)}, {_span(now - switch)} ago, less than the minimum gap of "
            f"{_span(min_gap)}; the next rotation is safe from {_when(safe_at)}"
        )
    if override_until is not None:
        if now < override_until <= now + max_override:
            return GapDecision(
                True, f"{why}; allowed by the emergency override until {_when(override_until)}", switch, safe_at, True
            )
        if override_until <= now:
            why += f"; the emergency override expired at {_when(override_until)}"
        else:
            why += (
                f"; the emergency override until {_when(override_until)} is ignored: an override may expire at "
                f"most {_span(max_override)} ahead"
            )
    return GapDecision(False, why, switch, safe_at if math.isfinite(safe_at) else None)
