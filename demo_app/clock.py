"""The demo's compressed clock: one demo day is ``day_seconds`` real seconds.

The client, the scheduler and the view all read the same clock, scaled from
the real monotonic clock, so "refresh every 6 days, rotate every 7" keeps its
meaning at any speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .config import DAY

__all__ = ["DemoClock"]


class DemoClock:
    """Demo time since ``started`` (a real monotonic time), scaled.

    Args:
        day_seconds: real seconds in one demo day.
        started: the real monotonic time of day 0.
        monotonic: the real clock.
    """

    def __init__(
        self, day_seconds: float, started: float | None = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.day_seconds = day_seconds
        self._monotonic = monotonic
        self.started = monotonic() if started is None else started

    def restart(self) -> None:
        """Make now day 0 (before anything reads the clock: it must never jump back)."""
        self.started = self._monotonic()

    def real(self) -> float:
        """Real seconds since day 0."""
        return self._monotonic() - self.started

    def seconds(self) -> float:
        """Demo seconds since day 0 (what the rotating client is given as its clock)."""
        return self.real() * DAY / self.day_seconds

    def day(self) -> float:
        """Demo days since day 0."""
        return self.real() / self.day_seconds

    def wait_until_day(self, day: float, stop: threading.Event, *, poll: float = 0.05) -> bool:
        """Wait until demo ``day``; ``False`` if ``stop`` was set first."""
        while not stop.is_set():
            remaining = (day - self.day()) * self.day_seconds
            if remaining <= 0:
                return True
            stop.wait(min(poll, remaining))
        return False
