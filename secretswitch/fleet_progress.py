"""The progress line of a long simulation, on stderr: quiet for a short run."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Shows how far a long run is, on a stream (stderr), without a word for a short one.

    Nothing is printed until ``after`` seconds have passed; then one line at most
    every ``every`` seconds, and a last one at the end.

    Args:
        total: instance passes the whole run will simulate.
        stream: where the lines go.
        clock: a monotonic clock (injected for tests).
        after: quiet for this many seconds.
        every: at most one line per this many seconds.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        after: float = 3.0,
        every: float = 2.0,
    ) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.started = clock()
        self.after = after
        self.every = every
        self.stage = ""
        self._next_print = self.started + after
        self.printed = 0

    def __call__(self, passes: int) -> None:
        self.done += passes
        now = self.clock()
        if now >= self._next_print:
            self._print(now)
            self._next_print = now + self.every

    def finish(self) -> None:
        """A closing line, only if progress was shown at all."""
        if self.printed:
            self.done = self.total
            self._print(self.clock())

    def _print(self, now: float) -> None:
        percent = 100.0 * min(self.done, self.total) / self.total
        elapsed = now - self.started
        left = elapsed * (self.total - self.done) / self.done if 0 < self.done < self.total else 0.0
        stage = f" {self.stage}:" if self.stage else ""
        print(
            f"simulate:{stage} {percent:.0f}% ({elapsed:.0f} s, about {left:.0f} s left)",
            file=self.stream,
            flush=True,
        )
        self.printed += 1
