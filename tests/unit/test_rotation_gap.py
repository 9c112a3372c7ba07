"""The rotation-gap rule: one definition for the client's schedule check, the rotation guard and ``status``."""

from __future__ import annotations

import math

import pytest

from secretswitch.client.policy import (
    DAY,
    DEFAULT_MIN_ROTATION_GAP,
    MAX_GUARD_OVERRIDE,
    ROTATION_DURATION,
    RefreshPolicy,
    RotationRecord,
    last_switch,
    rotation_gap_decision,
    rotation_schedule_warning,
    schedule_keeps_gap,
    shortest_rotation_gap,
)

HOUR = 3600.0
T0 = 1_790_000_000.0  # a wall-clock time (2026)


def test_the_default_is_the_client_refresh_interval_plus_twelve_hours() -> None:
    assert DEFAULT_MIN_ROTATION_GAP == RefreshPolicy().refresh_interval + 12 * HOUR == 5.5 * DAY
    # It protects clients with the default refresh interval, rotation time included ...
    assert RefreshPolicy().refresh_interval <= DEFAULT_MIN_ROTATION_GAP - ROTATION_DURATION
    # ... and rate(7 days) keeps it even with the widest (24-hour) window: scheduled rotations pass.
    assert schedule_keeps_gap(DEFAULT_MIN_ROTATION_GAP, 7 * DAY, rotation_window=24 * HOUR)


@pytest.mark.parametrize(
    ("gap_days", "rotation_days", "window_hours", "kept"),
    [
        (5.0, 7, 24, True),  # the client's default refresh against rate(7 days)
        (5.5, 7, 24, True),  # the guard's default
        (5.5, 7, 2, True),  # the SAM template's schedule: rate(7 days), 2h window
        (6.0, 7, 24, False),  # 6 days minus an hour between two rotations: not kept
        (5.5, 6, 24, False),  # rate(6 days) leaves 4 d 23 h
        (0.5, 1, 24, False),  # a window as long as the interval keeps no gap
    ],
)
def test_schedule_keeps_gap(gap_days: float, rotation_days: int, window_hours: float, kept: bool) -> None:
    assert schedule_keeps_gap(gap_days * DAY, rotation_days * DAY, rotation_window=window_hours * HOUR) is kept


def test_no_schedule_keeps_any_gap_and_the_shortest_gap_is_interval_minus_window_minus_duration() -> None:
    assert schedule_keeps_gap(1000 * DAY, None)
    assert shortest_rotation_gap(7 * DAY, rotation_window=2 * HOUR) == 7 * DAY - 3 * HOUR


@pytest.mark.parametrize("refresh_days", [1.0, 4.0, 5.0, 5.9, 6.0, 6.5])
def test_the_client_warning_and_the_guard_share_the_rule(refresh_days: float) -> None:
    """``check_rotation_schedule()``'s warning is exactly "the schedule does not keep the refresh interval"."""
    policy = RefreshPolicy(refresh_interval=refresh_days * DAY)
    warned = rotation_schedule_warning(policy, 7 * DAY, rotation_window=24 * HOUR) is not None
    assert warned is not schedule_keeps_gap(policy.refresh_interval, 7 * DAY, rotation_window=24 * HOUR)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (RotationRecord(None, T0, 0), None),  # a new secret: one version, never rotated
        (RotationRecord(None, T0, 1), T0),  # PutSecretValue since: that moved AWSCURRENT
        (RotationRecord(T0 + 30, T0, 1), T0 + 30),  # LastRotatedDate after createSecret: the later one
        (RotationRecord(T0 - DAY, T0, 1), T0),  # a PutSecretValue after the last rotation
        (RotationRecord(T0, None, 0), T0),  # rotated, other versions gone: the date still counts
        # A LastRotatedDate from this very rotation (stamped at its start) is not the previous switch.
        (RotationRecord(T0 + DAY, T0, 1, rotation_started=T0 + DAY), T0),
        (RotationRecord(None, None, 2), -math.inf),  # history without a date: unknown
    ],
)
def test_last_switch(record: RotationRecord, expected: float | None) -> None:
    assert last_switch(record) == expected


HISTORY = RotationRecord(last_rotated=T0, current_created=T0 - 20, other_versions=1)


@pytest.mark.parametrize(
    ("now", "record", "min_gap", "override_until", "allowed", "overridden"),
    [
        (T0 + DAY, HISTORY, DEFAULT_MIN_ROTATION_GAP, None, False, False),  # a manual rotation a day later
        (T0 + 5.5 * DAY - 1, HISTORY, DEFAULT_MIN_ROTATION_GAP, None, False, False),
        (T0 + 5.5 * DAY, HISTORY, DEFAULT_MIN_ROTATION_GAP, None, True, False),  # exactly the gap: allowed
        (T0 + 7 * DAY, HISTORY, DEFAULT_MIN_ROTATION_GAP, None, True, False),
        (T0 + 1, RotationRecord(None, T0, 0), DEFAULT_MIN_ROTATION_GAP, None, True, False),  # first rotation
        (T0 + 1, HISTORY, 0.0, None, True, False),  # guard off
        (T0 + 1, RotationRecord(None, None, 2), DEFAULT_MIN_ROTATION_GAP, None, False, False),  # no date
        (T0 + DAY, HISTORY, DEFAULT_MIN_ROTATION_GAP, T0 + DAY + 600, True, True),  # override in force
        (T0 + DAY, HISTORY, DEFAULT_MIN_ROTATION_GAP, T0 + DAY, False, False),  # expired (at its instant)
        (T0 + DAY, HISTORY, DEFAULT_MIN_ROTATION_GAP, T0 + DAY - 1, False, False),  # expired
        # Set for longer than allowed (left on by accident, or "until 2099"): ignored.
        (T0 + DAY, HISTORY, DEFAULT_MIN_ROTATION_GAP, T0 + DAY + MAX_GUARD_OVERRIDE + 1, False, False),
        (T0 + 6 * DAY, HISTORY, DEFAULT_MIN_ROTATION_GAP, T0 + 6 * DAY + 600, True, False),  # not needed
    ],
)
def test_rotation_gap_decision(  # noqa: PLR0917 - one parameter per table column
    now: float,
    record: RotationRecord,
    min_gap: float,
    override_until: float | None,
    allowed: bool,
    overridden: bool,
) -> None:
    decision = rotation_gap_decision(now, record, min_gap=min_gap, override_until=override_until)
    assert (decision.allowed, decision.overridden) == (allowed, overridden)
    assert "\n" not in decision.reason


def test_a_refusal_says_when_the_next_rotation_is_safe() -> None:
    decision = rotation_gap_decision(T0 + DAY, HISTORY, min_gap=DEFAULT_MIN_ROTATION_GAP)
    assert decision.safe_at == T0 + 5.5 * DAY
    assert "the next rotation is safe from 2026-" in decision.reason
    expired = rotation_gap_decision(T0 + DAY, HISTORY, min_gap=DEFAULT_MIN_ROTATION_GAP, override_until=T0)
    assert "override expired" in expired.reason
    too_long = rotation_gap_decision(T0 + DAY, HISTORY, min_gap=DEFAULT_MIN_ROTATION_GAP, override_until=T0 + 9 * DAY)
    assert "is ignored" in too_long.reason
