"""One demo run, end to end: stack up, workload, rotations, live view, verdict, files.

The thin I/O shell around the pure parts (:mod:`demo_app.config`,
:mod:`demo_app.report`). :func:`run_demo` returns the exit status:

* 0: no failed operation, no lost write, every rotation followed by the client;
* 1: the run finished but a check failed (the reasons are printed);
* 2: the configuration or the infrastructure is wrong (one line, before anything starts);
* 130: interrupted (Ctrl-C); what was collected is still written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from secretswitch.client.credentials import MongoCredentials, parse_secret
from secretswitch.client.errors import ConfigurationError

from .async_app import AsyncClientHost, AsyncWorkload
from .clock import DemoClock
from .config import DemoConfig
from .events import DemoEvent, EventLog, format_event
from .metrics import MetricsEndpoint
from .report import (
    RotationRecord,
    SwitchRecord,
    check_rotations,
    check_writes,
    users_in_order,
    verdict,
)
from .rotations import ClientView, RotationScheduler, SecretInspector, StepRecorder
from .state import DemoState, SideState
from .workload import COLLECTION, OperationRunner, OpLog, Workload

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from opentelemetry.sdk.metrics import MeterProvider
    from pymongo import MongoClient
    from pymongo.database import Database

    from secretswitch.client import ClientEvent, RotatingMongoClient
    from secretswitch.embedded_stack.stack import EmbeddedStack

__all__ = ["run_demo"]

_log = logging.getLogger(__name__)

VERIFIER_USER = "secretswitch_demo_verifier"
# Connections idle for longer than this are closed by the driver, as servers and load balancers do
# in production (within minutes to hours); with compressed days that is a fraction of a second, so
# new connections (each one a new login) happen all the time, as they do over real days.
IDLE_FRACTION_OF_DAY = 0.05


def _pool_listener(side: SideState) -> Any:
    from pymongo import monitoring

    class Listener(monitoring.ConnectionPoolListener):
        def pool_created(self, event: Any) -> None: ...
        def pool_ready(self, event: Any) -> None: ...
        def pool_cleared(self, event: Any) -> None: ...
        def pool_closed(self, event: Any) -> None: ...
        def connection_created(self, event: Any) -> None:
            side.connections += 1

        def connection_ready(self, event: Any) -> None: ...
        def connection_closed(self, event: Any) -> None: ...
        def connection_check_out_started(self, event: Any) -> None: ...
        def connection_check_out_failed(self, event: Any) -> None: ...
        def connection_checked_out(self, event: Any) -> None: ...
        def connection_checked_in(self, event: Any) -> None: ...

    return Listener()


# -- infrastructure ---------------------------------------------------------------


@dataclass
class Infrastructure:
    """Where the run's Secrets Manager and MongoDB are, and how to reach them."""

    secret_id: str
    secretsmanager: Callable[[], SecretsManagerClient]
    rotate: Callable[[], Any]
    verifier: Callable[[], MongoClient[dict[str, Any]]]
    recorder: StepRecorder | None
    description: str
    stack: EmbeddedStack | None = None
    database: str | None = None  # the application's database; None: the secret's dbname

    def app_database(self, credentials: MongoCredentials) -> str:
        return self.database or credentials.database or "mydb"

    def close(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None


def _embedded(config: DemoConfig, events: EventLog) -> Infrastructure:
    from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack
    from secretswitch.rotation_lambda.lambda_function import make_handler
    from secretswitch.rotation_tools.rotate import rotate_secret

    recorder = StepRecorder(events)
    stack = EmbeddedStack(
        region=config.region or "us-east-1",
        rotation_handler=recorder,
        mongodb_uri=config.mongodb_uri,
        layout=config.layout,
        tls=config.tls,
    )
    stack.start()
    try:
        environ: Mapping[str, str] | None = None
        if config.rotation_guard:
            # The guard's gap in real seconds: the demo's days, compressed like everything else.
            environ = ChainMap({"MIN_ROTATION_GAP": f"{config.rotation_guard_seconds:g}"}, os.environ)
        handler = make_handler(secretsmanager_client_factory=stack.secretsmanager_client, environ=environ)
        recorder.inner = lambda event: handler(event, None)
        # The admin (userAdminAnyDatabase) cannot read mydb: a read-only user of our own checks the writes.
        verifier_password = secrets.token_urlsafe(24)
        stack.create_user(VERIFIER_USER, verifier_password, roles=[{"role": "read", "db": APP_DATABASE}])
        rotation_client = stack.secretsmanager_client()
        info = stack.info

        def rotate() -> Any:
            return rotate_secret(
                rotation_client,
                info.app_secret_id,
                rotation_lambda_arn=info.rotation_function_arn,
                rotation_days=max(1, round(config.rotation_days)),
            )

        return Infrastructure(
            secret_id=info.app_secret_id,
            secretsmanager=stack.secretsmanager_client,
            rotate=rotate,
            verifier=lambda: stack.mongo_client(VERIFIER_USER, verifier_password),
            recorder=recorder,
            description=(
                f"embedded stack: moto Secrets Manager at {info.secretsmanager_url}, "
                + (
                    f"SecantusDB at {info.mongo_host}:{info.mongo_port} (pid {stack.mongo.pid})"
                    + (", TLS only (the run's own CA)" if info.tls_ca_file else "")
                    if stack.mongo is not None
                    else f"the MongoDB of MONGODB_URI at {info.mongo_host}:{info.mongo_port}"
                )
            ),
            stack=stack,
            database=APP_DATABASE,  # the stack's application database, whatever the secret's dbname
        )
    except BaseException:
        stack.stop()
        raise


def _external(config: DemoConfig) -> Infrastructure:
    """An existing Secrets Manager (AWS or an endpoint) and the MongoDB its secret names; checked first."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from secretswitch.client.secretsmanager import secretsmanager_client
    from secretswitch.rotation_tools.rotate import rotate_secret

    where = config.endpoint or "AWS"

    def make_client() -> SecretsManagerClient:
        return secretsmanager_client(
            region=config.region,
            endpoint_url=config.endpoint,
            endpoint_source="--secretsmanager-endpoint",
            config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2}),
            region_how=" or pass --region",
        )

    try:
        client = make_client()
        metadata = client.describe_secret(SecretId=config.secret_id)
        value = client.get_secret_value(SecretId=config.secret_id, VersionStage="AWSCURRENT")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise ConfigurationError(
                f"secret {config.secret_id!r} does not exist in Secrets Manager ({where}); "
                "check --secret-id / SECRETSWITCH_SECRET_ID and the region"
            ) from exc
        raise ConfigurationError(
            f"Secrets Manager ({where}) refused DescribeSecret/GetSecretValue on {config.secret_id!r}: {code}; "
            "check the credentials and their permissions"
        ) from exc
    except BotoCoreError as exc:
        raise ConfigurationError(
            f"cannot reach Secrets Manager ({where}): {exc}; check --secretsmanager-endpoint / "
            "AWS_ENDPOINT_URL_SECRETS_MANAGER, the region and the AWS credentials"
        ) from exc
    credentials = parse_secret(
        value.get("SecretString"), secret_id=config.secret_id, version_id=str(value.get("VersionId"))
    )
    if not metadata.get("RotationLambdaARN"):
        raise ConfigurationError(
            f"secret {config.secret_id!r} has no rotation function; deploy deploy/template.yaml "
            "(see docs/deploying.md) or run `secretswitch rotate SECRET_ID --lambda-arn ARN` once"
        )
    probe: MongoClient[dict[str, Any]] = MongoClient(**credentials.client_kwargs(), serverSelectionTimeoutMS=5000)
    try:
        probe.admin.command("ping")
    except PyMongoError as exc:
        raise ConfigurationError(
            f"cannot reach MongoDB at {credentials.endpoint} (named in {config.secret_id!r}) as "
            f"{credentials.username}: {type(exc).__name__}; check the secret's host and the network"
        ) from exc
    finally:
        probe.close()
    rotation_client = make_client()

    def rotate() -> Any:
        outcome = rotate_secret(rotation_client, config.secret_id, rotation_days=max(1, round(config.rotation_days)))
        if getattr(outcome, "asynchronous", False):
            return _wait_for_aws_rotation(rotation_client, config.secret_id, outcome)
        return outcome

    verify_uri = config.verify_uri

    def verifier() -> MongoClient[dict[str, Any]]:
        if verify_uri:
            reader: MongoClient[dict[str, Any]] = MongoClient(verify_uri, serverSelectionTimeoutMS=5000)
            try:
                app_database = config.database or credentials.database or "mydb"
                reader[app_database][COLLECTION].find_one({}, projection={"_id": 1})
                return reader
            except PyMongoError as exc:
                # e.g. `secretswitch local`'s admin URI: userAdminAnyDatabase cannot read the app's database.
                _log.warning("MONGODB_URI cannot read the application's database (%s); using AWSCURRENT", exc)
                reader.close()
        # No usable MONGODB_URI: an independent client from AWSCURRENT, built at the end.
        latest = make_client().get_secret_value(SecretId=config.secret_id, VersionStage="AWSCURRENT")
        fresh = parse_secret(latest.get("SecretString"), secret_id=config.secret_id)
        return MongoClient(**fresh.client_kwargs(), serverSelectionTimeoutMS=5000)

    return Infrastructure(
        secret_id=config.secret_id,
        secretsmanager=make_client,
        rotate=rotate,
        verifier=verifier,
        recorder=None,
        description=f"Secrets Manager: {where}; MongoDB at {credentials.endpoint} (from the secret)",
        database=config.database,
    )


@dataclass(frozen=True)
class _AwsOutcome:
    token: str
    completed: bool
    failed_step: str | None
    message: str


def _wait_for_aws_rotation(client: SecretsManagerClient, secret_id: str, outcome: Any, timeout: float = 300) -> Any:
    """AWS runs the function asynchronously: wait until the token's version is AWSCURRENT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        versions = client.list_secret_version_ids(SecretId=secret_id).get("Versions", [])
        for version in versions:
            if version.get("VersionId") == outcome.token and "AWSCURRENT" in version.get("VersionStages", []):
                return _AwsOutcome(outcome.token, True, None, "rotated by AWS")
        time.sleep(1.0)
    return _AwsOutcome(outcome.token, False, "timeout", f"AWS did not finish the rotation within {timeout:.0f} s")


# -- the run ---------------------------------------------------------------------------


def default_out_dir(now: datetime | None = None, cwd: Path | None = None) -> Path:
    """A new folder under the current directory, named after the time."""
    base = (cwd or Path.cwd()) / f"secretswitch-demo-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def run_demo(config: DemoConfig, *, stdout: TextIO | None = None, interactive: bool | None = None) -> int:
    """Run the demo; returns the exit status (see the module docstring)."""
    out = stdout if stdout is not None else sys.stdout
    live = (not config.plain) and (out.isatty() if interactive is None else interactive)
    out_dir = config.out_dir or default_out_dir()
    # Real infrastructure is checked before anything starts (and before the folder is made).
    infra: Infrastructure | None = _external(config) if config.external else None
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
            infra = _embedded(config, events)
        say(infra.description)
    except BaseException:
        # Ctrl-C (or a stack that cannot start) before anything was collected: no empty results folder.
        if metrics is not None:
            metrics.close()
        if infra is not None:
            with contextlib.suppress(Exception):
                infra.close()
        if made_out_dir:
            _remove_if_empty(out_dir)
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
        rc, naive_client, initial_user = _start_clients(
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
        if isinstance(rc, AsyncClientHost):
            rc.run(lambda db: db[COLLECTION].create_index(index_keys))
        else:
            rc.run(lambda db: db[COLLECTION].create_index(index_keys))
        # Side by side, each workload gets half the rate: the same load on the machine as without --naive.
        side_rate = config.rate / 2 if naive_client is not None else config.rate
        sides: list[tuple[OperationRunner | AsyncClientHost, OpLog, str]] = [
            (rc if isinstance(rc, AsyncClientHost) else _ClientRunner(rc), state.client_side.log, "client")
        ]
        if naive_client is not None and state.naive_side is not None:
            sides.append((_PlainRunner(naive_client, database), state.naive_side.log, "naive"))
        for index, (runner, log, side) in enumerate(sides):
            shape: dict[str, Any] = {
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
            state.verdict = _verdict_line(summary) if summary and not interrupted else None
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
    _write_outputs(out_dir, summary, state, say)
    _print_summary(summary, out_dir, say)
    if interrupted:
        return 130
    return 0 if summary.get("passed") else 1


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, or already gone: leave it
        folder.rmdir()


def inspector_refresh(state: DemoState) -> None:
    """Re-read the secret's versions now and then for the view (a few API calls per demo day at most)."""
    inspector = state.inspector
    if inspector is None:
        return
    last = getattr(state, "_versions_read_at", -1.0)
    if time.monotonic() - last < 0.5:
        return
    state._versions_read_at = time.monotonic()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        inspector.versions()


class _ClientRunner:
    def __init__(self, rc: RotatingMongoClient) -> None:
        self.rc = rc

    def run(self, operation: Callable[[Database[dict[str, Any]]], Any]) -> Any:
        return self.rc.run(operation)


class _PlainRunner:
    def __init__(self, client: MongoClient[dict[str, Any]], database: str) -> None:
        self.database = client[database]

    def run(self, operation: Callable[[Database[dict[str, Any]]], Any]) -> Any:
        return operation(self.database)


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


def _start_clients(
    config: DemoConfig, infra: Infrastructure, state: DemoState, *, meter_provider: MeterProvider | None = None
) -> tuple[RotatingMongoClient | AsyncClientHost, MongoClient[dict[str, Any]] | None, str]:
    from pymongo import MongoClient

    from secretswitch.client import RefreshPolicy, RotatingMongoClient

    clock = state.clock
    idle_ms = max(10, int(IDLE_FRACTION_OF_DAY * config.day_seconds * 1000))

    def on_client_event(event: ClientEvent) -> None:
        kind = str(event.kind)
        day = clock.day()
        if kind in ("refreshed", "switched", "auth_recovered"):
            state.client.last_refresh_day = day
        switched = kind in ("switched", "auth_recovered")
        if event.to_version and (switched or (kind == "refreshed" and state.client.version is None)):
            state.client.user, state.client.version = event.to_user, event.to_version
        state.events.emit(
            f"client_{kind}",
            from_user=event.from_user,
            to_user=event.to_user,
            from_version=event.from_version,
            to_version=event.to_version,
            stage=event.stage,
            message=event.message,
        )

    options: dict[str, Any] = dict(
        secretsmanager_client=infra.secretsmanager(),
        database=infra.database,
        # Backoff is in clock (demo) seconds too: scale it so a Secrets Manager outage
        # is retried every 0.5-5 real seconds, not every few microseconds.
        policy=RefreshPolicy(
            refresh_interval=config.refresh_interval,
            jitter=0.1,
            backoff_base=0.5 * config.demo_seconds_per_real_second,
            backoff_cap=5.0 * config.demo_seconds_per_real_second,
        ),
        clock=clock.seconds,
        mongo_options={
            "maxIdleTimeMS": idle_ms,
            # An operation caught on a client whose login was just refused waits for server selection
            # (pymongo marks the server unknown), then run() retries it on the new client: keep that short.
            "serverSelectionTimeoutMS": 2000,
            "event_listeners": [_pool_listener(state.client_side)],
        },
        on_event=on_client_event,
        meter_provider=meter_provider,
    )
    rc: RotatingMongoClient | AsyncClientHost
    if config.async_client:
        state.client_side.label = "secretswitch AsyncRotatingMongoClient (asyncio)"
        rc = AsyncClientHost(infra.secret_id, **options)
    else:
        rc = RotatingMongoClient(infra.secret_id, **options)
    state.metrics = lambda: rc.metrics
    naive: MongoClient[dict[str, Any]] | None = None
    if config.naive:
        state.naive_side = SideState("plain MongoClient (built once)")
        sm = infra.secretsmanager()
        value = sm.get_secret_value(SecretId=infra.secret_id, VersionStage="AWSCURRENT")
        credentials: MongoCredentials = parse_secret(value.get("SecretString"), secret_id=infra.secret_id)
        naive = MongoClient(
            **credentials.client_kwargs(),
            maxIdleTimeMS=idle_ms,
            # After a failed login pymongo marks the server unknown and every operation waits for
            # server selection; a short timeout keeps the failing side moving (and failing visibly).
            serverSelectionTimeoutMS=max(200, int(config.day_seconds * 1000)),
            event_listeners=[_pool_listener(state.naive_side)],
        )
    return rc, naive, rc.active_user


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


def build_summary(
    *,
    config: DemoConfig,
    events: list[DemoEvent],
    client_side: SideState,
    naive_side: SideState | None,
    metrics: Any,
    initial_user: str | None,
    rotation_failures: list[str],
    duration_s: float,
    end_day: float,
    interrupted: bool,
    check_error: str | None,
) -> dict[str, Any]:
    """The content of summary.json (pure: from what was recorded)."""
    rotations = [
        RotationRecord(
            number=int(e.fields["number"]),
            day=e.day,
            version=str(e.fields["version"]),
            user=str(e.fields.get("to_user")),
            manual=bool(e.fields.get("manual")),
        )
        for e in events
        if e.kind == "rotation_finished"
    ]
    switches = [
        SwitchRecord(day=e.day, version=str(e.fields.get("to_version")), user=str(e.fields.get("to_user")))
        for e in events
        if e.kind == "client_switched"
    ]
    recoveries = [e for e in events if e.kind == "client_auth_recovered"]
    writes = client_side.writes
    ok, failed, per_user = client_side.log.counts()
    summary: dict[str, Any] = {
        "passed": False,
        "ops_ok": ok,
        "ops_failed": failed,
        "ops_by_user": per_user,
        "failed_op_errors": dict(client_side.log.errors),
        "writes_acknowledged": len(set(client_side.log.acknowledged)),
        "writes_verified": writes is not None,
        "writes_lost": writes.lost if writes is not None else None,
        "writes_duplicated": writes.duplicated if writes is not None else None,
        "writes_unacknowledged_present": writes.unacknowledged_present if writes is not None else None,
        "writes_check_error": check_error,
        "rotations": len(rotations),
        "rotations_manual": sum(1 for r in rotations if r.manual),
        "rotation_days": [round(r.day, 3) for r in rotations],
        "switches": len(switches),
        "switch_days": [round(s.day, 3) for s in switches],
        "users_seen": users_in_order(initial_user, switches),
        "secretsmanager_api_calls": getattr(metrics, "api_calls", None),
        "refreshes": getattr(metrics, "refreshes", None),
        "auth_recoveries": getattr(metrics, "auth_recoveries", len(recoveries)),
        "auth_recovery_days": [round(e.day, 3) for e in recoveries],
        "new_connections": client_side.connections,
        "day_seconds": config.day_seconds,
        "rotation_interval_days": config.rotation_days,
        "refresh_interval_days": config.refresh_days,
        "workers": config.workers,
        "client_api": "asyncio" if config.async_client else "threads",
        "tls": config.tls,
        "duration_s": round(duration_s, 3),
        "days": round(end_day, 3),
        "manual_rotation": config.manual_rotation,
        "rotation_guard_days": config.rotation_guard_days if config.rotation_guard else None,
        "rotations_refused": sum(1 for e in events if e.kind == "rotation_refused"),
        "interrupted": interrupted,
        "rotation_failures": rotation_failures,
        "rotation_problems": check_rotations(
            rotations, switches, refresh_days=config.refresh_days, end_day=end_day if interrupted else float("inf")
        ),
    }
    if interrupted:
        summary["rotation_problems"] = []
    if naive_side is not None:
        n_ok, n_failed, n_per_user = naive_side.log.counts()
        first = naive_side.log.first_failure_t
        summary["naive"] = {
            "ops_ok": n_ok,
            "ops_failed": n_failed,
            "ops_by_user": n_per_user,
            "errors": dict(naive_side.log.errors),
            "first_failure_day": round(first / config.day_seconds, 3) if first is not None else None,
            "writes_acknowledged": len(set(naive_side.log.acknowledged)),
            "writes_lost": naive_side.writes.lost if naive_side.writes is not None else None,
            "new_connections": naive_side.connections,
        }
    if config.rotations and not interrupted and len(rotations) < config.rotations + summary["rotations_manual"]:
        summary["rotation_problems"].append(f"only {len(rotations)} of {config.rotations} rotations completed")
    summary["reasons"] = verdict(summary)
    summary["passed"] = not summary["reasons"]
    return summary


def _write_outputs(out_dir: Path, summary: dict[str, Any], state: DemoState, say: Callable[[str], None]) -> None:
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    try:
        from .timeline import render_timeline

        render_timeline(out_dir / "timeline.png", state, summary)
    except Exception as exc:  # noqa: BLE001 - the run's verdict does not depend on the picture
        _log.warning("timeline.png not written: %s", exc, exc_info=True)
        say(f"timeline.png not written: {type(exc).__name__}: {exc}")


def _print_summary(summary: dict[str, Any], out_dir: Path, say: Callable[[str], None]) -> None:
    if not summary:
        return
    say("")
    say("summary")
    say(
        f"  operations ok {summary['ops_ok']}, failed {summary['ops_failed']}; writes acknowledged "
        f"{summary['writes_acknowledged']}, lost {summary['writes_lost']}, duplicated {summary['writes_duplicated']}"
    )
    say(
        f"  rotations {summary['rotations']} (manual {summary['rotations_manual']}), client switches "
        f"{summary['switches']}, auth recoveries {summary['auth_recoveries']}, "
        f"users {' -> '.join(summary['users_seen'])}"
    )
    say(
        f"  Secrets Manager API calls by the client {summary['secretsmanager_api_calls']}, new connections "
        f"{summary['new_connections']}, {summary['days']:.1f} demo days in {summary['duration_s']:.1f} s"
    )
    naive = summary.get("naive")
    if naive:
        first = naive["first_failure_day"]
        when = f"from day {first:.1f}" if first is not None else "none"
        say(
            f"  plain MongoClient (no secretswitch): ok {naive['ops_ok']}, FAILED {naive['ops_failed']} ({when}), "
            f"writes lost {naive['writes_lost']}"
        )
    say(f"  files: {out_dir / 'events.jsonl'}, {out_dir / 'summary.json'}, {out_dir / 'timeline.png'}")
    say(_verdict_line(summary))


def _verdict_line(summary: dict[str, Any]) -> str:
    if summary["passed"]:
        return "PASSED: 0 failed operations, 0 lost writes, every rotation followed by the client"
    return "FAILED: " + "; ".join(summary["reasons"])
