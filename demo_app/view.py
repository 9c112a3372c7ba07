"""The live terminal view (rich): who serves the application, the secret's versions, what just happened."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from demo_app.events import DemoEvent, format_event

if TYPE_CHECKING:
    from rich.console import RenderableType

    from demo_app.state import DemoState, SideState

__all__ = ["live_view", "render"]

USER_STYLES = {"app": "bold cyan", "app_clone": "bold magenta"}
_RATE_WINDOW_DAYS = 1.0
_LOG_LINES = 14


def _user(name: str | None) -> str:
    if not name:
        return "-"
    style = USER_STYLES.get(name, "bold")
    return f"[{style}]{name}[/]"


def _event_line(event: DemoEvent) -> str:
    from rich.markup import escape

    line = escape(format_event(event))
    if event.kind in ("rotation_started", "rotation_finished"):
        return f"[yellow]{line}[/]"
    if event.kind == "rotation_step":
        return f"[dim yellow]{line}[/]" if event.fields.get("ok", True) else f"[bold red]{line}[/]"
    if event.kind == "client_switched":
        return f"[bold green]{line}[/]"
    if event.kind in ("client_auth_recovered", "manual_rotation"):
        return f"[bold red]{line}[/]"
    if event.kind.startswith("naive_") or "failed" in event.kind:
        return f"[red]{line}[/]"
    return f"[dim]{line}[/]"


def _side_table(state: DemoState, side: SideState, *, metrics: Any | None) -> Any:
    from rich.table import Table

    window = _RATE_WINDOW_DAYS * state.config.day_seconds
    per_user, failed_now = side.log.rates_since(state.clock.real() - window)
    ok, failed, _by_user = side.log.counts()
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    if metrics is not None:
        table.add_row("active user", _user(state.client.user))
    rates = "  ".join(f"{_user(user)} {count / window:5.0f}" for user, count in sorted(per_user.items())) or "-"
    table.add_row("ops/s by user", rates)
    table.add_row("operations ok", f"{ok:,}")
    failed_style = "bold green" if failed == 0 else "bold red"
    table.add_row(
        "failed operations", f"[{failed_style}]{failed:,}[/]" + (f"  ({failed_now} now)" if failed_now else "")
    )
    writes = side.writes
    if writes is None:
        lost = f"[dim]checked at the end ({len(side.log.acknowledged):,} acknowledged)[/]"
    else:
        lost = f"[bold {'green' if writes.lost == 0 else 'red'}]{writes.lost}[/]"
    table.add_row("lost writes", lost)
    table.add_row("new connections", f"{side.connections:,}")
    if metrics is not None:
        table.add_row("secret API calls", f"{metrics.api_calls}  ({metrics.refreshes} refreshes)")
        table.add_row("switches", f"{metrics.switches}")
        recovered = metrics.auth_recoveries
        table.add_row("auth recoveries", f"[bold red]{recovered}[/]" if recovered else "0")
    return table


def _versions_table(state: DemoState) -> Any:
    from rich.table import Table

    table = Table(box=None, padding=(0, 2), show_edge=False)
    table.add_column("version", style="dim")
    table.add_column("user")
    table.add_column("stages")
    versions = state.inspector.latest if state.inspector is not None else ()
    for version in versions:
        stages = " ".join(
            f"[bold green]{s}[/]" if s == "AWSCURRENT" else (f"[yellow]{s}[/]" if s == "AWSPENDING" else s)
            for s in version.stages
        )
        table.add_row(version.version_id[:8], _user(version.user), stages)
    return table


def render(state: DemoState) -> RenderableType:
    """The whole screen for the current state."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    config = state.config
    day = state.clock.day()
    header = Table.grid(expand=True)
    header.add_column()
    header.add_column(justify="right")
    header.add_row(
        f"[bold]secretswitch demo[/]  day [bold]{day:5.1f}[/] of ≤{state.end_day:.0f}   "
        f"rotation every {config.rotation_days:g} d · client refresh ≤ {config.refresh_days:g} d · "
        f"1 day = {config.day_seconds:g} s · {config.workers} workers",
        f"[dim]{state.phase}[/]",
    )
    progress = ProgressBar(total=state.end_day or config.max_days, completed=min(day, state.end_day or config.max_days))
    top = Table.grid(expand=True, padding=(0, 1))
    top.add_column(ratio=1)
    top.add_column(ratio=1)
    metrics = state.metrics() if state.metrics is not None else None
    top.add_row(
        Panel(_side_table(state, state.client_side, metrics=metrics), title=state.client_side.label),
        Panel(_versions_table(state), title=f"secret {state.secret_id}: versions and stages"),
    )
    parts: list[Any] = [header, progress, top]
    if state.naive_side is not None:
        parts.append(
            Panel(
                _side_table(state, state.naive_side, metrics=None),
                title=f"[red]{state.naive_side.label}[/]: the same workload without secretswitch",
            )
        )
    lines = [e for e in state.events.snapshot() if e.kind != "client_refreshed"][-_LOG_LINES:]
    parts.append(Panel("\n".join(_event_line(e) for e in lines) or "[dim]waiting for day 0 ...[/]", title="events"))
    return Group(*parts)


@contextlib.contextmanager
def live_view(state: DemoState, out: TextIO) -> Iterator[None]:
    """Show :func:`render` live on ``out`` until the block ends (and leave the last frame on screen)."""
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out)
    with Live(get_renderable=lambda: render(state), console=console, refresh_per_second=8, transient=False):
        yield
