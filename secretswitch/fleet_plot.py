"""The fleet simulation's plot (PNG, matplotlib): calls over the first days, and the sweep's margins."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from secretswitch.client.policy import DAY, RefreshPolicy
from secretswitch.fleet_experiments import SweepRow
from secretswitch.fleet_model import HOUR, FleetReport

__all__ = ["plot"]


def plot(path: Path, reports: Sequence[tuple[str, FleetReport]], rows: Sequence[SweepRow]) -> Path | None:
    """Draw the runs (and the sweep, if any) into a PNG; ``None`` when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = 3 if rows else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.5), squeeze=False)
    calls_axis = axes[0][0]
    for name, report in reports:
        if report.config.worst_case:
            continue  # same starts and refreshes as the random schedule: the same curve
        per_hour = [sum(report.calls_per_minute[i : i + 60]) for i in range(0, 14 * 24 * 60, 60)]
        calls_axis.plot([hour / 24 for hour in range(len(per_hour))], per_hour, label=name)
    calls_axis.set_yscale("log")
    calls_axis.set_xlabel("day")
    calls_axis.set_ylabel("GetSecretValue calls per hour")
    calls_axis.set_title("Fleet calls, first 14 days")
    calls_axis.legend()
    if rows:
        margin_axis, broken_axis = axes[0][1], axes[0][2]
        for jitter in sorted({row.jitter for row in rows}):
            selected = [row for row in rows if row.jitter == jitter]
            x = [row.refresh_days for row in selected]
            margin_axis.plot(
                x, [row.min_margin / HOUR for row in selected], marker="o", label=f"random, jitter {jitter:g}"
            )
            margin_axis.plot(
                x,
                [row.worst_case_margin / HOUR for row in selected],
                marker="x",
                linestyle="--",
                label=f"worst case, jitter {jitter:g}",
            )
            broken_axis.plot(
                x, [row.worst_case_broken_instances for row in selected], marker="x", label=f"jitter {jitter:g}"
            )
        guaranteed = sorted({(row.refresh_days, row.guaranteed_margin) for row in rows})
        margin_axis.plot(
            [days for days, _ in guaranteed],
            [margin / HOUR for _, margin in guaranteed],
            color="black",
            linewidth=2,
            label="guaranteed (any rotation hours)",
        )
        default_days = RefreshPolicy().refresh_interval / DAY
        for axis in (margin_axis, broken_axis):
            axis.axvline(default_days, color="grey", linestyle=":", label="client default")
            axis.set_xlabel("refresh interval (days, upper bound)")
        margin_axis.axhline(0, color="red", linewidth=0.8)
        margin_axis.set_ylabel("min margin: password change - last refresh (hours)")
        margin_axis.set_title("Margin before a cached user's password changes")
        margin_axis.legend(fontsize="small")
        broken_axis.set_ylabel("instances broken without recovery")
        broken_axis.set_title("Worst-case schedule (gaps of 6 days + 1 s)")
        broken_axis.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
