"""The clients' OpenTelemetry instruments and ``health()`` on the embedded stack, through the SDK's in-memory reader.

Both clients go through a planned rotation, an auth recovery (the password
changed under them) and a Secrets Manager outage; the instruments those
cannot reach (a malformed secret, a failed login check, a failed repair)
are read in tests/unit/test_client_telemetry.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from secretswitch.client import AsyncRotatingMongoClient, RotatingMongoClient
from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack
from tests.conftest import FakeClock
from tests.integration.client_support import (
    MONGO_OPTIONS,
    POLICY,
    SECRET_ID,
    change_password,
    current_secret,
    find_seed,
    quick_sm,
    rotate_passive,
)
from tests.otel_support import GAUGES, INSTRUMENTS, Points, by_user, calls, collect, in_memory_provider

# Every operation opens a new connection (a login), as connections churn in production.
OPTIONS = {**MONGO_OPTIONS, "maxIdleTimeMS": 1}
NOT_REACHED = {
    "secretswitch.client.malformed_secrets",
    "secretswitch.client.login_check.failures",
    "secretswitch.client.auth.recovery_failures",
}


def _check(points: Points, units: dict[str, str], *, user: str, auth_failures: int) -> None:
    assert set(points) == set(INSTRUMENTS) - NOT_REACHED, set(points) ^ (set(INSTRUMENTS) - NOT_REACHED)
    assert units == {name: unit for name, unit in INSTRUMENTS.items() if name not in NOT_REACHED}
    assert sum(by_user(points, "secretswitch.client.switches").values()) == 2  # the rotation and the repair
    assert by_user(points, "secretswitch.client.auth.recoveries") == {user: 1}
    assert sum(by_user(points, "secretswitch.client.refreshes").values()) == 2  # the first read and the rotation's
    assert sum(by_user(points, "secretswitch.client.refresh.failures").values()) == 1
    assert by_user(points, "secretswitch.client.auth.failures") == {None: auth_failures}
    assert auth_failures >= 1
    outcomes = calls(points)
    failed = {key: count for key, count in outcomes.items() if key[1] == "failure"}
    assert sum(failed.values()) == 1, failed
    assert next(iter(failed))[2], "a failed call names its error.type"
    assert outcomes[("GetSecretValue", "success", None)] >= 3
    for gauge in GAUGES:
        assert set(by_user(points, gauge)) == {user}, gauge
    assert by_user(points, "secretswitch.client.healthy") == {user: 1}
    assert by_user(points, "secretswitch.client.credentials.age")[user] == 0.0  # the fake clock has not moved


def test_the_threaded_client_reports_a_rotation_a_recovery_and_an_outage(client_stack: EmbeddedStack) -> None:
    provider, reader = in_memory_provider()
    clock = FakeClock()
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=quick_sm(client_stack),
        policy=POLICY,
        clock=clock,
        mongo_options=OPTIONS,
        meter_provider=provider,
    ) as rc:
        find_seed(rc.database(APP_DATABASE))
        rotate_passive(client_stack)
        assert rc.refresh_now() is True
        change_password(client_stack, stage="AWSCURRENT")
        time.sleep(0.01)  # past maxIdleTimeMS: the pooled connection is dropped, the next one logs in
        rc.run(find_seed, database=APP_DATABASE)
        assert rc.metrics.auth_recoveries == 1
        client_stack.secretsmanager.stop()
        try:
            assert rc.refresh_now() is False
        finally:
            client_stack.secretsmanager.restart()
        health = rc.health()
        assert (health.ok, health.consecutive_failures, health.last_refresh_outcome) == (True, 1, "refresh_failed")
        user = current_secret(client_stack)["username"]
        assert health.active_user == user
        _check(*collect(reader), user=user, auth_failures=rc.metrics.auth_failures)
    assert not GAUGES & set(collect(reader)[0])
    assert rc.health().ok is False


def test_the_asyncio_client_reports_a_rotation_a_recovery_and_an_outage(client_stack: EmbeddedStack) -> None:
    provider, reader = in_memory_provider()
    clock = FakeClock()

    async def scenario() -> tuple[Points, dict[str, str], str, int, Any]:
        async with AsyncRotatingMongoClient(
            SECRET_ID,
            secretsmanager_client=quick_sm(client_stack),
            policy=POLICY,
            clock=clock,
            mongo_options=OPTIONS,
            meter_provider=provider,
        ) as rc:
            await find_seed_async(rc.database(APP_DATABASE))
            await asyncio.to_thread(rotate_passive, client_stack)
            assert await rc.refresh_now() is True
            await asyncio.to_thread(change_password, client_stack, stage="AWSCURRENT")
            await asyncio.sleep(0.01)  # past maxIdleTimeMS: the next operation logs in again
            await rc.run(find_seed_async, database=APP_DATABASE)
            assert rc.metrics.auth_recoveries == 1
            client_stack.secretsmanager.stop()
            try:
                assert await rc.refresh_now() is False
            finally:
                client_stack.secretsmanager.restart()
            health = rc.health()
            assert (health.ok, health.consecutive_failures, health.last_refresh_outcome) == (True, 1, "refresh_failed")
            user = await asyncio.to_thread(lambda: current_secret(client_stack)["username"])
            assert health.active_user == user
            points, units = collect(reader)
            return points, units, user, rc.metrics.auth_failures, rc

    points, units, user, auth_failures, rc = asyncio.run(scenario())
    _check(points, units, user=user, auth_failures=auth_failures)
    assert not GAUGES & set(collect(reader)[0])
    assert rc.health().closed is True


async def find_seed_async(db: Any) -> Any:
    document = await db["items"].find_one({"_id": "seed"})
    assert document is not None
    return document
