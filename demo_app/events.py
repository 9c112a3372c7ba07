"""What happened during a demo run: one :class:`DemoEvent` per rotation step, refresh, switch, recovery.

Events carry both clocks: ``day`` (the compressed demo clock) and ``t``
(real seconds since the run started). They never carry a password: only user
names, version ids, stages and messages that the client and the rotation
function already keep free of secret values.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

__all__ = ["DemoEvent", "EventLog", "describe_event", "format_event"]

# Event kinds, by who produced them.
#   demo:      started, stack_ready, manual_rotation, finished, interrupted, verified
#   rotation:  rotation_started, rotation_step, rotation_finished, rotation_failed, rotation_refused
#   client:    client_<ClientEvent.kind> (client_refreshed, client_switched, client_auth_recovered, ...)
#   naive:     naive_failure_started, naive_failure_ended


@dataclass(frozen=True)
class DemoEvent:
    """One thing that happened.

    Attributes:
        kind: what happened (see the list at the top of this module).
        day: demo day it happened on.
        t: real seconds since the run started.
        wall: wall-clock time (UTC, ISO 8601).
        fields: details (user names, versions, stages, step, message); never a password.
    """

    kind: str
    day: float
    t: float
    wall: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"kind": self.kind, "day": round(self.day, 4), "t": round(self.t, 4), "wall": self.wall, **self.fields},
            default=str,
            sort_keys=False,
        )


def _short(version: object) -> str:
    return str(version)[:8] if version else "-"


def format_event(event: DemoEvent) -> str:
    """One plain line for ``event`` (what non-terminal output and the live view's log show)."""
    return f"day {event.day:6.2f}  t={event.t:6.2f}s  " + describe_event(event)


def describe_event(event: DemoEvent) -> str:
    """What happened, without the clocks (the live view puts its own day in front)."""
    f = event.fields
    kind = event.kind
    if kind == "started":
        return (
            f"started: {f.get('user')} is AWSCURRENT (version {_short(f.get('version'))}); "
            f"{f.get('workers')} workers, {f.get('rotations')} rotations every {f.get('rotation_days')} d, "
            f"client refresh <= {f.get('refresh_days')} d"
        )
    if kind == "rotation_started":
        why = " (manual, out of schedule)" if f.get("manual") else ""
        return f"rotation {f.get('number')}{why}: started, {f.get('from_user')} is AWSCURRENT"
    if kind == "rotation_step":
        status = "ok" if f.get("ok", True) else f"FAILED: {f.get('message')}"
        return f"rotation {f.get('number')}: {f.get('step'):<13} token {_short(f.get('token'))}  {status}"
    if kind == "rotation_finished":
        return (
            f"rotation {f.get('number')}: done, AWSCURRENT is now {f.get('to_user')} "
            f"(version {_short(f.get('version'))}); {f.get('from_user')} keeps its password"
        )
    if kind == "rotation_failed":
        return f"rotation {f.get('number')}: FAILED at {f.get('failed_step')}: {f.get('message')}"
    if kind == "rotation_refused":
        return f"rotation {f.get('number')}: REFUSED by the rotation guard, nothing changed: {f.get('message')}"
    if kind == "client_switched":
        return (
            f"client switched {f.get('from_user')} -> {f.get('to_user')} "
            f"(version {_short(f.get('from_version'))} -> {_short(f.get('to_version'))})"
        )
    if kind == "client_refreshed":
        return f"client refreshed the secret: {f.get('to_user')} (version {_short(f.get('to_version'))})"
    if kind == "client_auth_recovered":
        return f"client RECOVERED from an authentication failure: now {f.get('to_user')}"
    if kind == "client_closed":
        user = f.get("to_user")
        line = "client closed"
        if user:
            line += f" (it was using {user}, version {_short(f.get('to_version'))})"
        return f"{line}: {f.get('message')}" if f.get("message") else line
    if kind.startswith("client_"):
        what = "client " + kind[len("client_") :].replace("_", " ")
        return f"{what}: {f.get('message')}" if f.get("message") else what
    if kind == "manual_rotation":
        return f"manual rotation: {f.get('message')}"
    if kind == "naive_failure_started":
        return f"plain MongoClient: operations FAIL from now on ({f.get('message')})"
    details = ", ".join(f"{k}={v}" for k, v in f.items() if v is not None)
    return kind.replace("_", " ") + (f": {details}" if details else "")


class EventLog:
    """A thread-safe, append-only list of events, with subscribers and an optional JSON-lines file.

    Args:
        day_of: the demo day now (the demo's compressed clock).
        started: the real monotonic time the run started.
        monotonic: the real clock.
    """

    def __init__(
        self, day_of: Callable[[], float], started: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._day_of = day_of
        self._started = started
        self._monotonic = monotonic
        self._events: list[DemoEvent] = []
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[DemoEvent], None]] = []
        self._file: TextIO | None = None

    def restart(self, started: float) -> None:
        """Count real time from ``started`` (day 0) from now on."""
        self._started = started

    def open_file(self, path: Path) -> None:
        """Write every event (those already recorded first) to ``path`` as JSON lines."""
        with self._lock:
            self._file = path.open("w", encoding="utf-8")
            for event in self._events:
                self._file.write(event.to_json() + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def subscribe(self, callback: Callable[[DemoEvent], None]) -> None:
        self._subscribers.append(callback)

    def emit(self, kind: str, **fields: Any) -> DemoEvent:
        """Record an event that happens now."""
        event = DemoEvent(
            kind=kind,
            day=self._day_of(),
            t=self._monotonic() - self._started,
            wall=datetime.now(UTC).isoformat(timespec="milliseconds"),
            fields=fields,
        )
        with self._lock:
            self._events.append(event)
            if self._file is not None:
                self._file.write(event.to_json() + "\n")
                self._file.flush()
        for callback in self._subscribers:
            callback(event)
        return event

    def snapshot(self) -> list[DemoEvent]:
        with self._lock:
            return list(self._events)

    def __iter__(self) -> Iterator[DemoEvent]:
        return iter(self.snapshot())

    def of_kind(self, *kinds: str) -> list[DemoEvent]:
        return [event for event in self.snapshot() if event.kind in kinds]
