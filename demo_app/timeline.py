"""timeline.png: operations per second over demo days, coloured by the user that served them.

Rotations are dashed lines, client switches green triangles, recoveries red
stars; under the rates, two bands show which user is AWSCURRENT and which the
client uses, so the lag between a rotation and the switch reads at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import DemoEvent
    from .state import DemoState

__all__ = ["Rates", "bucket_rates", "render_timeline", "user_spans"]

USER_COLORS = {"app": "#1f77b4", "app_clone": "#ff7f0e"}
OTHER_COLORS = ("#2ca02c", "#9467bd", "#8c564b")
FAILED_COLOR = "#d62728"


@dataclass(frozen=True)
class Rates:
    """Operations per (real) second in buckets of demo days."""

    starts: tuple[float, ...]
    width: float
    ok: dict[str, tuple[float, ...]]
    failed: tuple[float, ...]


def bucket_rates(
    times_s: Sequence[float],
    users: Sequence[str],
    oks: Sequence[bool],
    *,
    day_seconds: float,
    end_day: float,
    bucket_days: float = 0.25,
) -> Rates:
    """Count operations in buckets of ``bucket_days`` and turn them into operations per real second."""
    count = max(1, int(end_day / bucket_days + 0.999))
    starts = tuple(i * bucket_days for i in range(count))
    ok: dict[str, list[float]] = {}
    failed = [0.0] * count
    per_op = 1.0 / (bucket_days * day_seconds)
    for t, user, success in zip(times_s, users, oks, strict=True):
        index = min(count - 1, max(0, int(t / day_seconds / bucket_days)))
        if success:
            ok.setdefault(user, [0.0] * count)[index] += per_op
        else:
            failed[index] += per_op
    return Rates(starts, bucket_days, {u: tuple(v) for u, v in ok.items()}, tuple(failed))


def user_spans(
    initial_user: str | None, changes: Sequence[tuple[float, str]], end_day: float
) -> list[tuple[float, float, str]]:
    """``(start, end, user)`` spans from a starting user and ``(day, new user)`` changes."""
    spans: list[tuple[float, float, str]] = []
    start, user = 0.0, initial_user
    for day, new_user in sorted(changes):
        if user is not None and day > start:
            spans.append((start, day, user))
        start, user = day, new_user
    if user is not None and end_day > start:
        spans.append((start, end_day, user))
    return spans


def _color(user: str, known: dict[str, str]) -> str:
    if user not in known:
        known[user] = USER_COLORS.get(user) or OTHER_COLORS[len(known) % len(OTHER_COLORS)]
    return known[user]


def render_timeline(path: Path, state: DemoState, summary: dict[str, Any]) -> None:
    """Draw the run into ``path`` (PNG, matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    config = state.config
    events = state.events.snapshot()
    end_day = max(state.end_day, max((e.day for e in events), default=0.0), 1.0)
    bucket = max(0.1, min(0.5, end_day / 120))
    colors: dict[str, str] = {}
    naive = state.naive_side
    rows = 3 if naive is not None else 2
    ratios = [5, 1.3, 3] if naive is not None else [5, 1.3]
    fig, axes = plt.subplots(
        rows, 1, figsize=(13, 7.5 if naive is not None else 5.8), sharex=True, gridspec_kw={"height_ratios": ratios}
    )
    ax = axes[0]
    times, users, oks = state.client_side.log.copy_rows()
    rates = bucket_rates(times, users, oks, day_seconds=config.day_seconds, end_day=end_day, bucket_days=bucket)
    bottom = [0.0] * len(rates.starts)
    for user in sorted(rates.ok):
        values = rates.ok[user]
        ax.bar(rates.starts, values, width=rates.width, bottom=bottom, align="edge", color=_color(user, colors),
               label=f"served by {user}", linewidth=0)  # fmt: skip
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if any(rates.failed):
        ax.bar(rates.starts, rates.failed, width=rates.width, bottom=bottom, align="edge", color=FAILED_COLOR,
               label="failed", linewidth=0)  # fmt: skip
    top = max([b + f for b, f in zip(bottom, rates.failed, strict=True)] + [1.0]) * 1.35
    ax.set_ylim(0, top)
    ax.set_ylabel("operations / s")
    _mark_events(ax, events, top)
    failed = summary.get("ops_failed", 0)
    lost = summary.get("writes_lost")
    verdict = "PASSED" if summary.get("passed") else "FAILED"
    ax.set_title(
        f"secretswitch demo ({verdict}): {summary.get('rotations', 0)} rotations, {summary.get('switches', 0)} "
        f"client switches, {summary.get('auth_recoveries', 0)} auth recoveries, {failed} failed operations, "
        f"{lost if lost is not None else '?'} lost writes\n"
        f"rotation every {config.rotation_days:g} days, client refresh at most every {config.refresh_days:g} days, "
        f"{config.workers} workers, 1 day = {config.day_seconds:g} s",
        fontsize=10.5,
    )
    handles, _labels = ax.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [
        Line2D([], [], color="0.35", linestyle="--", label="rotation done (shaded: its 4 steps)"),
        Line2D([], [], color=FAILED_COLOR, linestyle="--", label="rotation (manual)"),
        Line2D([], [], color="#2ca02c", marker="v", linestyle="", markersize=9, label="client switch"),
        Line2D([], [], color=FAILED_COLOR, marker="*", linestyle="", markersize=12, label="auth-failure recovery"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8.5, frameon=False)

    # Who is AWSCURRENT, and whom the client uses.
    band = axes[1]
    initial = summary.get("users_seen", [None])[0] if summary.get("users_seen") else None
    current_changes = [(e.day, str(e.fields.get("to_user"))) for e in events if e.kind == "rotation_finished"]
    client_changes = [(e.day, str(e.fields.get("to_user"))) for e in events if e.kind == "client_switched"]
    for row, changes in ((1, current_changes), (0, client_changes)):
        for start, end, user in user_spans(initial, changes, end_day):
            band.broken_barh([(start, end - start)], (row - 0.38, 0.76), color=_color(user, colors), alpha=0.9)
            if end - start > end_day / 40:
                band.text((start + end) / 2, row, user, ha="center", va="center", fontsize=8, color="white",
                          fontweight="bold")  # fmt: skip
    band.set_yticks([0, 1], ["client logs in as", "secret's AWSCURRENT"], fontsize=8.5)
    band.set_ylim(-0.6, 1.6)
    band.grid(False)
    for e in events:
        if e.kind == "rotation_finished":
            band.axvline(e.day, color=FAILED_COLOR if e.fields.get("manual") else "0.35", linestyle="--", linewidth=1)

    if naive is not None:
        nax = axes[2]
        n_times, n_users, n_oks = naive.log.copy_rows()
        n_rates = bucket_rates(
            n_times, n_users, n_oks, day_seconds=config.day_seconds, end_day=end_day, bucket_days=bucket
        )
        n_bottom = [0.0] * len(n_rates.starts)
        for user in sorted(n_rates.ok):
            values = n_rates.ok[user]
            nax.bar(n_rates.starts, values, width=n_rates.width, bottom=n_bottom, align="edge",
                    color=_color(user, colors), linewidth=0, alpha=0.8)  # fmt: skip
            n_bottom = [b + v for b, v in zip(n_bottom, values, strict=True)]
        nax.bar(n_rates.starts, n_rates.failed, width=n_rates.width, bottom=n_bottom, align="edge", color=FAILED_COLOR,
                linewidth=0)  # fmt: skip
        n_top = max([b + f for b, f in zip(n_bottom, n_rates.failed, strict=True)] + [1.0]) * 1.3
        nax.set_ylim(0, n_top)
        nax.set_ylabel("operations / s")
        n_summary = summary.get("naive", {})
        first = n_summary.get("first_failure_day")
        nax.set_title(
            f"the same workload through a plain MongoClient built once: {n_summary.get('ops_failed', 0)} failed "
            "operations" + (f" from day {first:.1f}" if first is not None else ""),
            fontsize=10,
            color=FAILED_COLOR if n_summary.get("ops_failed") else "black",
        )
        nax.legend(handles=[Patch(color=FAILED_COLOR, label="failed")], loc="upper left", fontsize=8.5)
        for e in events:
            if e.kind == "rotation_finished":
                nax.axvline(e.day, color="0.35", linestyle="--", linewidth=1)
    axes[-1].set_xlabel("demo day")
    axes[-1].set_xlim(0, end_day)
    for axis in axes:
        axis.set_xticks([d for d in range(0, int(end_day) + 1) if d % max(1, round(config.rotation_days)) == 0],
                        minor=False)  # fmt: skip
        axis.set_xticks(range(int(end_day) + 1), minor=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mark_events(ax: Any, events: Sequence[DemoEvent], top: float) -> None:
    started = {e.fields.get("number"): e.day for e in events if e.kind == "rotation_started"}
    for e in events:
        if e.kind == "rotation_finished":
            manual = bool(e.fields.get("manual"))
            # The rotation's four steps run from its start to this line.
            begin = started.get(e.fields.get("number"), e.day)
            ax.axvspan(begin, e.day, color=FAILED_COLOR if manual else "0.5", alpha=0.12, linewidth=0)
            ax.axvline(e.day, color=FAILED_COLOR if manual else "0.35", linestyle="--", linewidth=1.2)
            label = f"{'manual ' if manual else ''}rotation {e.fields.get('number')}\n→ {e.fields.get('to_user')}"
            # Manual rotations come soon after a scheduled one: label them on the other side, lower.
            ax.text(e.day, top * (0.88 if manual else 0.97), label, ha="left" if manual else "right", va="top",
                    fontsize=8,
                    color=FAILED_COLOR if manual else "0.25")  # fmt: skip
        elif e.kind == "client_switched":
            ax.plot([e.day], [top * 0.80], marker="v", color="#2ca02c", markersize=10)
            ax.text(e.day, top * 0.74, f"switch\n→ {e.fields.get('to_user')}", ha="left", va="top", fontsize=8,
                    color="#2ca02c")  # fmt: skip
        elif e.kind == "client_auth_recovered":
            ax.plot([e.day], [top * 0.62], marker="*", color=FAILED_COLOR, markersize=14)
            ax.text(e.day, top * 0.58, "auth failure\nrecovered", ha="left", va="top", fontsize=8, color=FAILED_COLOR)
