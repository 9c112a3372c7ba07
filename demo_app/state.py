"""What the demo's run shares with its live view and its timeline: one mutable state, updated by the run's threads.

Its own module so that the runner, the view and the timeline all import it and
none of them imports another.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .clock import DemoClock
from .config import DemoConfig
from .events import EventLog
from .report import WriteCheck
from .rotations import ClientView, SecretInspector
from .workload import OpLog

__all__ = ["DemoState", "SideState"]


@dataclass
class SideState:
    """One workload's live numbers (the rotating client, or the plain MongoClient)."""

    label: str
    log: OpLog = field(default_factory=OpLog)
    connections: int = 0
    writes: WriteCheck | None = None


@dataclass
class DemoState:
    """Everything the live view shows, updated by the run's threads."""

    config: DemoConfig
    clock: DemoClock
    events: EventLog
    client: ClientView
    secret_id: str
    client_side: SideState = field(default_factory=lambda: SideState("secretswitch RotatingMongoClient"))
    naive_side: SideState | None = None
    inspector: SecretInspector | None = None
    metrics: Callable[[], Any] | None = None
    phase: str = "starting"  # starting, running, checking writes, then passed / failed / interrupted
    end_day: float = 0.0  # the run's last demo day: an upper bound until end_exact
    end_exact: bool = False  # end_day is the real end (the client switched after the last rotation, or the run ended)
    verdict: str | None = None  # the closing line, once the run is judged
    versions_read_at: float = -math.inf  # when the view last re-read the secret's versions (time.monotonic)
