"""The fleet simulation's text tables: one column per run, one row per sweep point."""

from __future__ import annotations

import math
from collections.abc import Sequence

from secretswitch.client.policy import DAY
from secretswitch.fleet_experiments import SweepRow
from secretswitch.fleet_model import HOUR, FleetReport, format_duration, guaranteed_margin

__all__ = ["format_operator_scenario", "format_report", "format_sweep"]


def _hours(seconds: float) -> str:
    if math.isinf(seconds):
        return "-"
    if abs(seconds) < HOUR:
        return f"{seconds / 60:+.1f} min"
    return f"{seconds / HOUR:+.1f} h"


def format_report(reports: Sequence[tuple[str, FleetReport]]) -> str:
    """A text table of one or more runs (one column each)."""
    rows: list[tuple[str, list[str]]] = [
        ("instances", [f"{r.config.instances:,}" for _, r in reports]),
        ("simulated days", [f"{r.config.days:g}" for _, r in reports]),
        ("refresh interval (upper bound)", [f"{r.config.policy.refresh_interval / DAY:g} d" for _, r in reports]),
        ("jitter", [f"{r.config.policy.jitter:g}" for _, r in reports]),
        ("instance starts within", [format_duration(r.config.start_window) for _, r in reports]),
        ("rotations (manual)", [f"{r.rotations} ({r.manual_rotations})" for _, r in reports]),
        ("shortest gap between rotations", [format_duration(r.min_rotation_gap) for _, r in reports]),
        ("WITHOUT recovery: instances broken", [f"{r.broken_instances:,}" for _, r in reports]),
        ("  broken periods", [f"{r.broken_periods:,}" for _, r in reports]),
        ("  operations on a changed password", [f"{r.broken_operations:,.0f}" for _, r in reports]),
        ("  min margin refresh -> password change", [_hours(r.min_margin) for _, r in reports]),
        ("  guaranteed margin (any rotation hours)", [_hours(guaranteed_margin(r.config)) for _, r in reports]),
        ("WITH recovery: failed operations", [f"{r.failed_operations:,}" for _, r in reports]),
        ("  recoveries (1 extra GetSecretValue each)", [f"{r.recoveries:,}" for _, r in reports]),
        ("  instances that recovered", [f"{r.recovered_instances:,}" for _, r in reports]),
        ("GetSecretValue calls", [f"{r.calls:,}" for _, r in reports]),
        ("  per instance per week", [f"{r.calls_per_instance_week:.2f}" for _, r in reports]),
        ("  fleet mean per second", [f"{r.mean_calls_per_second:.3f}" for _, r in reports]),
        ("  fleet peak per second", [f"{r.peak_calls_per_second:,}" for _, r in reports]),
        ("  peak at (day)", [f"{r.peak_second / DAY:.2f}" for _, r in reports]),
    ]
    header = ("", [name for name, _ in reports])
    return _table([header, *rows])


def format_sweep(rows: Sequence[SweepRow]) -> str:
    """A text table of a sweep."""
    table: list[tuple[str, list[str]]] = [
        (
            "refresh",
            [
                "jitter",
                "guaranteed margin",
                "min margin",
                "worst-case margin",
                "broken",
                "broken (worst case)",
                "calls/inst/week",
                "deploy peak/s",
            ],
        )
    ]
    for row in rows:
        table.append(
            (
                f"{row.refresh_days:g} d",
                [
                    f"{row.jitter:g}",
                    _hours(row.guaranteed_margin),
                    _hours(row.min_margin),
                    _hours(row.worst_case_margin),
                    f"{row.broken_instances:,}",
                    f"{row.worst_case_broken_instances:,}",
                    f"{row.calls_per_instance_week:.2f}",
                    f"{row.deploy_peak_after_first_day:,}",
                ],
            )
        )
    return _table(table)


def format_operator_scenario(reports: Sequence[tuple[str, FleetReport]]) -> str:
    """The operator scenario's table: what the early rotation costs, with and without the guard."""
    rows: list[tuple[str, list[str]]] = [
        ("", [name for name, _ in reports]),
        ("rotations run (manual)", [f"{r.rotations} ({r.manual_rotations})" for _, r in reports]),
        ("refused by the guard", [f"{r.refused_rotations}" for _, r in reports]),
        ("shortest gap between rotations", [format_duration(r.min_rotation_gap) for _, r in reports]),
        ("NON-RECOVERING clients: failed operations", [f"{r.broken_operations:,.0f}" for _, r in reports]),
        ("  instances broken", [f"{r.broken_instances:,}" for _, r in reports]),
        ("OURS: failed operations", [f"{r.failed_operations:,}" for _, r in reports]),
        ("  recoveries", [f"{r.recoveries:,}" for _, r in reports]),
        ("  peak GetSecretValue per second", [f"{r.peak_calls_per_second:,}" for _, r in reports]),
    ]
    return _table(rows)


def _table(rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    first = max(len(name) for name, _ in rows)
    columns = max(len(cells) for _, cells in rows)
    widths = [max(len(cells[i]) for _, cells in rows if i < len(cells)) for i in range(columns)]
    lines = []
    for name, cells in rows:
        padded = "  ".join(cell.rjust(widths[i]) for i, cell in enumerate(cells))
        lines.append(f"{name.ljust(first)}  {padded}".rstrip())
    return "\n".join(lines)
