"""The live view as a person sees it: rendered to a fixed-size console, read as text, at 80x24 and 160x50."""

from __future__ import annotations

import argparse
import io
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from secretswitch.demo_app.clock import DemoClock
from secretswitch.demo_app.config import add_arguments, config_from_args
from secretswitch.demo_app.events import DemoEvent, EventLog, format_event
from secretswitch.demo_app.report import WriteCheck
from secretswitch.demo_app.rotations import ClientView, RotationScheduler, SecretInspector, VersionRow
from secretswitch.demo_app.state import DemoState, SideState
from secretswitch.demo_app.view import render

SIZES = [(80, 24), (160, 50)]
V1, V2, V3, V4 = "11111111-aaaa", "22222222-bbbb", "33333333-cccc", "44444444-dddd"


class Now:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _state(*argv: str) -> tuple[DemoState, Now]:
    """A run of four rotations, three switches done, as the runner's threads would have left it."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(list(argv)), {})
    now = Now()
    clock = DemoClock(config.day_seconds, started=0.0, monotonic=now)
    events = EventLog(clock.day, 0.0, monotonic=now)
    client = ClientView()
    state = DemoState(config=config, clock=clock, events=events, client=client, secret_id="mongodb-app")
    if config.naive:
        state.naive_side = SideState("plain MongoClient")

    def at(day: float, kind: str, **fields: Any) -> None:
        now.t = day * config.day_seconds
        events.emit(kind, **fields)

    users = ["app", "app_clone", "app", "app_clone", "app"]
    versions = [V1, V2, V3, V4, "55555555-eeee"]
    at(0.2, "started", user="app", version=V1, workers=8, rotations=4, rotation_days=7.0, refresh_days=6.0)
    for number in (1, 2, 3, 4):
        day = 7.0 * number
        at(day, "rotation_started", number=number, from_user=users[number - 1])
        for i, step in enumerate(("createSecret", "setSecret", "testSecret", "finishSecret")):
            at(day + 0.05 * (i + 1), "rotation_step", number=number, step=step, token=versions[number], ok=True)
        at(day + 0.3, "rotation_finished", number=number, to_user=users[number], from_user=users[number - 1],
           version=versions[number])  # fmt: skip
        at(day + 3.5, "client_refreshed", to_user=users[number], to_version=versions[number])
        if number < 4:  # the fourth switch has not happened yet
            at(day + 3.6, "client_switched", from_user=users[number - 1], to_user=users[number],
               from_version=versions[number - 1], to_version=versions[number])  # fmt: skip
    now.t = 29.0 * config.day_seconds
    client.user = "app_clone"
    state.end_day = 35.0
    state.phase = "running"
    inspector = SecretInspector(None, "mongodb-app")  # type: ignore[arg-type]
    inspector.latest = (VersionRow(V4, ("AWSCURRENT",), "app_clone"), VersionRow(V3, ("AWSPREVIOUS",), "app"))
    state.inspector = inspector
    state.metrics = lambda: SimpleNamespace(api_calls=9, refreshes=8, switches=3, auth_recoveries=0)
    for i in range(400):
        t = now.t - 0.9 * config.day_seconds + i * 0.002
        state.client_side.log.record(t, "app_clone" if i % 3 else "app", True, write=(i % 8, i) if i % 2 else None)
    state.client_side.connections = 218
    return state, now


def _screen(state: DemoState, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, record=True, file=io.StringIO(), color_system=None)
    console.print(render(state))
    return console.export_text().rstrip("\n").split("\n")


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_frame_fits_the_terminal_with_every_border_and_title(width: int, height: int) -> None:
    state, _ = _state()
    lines = _screen(state, width, height)
    text = "\n".join(lines)
    assert len(lines) <= height, text
    assert all(len(line) <= width for line in lines), text
    assert lines[0].startswith("secretswitch demo  day 29.0 of ≤ 35.0")  # a bound until the client switches
    assert lines[0].rstrip().endswith(" running"), lines[0]
    assert "secretswitch RotatingMongoClient" in text
    assert "secret mongodb-app: versions" in text
    assert "events (newest last)" in text
    tops = [line for line in lines if line.lstrip().startswith("╭")]
    bottoms = [line for line in lines if line.lstrip().startswith("╰")]
    assert len(tops) == 2, text  # the upper row of panels and the events panel, each with its top border
    assert len(bottoms) >= 2, text
    assert lines[-1].startswith("╰"), text
    assert lines[-1].rstrip().endswith("╯"), text


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_header_words_never_run_together(width: int, height: int) -> None:
    state, _ = _state()
    text = "\n".join(_screen(state, width, height))
    assert "client refresh ≤ 6 d" in text
    assert "refreshrunning" not in text
    assert "1 day = 1 s · 8 workers" in text


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_user_names_and_stages_are_never_cut(width: int, height: int) -> None:
    state, _ = _state()
    text = "\n".join(_screen(state, width, height))
    assert "…" not in text, text
    assert "44444444  app_clone  AWSCURRENT" in text, text
    assert "33333333  app        AWSPREVIOUS" in text, text
    assert "active user   app_clone" in text, text
    assert "app_clone " in text.split("ops/s", 1)[1].split("\n", 1)[0], text


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_newest_events_are_visible(width: int, height: int) -> None:
    state, _ = _state()
    text = "\n".join(_screen(state, width, height))
    assert "rotation 4: done, AWSCURRENT is now app" in text, text
    assert "client switched app -> app_clone" in text, text  # the third switch, day 24.6
    events_panel = text.split("events (newest last)", 1)[1]
    assert events_panel.rindex("rotation 4: done") > events_panel.rindex("client switched"), text
    if height < 50:
        assert "started: app is AWSCURRENT" not in events_panel  # the oldest give way
        assert "rotation 4: createSecret, setSecret, testSecret, finishSecret ok" in events_panel  # one line


def test_the_big_terminal_shows_every_event_with_real_time() -> None:
    state, _ = _state()
    text = "\n".join(_screen(state, 160, 50))
    assert "started: app is AWSCURRENT (version 11111111)" in text
    assert "t= 28.30s" in text  # the wide layout keeps the real clock too
    assert "client refreshed" not in text  # refreshes without a change are the noise the panel leaves out


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_last_frame_shows_the_verdict_not_running(width: int, height: int) -> None:
    state, _ = _state()
    state.client_side.writes = WriteCheck(acknowledged=200, lost=0, duplicated=0, unacknowledged_present=0)
    state.phase = "passed"
    state.verdict = "PASSED: 0 failed operations, 0 lost writes, every rotation followed by the client"
    lines = _screen(state, width, height)
    text = "\n".join(lines)
    assert len(lines) <= height, text
    assert "running" not in lines[0]
    assert lines[0].rstrip().endswith(" passed"), lines[0]
    assert "PASSED: 0 failed operations, 0 lost writes, every rotation followed by the client" in " ".join(
        line.strip() for line in lines
    )
    assert "writes acked  200 · 0 lost" in text
    assert "checked at the end" not in text


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_naive_side_fits_too(width: int, height: int) -> None:
    state, _ = _state("--naive")
    assert state.naive_side is not None
    state.naive_side.log.record(state.clock.real() - 0.5, "app", False, error="OperationFailure")
    lines = _screen(state, width, height)
    text = "\n".join(lines)
    assert len(lines) <= height, text
    assert "plain MongoClient: without secretswitch" in text
    assert "0 ok · 1 failed" in text
    assert "rotation 4: done" in text
    assert "…" not in text


def test_the_header_gives_the_real_end_once_known_and_never_a_day_past_it() -> None:
    """A 32.6-day run says "of 32.6", not the bound (the "day 31.4 of 36" of a 35-day run)."""
    state, now = _state()
    state.end_day, state.end_exact = 32.6, True
    now.t = 31.4 * state.config.day_seconds
    assert _screen(state, 80, 24)[0].startswith("secretswitch demo  day 31.4 of 32.6 ")
    now.t = 33.9 * state.config.day_seconds  # checking the writes after the last day
    assert _screen(state, 80, 24)[0].startswith("secretswitch demo  day 32.6 of 32.6 ")


def test_the_scheduler_knows_the_real_end_once_the_client_follows_the_last_rotation() -> None:
    """After the last rotation the run ends one demo day after the client's switch, not at the bound."""
    ticks = iter(range(10**6))
    clock = DemoClock(1.0, started=0.0, monotonic=lambda: 31.4 + next(ticks) * 0.05)  # moves as it is read
    final = VersionRow(V4, ("AWSCURRENT",), "app_clone")
    inspector = SimpleNamespace(current=lambda: final, latest=(final,))
    client = ClientView(user="app_clone", version=V4)  # already switched
    scheduler = RotationScheduler(
        clock=clock, events=EventLog(clock.day, 0.0), rotate=lambda: None, inspector=inspector,  # type: ignore[arg-type]
        recorder=None, client=client, rotations=4, rotation_days=7.0, refresh_days=6.0, manual_rotation=False,
        max_days=35.0,
    )  # fmt: skip
    assert scheduler.ends_at is None
    scheduler._wait_for_client()
    assert scheduler.ends_at is not None
    assert 32.4 <= scheduler.ends_at <= 32.5
    assert scheduler.max_days >= 35.0  # the bound stays a bound


def test_before_day_zero_the_events_panel_says_it_is_waiting() -> None:
    state, _ = _state()
    state.events = EventLog(state.clock.day, 0.0)
    text = "\n".join(_screen(state, 80, 24))
    assert "waiting for day 0" in text


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"to_user": "app_clone", "to_version": "44444444-dddd", "message": None},
            "client closed (it was using app_clone, version 44444444)",
        ),
        ({"message": None}, "client closed"),
        ({"message": "boom"}, "client closed: boom"),
    ],
)
def test_the_closing_line_says_what_was_closed_and_never_ends_in_a_colon(fields: dict[str, Any], expected: str) -> None:
    line = format_event(DemoEvent("client_closed", day=35.0, t=35.0, wall="", fields=fields))
    assert line.endswith(expected)
    assert not line.rstrip().endswith(":")
