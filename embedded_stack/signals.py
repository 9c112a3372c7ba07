"""Signals for a foreground process that runs the stack: every one stops it the same way, never half-way.

:func:`stop_on_signals` makes SIGINT, SIGTERM and SIGHUP raise
``KeyboardInterrupt``, so Ctrl-C, ``kill`` and a closed terminal all unwind
through the stack's ``finally`` blocks. :func:`signals_deferred` holds them
back during the few steps that must not be cut in two: starting a process and
recording its PID, and stopping everything. A signal that arrives there is
delivered when the block ends, so a Ctrl-C at any moment of start-up still
finds every started process recorded, and a second Ctrl-C cannot abort the
clean-up of the first.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["signals_deferred", "stop_on_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_on_signals() -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into ``KeyboardInterrupt``, so every one stops cleanly.

    SIGINT is set explicitly because a shell starts background jobs with it ignored.
    """

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for sig in _SIGNALS:
        signal.signal(sig, on_signal)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends, then deliver the first one that came.

    Python runs signal handlers in the main thread only, so elsewhere this is a
    no-op (nothing there can be interrupted by them). Blocks may nest.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous: dict[int, Any] = {}
    for sig in _SIGNALS:
        previous[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler installed outside Python; the default is the closest we can restore.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if received:
            signal.raise_signal(received[0])
