"""The live terminal view (rich): who serves the application, the secret's versions, what just happened.

The frame is laid out for the terminal it is drawn on, every time it is drawn:
a two-line header (title, day, progress, phase; then the schedule), the verdict
once the run is judged, the client's panel beside the secret's versions, the
plain MongoClient's panel with ``--naive`` (beside them when the terminal is
wide, under them otherwise), and the events panel, which takes the rest of the
height and shows the newest events that fit, wrapped, never cut. Nothing is
taller than the terminal, so rich never crops a border or a title; it reads at
80x24 as at 160x50.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from .events import DemoEvent, describe_event, format_event

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

    from .state import DemoState, SideState

__all__ = ["live_view", "render"]

USER_STYLES = {"app": "bold cyan", "app_clone": "bold magenta"}
PHASE_STYLES = {"passed": "bold green", "failed": "bold red", "interrupted": "bold red"}
_RATE_WINDOW_DAYS = 1.0
_WIDE = 120  # columns from which the naive panel sits beside the others and events show real time too
_MIN_EVENT_ROWS = 3


def _user(name: str | None) -> str:
    if not name:
        return "-"
    style = USER_STYLES.get(name, "bold")
    return f"[{style}]{name}[/]"


def _event_style(event: DemoEvent) -> str:
    if event.kind in ("rotation_started", "rotation_finished"):
        return "yellow"
    if event.kind == "rotation_step":
        return "dim yellow" if event.fields.get("ok", True) else "bold red"
    if event.kind == "client_switched":
        return "bold green"
    if event.kind in ("client_auth_recovered", "manual_rotation"):
        return "bold red"
    if event.kind.startswith("naive_") or "failed" in event.kind:
        return "red"
    return "dim"


def _event_text(event: DemoEvent, *, wide: bool) -> Any:
    from rich.text import Text

    line = format_event(event) if wide else f"day {event.day:5.1f}  {describe_event(event)}"
    return Text(line, style=_event_style(event), overflow="fold")


def _side_rows(state: DemoState, side: SideState, *, metrics: Any | None) -> list[tuple[str, str]]:
    window = _RATE_WINDOW_DAYS * state.config.day_seconds
    per_user, failed_now = side.log.rates_since(state.clock.real() - window)
    ok, failed, _by_user = side.log.counts()
    rows: list[tuple[str, str]] = []
    if metrics is not None:
        rows.append(("active user", _user(state.client.user)))
    rates = " · ".join(f"{_user(user)} {count / window:,.0f}" for user, count in sorted(per_user.items())) or "-"
    rows.append(("ops/s", rates))
    failed_style = "bold green" if failed == 0 else "bold red"
    now = f" ({failed_now:,} now)" if failed_now else ""
    rows.append(("operations", f"{ok:,} ok · [{failed_style}]{failed:,} failed[/]{now}"))
    writes = side.writes
    acknowledged = f"{len(set(side.log.acknowledged)):,}"
    if writes is None:
        rows.append(("writes acked", f"{acknowledged} · [dim]checked at end[/]"))
    else:
        rows.append(
            ("writes acked", f"{acknowledged} · [bold {'green' if writes.lost == 0 else 'red'}]{writes.lost:,} lost[/]")
        )
    rows.append(("connections", f"{side.connections:,} opened"))
    if metrics is not None:
        rows.append(("API calls", f"{metrics.api_calls} ({metrics.refreshes} refreshes)"))
        recovered = metrics.auth_recoveries
        recoveries = f"[bold red]{recovered}[/]" if recovered else "0"
        rows.append(("switches", f"{metrics.switches} · auth recoveries {recoveries}"))
    return rows


def _side_table(state: DemoState, side: SideState, *, metrics: Any | None) -> Any:
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for label, value in _side_rows(state, side, metrics=metrics):
        table.add_row(label, value)
    return table


def _side_line(state: DemoState, side: SideState) -> Any:
    """The same numbers on as few lines as the width allows (the naive side on a small terminal)."""
    from rich.text import Text

    return Text.from_markup(
        "   ".join(f"[bold]{label}[/] {value}" for label, value in _side_rows(state, side, metrics=None))
    )


def _versions_table(state: DemoState) -> Any:
    from rich.table import Table

    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False)
    table.add_column("version", style="dim", no_wrap=True)
    table.add_column("user", no_wrap=True, min_width=len("app_clone"))
    table.add_column("stages", no_wrap=True)
    versions = state.inspector.latest if state.inspector is not None else ()
    for version in versions:
        stages = " ".join(
            f"[bold green]{s}[/]" if s == "AWSCURRENT" else (f"[yellow]{s}[/]" if s == "AWSPENDING" else s)
            for s in version.stages
        )
        table.add_row(version.version_id[:8], _user(version.user), stages)
    return table


def _header(state: DemoState) -> list[Any]:
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    config = state.config
    end = state.end_day or config.max_days
    day = min(state.clock.day(), end)
    # Until the client has switched after the last rotation, the end is only a bound.
    of = f"{end:.1f}" if state.end_exact else f"≤ {end:.1f}"
    top = Table.grid(expand=True, padding=(0, 1))
    top.add_column(no_wrap=True)
    top.add_column(ratio=1)
    top.add_column(no_wrap=True, justify="right")
    phase = Text(state.phase, style=PHASE_STYLES.get(state.phase, "yellow"))
    top.add_row(
        Text.from_markup(f"[bold]secretswitch demo[/]  day [bold]{day:.1f}[/] of {of}"),
        ProgressBar(total=end, completed=day),
        phase,
    )
    extras = []
    if config.manual_rotation:
        extras.append("+ a manual rotation")
    if config.naive:
        extras.append("+ a plain MongoClient")
    schedule = (
        f"rotation every {config.rotation_days:g} d · client refresh ≤ {config.refresh_days:g} d · "
        f"1 day = {config.day_seconds:g} s · {config.workers} workers"
    )
    parts: list[Any] = [top, Text(" · ".join([schedule, *extras]), style="dim", overflow="fold")]
    if state.verdict:
        style = "bold green" if state.phase == "passed" else "bold red"
        parts.append(Text(state.verdict, style=style, overflow="fold"))
    return parts


def _panels(state: DemoState, *, wide: bool) -> list[Any]:
    from rich.panel import Panel
    from rich.table import Table

    metrics = state.metrics() if state.metrics is not None else None
    client = Panel(_side_table(state, state.client_side, metrics=metrics), title=state.client_side.label)
    versions = Panel(_versions_table(state), title=f"secret {state.secret_id}: versions", expand=False)
    naive = None
    if state.naive_side is not None:
        naive = Panel(
            _side_table(state, state.naive_side, metrics=None) if wide else _side_line(state, state.naive_side),
            title=f"[red]{state.naive_side.label}[/]: without secretswitch",
        )
    row = Table.grid(expand=True, padding=(0, 1))
    row.add_column(ratio=1)
    row.add_column()
    cells: list[Any] = [client, versions]
    if naive is not None and wide:
        row.add_column(ratio=1)
        cells.append(naive)
        naive = None
    row.add_row(*cells)
    return [row] if naive is None else [row, naive]


def _event_lines(state: DemoState, *, wide: bool) -> list[Any]:
    """The events worth a line, oldest first; on a small terminal a rotation's steps share one line."""
    from rich.text import Text

    events = [e for e in state.events.snapshot() if e.kind != "client_refreshed"]
    if wide:
        return [_event_text(e, wide=True) for e in events]
    lines: list[Any] = []
    steps: list[str] = []  # the successful steps of the rotation in progress, shown on its last line
    for event in events:
        if event.kind == "rotation_step" and event.fields.get("ok", True):
            steps.append(str(event.fields.get("step")))
            line = f"day {event.day:5.1f}  rotation {event.fields.get('number')}: {', '.join(steps)} ok"
            text = Text(line, style=_event_style(event), overflow="fold")
            if len(steps) > 1:
                lines[-1] = text
            else:
                lines.append(text)
            continue
        steps = []
        lines.append(_event_text(event, wide=False))
    return lines


def _events_panel(state: DemoState, console: Console, *, width: int, height: int, wide: bool) -> Any:
    """The newest events that fit in ``height`` rows (borders included), oldest of them first."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    room = max(1, height - 2)
    inner = max(10, width - 4)  # border and padding on both sides
    shown: list[Any] = []
    used = 0
    for text in reversed(_event_lines(state, wide=wide)):
        rows = len(text.wrap(console, inner))
        if used + rows > room:
            if not shown:  # even a single long event gets the rows there are
                shown.append(text)
            break
        shown.append(text)
        used += rows
    shown.reverse()
    body: Any = Group(*shown) if shown else Text("waiting for day 0 ...", style="dim")
    return Panel(body, title="events (newest last)", height=max(height, 3))


class _Frame:
    """One frame of the view, laid out for the size of the console it is drawn on."""

    def __init__(self, state: DemoState, height: int | None) -> None:
        self.state = state
        self.height = height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = self.height or options.height or console.size.height
        wide = width >= _WIDE
        parts = [*_header(self.state), *_panels(self.state, wide=wide)]
        measure = options.update(width=width, height=None)
        used = sum(len(console.render_lines(part, measure, pad=False)) for part in parts)
        parts.append(
            _events_panel(self.state, console, width=width, height=max(_MIN_EVENT_ROWS, height - used), wide=wide)
        )
        yield from parts


def render(state: DemoState, *, height: int | None = None) -> RenderableType:
    """The whole screen for the current state, sized to the console it is printed on.

    Args:
        state: what the run shares with the view.
        height: rows to fill (default: the console's height).
    """
    return _Frame(state, height)


@contextlib.contextmanager
def live_view(state: DemoState, out: TextIO) -> Iterator[None]:
    """Show :func:`render` live on ``out`` until the block ends (and leave the last frame on screen)."""
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out)
    # One row less than the terminal: the cursor's row, so that the frame never scrolls.
    with Live(
        get_renderable=lambda: render(state, height=max(10, console.size.height - 1)),
        console=console,
        refresh_per_second=8,
        transient=False,
        vertical_overflow="crop",
    ):
        yield
