"""What a demo run leaves behind: its results folder, summary.json, timeline.png and the printed summary."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from .state import DemoState
from .summary import verdict_line

__all__ = ["default_out_dir", "print_summary", "remove_if_empty", "write_outputs"]

_log = logging.getLogger(__name__)


def default_out_dir(now: datetime | None = None, cwd: Path | None = None) -> Path:
    """A new folder under the current directory, named after the time."""
    base = (cwd or Path.cwd()) / f"secretswitch-demo-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if it is empty (a run that collected nothing leaves no folder)."""
    with contextlib.suppress(OSError):  # not empty, or already gone: leave it
        folder.rmdir()


def write_outputs(out_dir: Path, summary: dict[str, Any], state: DemoState, say: Callable[[str], None]) -> None:
    """summary.json, and timeline.png if it can be drawn (the verdict does not depend on it)."""
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    try:
        from .timeline import render_timeline

        render_timeline(out_dir / "timeline.png", state, summary)
    except Exception as exc:  # noqa: BLE001 - the run's verdict does not depend on the picture
        _log.warning("timeline.png not written: %s", exc, exc_info=True)
        say(f"timeline.png not written: {type(exc).__name__}: {exc}")


def print_summary(summary: dict[str, Any], out_dir: Path, say: Callable[[str], None]) -> None:
    """The summary's lines under the run's output, ending with the verdict."""
    if not summary:
        return
    say("")
    say("summary")
    say(
        f"  operations ok {summary['ops_ok']}, failed {summary['ops_failed']}; writes acknowledged "
        f"{summary['writes_acknowledged']}, lost {summary['writes_lost']}, duplicated {summary['writes_duplicated']}"
    )
    say(
        f"  rotations {summary['rotations']} (manual {summary['rotations_manual']}), client switches "
        f"{summary['switches']}, auth recoveries {summary['auth_recoveries']}, "
        f"users {' -> '.join(summary['users_seen'])}"
    )
    say(
        f"  Secrets Manager API calls by the client {summary['secretsmanager_api_calls']}, new connections "
        f"{summary['new_connections']}, {summary['days']:.1f} demo days in {summary['duration_s']:.1f} s"
    )
    naive = summary.get("naive")
    if naive:
        first = naive["first_failure_day"]
        when = f"from day {first:.1f}" if first is not None else "none"
        say(
            f"  plain MongoClient (no secretswitch): ok {naive['ops_ok']}, FAILED {naive['ops_failed']} ({when}), "
            f"writes lost {naive['writes_lost']}"
        )
    say(f"  files: {out_dir / 'events.jsonl'}, {out_dir / 'summary.json'}, {out_dir / 'timeline.png'}")
    say(verdict_line(summary))
