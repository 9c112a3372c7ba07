"""Handles an application or a library keeps heal by themselves (issue 20's mechanism).

The client is never called again after these handles are taken: only the
login watch (pymongo's server monitoring) and the background refresher can
keep them working. Each test rotates out of schedule (two rotations back to
back change the password of the user the handles were logged in as), under
load that opens new connections (``maxIdleTimeMS`` small).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from secretswitch.client import RefreshPolicy, RotatingMongoClient
from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack

SECRET = "mongodb-app"
OPTIONS = {"maxIdleTimeMS": 50, "serverSelectionTimeoutMS": 10_000}


@pytest.fixture(scope="module")
def hstack() -> Any:
    with EmbeddedStack(region="ca-central-1") as running:
        yield running


def _rotate_twice(stack: EmbeddedStack) -> None:
    sm = stack.secretsmanager_client()
    for _ in range(2):  # the second changes the password of the user the handles hold
        sm.rotate_secret(SecretId=SECRET)


def _load(op: Callable[[int], None], *, threads: int, stop: threading.Event) -> tuple[list[int], list[str]]:
    ok = [0]
    failed: list[str] = []
    lock = threading.Lock()

    def worker(number: int) -> None:
        sequence = 0
        while not stop.is_set():
            sequence += 1
            try:
                op(number * 1_000_000 + sequence)
            except Exception as exc:
                with lock:
                    failed.append(type(exc).__name__)
            else:
                with lock:
                    ok[0] += 1
            time.sleep(0.005)

    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    return ok, failed


def test_a_collection_handle_kept_for_the_life_of_the_process_survives_an_out_of_schedule_rotation(
    hstack: EmbeddedStack,
) -> None:
    with RotatingMongoClient(
        SECRET, secretsmanager_client=hstack.secretsmanager_client(), database=APP_DATABASE, mongo_options=OPTIONS
    ) as rc:
        items = rc.database()["held_items"]  # what an ODM keeps; the client is never called again
        stop = threading.Event()
        ok, failed = _load(lambda n: items.insert_one({"n": n}), threads=4, stop=stop)
        time.sleep(0.5)
        before_user = rc.active_user
        _rotate_twice(hstack)
        deadline = time.monotonic() + 20
        while rc.metrics.auth_recoveries == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        failed_at_the_refusal = len(failed)
        stop.set()
        after = [items.insert_one({"after": i}).acknowledged for i in range(20)]
        assert rc.metrics.auth_recoveries == 1, "the refused login was seen without the client being called"
        # The repair adopted a version that logs in: AWSCURRENT, or the partner's if it ran mid-rotation.
        assert rc.active_user in {before_user, f"{before_user}_clone", before_user.removesuffix("_clone")}
        # Only operations already running when their login was refused may fail (one per thread at most).
        assert failed_at_the_refusal <= 4, failed
        assert ok[0] > 0
        assert all(after)


def test_the_background_refresher_switches_a_client_nobody_calls(hstack: EmbeddedStack) -> None:
    policy = RefreshPolicy(refresh_interval=1.0, jitter=0.2, forced_refresh_gap=0.5)
    with RotatingMongoClient(
        SECRET, secretsmanager_client=hstack.secretsmanager_client(), database=APP_DATABASE, policy=policy
    ) as rc:
        held = rc.client
        first_user = rc.active_user
        hstack.secretsmanager_client().rotate_secret(SecretId=SECRET)
        deadline = time.monotonic() + 15
        while rc.active_user == first_user and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rc.active_user != first_user, "the refresher never switched"
        assert rc.metrics.auth_recoveries == 0  # a planned switch, not a repair
        assert held is rc.client
        assert held[APP_DATABASE].command("connectionStatus")["authInfo"]["authenticatedUsers"][0]["user"] == (
            rc.active_user
        )


def _child_uses_the_client(rc: RotatingMongoClient, conn: Any) -> None:
    try:
        # Whatever the parent's threads held at fork time, this must not hang.
        counted = rc.database()["held_items"].count_documents({}) >= 0
        rc.refresh_now()  # the child's own read, scheduled with its own (re-seeded) jitter
        conn.send(("ok", counted, rc._gen.refresh_at - rc._gen.fetched_at))
    except Exception as exc:
        conn.send(("error", type(exc).__name__, 0.0))


def _fork_children(rc: RotatingMongoClient, count: int) -> list[tuple[str, Any, float]]:
    context = multiprocessing.get_context("fork")
    results = []
    for _ in range(count):
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_child_uses_the_client, args=(rc, child_end))
        process.start()
        if not parent_end.poll(30):
            process.kill()
            process.join(5)
            pytest.fail("a forked child hung")
        results.append(parent_end.recv())
        process.join(10)
        assert process.exitcode == 0
    return results


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_child_forked_while_the_parent_holds_the_refresh_lock_does_not_hang(hstack: EmbeddedStack) -> None:
    with RotatingMongoClient(SECRET, secretsmanager_client=hstack.secretsmanager_client(), database=APP_DATABASE) as rc:
        rc.database()["held_items"].insert_one({"before": "fork"})
        assert rc._refresh_lock.acquire(timeout=10)  # as if a refresh were running in another thread
        try:
            results = _fork_children(rc, 1)
        finally:
            rc._refresh_lock.release()
        assert results[0][:2] == ("ok", True)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_forked_children_re_read_the_secret_and_spread_their_refreshes(hstack: EmbeddedStack) -> None:
    policy = RefreshPolicy(refresh_interval=3600.0, jitter=0.5)
    with RotatingMongoClient(
        SECRET, secretsmanager_client=hstack.secretsmanager_client(), database=APP_DATABASE, policy=policy
    ) as rc:
        results = _fork_children(rc, 3)
        assert [r[:2] for r in results] == [("ok", True)] * 3
        intervals = [r[2] for r in results]
        # Each child re-seeded its jitter: three children never share one schedule.
        assert len({round(i, 6) for i in intervals}) == 3, intervals
