"""``rc.health()``: the snapshot and its ``ok`` rule, as a table and through both clients in each state."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
from typing import Any

import pytest

from secretswitch.client import AsyncRotatingMongoClient, ClientEvent, ClientHealth, RefreshPolicy, RotatingMongoClient
from secretswitch.client.credentials import MongoCredentials
from secretswitch.client.errors import AuthenticationError
from secretswitch.client.health import RefreshHistory, RefreshRecord, client_health
from tests.conftest import FakeClock
from tests.fakes import FakeMongoServer, FakeSecretsManager, secret_string, throttled

POLICY = RefreshPolicy(refresh_interval=100.0, jitter=0.0, backoff_base=1.0, backoff_cap=8.0, forced_refresh_gap=5.0)


APP = MongoCredentials(username="app", password="pw-1", version_id="v1")


@dataclasses.dataclass(frozen=True)
class Live:
    number: int = 1
    credentials: MongoCredentials = APP
    fetched_at: float = 1000.0
    refresh_at: float = 1090.0
    expires_at: float = 1100.0
    retry_at: float | None = None
    refused: bool = False


@pytest.mark.parametrize(
    ("live", "seen", "closed", "now", "verdict"),
    [
        (Live(), RefreshRecord(), False, 1010.0, (True, "serving user 'app'")),
        (Live(retry_at=1012.0), RefreshRecord(1005.0, "refresh_failed", 2), False, 1010.0, (True, "2 failed refresh")),
        (Live(), RefreshRecord(), False, 1100.0, (True, "past the upper bound")),
        (Live(refused=True), RefreshRecord(), False, 1010.0, (True, "repairing on the next call")),
        (Live(refused=True), RefreshRecord(1005.0, "recovery_failed", 0, True), False, 1010.0, (False, "no version")),
        # A failed repair that a later switch replaced (the live client is not refused) is history.
        (Live(), RefreshRecord(1005.0, "ok", 0, True), False, 1010.0, (True, "serving user 'app'")),
        (Live(), RefreshRecord(), True, 1010.0, (False, "closed")),
        (Live(number=0), RefreshRecord(), False, 1010.0, (False, "not started")),
        (Live(number=0), RefreshRecord(), True, 1010.0, (False, "closed")),
    ],
)
def test_the_rule(live: Live, seen: RefreshRecord, closed: bool, now: float, verdict: tuple[bool, str]) -> None:
    ok, detail = verdict
    health = client_health("mongodb-app", live, seen, closed=closed, now=now)
    assert health.ok is ok
    assert detail in health.detail
    assert "pw-1" not in repr(health)


def test_the_fields_of_a_backing_off_client() -> None:
    live = Live(retry_at=1012.0)
    health = client_health("mongodb-app", live, RefreshRecord(1005.0, "refresh_failed", 2), closed=False, now=1010.0)
    assert health == ClientHealth(
        ok=True,
        detail="serving user 'app' (2 failed refresh(es) in a row, last refresh_failed)",
        secret_id="mongodb-app",
        active_user="app",
        version_id="v1",
        credential_age=10.0,
        last_refresh_at=1005.0,
        last_refresh_outcome="refresh_failed",
        consecutive_failures=2,
        next_refresh_due=1012.0,  # the backoff's retry, not the schedule's refresh
        seconds_until_refresh=2.0,
        past_upper_bound=False,
        refused=False,
        closed=False,
        checked_at=1010.0,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        health.ok = False  # type: ignore[misc]
    assert json.loads(json.dumps(health.as_dict()))["consecutive_failures"] == 2


@pytest.mark.parametrize(
    ("kinds", "outcome", "failures", "recovery_failed"),
    [
        ([], None, 0, False),
        (["refreshed"], "ok", 0, False),
        (["refresh_failed:1", "refresh_failed:2"], "refresh_failed", 2, False),
        (["refresh_failed:1", "refreshed"], "ok", 0, False),
        # A changed secret whose login check fails: "refreshed" comes first, the streak goes on.
        (["malformed_secret:1", "refreshed", "check_failed:2"], "check_failed", 2, False),
        (["auth_recovery_failed"], "recovery_failed", 0, True),
        (["auth_recovery_failed", "auth_recovered", "switched"], "ok", 0, False),
        (["refresh_failed:3", "auth_recovered", "switched"], "ok", 0, False),
        (["refresh_failed:1", "schedule_warning", "closed"], "refresh_failed", 1, False),
    ],
)
def test_the_history_follows_the_events(
    kinds: list[str], outcome: str | None, failures: int, recovery_failed: bool
) -> None:
    history = RefreshHistory()
    for at, spec in enumerate(kinds):
        kind, _, count = spec.partition(":")
        history.on_event(ClientEvent(kind=kind, at=float(at), failures=int(count or 0)))  # type: ignore[arg-type]
    seen = history.seen
    assert (seen.last_refresh_outcome, seen.consecutive_failures, seen.recovery_failed) == (
        outcome,
        failures,
        recovery_failed,
    )


# -- through the clients ------------------------------------------------------------------------------


def _threaded(sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock) -> RotatingMongoClient:
    return RotatingMongoClient(
        "mongodb-app",
        secretsmanager_client=sm,
        clock=clock,
        rng=random.Random(1),
        client_factory=db_server.factory,
        login_adopter=db_server.adopt,
        background_refresh=False,
        policy=POLICY,
        close_grace=0.0,
    )


def test_the_threaded_client_in_each_state(clock: FakeClock) -> None:
    sm = FakeSecretsManager()
    db_server = FakeMongoServer(app="pw-1", app_clone="pw-2")
    rc = _threaded(sm, db_server, clock)
    fresh = rc.health()
    assert (fresh.ok, fresh.active_user, fresh.version_id) == (True, "app", sm.stages["AWSCURRENT"])
    assert (fresh.credential_age, fresh.last_refresh_at, fresh.last_refresh_outcome) == (0.0, clock(), "ok")
    assert fresh.next_refresh_due == clock() + POLICY.refresh_interval

    clock.advance(POLICY.refresh_interval)  # nobody called: past the upper bound, still serving
    stale = rc.health()
    assert (stale.ok, stale.past_upper_bound, stale.credential_age, stale.seconds_until_refresh) == (
        True,
        True,
        100.0,
        0.0,
    )

    sm.failure = throttled()  # Secrets Manager fails: the old credentials keep working
    rc.refresh_now()
    rc.refresh_now()
    failing = rc.health()
    assert (failing.ok, failing.consecutive_failures, failing.last_refresh_outcome) == (True, 2, "refresh_failed")
    assert failing.next_refresh_due is not None
    assert failing.next_refresh_due > clock()
    sm.failure = None

    sm.put("{not json")
    rc.refresh_now()
    assert (rc.health().last_refresh_outcome, rc.health().consecutive_failures) == ("malformed_secret", 3)
    sm.put(secret_string("app_clone", "wrong"))
    rc.refresh_now()
    assert (rc.health().last_refresh_outcome, rc.health().consecutive_failures) == ("check_failed", 4)

    sm.put(secret_string("app_clone", "pw-2"))  # a rotation
    clock.advance(1.0)
    assert rc.refresh_now() is True
    switched = rc.health()
    assert (switched.ok, switched.active_user, switched.consecutive_failures) == (True, "app_clone", 0)
    assert (switched.credential_age, switched.past_upper_bound, switched.last_refresh_at) == (0.0, False, clock())

    db_server.passwords["app_clone"] = "nobody knows"  # nothing logs in any more
    with pytest.raises(AuthenticationError):
        rc.run(lambda db: db.find_one())
    down = rc.health()
    assert (down.ok, down.refused, down.last_refresh_outcome) == (False, True, "recovery_failed")
    assert "no version of the secret logs in" in down.detail

    db_server.passwords["app_clone"] = "pw-2"  # the database accepts the secret again
    clock.advance(POLICY.forced_refresh_gap)
    rc.run(lambda db: db.find_one())
    assert (rc.health().ok, rc.health().refused, rc.health().last_refresh_outcome) == (True, False, "ok")

    rc.close()
    closed = rc.health()
    assert (closed.ok, closed.closed, closed.detail) == (False, True, "closed")
    for health in (fresh, stale, failing, switched, down, closed):
        assert "pw-" not in repr(health)


def test_the_asyncio_client_in_each_state(clock: FakeClock) -> None:
    sm = FakeSecretsManager()
    db_server = FakeMongoServer(app="pw-1", app_clone="pw-2")

    async def scenario() -> dict[str, ClientHealth]:
        seen: dict[str, ClientHealth] = {}
        rc = AsyncRotatingMongoClient(
            "mongodb-app",
            secretsmanager_client=sm,
            clock=clock,
            rng=random.Random(1),
            client_factory=db_server.async_factory,
            login_adopter=db_server.adopt_async,
            background_refresh=False,
            policy=POLICY,
            close_grace=0.0,
        )
        seen["before start"] = rc.health()
        async with rc:
            seen["started"] = rc.health()
            sm.failure = throttled()
            await rc.refresh_now()
            seen["failing"] = rc.health()
            sm.failure = None
            sm.put(secret_string("app_clone", "pw-2"))
            await rc.refresh_now()
            seen["switched"] = rc.health()
            db_server.passwords.update(app="nobody knows", app_clone="nobody knows")
            with pytest.raises(AuthenticationError):
                await rc.run(lambda db: db.find_one())
            seen["down"] = rc.health()
        seen["closed"] = rc.health()
        return seen

    seen = asyncio.run(scenario())
    summary: dict[str, tuple[Any, ...]] = {
        state: (h.ok, h.active_user, h.last_refresh_outcome, h.consecutive_failures, h.closed)
        for state, h in seen.items()
    }
    assert summary == {
        "before start": (False, None, None, 0, False),
        "started": (True, "app", "ok", 0, False),
        "failing": (True, "app", "refresh_failed", 1, False),
        "switched": (True, "app_clone", "ok", 0, False),
        "down": (False, "app_clone", "recovery_failed", 0, False),
        "closed": (False, "app_clone", "recovery_failed", 0, True),
    }
    assert "not started" in seen["before start"].detail
    assert seen["before start"].credential_age is None
    assert not math.isnan(seen["started"].checked_at)


def test_the_new_modules_export_what_they_name() -> None:
    import secretswitch
    from secretswitch.client import health, telemetry

    for module in (health, telemetry):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"
    assert secretswitch.ClientHealth is ClientHealth
