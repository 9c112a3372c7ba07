"""The fleet simulation's operator scenario: a manual rotation a day after a scheduled one, guard or not."""

from __future__ import annotations

import random

from secretswitch.client.policy import DAY, DEFAULT_MIN_ROTATION_GAP
from secretswitch.simulate import FleetConfig, format_operator_scenario, operator_scenario, rotation_schedule

SMALL = FleetConfig(instances=300, days=60, seed=7)


def test_the_manual_rotation_comes_a_day_after_the_first_scheduled_one_from_day_14() -> None:
    rotations = rotation_schedule(random.Random(3), horizon=60 * DAY, operator_rotation_after=DAY)
    manual = [r for r in rotations if r.manual]
    assert len(manual) == 1
    before = max((r for r in rotations if r.started_at < manual[0].started_at), key=lambda r: r.started_at)
    assert before.started_at >= 14 * DAY
    assert manual[0].started_at == before.started_at + DAY


def test_the_guard_refuses_the_operator_rotation_and_lets_every_scheduled_one_through() -> None:
    refused: list[object] = []
    guarded = rotation_schedule(
        random.Random(3),
        horizon=365 * DAY,
        operator_rotation_after=DAY,
        guard_gap=DEFAULT_MIN_ROTATION_GAP,
        refused=refused,
    )
    assert len(refused) == 1
    assert not any(r.manual for r in guarded)
    unguarded = [r for r in rotation_schedule(random.Random(3), horizon=365 * DAY) if not r.manual]
    assert len(guarded) == len(unguarded)


def test_without_the_guard_non_recovering_clients_fail_and_ours_all_call_at_once() -> None:
    (without_name, without), (with_name, guarded) = operator_scenario(SMALL)
    assert (without_name, with_name) == ("no guard", "guard (5.50 d)")
    assert without.manual_rotations == 1
    assert without.refused_rotations == 0
    assert without.broken_operations > 0
    assert without.broken_instances > SMALL.instances // 2  # most had not refreshed since the day before
    assert without.failed_operations == 0  # ours recover ...
    assert without.peak_calls_per_second > 10 * guarded.peak_calls_per_second  # ... all at once
    assert guarded.refused_rotations == 1
    assert guarded.broken_operations == 0
    assert guarded.recoveries == 0
    table = format_operator_scenario([(without_name, without), (with_name, guarded)])
    assert "NON-RECOVERING clients: failed operations" in table
    assert "peak GetSecretValue per second" in table
