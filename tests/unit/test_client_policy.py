"""The pure cache policy: refresh schedule, backoff, cache states, auth-failure recovery."""

from __future__ import annotations

import random

import pytest

from secretswitch.client.errors import ConfigurationError
from secretswitch.client.policy import (
    AWSCURRENT,
    AWSPENDING,
    AWSPREVIOUS,
    DAY,
    CacheState,
    Failure,
    RefreshPolicy,
    Retry,
    after_failure,
    cache_state,
    deadline_before_rotation,
    is_auth_failure_code,
    recovery_stages,
    rotation_schedule_warning,
)


def test_default_interval_is_five_days_with_ten_percent_jitter() -> None:
    """5 days, not 6: rate(7 days) with a 24-hour window can rotate twice 6 days apart (fleet simulation)."""
    policy = RefreshPolicy()
    assert policy.refresh_interval == 5 * DAY
    assert policy.jitter == 0.1


@pytest.mark.parametrize("seed", range(200))
def test_refresh_is_scheduled_inside_the_interval_never_beyond(seed: int) -> None:
    policy = RefreshPolicy(refresh_interval=100.0, jitter=0.2)
    at = policy.next_refresh_at(1000.0, random.Random(seed))
    assert 1080.0 <= at <= 1100.0


def test_refresh_times_are_spread_across_the_jitter_window() -> None:
    policy = RefreshPolicy(refresh_interval=100.0, jitter=0.5)
    rng = random.Random(7)
    times = [policy.next_refresh_at(0.0, rng) for _ in range(1000)]
    assert min(times) < 55.0
    assert max(times) > 95.0
    assert max(times) <= 100.0


def test_zero_jitter_refreshes_exactly_at_the_interval() -> None:
    policy = RefreshPolicy(refresh_interval=60.0, jitter=0.0)
    assert policy.next_refresh_at(10.0, random.Random(1)) == 70.0
    assert policy.expires_at(10.0) == 70.0


def test_refresh_schedule_is_reproducible_from_the_seed() -> None:
    policy = RefreshPolicy()
    assert policy.next_refresh_at(0.0, random.Random(3)) == policy.next_refresh_at(0.0, random.Random(3))


@pytest.mark.parametrize(
    ("failures", "low", "high"),
    [
        (1, 0.5, 1.0),
        (2, 1.0, 2.0),
        (3, 2.0, 4.0),
        (6, 16.0, 32.0),
        (7, 30.0, 60.0),  # capped at 60
        (50, 30.0, 60.0),
        (5000, 30.0, 60.0),  # no overflow
    ],
)
def test_backoff_is_capped_exponential_with_jitter(failures: int, low: float, high: float) -> None:
    policy = RefreshPolicy(backoff_base=1.0, backoff_cap=60.0)
    rng = random.Random(failures)
    delays = [policy.backoff_delay(failures, rng) for _ in range(200)]
    assert all(low <= delay <= high for delay in delays)
    assert len(set(delays)) > 1, "backoff delays must be jittered"


def test_backoff_needs_at_least_one_failure() -> None:
    with pytest.raises(ConfigurationError, match="failures >= 1"):
        RefreshPolicy().backoff_delay(0, random.Random(0))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"refresh_interval": 0}, "refresh_interval must be positive"),
        ({"refresh_interval": -5.0}, "refresh_interval must be positive"),
        ({"refresh_interval": float("inf")}, "refresh_interval must be a finite number"),
        ({"refresh_interval": "6d"}, "refresh_interval must be a finite number"),
        ({"jitter": 1.0}, r"jitter must be in \[0, 1\)"),
        ({"jitter": -0.1}, r"jitter must be in \[0, 1\)"),
        ({"backoff_base": 0}, "backoff_base must be positive"),
        ({"backoff_base": 10, "backoff_cap": 5}, "backoff_cap .* must not be below"),
        ({"forced_refresh_gap": -1}, "forced_refresh_gap must not be negative"),
        ({"jitter": True}, "jitter must be a finite number"),
    ],
)
def test_bad_policy_values_give_clear_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RefreshPolicy(**options)  # type: ignore[arg-type]


def test_policy_is_frozen() -> None:
    policy = RefreshPolicy()
    with pytest.raises(AttributeError):
        policy.refresh_interval = 1.0  # type: ignore[misc]


# now, has_value, refresh_at, expires_at, retry_at -> state
CACHE_STATE_TABLE = [
    (0.0, False, 0.0, 0.0, None, CacheState.EMPTY),
    (50.0, False, 90.0, 100.0, 60.0, CacheState.EMPTY),  # no value beats backing off
    (50.0, True, 90.0, 100.0, None, CacheState.FRESH),
    (89.999, True, 90.0, 100.0, None, CacheState.FRESH),
    (90.0, True, 90.0, 100.0, None, CacheState.REFRESH_DUE),
    (99.0, True, 90.0, 100.0, None, CacheState.REFRESH_DUE),
    (100.0, True, 90.0, 100.0, None, CacheState.EXPIRED),
    (1e9, True, 90.0, 100.0, None, CacheState.EXPIRED),
    (95.0, True, 90.0, 100.0, 97.0, CacheState.BACKING_OFF),
    (150.0, True, 90.0, 100.0, 160.0, CacheState.BACKING_OFF),  # expired, but backing off: serve the old
    (97.0, True, 90.0, 100.0, 97.0, CacheState.REFRESH_DUE),  # retry time reached
    (160.0, True, 90.0, 100.0, 160.0, CacheState.EXPIRED),
    (50.0, True, 90.0, 100.0, 40.0, CacheState.FRESH),  # stale retry time is ignored
]


@pytest.mark.parametrize("case", CACHE_STATE_TABLE)
def test_cache_state_table(case: tuple[float, bool, float, float, float | None, CacheState]) -> None:
    now, has_value, refresh_at, expires_at, retry_at, expected = case
    state = cache_state(now, has_value=has_value, refresh_at=refresh_at, expires_at=expires_at, retry_at=retry_at)
    assert state is expected


@pytest.mark.parametrize(
    ("failed", "current", "expected"),
    [
        ("v1", "v2", (AWSCURRENT,)),  # AWSCURRENT moved: switch to it
        ("v1", "v1", (AWSPENDING, AWSPREVIOUS)),  # unchanged: a rotation may be in progress
        (None, "v1", (AWSCURRENT,)),
        ("v1", None, (AWSCURRENT,)),
    ],
)
def test_recovery_stages(failed: str | None, current: str | None, expected: tuple[str, ...]) -> None:
    assert recovery_stages(failed, current) == expected


@pytest.mark.parametrize(("code", "expected"), [(18, True), (8000, True), (13, False), (11600, False), (None, False)])
def test_auth_failure_codes(code: int | None, expected: bool) -> None:
    assert is_auth_failure_code(code) is expected


@pytest.mark.parametrize(
    ("refresh_days", "rotation_days", "window_hours", "warns"),
    [
        (5, 7, 24, False),  # the default against rate(7 days): a day of margin
        (6, 7, 24, True),  # two rotations can be 6 days apart: no margin left
        (6.5, 7, 24, True),  # shorter than the interval, still unsafe (the old check let it pass)
        (6, 7, 4, False),  # a 4-hour window leaves 6 days 20 hours between rotations
        (6, 6, 24, True),
        (1, 1, 24, True),  # a window as long as the interval leaves no safe refresh interval
    ],
)
def test_rotation_schedule_warning(refresh_days: float, rotation_days: int, window_hours: int, warns: bool) -> None:
    policy = RefreshPolicy(refresh_interval=refresh_days * DAY)
    warning = rotation_schedule_warning(policy, rotation_days * DAY, rotation_window=window_hours * 3600.0)
    assert (warning is not None) is warns
    if warning is not None:
        assert "shortest gap between two rotations" in warning


def test_rotation_schedule_warning_without_rotation() -> None:
    assert rotation_schedule_warning(RefreshPolicy(), None) is None


def test_deadline_before_rotation() -> None:
    assert deadline_before_rotation(100.0, 50.0, margin=10.0) == 160.0
    assert deadline_before_rotation(100.0, 50.0, margin=-20.0) == 130.0
    assert deadline_before_rotation(100.0, -50.0, margin=0.0) == 100.0  # overdue: now


# (how it failed, client replaced since, connection errors retried, what run does)
AFTER_FAILURE_TABLE = [
    (Failure.AUTH, False, False, Retry.REPAIR),  # a refused login never reached the database
    (Failure.AUTH, True, True, Retry.REPAIR),
    (Failure.NOT_SENT, True, False, Retry.RETRY),  # never left a replaced client: safe for writes too
    (Failure.NOT_SENT, False, True, Retry.RAISE),  # the live client's own timeout is the application's
    (Failure.CONNECTION, True, True, Retry.RETRY),  # reads
    (Failure.CONNECTION, True, False, Retry.RAISE),  # writes: may have been applied
    (Failure.CONNECTION, False, True, Retry.RAISE),
    (Failure.OTHER, True, True, Retry.RAISE),
]


@pytest.mark.parametrize("case", AFTER_FAILURE_TABLE)
def test_after_failure_table(case: tuple[Failure, bool, bool, Retry]) -> None:
    failure, replaced, retry_connection_errors, expected = case
    assert after_failure(failure, replaced=replaced, retry_connection_errors=retry_connection_errors) is expected
