"""Helpers shared by the unit and integration tests of the rotating client."""

from __future__ import annotations

from secretswitch.client.rotating import RotatingMongoClient


def settle(rc: RotatingMongoClient, timeout: float = 30.0) -> None:
    """Wait until no refresh runs and the client's short-lived threads are done.

    Background refreshes hold the refresh lock while they run.
    """
    assert rc._refresh_lock.acquire(timeout=timeout), "a refresh never finished"
    rc._refresh_lock.release()
    for thread in list(rc._threads):
        thread.join(timeout=timeout)
