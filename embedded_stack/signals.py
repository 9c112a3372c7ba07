"""Stop a foreground process that runs the stack the same way on every signal a person or a shell sends."""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["stop_on_signals"]


def stop_on_signals() -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into ``KeyboardInterrupt``, so every one stops cleanly.

    SIGINT is set explicitly because a shell starts background jobs with it ignored.
    """

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
