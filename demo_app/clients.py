"""The clients a demo run drives: the rotating client (threads or asyncio) and, with ``--naive``, a plain one.

Both count their new connections (each one a login) into their side of the
:class:`~demo_app.state.DemoState`; the rotating client's events become the run's events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from secretswitch.client.credentials import MongoCredentials, parse_secret

from .async_app import AsyncClientHost
from .config import DemoConfig
from .infrastructure import Infrastructure
from .state import DemoState, SideState

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from pymongo import MongoClient
    from pymongo.database import Database

    from secretswitch.client import ClientEvent, RotatingMongoClient

__all__ = ["ClientRunner", "PlainRunner", "start_clients"]

# Connections idle for longer than this are closed by the driver, as servers and load balancers do
# in production (within minutes to hours); with compressed days that is a fraction of a second, so
# new connections (each one a new login) happen all the time, as they do over real days.
IDLE_FRACTION_OF_DAY = 0.05


def pool_listener(side: SideState) -> Any:
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


class ClientRunner:
    """Runs one operation through the rotating client (its retry on a refused login included)."""

    def __init__(self, rc: RotatingMongoClient) -> None:
        self.rc = rc

    def run(self, operation: Callable[[Database[dict[str, Any]]], Any]) -> Any:
        return self.rc.run(operation)


class PlainRunner:
    """Runs one operation on a plain MongoClient's database, as an application without secretswitch does."""

    def __init__(self, client: MongoClient[dict[str, Any]], database: str) -> None:
        self.database = client[database]

    def run(self, operation: Callable[[Database[dict[str, Any]]], Any]) -> Any:
        return operation(self.database)


def start_clients(
    config: DemoConfig, infra: Infrastructure, state: DemoState, *, meter_provider: MeterProvider | None = None
) -> tuple[RotatingMongoClient | AsyncClientHost, MongoClient[dict[str, Any]] | None, str]:
    from secretswitch.client import RefreshPolicy, RotatingMongoClient
    from secretswitch.client.mongo import build_mongo_client

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
            "event_listeners": [pool_listener(state.client_side)],
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
        naive = build_mongo_client(
            credentials,
            {
                "maxIdleTimeMS": idle_ms,
                # After a failed login pymongo marks the server unknown and every operation waits for
                # server selection; a short timeout keeps the failing side moving (and failing visibly).
                "serverSelectionTimeoutMS": max(200, int(config.day_seconds * 1000)),
                "event_listeners": [pool_listener(state.naive_side)],
            },
        )
    return rc, naive, rc.active_user
