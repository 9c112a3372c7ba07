"""The experiments run on the fleet model: the refresh-interval sweep and the operator's extra rotation.

The model itself (rotations, password state, the fleet on a virtual clock) is
:mod:`secretswitch.fleet_model`; each experiment here only chooses configurations,
runs :func:`~secretswitch.fleet_model.simulate_fleet` and collects what the tables
and the plot show.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from secretswitch.client.policy import DAY, DEFAULT_MIN_ROTATION_GAP
from secretswitch.fleet_model import (
    FleetConfig,
    FleetReport,
    ProgressCallback,
    format_duration,
    guaranteed_margin,
    simulate_fleet,
)

__all__ = [
    "SWEEP_JITTERS",
    "SWEEP_PASSES_PER_ROW",
    "SWEEP_REFRESH_DAYS",
    "SweepRow",
    "operator_scenario",
    "sweep",
]


@dataclass(frozen=True, slots=True)
class SweepRow:
    """One refresh interval and jitter of the sweep."""

    refresh_days: float
    jitter: float
    guaranteed_margin: float
    min_margin: float
    worst_case_margin: float
    broken_instances: int
    worst_case_broken_instances: int
    calls_per_instance_week: float
    deploy_peak_after_first_day: int


SWEEP_REFRESH_DAYS: tuple[float, ...] = (1, 2, 3, 4, 5, 5.5, 5.75, 6, 6.5, 7)
SWEEP_JITTERS: tuple[float, ...] = (0.0, 0.1, 0.25)
SWEEP_PASSES_PER_ROW = 4  # random schedule (with and without recovery), worst case, deploy


def sweep(
    base: FleetConfig,
    *,
    refresh_days: Iterable[float] = SWEEP_REFRESH_DAYS,
    jitters: Iterable[float] = SWEEP_JITTERS,
    progress: ProgressCallback | None = None,
) -> list[SweepRow]:
    """Run ``base`` for each refresh interval and jitter, on a random and on the worst-case schedule.

    The deploy column starts the whole fleet within a minute and reports the
    busiest second after the first day (the first day's peak is the deploy itself).
    """
    rows: list[SweepRow] = []
    jitter_list = list(jitters)
    for days in refresh_days:
        for jitter in jitter_list:
            policy = replace(base.policy, refresh_interval=days * DAY, jitter=jitter)
            config = replace(base, policy=policy, worst_case=False)
            random_run = simulate_fleet(config, progress=progress)
            worst_run = simulate_fleet(
                replace(config, worst_case=True, manual_rotations=0), with_recovery=False, progress=progress
            )
            deploy_run = simulate_fleet(replace(config, start_window=60.0), without_recovery=False, progress=progress)
            after_first_day = deploy_run.calls_per_minute[24 * 60 :]
            rows.append(
                SweepRow(
                    refresh_days=days,
                    jitter=jitter,
                    guaranteed_margin=guaranteed_margin(config),
                    min_margin=random_run.min_margin,
                    worst_case_margin=worst_run.min_margin,
                    broken_instances=random_run.broken_instances,
                    worst_case_broken_instances=worst_run.broken_instances,
                    calls_per_instance_week=random_run.calls_per_instance_week,
                    deploy_peak_after_first_day=max(after_first_day, default=0),
                )
            )
    return rows


def operator_scenario(
    base: FleetConfig,
    *,
    after: float = DAY,
    guard_gap: float = DEFAULT_MIN_ROTATION_GAP,
    days: float = 60.0,
    progress: ProgressCallback | None = None,
) -> list[tuple[str, FleetReport]]:
    """An operator's manual rotation ``after`` a scheduled one, without and with the rotation guard.

    Runs ``base`` for ``days`` (at most its own) twice: the same fleet, starts
    and schedule, once with every rotation let through and once with
    ``guard_gap``.
    """
    config = replace(base, days=min(base.days, days), worst_case=False, operator_rotation_after=after)
    return [
        ("no guard", simulate_fleet(replace(config, guard_gap=0.0), progress=progress)),
        (
            f"guard ({format_duration(guard_gap)})",
            simulate_fleet(replace(config, guard_gap=guard_gap), progress=progress),
        ),
    ]
