"""The two thread-safe pieces both rotating clients share: run counting and event delivery.

:class:`InFlight` counts the ``run`` calls on one client so it is closed only
when idle; :class:`EventHub` queues events while a shell holds its locks and
delivers them once it released them. Both are safe from any thread; the
asyncio client uses them from its loop only.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from .events import ClientEvent, EventKind

__all__ = ["EventHub", "InFlight"]

_log = logging.getLogger(__name__)


class InFlight:
    """Counts the ``run`` calls on one client, so it is closed only when idle.

    Once it closed (:meth:`close_when_idle` found it idle, or :meth:`refuse`
    was called), :meth:`enter` refuses: a caller that read the generation just
    before it was retired moves to the live one instead of a client about to
    close. Thread-safe; the asyncio shell uses it from its loop only.
    """

    __slots__ = ("_close_on_idle", "_closing", "_count", "_lock", "_on_idle")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._closing = False
        self._close_on_idle = False
        self._on_idle: list[Callable[[], None]] = []

    @property
    def closing(self) -> bool:
        """True once new calls are refused."""
        return self._closing

    def enter(self) -> bool:
        with self._lock:
            if self._closing:
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._count -= 1
            if self._count:
                return
            self._closing = self._closing or self._close_on_idle
            callbacks, self._on_idle = self._on_idle, []
        for callback in callbacks:
            callback()

    def close_when_idle(self, on_closed: Callable[[], None]) -> None:
        """Refuse new calls from the first moment none runs (now, if none does), then call ``on_closed()``."""
        with self._lock:
            if self._count:
                self._close_on_idle = True
                self._on_idle.append(on_closed)
                return
            self._closing = True
        on_closed()

    def refuse(self) -> None:
        """Refuse new calls, whether or not some still run."""
        with self._lock:
            self._closing = True


class EventHub:
    """Subscribers, and the events waiting to reach them.

    :meth:`emit` only queues, so the core may emit while a shell holds a lock;
    the shells call :meth:`deliver` once they released every lock. One thread
    delivers at a time, in order; a subscriber that causes an event (it
    called ``refresh_now()`` from its callback) has it delivered right after
    its own callback returns, by the same loop.
    """

    def __init__(self, secret_id: str, clock: Callable[[], float]) -> None:
        self._secret_id = secret_id
        self._clock = clock
        self._lock = threading.Lock()
        self._delivering = threading.Lock()
        self._pending: collections.deque[ClientEvent] = collections.deque()
        self._subscribers: tuple[Callable[[ClientEvent], None], ...] = ()

    def after_fork_in_child(self) -> None:
        """Fresh locks in a forked child (another thread of the parent may have held them)."""
        self._lock = threading.Lock()
        self._delivering = threading.Lock()

    def subscribe(self, callback: Callable[[ClientEvent], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(cb for cb in self._subscribers if cb is not callback)

        return unsubscribe

    def emit(self, kind: EventKind, **fields: Any) -> None:
        self._pending.append(ClientEvent(kind=kind, at=self._clock(), **fields))

    def deliver(self) -> None:
        """Hand the queued events to the subscribers (call with no lock of the client held)."""
        while self._pending:
            if not self._delivering.acquire(blocking=False):
                return  # another thread (or an outer call of this one) is delivering them
            try:
                while True:
                    try:
                        event = self._pending.popleft()
                    except IndexError:
                        break
                    for callback in self._subscribers:
                        try:
                            callback(event)
                        except Exception:  # noqa: BLE001 - a subscriber must never break the client
                            _log.exception(
                                "secret %s: event subscriber %r failed on %s", self._secret_id, callback, event.kind
                            )
            finally:
                self._delivering.release()
