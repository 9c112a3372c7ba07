"""The clients' OpenTelemetry instruments, read through the SDK's in-memory reader (fakes, fake clock).

One scenario for both clients: a rotation, an auth recovery, a Secrets
Manager outage, a malformed secret, a failed login check and a failed
repair. Every instrument is read back with its unit and attributes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from secretswitch.client import AsyncRotatingMongoClient, RefreshPolicy, RotatingMongoClient
from secretswitch.client.errors import AuthenticationError
from tests.conftest import FakeClock
from tests.fakes import FakeMongoServer, FakeSecretsManager, secret_string, unreachable
from tests.otel_support import GAUGES, INSTRUMENTS, Points, by_user, calls, collect, in_memory_provider

ROOT = Path(__file__).resolve().parents[2]
POLICY = RefreshPolicy(refresh_interval=100.0, jitter=0.2, backoff_base=1.0, backoff_cap=8.0, forced_refresh_gap=5.0)


def _options(sm: FakeSecretsManager, clock: FakeClock, **extra: Any) -> dict[str, Any]:
    return {
        "secretsmanager_client": sm,
        "clock": clock,
        "rng": random.Random(1),
        "policy": POLICY,
        "close_grace": 0.0,
        **extra,
    }


def _break_everything_in_turn(
    sm: FakeSecretsManager, db_server: FakeMongoServer, refresh_now: Callable[[], Any], run: Callable[[], Any]
) -> None:
    """The scenario's steps after a first read as ``app``; ``run`` runs one operation through the client."""
    # A rotation: AWSCURRENT names the other user.
    sm.put(secret_string("app_clone", "pw-2"))
    refresh_now()
    # An auth recovery: the password changed in the database and in the secret, and the client has not read it.
    db_server.passwords["app_clone"] = "pw-3"
    sm.put(secret_string("app_clone", "pw-3"))
    run()
    # A Secrets Manager outage.
    sm.failure = unreachable()
    refresh_now()
    sm.failure = None
    # A malformed secret, then credentials the database refuses.
    sm.put("not json")
    refresh_now()
    sm.put(secret_string("app", "wrong"))
    refresh_now()
    # A repair that finds nothing that logs in.
    db_server.passwords["app_clone"] = "nobody knows"
    with pytest.raises(AuthenticationError):
        run()


def _check_the_scenario(points: Points, units: dict[str, str], sm: FakeSecretsManager, auth_failures: int) -> None:
    assert set(points) == set(INSTRUMENTS), set(INSTRUMENTS) ^ set(points)
    assert units == INSTRUMENTS
    assert by_user(points, "secretswitch.client.refreshes") == {"app": 2, "app_clone": 1}
    assert by_user(points, "secretswitch.client.switches") == {"app_clone": 2}  # the rotation and the repair
    assert by_user(points, "secretswitch.client.auth.recoveries") == {"app_clone": 1}
    assert by_user(points, "secretswitch.client.auth.recovery_failures") == {"app_clone": 1}
    assert by_user(points, "secretswitch.client.refresh.failures") == {"app_clone": 1}
    assert by_user(points, "secretswitch.client.malformed_secrets") == {"app_clone": 1}
    assert by_user(points, "secretswitch.client.login_check.failures") == {"app": 1}
    assert by_user(points, "secretswitch.client.auth.failures") == {None: auth_failures}
    assert auth_failures >= 2
    by_outcome = calls(points)
    assert by_outcome[("GetSecretValue", "failure", "EndpointConnectionError")] == 1
    assert sum(by_outcome.values()) == sm.get_calls()
    assert by_outcome[("GetSecretValue", "success", None)] >= 6
    # The last repair failed: the live client is refused and nothing logs in.
    assert by_user(points, "secretswitch.client.healthy") == {"app_clone": 0}
    for gauge in GAUGES:
        assert set(by_user(points, gauge)) == {"app_clone"}
    text = json.dumps({name: [sorted(a) for a in series] for name, series in points.items()})
    for password in ("pw-1", "pw-2", "pw-3", "wrong", "nobody knows"):
        assert password not in text


def test_every_instrument_of_the_threaded_client_across_rotation_recovery_and_outage(clock: FakeClock) -> None:
    provider, reader = in_memory_provider()
    sm = FakeSecretsManager()
    db_server = FakeMongoServer(app="pw-1", app_clone="pw-2")
    rc = RotatingMongoClient(
        "mongodb-app",
        client_factory=db_server.factory,
        login_adopter=db_server.adopt,
        background_refresh=False,
        **_options(sm, clock, meter_provider=provider),
    )
    try:
        _break_everything_in_turn(sm, db_server, rc.refresh_now, lambda: rc.run(lambda db: db.find_one()))
        _check_the_scenario(*collect(reader), sm, rc.metrics.auth_failures)
    finally:
        rc.close()
    points, _ = collect(reader)
    assert not GAUGES & set(points), "a closed client still reports its gauges"


def test_every_instrument_of_the_asyncio_client_across_rotation_recovery_and_outage(clock: FakeClock) -> None:
    provider, reader = in_memory_provider()
    sm = FakeSecretsManager()
    db_server = FakeMongoServer(app="pw-1", app_clone="pw-2")

    async def scenario() -> None:
        rc = AsyncRotatingMongoClient(
            "mongodb-app",
            client_factory=db_server.async_factory,
            login_adopter=db_server.adopt_async,
            background_refresh=False,
            **_options(sm, clock, meter_provider=provider),
        )
        assert not GAUGES & set(collect(reader)[0]), "gauges before start()"
        async with rc:
            loop = asyncio.get_running_loop()

            def blocking(make: Callable[[], Any]) -> Callable[[], Any]:
                # The steps are written for blocking calls: run each coroutine on this loop from a worker thread.
                return lambda: asyncio.run_coroutine_threadsafe(make(), loop).result(30)

            await asyncio.to_thread(
                _break_everything_in_turn,
                sm,
                db_server,
                blocking(rc.refresh_now),
                blocking(lambda: rc.run(lambda db: db.find_one())),
            )
            _check_the_scenario(*collect(reader), sm, rc.metrics.auth_failures)
        assert not GAUGES & set(collect(reader)[0]), "a closed client still reports its gauges"

    asyncio.run(scenario())


def test_the_gauges_follow_the_clock_and_the_upper_bound(clock: FakeClock) -> None:
    provider, reader = in_memory_provider()
    sm = FakeSecretsManager()
    db_server = FakeMongoServer(app="pw-1")
    with RotatingMongoClient(
        "mongodb-app",
        client_factory=db_server.factory,
        login_adopter=db_server.adopt,
        background_refresh=False,
        **_options(sm, clock, meter_provider=provider),
    ) as rc:
        due = rc.health().next_refresh_due
        assert due is not None
        clock.advance(30.0)
        points, _ = collect(reader)
        assert by_user(points, "secretswitch.client.credentials.age") == {"app": 30.0}
        assert by_user(points, "secretswitch.client.refresh.due_in") == {"app": pytest.approx(due - clock())}
        assert by_user(points, "secretswitch.client.past_upper_bound") == {"app": 0}
        clock.advance(POLICY.refresh_interval)  # nobody called: no refresh ran
        points, _ = collect(reader)
        assert by_user(points, "secretswitch.client.past_upper_bound") == {"app": 1}
        assert by_user(points, "secretswitch.client.refresh.due_in")["app"] < 0
        assert by_user(points, "secretswitch.client.healthy") == {"app": 1}  # past the bound the old user still works


def test_two_clients_on_one_provider_report_side_by_side(clock: FakeClock) -> None:
    """An SDK keeps the first callback of an observable instrument: the instruments are shared per provider."""
    provider, reader = in_memory_provider()
    db_server = FakeMongoServer(app="pw-1", other="pw-9")
    with (
        RotatingMongoClient(
            "mongodb-app",
            client_factory=db_server.factory,
            login_adopter=db_server.adopt,
            background_refresh=False,
            **_options(FakeSecretsManager(), clock, meter_provider=provider),
        ),
        RotatingMongoClient(
            "mongodb-other",
            client_factory=db_server.factory,
            login_adopter=db_server.adopt,
            background_refresh=False,
            **_options(FakeSecretsManager(secret_string("other", "pw-9")), clock, meter_provider=provider),
        ),
    ):
        points, _ = collect(reader)
    ages = {dict(attributes)["secret.id"] for attributes in points["secretswitch.client.credentials.age"]}
    assert ages == {"mongodb-app", "mongodb-other"}
    refreshes = {dict(attributes)["secret.id"] for attributes in points["secretswitch.client.refreshes"]}
    assert refreshes == {"mongodb-app", "mongodb-other"}


class _RecordingInstrument:
    def __init__(self, log: list[str], name: str) -> None:
        self._log = log
        self._name = name

    def add(self, amount: float, attributes: Any = None) -> None:
        self._log.append(self._name)


class _RecordingMeter:
    """Records every instrument use; the observable instruments' callbacks are kept and never run."""

    def __init__(self, log: list[str]) -> None:
        self._log = log
        self.callbacks: list[Any] = []

    def create_counter(self, name: str, **_: Any) -> _RecordingInstrument:
        return _RecordingInstrument(self._log, name)

    def _observable(self, name: str, callbacks: Any = (), **_: Any) -> None:
        self.callbacks.extend(callbacks)

    create_observable_counter = _observable
    create_observable_gauge = _observable


class _RecordingProvider:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.meter = _RecordingMeter(self.log)

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> _RecordingMeter:
        return self.meter


def test_no_instrument_is_touched_on_a_cache_hit(clock: FakeClock) -> None:
    provider = _RecordingProvider()
    sm = FakeSecretsManager()
    db_server = FakeMongoServer(app="pw-1")
    with RotatingMongoClient(
        "mongodb-app",
        client_factory=db_server.factory,
        login_adopter=db_server.adopt,
        background_refresh=False,
        **_options(sm, clock, meter_provider=provider),
    ) as rc:
        assert provider.log == ["secretswitch.secretsmanager.calls", "secretswitch.client.refreshes"]
        del provider.log[:]
        for _ in range(1000):
            rc.database()
            rc.database("other")
            assert rc.client is not None
            clock.advance(0.01)
        assert provider.log == []
        assert sm.get_calls() == 1


def test_a_failing_call_listener_never_breaks_a_read(clock: FakeClock) -> None:
    sm = FakeSecretsManager()
    db_server = FakeMongoServer(app="pw-1", app_clone="pw-2")
    with RotatingMongoClient(
        "mongodb-app",
        client_factory=db_server.factory,
        login_adopter=db_server.adopt,
        background_refresh=False,
        **_options(sm, clock),
    ) as rc:

        def broken(operation: str, error: str | None) -> None:
            raise RuntimeError("telemetry is down")

        rc._source.observe(broken)
        sm.put(secret_string("app_clone", "pw-2"))
        assert rc.refresh_now() is True


def test_without_a_meter_provider_opentelemetry_is_never_imported() -> None:
    """The default client (and the package) import nothing of OpenTelemetry, installed or not."""
    code = (
        "import random, sys\n"
        "from secretswitch import RotatingMongoClient\n"
        "from tests.fakes import FakeMongoServer, FakeSecretsManager\n"
        "db = FakeMongoServer(app='pw-1')\n"
        "sm = FakeSecretsManager()\n"
        "rc = RotatingMongoClient('mongodb-app', secretsmanager_client=sm, client_factory=db.factory,\n"
        "                         login_adopter=db.adopt, background_refresh=False)\n"
        "rc.health(); rc.close()\n"
        "print(sorted(name for name in sys.modules if name.startswith('opentelemetry')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
