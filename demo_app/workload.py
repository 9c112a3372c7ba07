"""The demo application: worker threads doing a steady mix of inserts and reads.

Every insert carries ``(run, side, worker, seq)`` and a fresh ``_id`` per
attempt, so a write that was applied twice shows up twice in the final check.
An insert counts as *acknowledged* only when the driver returned without an
error. The workload does not care which client it runs on: an
:class:`OperationRunner` runs one operation against a database and says which
user served it (the rotating client, or a plain ``MongoClient`` for
``--naive``).

Arrivals are random (exponential gaps around the target rate), as real
traffic is: the number of operations in flight moves up and down, so the
driver's pool closes idle connections and opens new ones all the time (each
new connection logs in again, which is when a changed password bites).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NotRequired, Protocol, TypedDict, Unpack

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase
    from pymongo.database import Database

__all__ = ["COLLECTION", "OpLog", "OperationRunner", "Workload", "WorkloadBase", "WorkloadShape", "user_of"]

COLLECTION = "demo_writes"


class OperationRunner(Protocol):
    """Runs one operation with a live database; the demo's only view of a client."""

    def run(self, operation: Callable[[Database[dict[str, Any]]], Any]) -> Any: ...


def user_of(database: Database[dict[str, Any]] | AsyncDatabase[dict[str, Any]]) -> str:
    """The user a pymongo database handle logs in as (for colouring the timeline).

    pymongo has no public accessor for the credentials of a client; this reads
    the pool options, and says ``"?"`` if a pymongo upgrade moves them.
    """
    try:
        return str(database.client.options.pool_options._credentials.username)  # type: ignore[union-attr]
    except AttributeError:
        return "?"


@dataclass
class OpLog:
    """Thread-safe record of every operation of one side (client or naive)."""

    # Parallel lists (cheap appends): real time since start, user index, ok, is-write.
    times: list[float] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    oks: list[bool] = field(default_factory=list)
    user_names: list[str] = field(default_factory=list)
    acknowledged: list[tuple[int, int]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    first_failure_t: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, t: float, user: str, ok: bool, *, write: tuple[int, int] | None = None, error: str = "") -> None:
        with self._lock:
            try:
                index = self.user_names.index(user)
            except ValueError:
                index = len(self.user_names)
                self.user_names.append(user)
            self.times.append(t)
            self.users.append(index)
            self.oks.append(ok)
            if ok and write is not None:
                self.acknowledged.append(write)
            if not ok:
                self.errors[error] = self.errors.get(error, 0) + 1
                if self.first_failure_t is None:
                    self.first_failure_t = t

    @property
    def ops_ok(self) -> int:
        with self._lock:
            return sum(self.oks)

    @property
    def ops_failed(self) -> int:
        with self._lock:
            return len(self.oks) - sum(self.oks)

    def counts(self) -> tuple[int, int, dict[str, int]]:
        """(ok, failed, ok per user) right now."""
        with self._lock:
            per_user: dict[str, int] = {}
            ok = 0
            for index, success in zip(self.users, self.oks, strict=True):
                if success:
                    ok += 1
                    name = self.user_names[index]
                    per_user[name] = per_user.get(name, 0) + 1
            return ok, len(self.oks) - ok, per_user

    def rates_since(self, since: float) -> tuple[dict[str, int], int]:
        """Operations ok per user, and failed, with ``t >= since`` (for ops/s in the live view)."""
        with self._lock:
            per_user: dict[str, int] = {}
            failed = 0
            for i in range(len(self.times) - 1, -1, -1):
                if self.times[i] < since:
                    break
                if self.oks[i]:
                    name = self.user_names[self.users[i]]
                    per_user[name] = per_user.get(name, 0) + 1
                else:
                    failed += 1
            return per_user, failed

    def copy_rows(self) -> tuple[list[float], list[str], list[bool]]:
        with self._lock:
            return list(self.times), [self.user_names[i] for i in self.users], list(self.oks)


class WorkloadShape(TypedDict):
    """What a workload is told besides its runner and log (the same for the threaded and the asyncio one)."""

    run_id: str
    side: str
    database: str
    workers: int
    rate: float
    write_ratio: float
    started: float
    seed: NotRequired[int | None]
    monotonic: NotRequired[Callable[[], float]]


class WorkloadBase:
    """The shape both workloads share: the documents' tags, the worker count and the arrival model."""

    def __init__(self, log: OpLog, **shape: Unpack[WorkloadShape]) -> None:
        self.log = log
        self.run_id = shape["run_id"]
        self.side = shape["side"]
        self.database = shape["database"]
        self.workers = shape["workers"]
        self.mean_gap = self.workers / shape["rate"]
        self.write_ratio = shape["write_ratio"]
        self.started = shape["started"]
        self.seed = shape.get("seed")
        self._monotonic = shape.get("monotonic", time.monotonic)


class Workload(WorkloadBase):
    """``workers`` threads running inserts and reads through ``runner`` until stopped.

    Args:
        runner: runs one operation and returns what it returned.
        log: where every operation's outcome goes.
        run_id: tags this run's documents.
        side: tags this side's documents (``"client"`` or ``"naive"``).
        database: the application's database name.
        workers: thread count.
        rate: target operations per second, all threads together.
        write_ratio: share of inserts.
        started: the real monotonic time the run started (``t`` = now - started).
        seed: seeds each worker's random generator.
        monotonic / sleep: the real clock and sleep.
    """

    def __init__(self, runner: OperationRunner, log: OpLog, **shape: Unpack[WorkloadShape]) -> None:
        super().__init__(log, **shape)
        self.runner = runner
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for worker in range(self.workers):
            rng = random.Random(None if self.seed is None else self.seed * 1000 + worker)
            thread = threading.Thread(
                target=self._work, args=(worker, rng), name=f"demo-{self.side}-{worker}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the workers and wait for the operations in flight."""
        self._stop.set()
        deadline = self._monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._monotonic()))

    def _work(self, worker: int, rng: random.Random) -> None:
        seq = 0
        last_acknowledged = 0
        next_at = self._monotonic() + rng.random() * self.mean_gap
        while not self._stop.is_set():
            delay = next_at - self._monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            next_at = max(next_at, self._monotonic() - 1.0) + rng.expovariate(1.0 / self.mean_gap)
            if rng.random() < self.write_ratio or last_acknowledged == 0:
                seq += 1
                key = (worker, seq)
                document = {"run": self.run_id, "side": self.side, "worker": worker, "seq": seq}

                def insert(db: Database[dict[str, Any]], document: dict[str, Any] = document) -> str:
                    # A new dict per attempt: a retried insert gets a new _id, so a double write is visible.
                    db[COLLECTION].insert_one(dict(document))
                    return user_of(db)

                if self._attempt(insert, write=key):
                    last_acknowledged = seq
            else:
                wanted = rng.randint(1, last_acknowledged)

                def read(db: Database[dict[str, Any]], wanted: int = wanted) -> str:
                    db[COLLECTION].find_one({"run": self.run_id, "side": self.side, "worker": worker, "seq": wanted})
                    return user_of(db)

                self._attempt(read)

    def _attempt(
        self, operation: Callable[[Database[dict[str, Any]]], str], *, write: tuple[int, int] | None = None
    ) -> bool:
        try:
            user = self.runner.run(operation)
        except Exception as exc:  # noqa: BLE001 - every failure of an operation is counted, never fatal
            self.log.record(self._monotonic() - self.started, "-", False, error=type(exc).__name__)
            return False
        self.log.record(self._monotonic() - self.started, str(user), True, write=write)
        return True
