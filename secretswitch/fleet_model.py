"""The fleet simulation's model: rotations, password state and a fleet of clients, on a virtual clock.

The command (``secretswitch simulate``) is :mod:`secretswitch.simulate`; the experiments run on
the model (the sweep, the operator's rotation) are :mod:`secretswitch.fleet_experiments`, the
tables :mod:`secretswitch.fleet_tables`, the plot :mod:`secretswitch.fleet_plot`.

The simulation runs the client's real cache policy (:class:`client.policy.RefreshPolicy`
schedules every refresh, :func:`client.policy.recovery_stages` decides what an
instance tries after an authentication failure) for thousands of instances
against the alternating-users password state of the database, and reports how
close the scheme comes to an outage.

The model, step by step:

* **Rotations** follow Secrets Manager's schedule for ``rate(N days)``: the
  next rotation is on the UTC day ``N`` days after the previous rotation's day,
  at a random time inside the rotation window (24 hours by default: the window
  opens at midnight and closes at the end of the UTC day). Two rotations are
  therefore between ``N - 1`` and ``N + 1`` days apart. A manual rotation
  (``RotateSecret`` by hand) happens at a random time and, like any rotation,
  restarts the schedule from its own day.
* **Password state** (:class:`PasswordState`): two users, ``app`` and
  ``app_clone``. A rotation changes the password of the *passive* user (the one
  ``AWSPREVIOUS`` names) when it reaches ``setSecret`` and promotes it to
  ``AWSCURRENT`` ``rotation_seconds`` later (``finishSecret``). The user the
  fleet was using keeps its password until the rotation after.
* **Instances** start at random times inside the start window, read
  ``AWSCURRENT`` and schedule their next refresh with
  ``RefreshPolicy.next_refresh_at``. The refresh runs on the first operation
  after it is due (operations arrive at ``ops_per_second``, Poisson) and the
  switch to the new credentials completes ``switch_seconds`` later.
* **Checks**: every credential an instance holds is checked against the
  password state: the instance is *broken* from the moment its user's password
  changes until it switches away. Without the auth-failure recovery it keeps
  failing until its next scheduled refresh; with it, the first failed
  operation forces a read of ``AWSCURRENT`` (one extra ``GetSecretValue``,
  plus one per extra stage :func:`~client.policy.recovery_stages` asks for),
  and the recovered credentials are checked against the database as well.

* **The operator's rotation** (``operator_rotation_after``): one manual
  rotation that long after the first scheduled rotation from day 14 on (the
  fleet has spread by then), as an operator who "rotates once more to be sure"
  does. With ``guard_gap`` every rotation first passes the rotation guard
  (:func:`client.policy.rotation_gap_decision`, the function's own rule, on the
  times Secrets Manager would record): one that comes too soon is refused and
  changes nothing.

Everything is deterministic for a given seed.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from secretswitch.client.policy import (
    AWSCURRENT,
    DAY,
    RefreshPolicy,
    RotationRecord,
    recovery_stages,
    rotation_gap_decision,
)

__all__ = [
    "HOUR",
    "WEEK",
    "USERS",
    "OPERATOR_FROM",
    "FleetConfig",
    "FleetReport",
    "HeldCredential",
    "PasswordState",
    "ProgressCallback",
    "Rotation",
    "guaranteed_margin",
    "rotation_schedule",
    "simulate_fleet",
    "worst_case_schedule",
    "format_duration",
]

HOUR = 3600.0
WEEK = 7 * DAY
USERS = ("app", "app_clone")

ProgressCallback = Callable[[int], None]
"""Told how many instance passes were just simulated."""

OPERATOR_FROM = 14 * DAY
"""The operator's manual rotation follows the first scheduled rotation from this day on (the fleet has spread)."""


@dataclass(frozen=True, slots=True)
class Rotation:
    """One rotation: the passive user's password changes at ``started_at`` (setSecret),
    ``AWSCURRENT`` moves at ``finished_at`` (finishSecret)."""

    started_at: float
    finished_at: float
    manual: bool = False


@dataclass(frozen=True, slots=True)
class HeldCredential:
    """What an instance read from ``AWSCURRENT``: a user, its password number, the version id."""

    user: str
    password_number: int
    version: str


def rotation_schedule(
    rng: random.Random,
    *,
    horizon: float,
    rotation_days: int = 7,
    window_hours: float = 24.0,
    rotation_seconds: float = 60.0,
    manual_rotations: int = 0,
    first_day: int | None = None,
    operator_rotation_after: float | None = None,
    operator_from: float = OPERATOR_FROM,
    guard_gap: float = 0.0,
    refused: list[Rotation] | None = None,
) -> list[Rotation]:
    """Secrets Manager's rotations of one secret over ``[0, horizon)`` seconds (0 = midnight UTC).

    Scheduled rotations follow ``rate(rotation_days days)`` with a window of
    ``window_hours`` opening at midnight UTC: the next rotation is on the day
    ``rotation_days`` after the previous rotation's day, at a uniformly random
    time inside the window. ``manual_rotations`` rotations happen at uniformly
    random times and restart the schedule from their day.

    Args:
        rng: the source of randomness.
        horizon: the end of the simulated time, in seconds.
        rotation_days: the ``rate()`` in days.
        window_hours: the rotation window (``Duration``), at most 24.
        rotation_seconds: from setSecret (password changed) to finishSecret
            (``AWSCURRENT`` moved).
        manual_rotations: how many manual rotations to add.
        first_day: the day of the first scheduled rotation (default: random
            within the first ``rotation_days`` days).
        operator_rotation_after: add one manual rotation this long after the
            first scheduled rotation at or after ``operator_from``.
        operator_from: see ``operator_rotation_after``.
        guard_gap: the rotation guard's gap (0: off); a rotation it refuses is
            left out (and appended to ``refused``).
        refused: collects the rotations the guard refused.

    Returns:
        The rotations in time order, never overlapping.
    """
    if not 0 < window_hours <= 24:
        raise ValueError(f"window_hours must be in (0, 24], got {window_hours!r}")
    manual_times = sorted(rng.uniform(0, horizon) for _ in range(manual_rotations))
    day = first_day if first_day is not None else rng.randint(1, rotation_days)
    rotations: list[Rotation] = []
    busy_until = 0.0
    while True:
        scheduled = day * DAY + rng.uniform(0, window_hours * HOUR)
        if manual_times and manual_times[0] < scheduled:
            at, manual = manual_times.pop(0), True
        else:
            at, manual = scheduled, False
        if at >= horizon:
            break
        # A rotation cannot start while another one runs (Secrets Manager refuses it).
        at = max(at, busy_until)
        if guard_gap > 0 and rotations and not _guard_allows(at, rotations[-1], len(rotations), guard_gap):
            if refused is not None:
                refused.append(Rotation(at, at + rotation_seconds, manual))
            if not manual:
                day += rotation_days  # a refused scheduled rotation: the schedule goes on
            continue
        rotations.append(Rotation(at, at + rotation_seconds, manual))
        busy_until = at + rotation_seconds
        day = int(at // DAY) + rotation_days
        if operator_rotation_after is not None and not manual and at >= operator_from:
            bisect.insort(manual_times, at + operator_rotation_after)
            operator_rotation_after = None
    return rotations


def _guard_allows(at: float, previous: Rotation, history: int, gap: float) -> bool:
    """The rotation guard's rule on the dates Secrets Manager records for ``previous``."""
    # createSecret stamps the new AWSCURRENT version at the start, LastRotatedDate at the end.
    record = RotationRecord(
        last_rotated=previous.finished_at, current_created=previous.started_at, other_versions=history
    )
    return rotation_gap_decision(at, record, min_gap=gap).allowed


def worst_case_schedule(
    *, horizon: float, rotation_days: int = 7, window_hours: float = 24.0, rotation_seconds: float = 60.0
) -> list[Rotation]:
    """A schedule Secrets Manager may produce that leaves the shortest possible gaps.

    Rotations alternate between the last second of the window and its first
    second, so every other gap is ``rotation_days - 1`` days plus the window's
    start, the shortest ``rate()`` allows.
    """
    rotations: list[Rotation] = []
    day, late = 1, True
    while True:
        at = day * DAY + ((window_hours * HOUR - 1.0) if late else 0.0)
        if at >= horizon:
            return rotations
        rotations.append(Rotation(at, at + rotation_seconds))
        day += rotation_days
        late = not late


class PasswordState:
    """The database's passwords and the secret's ``AWSCURRENT`` over time (alternating users).

    Initially ``app`` is ``AWSCURRENT`` (version ``v0``) and ``app_clone`` is
    ``AWSPREVIOUS``, both at password number 0. Rotation ``k`` (1-based)
    gives the passive user password number ``g + 1`` at ``started_at`` and makes it
    ``AWSCURRENT`` (version ``v<k>``) at ``finished_at``.
    """

    def __init__(self, rotations: Sequence[Rotation]) -> None:
        self.rotations = tuple(rotations)
        password_number = dict.fromkeys(USERS, 0)
        current, previous = USERS
        # changes[user][g] is when the user's password went from number g to g + 1.
        self._changes: dict[str, list[float]] = {user: [] for user in USERS}
        self._finished: list[float] = []
        self._current: list[HeldCredential] = [HeldCredential(current, 0, "v0")]
        for number, rotation in enumerate(self.rotations, start=1):
            passive = previous
            password_number[passive] += 1
            self._changes[passive].append(rotation.started_at)
            self._finished.append(rotation.finished_at)
            self._current.append(HeldCredential(passive, password_number[passive], f"v{number}"))
            current, previous = passive, current

    def current_at(self, at: float) -> HeldCredential:
        """What a ``GetSecretValue`` of ``AWSCURRENT`` returns at time ``at``."""
        return self._current[bisect.bisect_right(self._finished, at)]

    def stage_at(self, stage: str, at: float) -> HeldCredential | None:
        """The credential a staging label names at time ``at`` (``None`` if no version has it)."""
        index = bisect.bisect_right(self._finished, at)
        if stage == AWSCURRENT:
            return self._current[index]
        if stage == "AWSPREVIOUS":
            return self._current[index - 1] if index > 0 else None
        # AWSPENDING exists between setSecret and finishSecret of a running rotation.
        if index < len(self.rotations) and self.rotations[index].started_at <= at:
            return self._current[index + 1]
        return None

    def password_number_at(self, user: str, at: float) -> int:
        """The number of ``user``'s password in the database at time ``at``."""
        return bisect.bisect_right(self._changes[user], at)

    def logs_in(self, held: HeldCredential, at: float) -> bool:
        """Whether the database accepts ``held`` at time ``at``."""
        return self.password_number_at(held.user, at) == held.password_number

    def changed_at(self, held: HeldCredential) -> float:
        """When the database stops accepting ``held`` (``inf`` if never within the rotations)."""
        changes = self._changes[held.user]
        return changes[held.password_number] if held.password_number < len(changes) else math.inf


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """One simulation run."""

    instances: int = 10_000
    days: float = 365.0
    policy: RefreshPolicy = field(default_factory=RefreshPolicy)
    rotation_days: int = 7
    window_hours: float = 24.0
    rotation_seconds: float = 60.0
    manual_rotations: int = 0
    # Instances start uniformly inside [0, start_window): a week of spread starts by default;
    # a deploy starts the whole fleet within a minute.
    start_window: float = WEEK
    ops_per_second: float = 1.0
    switch_seconds: float = 0.05
    worst_case: bool = False
    seed: int = 0
    # The operator's scenario: one manual rotation this long after a scheduled one; the guard's gap (0: off).
    operator_rotation_after: float | None = None
    guard_gap: float = 0.0

    @property
    def horizon(self) -> float:
        return self.days * DAY


@dataclass(frozen=True, slots=True)
class FleetReport:
    """The numbers of one run. Times are seconds; margins are ``inf`` when no password changed."""

    config: FleetConfig
    rotations: int
    manual_rotations: int
    min_rotation_gap: float
    # Without the auth-failure recovery (refreshes on schedule only).
    broken_instances: int
    broken_periods: int
    broken_seconds: float
    broken_operations: float
    min_margin: float
    # With it.
    recoveries: int
    recovered_instances: int
    failed_operations: int
    calls: int
    instance_weeks: float
    peak_calls_per_second: int
    peak_second: float
    mean_calls_per_second: float
    calls_per_minute: tuple[int, ...]
    refused_rotations: int = 0

    @property
    def calls_per_instance_week(self) -> float:
        return self.calls / self.instance_weeks if self.instance_weeks else 0.0


def _instance_rng(seed: int, instance: int, stream: str) -> random.Random:
    # One stream per instance and purpose, so runs with and without recovery
    # draw the same start time and the same schedule until they diverge.
    return random.Random(f"{seed}:{instance}:{stream}")


def _run_without_recovery(
    config: FleetConfig, state: PasswordState, starts: Sequence[float], progress: ProgressCallback | None = None
) -> tuple[int, int, float, float]:
    """Refreshes on schedule only. Returns (broken instances, broken periods, broken seconds, min margin)."""
    policy, horizon = config.policy, config.horizon
    broken_instances = broken_periods = 0
    broken_seconds = 0.0
    min_margin = math.inf
    for instance, start in enumerate(starts):
        if progress is not None:
            progress(1)
        rng = _instance_rng(config.seed, instance, "schedule")
        ops = _instance_rng(config.seed, instance, "ops")
        fetched_at = start
        held = state.current_at(start)
        was_broken = False
        while fetched_at < horizon:
            due = policy.next_refresh_at(fetched_at, rng)
            read_at = due + ops.expovariate(config.ops_per_second)
            switched_at = read_at + config.switch_seconds
            changed_at = state.changed_at(held)
            if changed_at < horizon:
                min_margin = min(min_margin, changed_at - switched_at)
                if changed_at < switched_at:
                    broken_periods += 1
                    broken_seconds += min(switched_at, horizon) - changed_at
                    was_broken = True
            held = state.current_at(read_at)
            fetched_at = switched_at
        broken_instances += was_broken
    return broken_instances, broken_periods, broken_seconds, min_margin


def _recover(
    config: FleetConfig, state: PasswordState, held: HeldCredential, failed_at: float, calls: list[float]
) -> HeldCredential | None:
    """The client's reaction to an authentication failure at ``failed_at``; ``None`` if nothing logs in."""
    calls.append(failed_at)
    current = state.current_at(failed_at)
    for stage in recovery_stages(held.version, current.version):
        if stage == AWSCURRENT:
            candidate: HeldCredential | None = current
        else:
            calls.append(failed_at)
            candidate = state.stage_at(stage, failed_at)
        if candidate is not None and state.logs_in(candidate, failed_at + config.switch_seconds):
            return candidate
    return None


def _run_with_recovery(
    config: FleetConfig, state: PasswordState, starts: Sequence[float], progress: ProgressCallback | None = None
) -> tuple[int, int, int, list[float]]:
    """Refreshes on schedule plus the auth-failure recovery.

    Returns (recoveries, recovered instances, failed operations, times of GetSecretValue calls).
    """
    policy, horizon = config.policy, config.horizon
    recoveries = recovered_instances = failed_operations = 0
    calls: list[float] = []
    for instance, start in enumerate(starts):
        if progress is not None:
            progress(1)
        rng = _instance_rng(config.seed, instance, "schedule")
        ops = _instance_rng(config.seed, instance, "ops")
        calls.append(start)
        held = state.current_at(start)
        fetched_at = start
        recovered = False
        while fetched_at < horizon:
            due = policy.next_refresh_at(fetched_at, rng)
            read_at = due + ops.expovariate(config.ops_per_second)
            switched_at = read_at + config.switch_seconds
            changed_at = state.changed_at(held)
            if changed_at < switched_at:
                # The first operation on or after the change fails with code 18.
                failed_at = changed_at + ops.expovariate(config.ops_per_second)
                if failed_at < switched_at and failed_at < horizon:
                    attempts = 0
                    new = _recover(config, state, held, failed_at, calls)
                    while new is None and attempts < 3:
                        # The operation failed; the next one forces another read after the gap.
                        failed_operations += 1
                        attempts += 1
                        failed_at += max(policy.forced_refresh_gap, config.switch_seconds)
                        new = _recover(config, state, held, failed_at, calls)
                    if new is None:
                        failed_operations += 1
                        held = state.current_at(failed_at)
                    else:
                        held = new
                    recoveries += 1
                    recovered = True
                    fetched_at = failed_at + config.switch_seconds
                    continue
            if read_at < horizon:
                calls.append(read_at)
            held = state.current_at(read_at)
            fetched_at = switched_at
        recovered_instances += recovered
    return recoveries, recovered_instances, failed_operations, calls


def simulate_fleet(
    config: FleetConfig,
    *,
    with_recovery: bool = True,
    without_recovery: bool = True,
    progress: ProgressCallback | None = None,
) -> FleetReport:
    """Run one simulation and return its numbers.

    Args:
        config: the fleet, the policy and the rotation schedule.
        with_recovery: run the fleet with the auth-failure recovery (calls, recoveries).
        without_recovery: run it without (broken uses, margins).
        progress: called with 1 for each instance of each pass (a pass: with or without recovery).
    """
    horizon = config.horizon
    schedule_rng = random.Random(f"{config.seed}:rotations")
    refused: list[Rotation] = []
    if config.worst_case:
        rotations = worst_case_schedule(
            horizon=horizon,
            rotation_days=config.rotation_days,
            window_hours=config.window_hours,
            rotation_seconds=config.rotation_seconds,
        )
    else:
        rotations = rotation_schedule(
            schedule_rng,
            horizon=horizon,
            rotation_days=config.rotation_days,
            window_hours=config.window_hours,
            rotation_seconds=config.rotation_seconds,
            manual_rotations=config.manual_rotations,
            operator_rotation_after=config.operator_rotation_after,
            guard_gap=config.guard_gap,
            refused=refused,
        )
    state = PasswordState(rotations)
    start_rng = random.Random(f"{config.seed}:starts")
    starts = [start_rng.uniform(0, min(config.start_window, horizon)) for _ in range(config.instances)]
    gaps = [b.started_at - a.started_at for a, b in itertools.pairwise(rotations)]

    broken_instances = broken_periods = 0
    broken_seconds, min_margin = 0.0, math.inf
    if without_recovery:
        broken_instances, broken_periods, broken_seconds, min_margin = _run_without_recovery(
            config, state, starts, progress
        )
    recoveries = recovered_instances = failed_operations = 0
    calls: list[float] = []
    if with_recovery:
        recoveries, recovered_instances, failed_operations, calls = _run_with_recovery(config, state, starts, progress)

    per_second = Counter(int(at) for at in calls)
    peak_second, peak = per_second.most_common(1)[0] if per_second else (0, 0)
    per_minute = Counter(int(at // 60) for at in calls)
    minutes = math.ceil(horizon / 60)
    return FleetReport(
        config=config,
        rotations=len(rotations),
        manual_rotations=sum(rotation.manual for rotation in rotations),
        min_rotation_gap=min(gaps, default=math.inf),
        broken_instances=broken_instances,
        broken_periods=broken_periods,
        broken_seconds=broken_seconds,
        broken_operations=broken_seconds * config.ops_per_second,
        min_margin=min_margin,
        recoveries=recoveries,
        recovered_instances=recovered_instances,
        failed_operations=failed_operations,
        calls=len(calls),
        instance_weeks=sum(horizon - start for start in starts) / WEEK,
        peak_calls_per_second=peak,
        peak_second=float(peak_second),
        mean_calls_per_second=len(calls) / horizon,
        calls_per_minute=tuple(per_minute.get(minute, 0) for minute in range(minutes)),
        refused_rotations=len(refused),
    )


def guaranteed_margin(config: FleetConfig) -> float:
    """The margin the schedule guarantees, whatever hours Secrets Manager picks (seconds; negative = unsafe).

    Two scheduled rotations can be as close as ``rotation_days`` days minus the
    window. A value read just before ``AWSCURRENT`` moves (up to
    ``rotation_seconds`` after the passive user's password changed) names a
    user whose password changes at the next rotation, so the refresh interval
    (an upper bound) plus the switch must fit in that gap minus the rotation's
    duration. Delays the client does not bound (an idle instance's first
    operation after the refresh is due, Secrets Manager unreachable at that
    moment) come out of this margin.
    """
    shortest_gap = config.rotation_days * DAY - config.window_hours * HOUR
    return shortest_gap - config.rotation_seconds - config.policy.refresh_interval - config.switch_seconds


def format_duration(seconds: float) -> str:
    """``seconds`` in the unit that reads best: days, hours or seconds (``-`` for ``inf``)."""
    if math.isinf(seconds):
        return "-"
    if seconds >= DAY:
        return f"{seconds / DAY:.2f} d"
    if seconds >= HOUR:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds:.0f} s"
