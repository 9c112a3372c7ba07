"""The fault soak: the demo workload through the rotating client while faults are injected at random.

Rotations run every few seconds on the embedded stack while, at random,
SecantusDB is stopped and restarted between two rotation steps, SecantusDB is
killed with ``kill -9`` mid-workload right after a rotation (it runs with
``--sync-on-commit``: not one acknowledged write may be lost, and the finished
rotation must survive, so ``AWSCURRENT`` still logs in), the moto
server is stopped across a due refresh, a rotation is killed after each
possible step and then resumed, and two rotations land inside one cache
period. Afterwards: no acknowledged write is lost, every failed operation
falls inside a fault window (none outside), ``AWSCURRENT`` logs in after every
fault, and nothing the soak started is left running.

The default (CI) run lasts one round of every fault, about half a minute. Set
``SECRETSWITCH_SOAK_SECONDS`` (e.g. 600) for a longer soak: rounds repeat, in
a new random order, until that much time has passed.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from secretswitch.client.credentials import parse_secret
from secretswitch.client.policy import RefreshPolicy
from secretswitch.client.rotating import RotatingMongoClient
from secretswitch.demo_app.workload import COLLECTION, OpLog, Workload
from secretswitch.rotation_lambda.rules import STEPS
from secretswitch.rotation_tools.rotate import rotate_secret
from tests.faults import interrupted_rotation

if TYPE_CHECKING:
    from pymongo.database import Database

    from secretswitch.embedded_stack.stack import EmbeddedStack

pytestmark = pytest.mark.soak

REGION = "eu-north-1"  # each module that owns a stack has a region of its own
SOAK_SECONDS = float(os.environ.get("SECRETSWITCH_SOAK_SECONDS", "0"))
SEED = int(os.environ.get("SECRETSWITCH_SOAK_SEED", "20240607"))
# Refresh upper bound of the soak's client, in real seconds; rotations are spaced further apart.
REFRESH_INTERVAL = 2.0
ROTATION_SPACING = 2.5
# Failures this long after a fault ended still belong to it (the driver rediscovers a restarted server).
GRACE = 3.0
VERIFIER = "soak_verifier"


@dataclass
class Fault:
    kind: str
    started: float
    ended: float = float("inf")
    awscurrent_logs_in: bool = False
    failed_operations: int = 0


class _Runner:
    def __init__(self, client: RotatingMongoClient) -> None:
        self.client = client

    def run(self, operation: Callable[[Database[dict[str, Any]]], Any]) -> Any:
        return self.client.run(operation)


class Soak:
    """Drives the faults against one stack and records their windows."""

    def __init__(self, stack: EmbeddedStack, started: float, rng: random.Random) -> None:
        self.stack = stack
        self.started = started
        self.rng = rng
        self.sm = stack.secretsmanager_client()
        self.info = stack.info
        self.faults: list[Fault] = []
        self.rotations = 0
        self.last_rotation = -ROTATION_SPACING

    def now(self) -> float:
        return time.monotonic() - self.started

    @contextmanager
    def window(self, kind: str) -> Iterator[Fault]:
        fault = Fault(kind, self.now())
        self.faults.append(fault)
        try:
            yield fault
        finally:
            fault.ended = self.now()
        fault.awscurrent_logs_in = self.awscurrent_logs_in()

    def awscurrent_logs_in(self, timeout: float = 15.0) -> bool:
        """Whether a fresh client logs in with AWSCURRENT (retried while a restarted server comes up)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = self.sm.get_secret_value(SecretId=self.info.app_secret_id, VersionStage="AWSCURRENT")
                credentials = parse_secret(response["SecretString"], secret_id=self.info.app_secret_id)
                with self.stack.mongo_client(
                    credentials.username, credentials.password, serverSelectionTimeoutMS=2000
                ) as client:
                    client[credentials.database or "mydb"].command("ping")
                return True
            except Exception:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.2)

    def space_rotations(self) -> None:
        # Scheduled rotations are further apart than the client's refresh bound (the safe schedule).
        wait = self.last_rotation + ROTATION_SPACING - self.now()
        if wait > 0:
            time.sleep(wait)

    def rotate(self) -> None:
        outcome = rotate_secret(self.sm, self.info.app_secret_id, rotation_lambda_arn=self.info.rotation_function_arn)
        assert outcome.completed, outcome.message
        self.rotations += 1
        self.last_rotation = self.now()

    def resume(self) -> None:
        outcome = rotate_secret(self.sm, self.info.app_secret_id, resume=True)
        assert outcome.completed, outcome.message
        self.last_rotation = self.now()

    def kill_rotation_after(self, step: str) -> None:
        outcome = interrupted_rotation(
            self.sm, self.info.app_secret_id, crash_after_step=step, function_arn=self.info.rotation_function_arn
        )
        self.rotations += 1
        self.last_rotation = self.now()
        assert not outcome.completed or step == STEPS[-1], outcome.message

    # -- the faults ------------------------------------------------------------

    def plain_rotation(self) -> None:
        self.space_rotations()
        self.rotate()

    def killed_rotation(self, step: str) -> None:
        self.space_rotations()
        with self.window(f"rotation killed after {step}, resumed"):
            self.kill_rotation_after(step)
            time.sleep(self.rng.uniform(0.2, 1.0))
            self.resume()

    def database_restart_between_steps(self, step: str) -> None:
        self.space_rotations()
        with self.window(f"SecantusDB restarted after {step}"):
            self.kill_rotation_after(step)
            self.stack.mongo.stop()
            time.sleep(self.rng.uniform(0.3, 1.5))
            self.stack.mongo.start(auth=True)
            self.resume()
            time.sleep(GRACE)

    def database_killed_after_rotation(self) -> None:
        """kill -9 mid-workload, just after a rotation finished: a crash, not a clean stop."""
        self.space_rotations()
        with self.window("SecantusDB killed (kill -9) after a rotation"):
            self.rotate()
            time.sleep(self.rng.uniform(0.0, 0.3))  # the workload keeps inserting until the kill
            self.stack.mongo.kill()
            time.sleep(self.rng.uniform(0.3, 1.0))
            self.stack.mongo.start(auth=True)
            time.sleep(GRACE)

    def secretsmanager_restart_around_refresh(self) -> None:
        with self.window("moto stopped across a due refresh"):
            self.stack.secretsmanager.stop()
            # Longer than the refresh bound: the client's refresh is due (and fails) while it is down.
            time.sleep(REFRESH_INTERVAL * self.rng.uniform(1.2, 1.8))
            self.stack.secretsmanager.restart()

    def manual_rotation_inside_cache_period(self) -> None:
        self.space_rotations()
        with self.window("two rotations inside one cache period"):
            self.rotate()
            time.sleep(self.rng.uniform(0.05, 0.5))
            self.rotate()
            time.sleep(REFRESH_INTERVAL)

    def one_round(self) -> list[Callable[[], None]]:
        actions: list[Callable[[], None]] = [self.plain_rotation, self.plain_rotation]
        actions += [lambda step=step: self.killed_rotation(step) for step in ("start", *STEPS)]
        actions += [
            lambda step=step: self.database_restart_between_steps(step)
            for step in self.rng.sample(("start", *STEPS[:-1]), 2)
        ]
        actions += [
            self.database_killed_after_rotation,
            self.secretsmanager_restart_around_refresh,
            self.manual_rotation_inside_cache_period,
        ]
        self.rng.shuffle(actions)
        return actions


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _table(faults: list[Fault], outside: int) -> str:
    lines = [f"{'fault':<48} {'window (s)':>14} {'failed ops':>10}  AWSCURRENT logs in after"]
    for fault in faults:
        window = f"{fault.started:6.1f}-{fault.ended:6.1f}"
        logs_in = "yes" if fault.awscurrent_logs_in else "NO"
        lines.append(f"{fault.kind:<48} {window:>14} {fault.failed_operations:>10}  {logs_in}")
    lines.append(f"{'failed operations outside every fault window':<63} {outside:>10}")
    return "\n".join(lines)


def test_fault_soak() -> None:
    """0 acknowledged writes lost; failures only inside fault windows; AWSCURRENT logs in after each fault."""
    from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack

    rng = random.Random(SEED)
    stack = EmbeddedStack(region=REGION)
    stack.start()
    threads_before = {thread.ident for thread in threading.enumerate()}
    log = OpLog()
    run_id = secrets.token_hex(4)
    try:
        verifier_password = secrets.token_urlsafe(18)
        with stack.admin_client() as admin:
            admin.admin.command("createUser", VERIFIER, pwd=verifier_password, roles=[{"role": "read", "db": "mydb"}])
        client = RotatingMongoClient(
            stack.info.app_secret_id,
            secretsmanager_client=stack.secretsmanager_client(),
            policy=RefreshPolicy(refresh_interval=REFRESH_INTERVAL, jitter=0.25, backoff_base=0.05, backoff_cap=0.5),
            mongo_options={"serverSelectionTimeoutMS": 1500, "maxIdleTimeMS": 500},
            rng=random.Random(SEED),
            close_grace=0.5,
        )
        started = time.monotonic()
        workload = Workload(
            _Runner(client),
            log,
            run_id=run_id,
            side="client",
            database=APP_DATABASE,
            workers=4,
            rate=80.0,
            write_ratio=0.5,
            started=started,
            seed=SEED,
        )
        soak = Soak(stack, started, rng)
        workload.start()
        try:
            deadline = started + SOAK_SECONDS
            rounds = 0
            while rounds == 0 or time.monotonic() < deadline:
                for action in soak.one_round():
                    action()
                    time.sleep(rng.uniform(0.2, 1.0))
                rounds += 1
            time.sleep(1.0)
        finally:
            workload.stop()
            client.close()

        times, _users, oks = log.copy_rows()
        outside = 0
        for at, ok in zip(times, oks, strict=True):
            if ok:
                continue
            # A failure can fall in two windows (one's grace overlaps the next fault's start): it
            # belongs to a database stop when one covers it, the one fault that explains failures.
            covering = [f for f in soak.faults if f.started <= at <= f.ended + GRACE]
            owner = next((f for f in covering if f.kind.startswith("SecantusDB")), covering[0] if covering else None)
            if owner is None:
                outside += 1
            else:
                owner.failed_operations += 1

        with stack.mongo_client(VERIFIER, verifier_password) as verifier:
            stored = {
                (doc["worker"], doc["seq"])
                for doc in verifier[APP_DATABASE][COLLECTION].find({"run": run_id, "side": "client"})
            }
        lost = set(log.acknowledged) - stored
        secret = json.loads(
            stack.secretsmanager_client().get_secret_value(SecretId=stack.info.app_secret_id)["SecretString"]
        )
        print()
        print(_table(soak.faults, outside))
        print(
            f"{len(soak.faults)} faults, {soak.rotations} rotations, {len(oks):,} operations "
            f"({len(oks) - sum(oks):,} failed), {len(log.acknowledged):,} acknowledged writes, {len(lost)} lost; "
            f"errors {log.errors}; active user now {secret['username']}"
        )
    finally:
        stack.stop()

    assert soak.rotations >= 10
    assert len(log.acknowledged) > 100
    assert not lost, f"{len(lost)} acknowledged writes are missing"
    assert outside == 0, f"{outside} operations failed outside every fault window"
    assert all(fault.awscurrent_logs_in for fault in soak.faults), _table(soak.faults, outside)
    # Only stopping the database may fail operations; everything else the client must absorb.
    tolerated = [f for f in soak.faults if f.failed_operations and not f.kind.startswith("SecantusDB")]
    assert not tolerated, _table(soak.faults, outside)
    # Nothing left running: every SecantusDB process the soak started (restarts included) and every thread.
    assert stack.mongo is not None
    assert stack.mongo.started_pids
    assert not [pid for pid in stack.mongo.started_pids if _alive(pid)]
    time.sleep(0.5)
    leftover = [t.name for t in threading.enumerate() if t.ident not in threads_before]
    assert not leftover, leftover
