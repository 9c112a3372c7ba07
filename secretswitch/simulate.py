"""``secretswitch simulate``: a fleet of clients against a year of rotations, on a virtual clock.

The command: its options, their ranges, the runs it makes and what it prints. The model is
:mod:`secretswitch.fleet_model` (described there), the tables :mod:`secretswitch.fleet_tables`,
the plot :mod:`secretswitch.fleet_plot` and the progress line :mod:`secretswitch.fleet_progress`;
their public names are re-exported here.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from secretswitch.client.errors import ConfigurationError
from secretswitch.client.policy import DAY, RefreshPolicy
from secretswitch.fleet_experiments import (
    SWEEP_JITTERS,
    SWEEP_PASSES_PER_ROW,
    SWEEP_REFRESH_DAYS,
    SweepRow,
    operator_scenario,
    sweep,
)
from secretswitch.fleet_model import (
    HOUR,
    USERS,
    FleetConfig,
    FleetReport,
    HeldCredential,
    PasswordState,
    ProgressCallback,
    Rotation,
    guaranteed_margin,
    rotation_schedule,
    simulate_fleet,
    worst_case_schedule,
)
from secretswitch.fleet_plot import plot
from secretswitch.fleet_progress import Progress
from secretswitch.fleet_tables import format_operator_scenario, format_report, format_sweep

__all__ = [
    "USERS",
    "FleetConfig",
    "Progress",
    "ProgressCallback",
    "check_arguments",
    "FleetReport",
    "HeldCredential",
    "PasswordState",
    "Rotation",
    "SweepRow",
    "format_operator_scenario",
    "format_report",
    "guaranteed_margin",
    "format_sweep",
    "main",
    "operator_scenario",
    "register",
    "rotation_schedule",
    "simulate_fleet",
    "sweep",
    "worst_case_schedule",
]

# What the command accepts. A year of 10,000 instances takes ~5 s, and time grows
# with instances x days, so the caps keep a run under about ten minutes.
MAX_INSTANCES = 1_000_000
MAX_DAYS = 3650.0
MAX_ROTATION_DAYS = 1000
MAX_MANUAL_ROTATIONS = 10_000
MAX_OPS_PER_SECOND = 1000.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a fleet of clients against a year of rotations (virtual clock)",
        description=(
            "Run the client's refresh policy for a fleet of instances against Secrets Manager's "
            "rotation schedule and the alternating-users password state; print a table, and write the "
            "plot to OUT/fleet.png (default ./fleet-simulation/fleet.png; needs matplotlib). Shows progress "
            "on stderr when a run takes more than a few seconds. Exit 1 if any operation failed with the recovery."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default = RefreshPolicy()
    parser.add_argument(
        "--instances", type=int, default=10_000, help=f"fleet size, 1-{MAX_INSTANCES:,} (default: %(default)s)"
    )
    parser.add_argument(
        "--days", type=float, default=365.0, help=f"simulated days, up to {MAX_DAYS:g} (default: %(default)s)"
    )
    parser.add_argument(
        "--refresh-days",
        type=float,
        default=default.refresh_interval / DAY,
        help="refresh interval, an upper bound (default: the client's, %(default)s)",
    )
    parser.add_argument(
        "--jitter", type=float, default=default.jitter, help="refresh jitter fraction, 0 to <1 (default: %(default)s)"
    )
    parser.add_argument(
        "--rotation-days", type=int, default=7, help=f"rate(N days) of the rotation, 1-{MAX_ROTATION_DAYS} (default: 7)"
    )
    parser.add_argument(
        "--window-hours", type=float, default=24.0, help="rotation window, more than 0 and at most 24 (default: 24)"
    )
    parser.add_argument(
        "--rotation-seconds", type=float, default=60.0, help="setSecret to finishSecret (default: %(default)s)"
    )
    parser.add_argument("--manual-rotations", type=int, default=0, help="manual rotations at random times")
    parser.add_argument("--ops-per-second", type=float, default=1.0, help="operations per instance per second")
    parser.add_argument("--sweep", action="store_true", help="also sweep the refresh interval (1-7 d) and jitter")
    parser.add_argument(
        "--sweep-instances", type=int, default=1000, help="fleet size of each sweep run (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("fleet-simulation"),
        help="folder for the plot, OUT/fleet.png; made if missing (default: ./fleet-simulation)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")


def _in_range(value: float, flag: str, low: float, high: float, *, low_open: bool = False, unit: str = "") -> None:
    below = value <= low if low_open else value < low
    if not math.isfinite(value) or below or value > high:
        lower = f"more than {_number(low)}" if low_open else f"at least {_number(low)}"
        raise ConfigurationError(
            f"{flag} {_number(value)} is out of range; give {lower} and at most {_number(high)}{unit}"
        )


def _number(value: float) -> str:
    if math.isfinite(value) and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse values the simulation cannot run with, before it starts (one line each).

    Raises:
        ConfigurationError: names the option, the value and the range.
    """
    _in_range(args.instances, "--instances", 1, MAX_INSTANCES)
    _in_range(args.days, "--days", 0, MAX_DAYS, low_open=True)
    _in_range(args.refresh_days, "--refresh-days", 0, MAX_ROTATION_DAYS, low_open=True)
    _in_range(args.jitter, "--jitter", 0, 0.99)
    _in_range(args.rotation_days, "--rotation-days", 1, MAX_ROTATION_DAYS)
    _in_range(args.window_hours, "--window-hours", 0, 24, low_open=True)
    _in_range(args.rotation_seconds, "--rotation-seconds", 0, HOUR)
    _in_range(args.manual_rotations, "--manual-rotations", 0, MAX_MANUAL_ROTATIONS)
    _in_range(args.ops_per_second, "--ops-per-second", 0, MAX_OPS_PER_SECOND, low_open=True)
    _in_range(args.sweep_instances, "--sweep-instances", 1, MAX_INSTANCES)
    _check_out(args.out)


def _check_out(out: Path) -> None:
    """Make the folder and write a file in it now: a run of minutes must not end in "cannot write"."""
    if out.exists() and not out.is_dir():
        raise ConfigurationError(f"--out {out} exists and is not a folder; give a folder (it is made if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"--out {out}: cannot write there ({exc.strerror}); give a folder you may write to"
        ) from None


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    policy = replace(RefreshPolicy(), refresh_interval=args.refresh_days * DAY, jitter=args.jitter)
    config = FleetConfig(
        instances=args.instances,
        days=args.days,
        policy=policy,
        rotation_days=args.rotation_days,
        window_hours=args.window_hours,
        rotation_seconds=args.rotation_seconds,
        manual_rotations=args.manual_rotations,
        ops_per_second=args.ops_per_second,
        seed=args.seed,
    )
    # Five runs of two passes (three scenarios, the operator's with and without the guard), plus the sweep's rows.
    sweep_rows = len(SWEEP_REFRESH_DAYS) * len(SWEEP_JITTERS) if args.sweep else 0
    progress = Progress(10 * args.instances + sweep_rows * SWEEP_PASSES_PER_ROW * args.sweep_instances)
    began = time.perf_counter()
    reports = []
    for name, scenario in (
        ("spread starts", config),
        ("deploy (1 min)", replace(config, start_window=60.0)),
        ("worst-case schedule", replace(config, worst_case=True, manual_rotations=0)),
    ):
        progress.stage = name
        reports.append((name, simulate_fleet(scenario, progress=progress)))
    print(format_report(reports))
    print(f"({time.perf_counter() - began:.1f} s)", flush=True)
    began = time.perf_counter()
    progress.stage = "operator rotation"
    operator = operator_scenario(config, progress=progress)
    print()
    print(
        f"An operator's manual rotation 1 day after a scheduled one ({min(args.days, 60.0):g} days, the rotation "
        "guard's rule on the dates Secrets Manager records):"
    )
    print(format_operator_scenario(operator))
    print(f"({time.perf_counter() - began:.1f} s)", flush=True)
    rows: list[SweepRow] = []
    if args.sweep:
        began = time.perf_counter()
        progress.stage = "sweep"
        rows = sweep(replace(config, instances=args.sweep_instances), progress=progress)
        print()
        print(f"Sweep ({args.sweep_instances:,} instances, {args.days:g} days, seed {args.seed}):")
        print(format_sweep(rows))
        print(f"({time.perf_counter() - began:.1f} s)", flush=True)
    progress.finish()
    try:
        written = plot(args.out / "fleet.png", reports, rows)
    except OSError as exc:
        raise ConfigurationError(f"--out {args.out}: cannot write the plot: {exc.strerror}") from None
    print(f"plot: {written}" if written else "plot: skipped (matplotlib is not installed: pip install '.[demo]')")
    failed = sum(report.failed_operations for _, report in reports)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.fleet``: the same as ``secretswitch simulate``."""
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except ConfigurationError as exc:
        print(f"python -m bench.fleet: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
