"""Helpers shared by the benchmarks: timing loops and a quiet embedded stack."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ns_per_call", "percentile", "print_table"]


def ns_per_call(fn: Callable[[], object], *, number: int = 20_000, repeat: int = 5) -> float:
    """The best (lowest) mean cost of ``fn()`` in nanoseconds over ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / number)
    return best


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Print a markdown table: what, measured, ratio/target."""
    print(f"\n### {title}\n")
    print("| measure | value | ratio (target) |")
    print("|---|---|---|")
    for what, value, ratio in rows:
        print(f"| {what} | {value} | {ratio} |")
