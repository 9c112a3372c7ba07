"""One demo run, end to end: stack up, workload, rotations, live view, verdict, files.

The orchestration: it starts the infrastructure (:mod:`demo_app.infrastructure`) and the
clients (:mod:`demo_app.clients`), runs the workload and the rotations under the live view,
then checks the writes; the summary is :mod:`demo_app.summary` (pure) and the files and
closing lines :mod:`demo_app.outputs`. :func:`run_demo` returns the exit status:

* 0: no failed operation, no lost write, every rotation followed by the client;
* 1: the run finished but a check failed (the reasons are printed);
* 2: the configuration or the infrastructure is wrong (one line, before anything starts);
* 130: interrupted (Ctrl-C); what was collected is still written.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from secretswitch.client.errors import ConfigurationError

from .async_app import AsyncClientHost, AsyncWorkload
from .clients import ClientRunner, PlainRunner, start_clients
from .clock import DemoClock
from .config import DemoConfig
from .events import EventLog, format_event
from .infrastructure import Infrastructure, embedded_infrastructure, external_infrastructure
from .metrics import MetricsEndpoint
from .outputs import default_out_dir, print_summary, remove_if_empty, write_outputs
from .report import check_writes
from .rotations import ClientView, RotationScheduler, SecretInspector
from .state import DemoState
from .summary import build_summary, verdict_line
from .workload import COLLECTION, OperationRunner, OpLog, Workload, WorkloadShape

if TYPE_CHECKING:
    from pymongo import MongoClient

    from secretswitch.client import RotatingMongoClient

__all__ = ["run_demo"]


def run_demo(config: DemoConfig, *, stdout: TextIO | None = None, interactive: bool | None = None) -> int:
    """Run the demo; returns the exit status (see the module docstring)."""
    out = stdout if stdout is not None else sys.stdout
    live = (not config.plain) and (out.isatty() if interactive is None else interactive)
    out_dir = config.out_dir or default_out_dir()
    # Real infrastructure is checked before anything starts (and before the folder is made).
    infra: Infrastructure | None = external_infrastructure(config) if config.external else None
    made_out_dir = not out_dir.exists()
    # So is the metrics port: a port that is taken fails in one line, with nothing started.
    metrics = MetricsEndpoint(config.metrics_port) if config.metrics_port is not None else None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if metrics is not None:
            metrics.close()
        raise ConfigurationError(f"cannot create the results folder {out_dir}: {exc.strerror}; choose --out") from exc

    clock = DemoClock(config.day_seconds)
    events = EventLog(clock.day, clock.started)
    client_view = ClientView()
    printer_lock = threading.Lock()

    def say(line: str) -> None:
        with printer_lock:
            print(line, file=out, flush=True)

    try:
        say(f"secretswitch demo: results go to {out_dir}")
        if metrics is not None:
            say(f"client metrics (Prometheus text format): {metrics.url}")
        if infra is None:
            say("starting the embedded stack (moto Secrets Manager + SecantusDB) ...")
            infra = embedded_infrastructure(config, events)
        say(infra.description)
    except BaseException:
        # Ctrl-C (or a stack that cannot start) before anything was collected: no empty results folder.
        if metrics is not None:
            metrics.close()
        if infra is not None:
            with contextlib.suppress(Exception):
                infra.close()
        if made_out_dir:
            remove_if_empty(out_dir)
        raise

    state = DemoState(config=config, clock=clock, events=events, client=client_view, secret_id=infra.secret_id)
    if not live:
        events.subscribe(lambda event: say(format_event(event)))

    interrupted = False
    rc: RotatingMongoClient | AsyncClientHost | None = None
    naive_client: MongoClient[dict[str, Any]] | None = None
    workloads: list[Workload | AsyncWorkload] = []
    scheduler: RotationScheduler | None = None
    initial_user: str | None = None
    summary: dict[str, Any] = {}
    view = contextlib.ExitStack()
    try:
        # Day 0 starts now: the stack's start-up is not part of the timeline. (Before the client
        # exists: its clock must never jump.)
        clock.restart()
        events.restart(clock.started)
        events.open_file(out_dir / "events.jsonl")
        rc, naive_client, initial_user = start_clients(
            config, infra, state, meter_provider=metrics.meter_provider if metrics is not None else None
        )
        run_id = secrets.token_hex(6)
        inspector = SecretInspector(infra.secretsmanager(), infra.secret_id)
        state.inspector = inspector
        first = inspector.current()
        client_view.user, client_view.version, client_view.last_refresh_day = rc.active_user, first.version_id, 0.0
        events.emit(
            "started",
            run=run_id,
            user=rc.active_user,
            version=first.version_id,
            workers=config.workers,
            rate=config.rate,
            rotations=config.rotations,
            rotation_days=config.rotation_days,
            refresh_days=config.refresh_days,
            day_seconds=config.day_seconds,
            manual_rotation=config.manual_rotation,
            naive=config.naive,
            client_api="asyncio" if config.async_client else "threads",
        )
        database = infra.app_database(rc.credentials)
        # Reads look writes up by key: without an index they scan a growing collection and slow down.
        index_keys = [("run", 1), ("side", 1), ("worker", 1), ("seq", 1)]
        rc.run(lambda db: db[COLLECTION].create_index(index_keys))
        # Side by side, each workload gets half the rate: the same load on the machine as without --naive.
        side_rate = config.rate / 2 if naive_client is not None else config.rate
        sides: list[tuple[OperationRunner | AsyncClientHost, OpLog, str]] = [
            (rc if isinstance(rc, AsyncClientHost) else ClientRunner(rc), state.client_side.log, "client")
        ]
        if naive_client is not None and state.naive_side is not None:
            sides.append((PlainRunner(naive_client, database), state.naive_side.log, "naive"))
        for index, (runner, log, side) in enumerate(sides):
            shape: WorkloadShape = {
                "run_id": run_id,
                "side": side,
                "database": database,
                "workers": config.workers,
                "rate": side_rate,
                "write_ratio": config.write_ratio,
                "started": clock.started,
                "seed": None if config.seed is None else config.seed + index,
            }
            # The same workload either way; --async runs it as asyncio tasks through the async client.
            if isinstance(runner, AsyncClientHost):
                workloads.append(AsyncWorkload(runner, log, **shape))
            else:
                workloads.append(Workload(runner, log, **shape))
        scheduler = RotationScheduler(
            clock=clock,
            events=events,
            rotate=infra.rotate,
            inspector=SecretInspector(infra.secretsmanager(), infra.secret_id),
            recorder=infra.recorder,
            client=client_view,
            rotations=config.rotations,
            rotation_days=config.rotation_days,
            refresh_days=config.refresh_days,
            manual_rotation=config.manual_rotation,
            max_days=config.max_days,
        )
        state.end_day = config.max_days
        for workload in workloads:
            workload.start()
        scheduler.start()
        state.phase = "running"
        naive_watch = _NaiveWatch(state) if state.naive_side is not None else None
        # Left open until the verdict is in: the last frame shows it, not "running".
        view.enter_context(_live_view(state, live, out))
        while not scheduler.done.wait(0.1):
            state.end_day = scheduler.ends_at or scheduler.max_days
            state.end_exact = scheduler.ends_at is not None
            inspector_refresh(state)
            if naive_watch is not None:
                naive_watch.poll()
        if naive_watch is not None:
            naive_watch.poll()
        state.phase = "checking writes"
    except KeyboardInterrupt:
        interrupted = True
        state.phase = "interrupted"
        view.close()  # the last frame says so; what follows is printed below it
        say("interrupted: stopping the workload and the rotations, writing what was collected ...")
    finally:
        try:
            summary = _finish(
                config,
                infra,
                state,
                rc=rc,
                workloads=workloads,
                scheduler=scheduler,
                initial_user=initial_user,
                interrupted=interrupted,
            )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            state.phase = "interrupted" if interrupted else ("passed" if summary.get("passed") else "failed")
            state.verdict = verdict_line(summary) if summary and not interrupted else None
            view.close()
            events.close()
            if rc is not None:
                with contextlib.suppress(Exception):
                    rc.close()
            if naive_client is not None:
                naive_client.close()
            if metrics is not None:
                metrics.close()
            infra.close()
    write_outputs(out_dir, summary, state, say)
    print_summary(summary, out_dir, say)
    if interrupted:
        return 130
    return 0 if summary.get("passed") else 1


def inspector_refresh(state: DemoState) -> None:
    """Re-read the secret's versions now and then for the view (a few API calls per demo day at most)."""
    inspector = state.inspector
    if inspector is None:
        return
    now = time.monotonic()
    if now - state.versions_read_at < 0.5:
        return
    state.versions_read_at = now
    with contextlib.suppress(Exception):
        inspector.versions()


class _NaiveWatch:
    """Turns the plain client's first failures (and recoveries) into events."""

    def __init__(self, state: DemoState) -> None:
        self.state = state
        self.failing = False
        self.seen_failed = 0

    def poll(self) -> None:
        side = self.state.naive_side
        if side is None:
            return
        since = self.state.clock.real() - 0.5 * self.state.config.day_seconds
        per_user, failed = side.log.rates_since(since)
        total_failed = side.log.ops_failed
        if not self.failing and total_failed > self.seen_failed:
            self.failing = True
            errors = ", ".join(f"{name} x{count}" for name, count in sorted(side.log.errors.items()))
            self.state.events.emit(
                "naive_failure_started",
                failed=total_failed,
                message=f"its user's password was changed and it needed a new connection; errors: {errors}",
            )
        elif self.failing and failed == 0 and sum(per_user.values()) > 0:
            self.failing = False
            self.state.events.emit("naive_failure_ended", failed=total_failed)
        self.seen_failed = total_failed


@contextlib.contextmanager
def _live_view(state: DemoState, live: bool, out: TextIO) -> Iterator[None]:
    if not live:
        yield
        return
    from .view import live_view

    with live_view(state, out):
        yield


def _finish(
    config: DemoConfig,
    infra: Infrastructure,
    state: DemoState,
    *,
    rc: RotatingMongoClient | AsyncClientHost | None,
    workloads: list[Workload | AsyncWorkload],
    scheduler: RotationScheduler | None,
    initial_user: str | None,
    interrupted: bool,
) -> dict[str, Any]:
    """Stop everything, check the writes and build the summary."""
    if scheduler is not None:
        scheduler.stop()
    for workload in workloads:
        workload.stop()
    duration = state.clock.real()
    end_day = state.clock.day()
    state.end_day, state.end_exact = end_day, True
    events = state.events
    sides = [(state.client_side, "client")]
    if state.naive_side is not None:
        sides.append((state.naive_side, "naive"))
    check_error: str | None = None
    run_ids = [e.fields.get("run") for e in events.of_kind("started")]
    if run_ids and rc is not None:
        try:
            with infra.verifier() as verifier:
                collection = verifier[infra.app_database(rc.credentials)][COLLECTION]
                for side, name in sides:
                    found = [
                        (int(doc["worker"]), int(doc["seq"]))
                        for doc in collection.find(
                            {"run": run_ids[0], "side": name}, projection={"_id": 0, "worker": 1, "seq": 1}
                        )
                    ]
                    side.writes = check_writes(side.log.acknowledged, found)
        except Exception as exc:  # noqa: BLE001 - reported in the summary, the files are still written
            check_error = f"{type(exc).__name__}: {exc}"
    if not interrupted:
        events.emit(
            "verified",
            writes_acknowledged=state.client_side.writes.acknowledged if state.client_side.writes else None,
            writes_lost=state.client_side.writes.lost if state.client_side.writes else None,
        )
    return build_summary(
        config=config,
        events=events.snapshot(),
        client_side=state.client_side,
        naive_side=state.naive_side,
        metrics=rc.metrics if rc is not None else None,
        initial_user=initial_user,
        rotation_failures=list(scheduler.failures) if scheduler is not None else [],
        duration_s=duration,
        end_day=end_day,
        interrupted=interrupted,
        check_error=check_error,
    )
