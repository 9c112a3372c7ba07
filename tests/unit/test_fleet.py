"""The fleet simulation: rotation schedule, alternating-users password state, detection of unsafe policies."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace
from pathlib import Path

import pytest

from secretswitch import cli, simulate
from secretswitch.client.policy import DAY, RefreshPolicy
from secretswitch.simulate import (
    FleetConfig,
    HeldCredential,
    PasswordState,
    Rotation,
    guaranteed_margin,
    rotation_schedule,
    simulate_fleet,
    worst_case_schedule,
)

HOUR = 3600.0
SMALL = FleetConfig(instances=200, days=60, seed=7)


def _policy(days: float, jitter: float) -> RefreshPolicy:
    return replace(RefreshPolicy(), refresh_interval=days * DAY, jitter=jitter)


@pytest.mark.parametrize("seed", range(40))
def test_rate_7_days_with_a_24h_window_gives_gaps_between_6_and_8_days(seed: int) -> None:
    rotations = rotation_schedule(random.Random(seed), horizon=365 * DAY)
    assert len(rotations) >= 50
    for earlier, later in itertools.pairwise(rotations):
        assert 6 * DAY <= later.started_at - earlier.started_at <= 8 * DAY
    for rotation in rotations:
        assert not rotation.manual
        assert rotation.finished_at - rotation.started_at == 60.0


def test_rotations_start_inside_the_window_that_opens_at_midnight() -> None:
    rotations = rotation_schedule(random.Random(3), horizon=365 * DAY, window_hours=3)
    hours = [(rotation.started_at % DAY) / HOUR for rotation in rotations]
    assert all(0 <= hour < 3 for hour in hours)
    # The window is not degenerate: the hours do vary inside it.
    assert max(hours) - min(hours) > 1
    for earlier, later in itertools.pairwise(rotations):
        assert 7 * DAY - 3 * HOUR <= later.started_at - earlier.started_at <= 7 * DAY + 3 * HOUR


def test_a_manual_rotation_restarts_the_schedule_from_its_day() -> None:
    rotations = rotation_schedule(random.Random(11), horizon=365 * DAY, manual_rotations=5)
    assert sum(rotation.manual for rotation in rotations) == 5
    for earlier, later in itertools.pairwise(rotations):
        assert later.started_at >= earlier.finished_at, "rotations never overlap"
        if not later.manual:
            assert int(later.started_at // DAY) == int(earlier.started_at // DAY) + 7


def test_a_window_longer_than_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="window_hours"):
        rotation_schedule(random.Random(0), horizon=DAY, window_hours=25)


def test_worst_case_schedule_alternates_the_shortest_and_longest_gaps() -> None:
    rotations = worst_case_schedule(horizon=60 * DAY)
    gaps = [later.started_at - earlier.started_at for earlier, later in itertools.pairwise(rotations)]
    assert gaps[0] == 7 * DAY - (24 * HOUR - 1)
    assert gaps[1] == 7 * DAY + (24 * HOUR - 1)
    assert min(gaps) == 6 * DAY + 1


def test_password_state_on_a_hand_worked_example() -> None:
    # Rotations at t=10, 20, 30; each finishes 5 s after it changed the password.
    state = PasswordState([Rotation(10, 15), Rotation(20, 25), Rotation(30, 35)])
    app0 = HeldCredential("app", 0, "v0")
    clone1 = HeldCredential("app_clone", 1, "v1")
    app1 = HeldCredential("app", 1, "v2")
    clone2 = HeldCredential("app_clone", 2, "v3")

    # AWSCURRENT moves at finishSecret, to the user whose password the rotation changed.
    assert state.current_at(0) == app0
    assert state.current_at(14.9) == app0
    assert state.current_at(15) == clone1
    assert state.current_at(25) == app1
    assert state.current_at(35) == clone2

    # Rotation 1 changes app_clone (AWSPREVIOUS at first), rotation 2 changes app, rotation 3 app_clone again.
    assert [state.password_number_at("app_clone", t) for t in (9.9, 10, 29.9, 30)] == [0, 1, 1, 2]
    assert [state.password_number_at("app", t) for t in (19.9, 20, 40)] == [0, 1, 1]

    # The user the fleet was using keeps working until the rotation after the one that retired it.
    assert state.logs_in(app0, 19.9)
    assert not state.logs_in(app0, 20)
    assert state.changed_at(app0) == 20
    assert state.changed_at(HeldCredential("app_clone", 0, "v0")) == 10
    assert state.changed_at(clone1) == 30
    assert math.isinf(state.changed_at(app1))

    # Staging labels during and after rotation 1.
    assert state.stage_at("AWSPENDING", 12) == clone1
    assert state.stage_at("AWSPENDING", 16) is None
    assert state.stage_at("AWSPREVIOUS", 16) == app0
    assert state.stage_at("AWSPREVIOUS", 5) is None


@pytest.mark.parametrize("seed", range(5))
def test_awscurrent_always_logs_in_and_each_rotation_changes_awsprevious(seed: int) -> None:
    rotations = rotation_schedule(random.Random(seed), horizon=200 * DAY, manual_rotations=6)
    state = PasswordState(rotations)
    for number, rotation in enumerate(rotations):
        before = rotation.started_at - 1
        active = state.current_at(before)
        (passive,) = {"app", "app_clone"} - {active.user}
        previous = state.stage_at("AWSPREVIOUS", before)
        # Before the first rotation no version has AWSPREVIOUS yet; after it, AWSPREVIOUS names the passive user.
        assert (previous is None) == (number == 0)
        assert previous is None or previous.user == passive
        assert state.password_number_at(passive, rotation.started_at) == state.password_number_at(passive, before) + 1
        assert state.password_number_at(active.user, rotation.started_at) == state.password_number_at(
            active.user, before
        )
        for at in (before, rotation.started_at, (rotation.started_at + rotation.finished_at) / 2, rotation.finished_at):
            assert state.logs_in(state.current_at(at), at)


def test_a_refresh_interval_not_shorter_than_the_rotation_gap_is_detected() -> None:
    """Jitter 0 and a 7-day refresh against a 7-day rotation: broken without recovery, 0 failures with it."""
    report = simulate_fleet(replace(SMALL, policy=_policy(7, 0.0)))
    assert report.broken_instances > 0
    assert report.broken_operations > 0
    assert report.min_margin < 0
    assert report.failed_operations == 0
    assert report.recoveries > 0


def test_the_six_day_interval_breaks_on_the_worst_case_schedule() -> None:
    """6 days is not shorter than the shortest gap rate(7 days) allows once a rotation takes time."""
    # A rotation that takes 10 minutes from setSecret to finishSecret (a slow Lambda, a retried step).
    config = replace(SMALL, instances=1000, days=120, rotation_seconds=600, policy=_policy(6, 0.0), worst_case=True)
    assert guaranteed_margin(config) < 0
    report = simulate_fleet(config)
    assert report.broken_instances > 0
    assert report.failed_operations == 0


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.25])
def test_a_five_day_interval_never_breaks_even_on_the_worst_case_schedule(jitter: float) -> None:
    for worst_case in (False, True):
        config = replace(SMALL, policy=_policy(5, jitter), worst_case=worst_case)
        report = simulate_fleet(config)
        assert report.broken_instances == 0
        assert report.recoveries == 0
        assert report.min_margin > 23 * HOUR
        assert guaranteed_margin(config) > 23 * HOUR


def test_the_client_default_refresh_interval_has_a_margin_of_hours() -> None:
    assert guaranteed_margin(FleetConfig()) > 12 * HOUR


def test_manual_rotations_break_instances_without_recovery_and_none_with_it() -> None:
    report = simulate_fleet(replace(SMALL, manual_rotations=3, policy=_policy(5, 0.1)))
    assert report.manual_rotations == 3
    assert report.broken_instances > 0
    assert report.failed_operations == 0
    assert report.recovered_instances > 0
    assert report.recoveries >= report.recovered_instances


def test_recovery_costs_one_get_secret_value_each() -> None:
    without_manual = simulate_fleet(replace(SMALL, policy=_policy(5, 0.0)))
    with_manual = simulate_fleet(replace(SMALL, manual_rotations=2, policy=_policy(5, 0.0)))
    assert without_manual.recoveries == 0
    # Jitter 0: the scheduled refreshes are the same count per instance either way (give or take the
    # shifted schedule after a recovery), so the extra calls are the recoveries.
    extra = with_manual.calls - without_manual.calls
    assert with_manual.recoveries > 0
    assert abs(extra - with_manual.recoveries) <= with_manual.recovered_instances


def test_calls_per_instance_week_follow_the_policy() -> None:
    report = simulate_fleet(replace(SMALL, policy=_policy(1, 0.0), days=28))
    assert report.calls_per_instance_week == pytest.approx(7.0, rel=0.05)
    jittered = simulate_fleet(replace(SMALL, policy=_policy(1, 0.5), days=28))
    # Refreshes land in [0.5, 1] days: on average every 0.75 days.
    assert jittered.calls_per_instance_week == pytest.approx(7 / 0.75, rel=0.05)


def test_jitter_spreads_a_fleet_deployed_at_once() -> None:
    deploy = replace(SMALL, start_window=60.0)
    herd = simulate_fleet(replace(deploy, policy=_policy(2, 0.0)), without_recovery=False)
    spread = simulate_fleet(replace(deploy, policy=_policy(2, 0.25)), without_recovery=False)
    after_first_day = slice(24 * 60, None)
    assert max(herd.calls_per_minute[after_first_day]) > 0.9 * SMALL.instances
    assert max(spread.calls_per_minute[after_first_day]) < 0.2 * SMALL.instances


def test_a_small_run_is_deterministic_with_a_seed() -> None:
    config = replace(SMALL, manual_rotations=2)
    first = simulate_fleet(config)
    assert simulate_fleet(config) == first
    assert simulate_fleet(replace(config, seed=8)) != first


def test_sweep_rows_cover_every_interval_and_jitter() -> None:
    rows = simulate.sweep(replace(SMALL, instances=20, days=30), refresh_days=(5, 7), jitters=(0.0, 0.1))
    assert [(row.refresh_days, row.jitter) for row in rows] == [(5, 0.0), (5, 0.1), (7, 0.0), (7, 0.1)]
    assert rows[0].worst_case_broken_instances == 0
    assert rows[2].worst_case_broken_instances > 0
    assert "guaranteed margin" in simulate.format_sweep(rows)


def test_the_command_prints_the_table_and_writes_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "secretswitch.simulate" in cli._COMMAND_MODULES
    status = simulate.main(["--instances", "30", "--days", "21", "--out", str(tmp_path), "--seed", "3"])
    out = capsys.readouterr().out
    assert status == 0
    assert "WITH recovery: failed operations" in out
    assert "GetSecretValue calls" in out
    pytest.importorskip("matplotlib")
    assert (tmp_path / "fleet.png").stat().st_size > 0


def test_public_names_are_exported() -> None:
    for name in simulate.__all__:
        assert hasattr(simulate, name), name
