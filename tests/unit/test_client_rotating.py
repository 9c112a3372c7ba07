"""RotatingMongoClient with a fake clock, a fake Secrets Manager and a recording MongoClient factory."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from secretswitch.client import ClientEvent, ClientMetrics, RefreshPolicy, RotatingMongoClient
from secretswitch.client.credentials import MongoCredentials
from secretswitch.client.errors import (
    AuthenticationError,
    ConfigurationError,
    DatabaseError,
    SecretFormatError,
    SecretNotFoundError,
    SecretsManagerError,
)
from secretswitch.client.policy import CacheState, cache_state
from tests.conftest import FakeClock
from tests.fakes import FakeMongoServer, FakeSecretsManager, secret_string, throttled, unreachable
from tests.helpers import settle

# -- helpers -----------------------------------------------------------------------------------


POLICY = RefreshPolicy(refresh_interval=100.0, jitter=0.2, backoff_base=1.0, backoff_cap=8.0, forced_refresh_gap=5.0)


@pytest.fixture
def sm() -> FakeSecretsManager:
    return FakeSecretsManager()


@pytest.fixture
def db_server() -> FakeMongoServer:
    return FakeMongoServer(app="pw-1", app_clone="pw-2")


@pytest.fixture
def events() -> list[ClientEvent]:
    return []


@pytest.fixture
def rc(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock, events: list[ClientEvent]
) -> Iterator[RotatingMongoClient]:
    client = make_client(sm, db_server, clock, events)
    yield client
    client.close()


def make_client(
    sm: FakeSecretsManager,
    db_server: FakeMongoServer,
    clock: FakeClock,
    events: list[ClientEvent] | None = None,
    **options: Any,
) -> RotatingMongoClient:
    options.setdefault("policy", POLICY)
    options.setdefault("close_grace", 0.0)
    options.setdefault("login_adopter", db_server.adopt)
    options.setdefault("background_refresh", False)  # the tests drive the clock; the refresher has its own tests
    return RotatingMongoClient(
        "mongodb-app",
        secretsmanager_client=sm,
        clock=clock,
        rng=random.Random(1),
        client_factory=db_server.factory,
        on_event=events.append if events is not None else None,
        **options,
    )


def kinds(events: list[ClientEvent]) -> list[str]:
    return [event.kind for event in events]


# -- the cache -----------------------------------------------------------------------------------


def test_first_read_builds_one_checked_client(
    rc: RotatingMongoClient, sm: FakeSecretsManager, db_server: FakeMongoServer
) -> None:
    assert sm.get_calls() == 1
    assert len(db_server.built) == 1
    assert rc.active_user == "app"
    assert rc.database().name == "mydb"
    assert rc.metrics.api_calls == 1
    assert rc.metrics.logins == 1


def test_a_cache_hit_makes_no_api_call_and_returns_the_same_objects(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock
) -> None:
    first = rc.database()
    for _ in range(1000):
        clock.advance(0.01)
        assert rc.database() is first
        assert rc.client is first.client
    assert rc.database("other") is rc.database("other")
    assert sm.get_calls() == 1


# (advance the clock by, the state then, GetSecretValue calls in all)
CACHE_TABLE = [
    (50.0, CacheState.FRESH, 1),  # well inside the interval
    (79.9, CacheState.FRESH, 1),  # before the earliest jittered refresh
    (99.0, CacheState.REFRESH_DUE, 2),  # inside the jitter window: refresh ahead
    (100.0, CacheState.EXPIRED, 2),  # the upper bound
    (10_000.0, CacheState.EXPIRED, 2),
]


@pytest.mark.parametrize("case", CACHE_TABLE)
def test_cache_table(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock, case: tuple[float, CacheState, int]
) -> None:
    advance, state, expected_calls = case
    gen = rc._gen
    clock.advance(advance)
    assert cache_state(clock(), has_value=True, refresh_at=gen.refresh_at, expires_at=gen.expires_at) is state
    assert rc.database() is not None
    settle(rc)
    assert sm.get_calls() == expected_calls
    if expected_calls == 2:
        # Rescheduled from now, inside the interval.
        assert clock() + 80.0 <= rc._gen.refresh_at <= clock() + 100.0


def test_refresh_is_never_later_than_the_interval(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    for seed in range(50):
        rc = RotatingMongoClient(
            "mongodb-app", secretsmanager_client=sm, clock=clock, policy=POLICY, rng=random.Random(seed),
            client_factory=db_server.factory,
        )  # fmt: skip
        assert clock() + 80.0 <= rc._gen.refresh_at <= clock() + 100.0
        rc.close()


def test_refresh_ahead_does_not_make_callers_wait(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock
) -> None:
    before = rc.database()
    sm.gate = threading.Event()
    clock.advance(99.0)  # refresh due, not expired
    assert rc.database() is before  # returned while the refresh is blocked in Secrets Manager
    assert sm.entered.wait(5)
    assert rc.database() is before
    sm.gate.set()
    settle(rc)
    assert sm.get_calls() == 2


def test_sixteen_threads_on_an_expired_cache_make_one_call(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock
) -> None:
    sm.gate = threading.Event()
    clock.advance(150.0)
    barrier = threading.Barrier(16)
    results: list[object] = []

    def caller() -> None:
        barrier.wait()
        results.append(rc.database())

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    assert sm.entered.wait(5)
    sm.gate.set()
    for thread in threads:
        thread.join(10)
    settle(rc)
    assert len(results) == 16
    assert sm.get_calls() == 2  # the first read + exactly one refresh


def test_an_expired_cache_does_not_make_callers_wait_either(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    """Past the upper bound (here jitter 0: no refresh-ahead window) a client exists, so nobody waits."""
    rc = make_client(sm, db_server, clock, policy=RefreshPolicy(refresh_interval=100.0, jitter=0.0))
    callers: list[threading.Thread] = []
    read = sm.get_secret_value

    def recording_read(**kwargs: Any) -> dict[str, Any]:
        callers.append(threading.current_thread())
        return read(**kwargs)

    sm.get_secret_value = recording_read  # type: ignore[method-assign]
    try:
        before = rc.database()
        clock.advance(500.0)
        assert rc.database() is before
        settle(rc)
        assert sm.get_calls() == 2
        assert len(callers) == 1  # the refresh (the first read came before the recording)
        assert callers[0] is not threading.current_thread(), "the caller read Secrets Manager itself"
    finally:
        rc.close()


@pytest.mark.parametrize(
    "breakage",
    ["uri with an unclosed IPv6 bracket", "client factory raises an unexpected error"],
)
def test_an_unexpected_refresh_error_backs_off_instead_of_flooding_secrets_manager(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock, breakage: str
) -> None:
    events: list[ClientEvent] = []
    rc = make_client(sm, db_server, clock, events)
    try:
        before = rc.database()
        if breakage.startswith("uri"):
            sm.put(json.dumps({"uri": "mongodb://[::1/db", "username": "app_clone", "password": "pw-2"}))
        else:
            sm.put(secret_string("app_clone", "pw-2"))

            def broken_factory(credentials: MongoCredentials, options: Mapping[str, Any]) -> Any:
                raise RuntimeError("boom")

            rc._client_factory = broken_factory
        clock.advance(100.0)
        for _ in range(50):
            assert rc.database() is before  # never raises on the hot path
            settle(rc)
        assert sm.get_calls() == 2, "one read, then the backoff: not one read per call"
        assert rc.active_user == "app"
        assert {"malformed_secret", "refresh_failed"} & set(kinds(events))
    finally:
        rc.close()


def test_a_failed_forced_refresh_does_not_leave_the_hot_path_slow(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock
) -> None:
    sm.failure = throttled()
    rc.refresh_now()
    sm.failure = None
    gen = rc._gen
    assert gen.check_at < gen.refresh_at  # backing off
    clock.advance(gen.check_at - clock() + 0.001)  # the retry time passed; still well before the refresh
    rc.database()
    assert rc._gen.check_at == rc._gen.refresh_at, "the next check must move back to the scheduled refresh"
    assert sm.get_calls() == 2  # nothing to fetch: the value is fresh


def test_a_run_that_read_a_generation_just_before_it_was_retired_uses_the_live_one(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock
) -> None:
    stale = rc._gen  # a caller read the generation here, then was descheduled
    sm.put(secret_string("app_clone", "pw-2"))
    clock.advance(100.0)
    rc.database()
    settle(rc)  # switched: the stable client now logs in as app_clone
    assert stale.client is rc.client
    assert not stale.client.closed
    assert rc._run_on(stale, lambda db: db.find_one(), None) == {"user": "app_clone"}


def test_a_client_started_mid_rotation_logs_in_with_the_pending_version(
    sm: FakeSecretsManager, clock: FakeClock
) -> None:
    """Single-user rotation between setSecret and finishSecret: AWSCURRENT no longer logs in, AWSPENDING does."""
    db_server = FakeMongoServer(app="pw-new")
    pending = sm.put(secret_string("app", "pw-new"), stage="AWSPENDING")
    events: list[ClientEvent] = []
    rc = make_client(sm, db_server, clock, events)
    try:
        assert rc.credentials.version_id == pending
        assert rc.credentials.password == "pw-new"
        assert [(e.kind, e.stage) for e in events] == [("refreshed", "AWSPENDING")]
    finally:
        rc.close()


def test_a_client_that_no_version_logs_in_for_fails_to_start_with_every_stage_named(
    sm: FakeSecretsManager, clock: FakeClock
) -> None:
    with pytest.raises(AuthenticationError) as failure:
        make_client(sm, FakeMongoServer(app="something else"), clock)
    message = str(failure.value)
    assert "AWSCURRENT" in message
    assert "AWSPENDING: " in message
    assert "pw-1" not in message


def test_new_credentials_switch_the_client(
    rc: RotatingMongoClient,
    sm: FakeSecretsManager,
    db_server: FakeMongoServer,
    clock: FakeClock,
    events: list[ClientEvent],
) -> None:
    old = rc.client
    new_version = sm.put(secret_string("app_clone", "pw-2"))
    clock.advance(100.0)
    rc.database()
    settle(rc)
    assert rc.active_user == "app_clone"
    assert rc.credentials.version_id == new_version
    assert rc.client is old, "one stable client: every handle taken before the switch follows it"
    assert not old.closed
    assert old.credentials.username == "app_clone"  # the login changed in place
    assert db_server.built[1].closed, "the candidate that was checked is closed once its login is adopted"
    assert rc.database().find_one() == {"user": "app_clone"}
    switched = [e for e in events if e.kind == "switched"]
    assert len(switched) == 1
    assert (switched[0].from_user, switched[0].to_user, switched[0].to_version) == ("app", "app_clone", new_version)
    assert rc.metrics.switches == 1
    assert rc.metrics.logins == 2
    assert rc.metrics.generation == 2  # the old name, kept as an alias


def test_unchanged_secret_keeps_the_client(
    rc: RotatingMongoClient, clock: FakeClock, db_server: FakeMongoServer
) -> None:
    clock.advance(100.0)
    assert not rc.refresh_now()
    assert len(db_server.built) == 1
    assert rc.metrics.refreshes == 2


def test_failed_login_check_keeps_the_old_client(
    rc: RotatingMongoClient,
    sm: FakeSecretsManager,
    db_server: FakeMongoServer,
    clock: FakeClock,
    events: list[ClientEvent],
) -> None:
    old = rc.client
    sm.put(secret_string("app_clone", "wrong"))
    assert not rc.refresh_now()
    assert rc.client is old
    assert db_server.built[-1].closed  # the rejected client is not leaked
    assert "check_failed" in kinds(events)
    assert rc._gen.retry_at is not None
    assert rc.metrics.check_failures == 1


def test_malformed_secret_keeps_the_old_credentials(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock, events: list[ClientEvent]
) -> None:
    old = rc.client
    sm.put('{"username": "app", "password": ')  # bad JSON
    clock.advance(100.0)
    rc.database()
    settle(rc)
    assert rc.client is old
    assert rc.active_user == "app"
    assert kinds(events)[-1] == "malformed_secret"
    assert rc.metrics.malformed_secrets == 1


def test_secrets_manager_errors_back_off_and_warn_once_per_streak(
    rc: RotatingMongoClient,
    sm: FakeSecretsManager,
    clock: FakeClock,
    events: list[ClientEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = rc.database()
    sm.failure = throttled()
    clock.advance(100.0)
    caplog.set_level(logging.WARNING, logger="secretswitch.client")
    delays = []
    for _ in range(6):
        assert rc.database() is old  # keeps serving
        settle(rc)
        retry_at = rc._gen.retry_at
        assert retry_at is not None
        delays.append(retry_at - clock())
        # Nothing happens before the retry time.
        calls = sm.get_calls()
        rc.database()
        assert sm.get_calls() == calls
        clock.advance(retry_at - clock())
    assert [round(d, 6) <= cap for d, cap in zip(delays, [1, 2, 4, 8, 8, 8], strict=True)] == [True] * 6
    assert delays[3] >= 4.0  # grew exponentially
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "ThrottlingException" in warnings[0].getMessage()
    assert rc.metrics.refresh_failures == 6
    assert [e.failures for e in events if e.kind == "refresh_failed"] == [1, 2, 3, 4, 5, 6]

    # The streak ends with a success; the next failure warns again.
    sm.failure = None
    rc.database()
    settle(rc)
    assert rc._gen.retry_at is None
    sm.failure = unreachable()
    clock.advance(100.0)
    rc.database()
    settle(rc)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_unreachable_secrets_manager_at_expiry_keeps_serving(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock
) -> None:
    old = rc.database()
    sm.failure = unreachable()
    clock.advance(1_000.0)
    for _ in range(10):
        assert rc.database() is old
        assert rc.run(lambda db: db.find_one()) == {"user": "app"}
        clock.advance(3.0)
    settle(rc)


# -- authentication failure ----------------------------------------------------------------------


def test_auth_failure_switches_to_the_new_current_and_retries_once(
    rc: RotatingMongoClient, sm: FakeSecretsManager, db_server: FakeMongoServer, events: list[ClientEvent]
) -> None:
    sm.put(secret_string("app", "pw-new"))
    db_server.passwords["app"] = "pw-new"
    attempts = []

    def op(db: Any) -> Any:
        attempts.append(db.client)
        return db.find_one()

    assert rc.run(op) == {"user": "app"}
    assert len(attempts) == 2
    assert attempts[0] is attempts[1], "the retry runs on the same (stable) client, logged in anew"
    assert rc.credentials.password == "pw-new"
    assert attempts[1].credentials.password == "pw-new"
    recovered = [e for e in events if e.kind == "auth_recovered"]
    assert len(recovered) == 1
    assert recovered[0].stage == "AWSCURRENT"
    assert rc.metrics.auth_recoveries == 1


@pytest.mark.parametrize("stage", ["AWSPENDING", "AWSPREVIOUS"])
def test_auth_failure_tries_pending_then_previous_when_current_did_not_change(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock, events: list[ClientEvent], stage: str
) -> None:
    if stage == "AWSPREVIOUS":
        sm.put(secret_string("app_clone", "pw-2"))  # becomes AWSPREVIOUS after the next put
        sm.put(secret_string("app", "pw-1"))
    rc = make_client(sm, db_server, clock, events)
    if stage == "AWSPENDING":
        sm.put(secret_string("app", "pw-pending"), stage="AWSPENDING")
        db_server.passwords["app"] = "pw-pending"
    else:
        db_server.passwords["app"] = "changed by hand"
    try:
        assert rc.run(lambda db: db.find_one()) is not None
        assert [e.stage for e in events if e.kind == "auth_recovered"] == [stage]
    finally:
        rc.close()


def test_many_threads_failing_at_once_cause_one_recovery(
    rc: RotatingMongoClient, sm: FakeSecretsManager, db_server: FakeMongoServer
) -> None:
    sm.put(secret_string("app", "pw-new"))
    db_server.passwords["app"] = "pw-new"
    barrier = threading.Barrier(16)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(rc.run(lambda db: db.find_one()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(results) == 16
    assert sm.get_calls() == 2  # the first read + one recovery read
    assert len(db_server.built) == 2
    assert rc.metrics.auth_recoveries == 1


def test_failed_recovery_raises_once_and_does_not_loop(
    rc: RotatingMongoClient,
    sm: FakeSecretsManager,
    db_server: FakeMongoServer,
    clock: FakeClock,
    events: list[ClientEvent],
) -> None:
    db_server.passwords["app"] = "nobody knows"
    with pytest.raises(AuthenticationError, match="recovery failed") as failure:
        rc.run(lambda db: db.find_one())
    assert "nobody knows" not in str(failure.value)
    assert "pw-1" not in str(failure.value)
    calls = sm.get_calls()
    # Within the forced-refresh gap another failure makes no API call.
    with pytest.raises(AuthenticationError):
        rc.run(lambda db: db.find_one())
    assert sm.get_calls() == calls
    clock.advance(POLICY.forced_refresh_gap)
    with pytest.raises(AuthenticationError):
        rc.run(lambda db: db.find_one())
    assert sm.get_calls() > calls
    assert "auth_recovery_failed" in kinds(events)


def test_a_failed_recovery_fails_fast_inside_the_gap_without_touching_the_refused_client(
    rc: RotatingMongoClient, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    refused = rc.client
    db_server.passwords["app"] = "nobody knows"
    with pytest.raises(AuthenticationError):
        rc.run(lambda db: db.find_one())
    used = refused.operations
    for attempt in (lambda: rc.run(lambda db: db.find_one()), rc.database, lambda: rc.client):
        with pytest.raises(AuthenticationError, match="retry later"):
            attempt()
    assert refused.operations == used, "an operation ran on the client whose login was refused"


def test_a_fixed_secret_is_picked_up_by_the_first_call_after_the_gap(
    rc: RotatingMongoClient, sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    refused = rc.client
    db_server.passwords["app"] = "reset by an admin"
    with pytest.raises(AuthenticationError):
        rc.run(lambda db: db.find_one())
    sm.put(secret_string("app", "reset by an admin"))  # someone fixes the secret
    clock.advance(POLICY.forced_refresh_gap)
    assert rc.run(lambda db: db.find_one()) == {"user": "app"}
    assert rc.client is refused
    assert not refused.closed
    assert refused.credentials.password == "reset by an admin"


def test_a_database_that_accepts_the_same_credentials_again_gets_a_fresh_login(
    rc: RotatingMongoClient, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    """pymongo cleared the refused pool: the same login is checked on a candidate and adopted again."""
    refused = rc.client
    db_server.passwords["app"] = "changed for a moment"
    with pytest.raises(AuthenticationError):
        rc.run(lambda db: db.find_one())
    db_server.passwords["app"] = "pw-1"  # the password was put back
    clock.advance(POLICY.forced_refresh_gap)
    assert rc.database().find_one() == {"user": "app"}
    assert rc.client is refused
    assert rc.credentials.password == "pw-1"
    assert [c.password for c in db_server.adopted] == ["pw-1"]


def test_a_refused_login_inside_a_server_selection_timeout_is_recovered(
    rc: RotatingMongoClient, sm: FakeSecretsManager, db_server: FakeMongoServer, events: list[ClientEvent]
) -> None:
    """pymongo reports a login refused on another thread as a server selection timeout quoting code 18."""
    sm.put(secret_string("app", "pw-new"))
    db_server.passwords["app"] = "pw-new"

    def op(db: Any) -> Any:
        if db.client.credentials.password != "pw-new":
            raise ServerSelectionTimeoutError(
                "authentication failed, full error: {'ok': 0.0, 'errmsg': 'authentication failed', 'code': 18, "
                "'codeName': 'AuthenticationFailed'}, Timeout: 2.0s"
            )
        return db.find_one()

    assert rc.run(op) == {"user": "app"}
    assert "auth_recovered" in kinds(events)


def test_callers_wait_for_the_repair_instead_of_running_on_the_refused_client(
    rc: RotatingMongoClient, sm: FakeSecretsManager, db_server: FakeMongoServer
) -> None:
    refused = rc.client
    sm.put(secret_string("app", "pw-new"))
    db_server.passwords["app"] = "pw-new"
    sm.gate = threading.Event()
    sm.entered.clear()
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(rc.run(lambda db: db.find_one())))
    first.start()
    assert sm.entered.wait(5)  # the repair is reading the secret
    assert refused.refused_logins == 1
    others = [threading.Thread(target=lambda: results.append(rc.run(lambda db: db.find_one()))) for _ in range(4)]
    for thread in others:
        thread.start()
    sm.gate.set()
    for thread in [first, *others]:
        thread.join(10)
    assert results == [{"user": "app"}] * 5
    assert refused.refused_logins == 1, "callers ran on the refused login instead of waiting for the repair"
    assert rc.client is refused
    assert not refused.closed


def test_a_repair_never_closes_the_client_under_operations_still_running_on_it(
    rc: RotatingMongoClient, sm: FakeSecretsManager, db_server: FakeMongoServer
) -> None:
    """The login changes in place: an operation in progress finishes, and the repair does not wait for it."""
    refused = rc.client
    inside = threading.Event()
    release = threading.Event()

    def slow(db: Any) -> None:
        inside.set()
        assert release.wait(10)

    worker = threading.Thread(target=lambda: rc.run(slow))
    worker.start()
    assert inside.wait(5)
    sm.put(secret_string("app", "pw-new"))
    db_server.passwords["app"] = "pw-new"
    assert rc.run(lambda db: db.find_one()) == {"user": "app"}
    for thread in list(rc._threads):
        thread.join(10)
    assert worker.is_alive(), "the slow operation is still running: the repair did not wait for it"
    assert not refused.closed
    assert refused.credentials.password == "pw-new"
    release.set()
    worker.join(10)
    assert not worker.is_alive()


def test_a_subscriber_may_call_close_and_refresh_now(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    calls: list[str] = []
    rc = make_client(sm, db_server, clock)

    def subscriber(event: ClientEvent) -> None:
        calls.append(event.kind)
        if event.kind == "switched":
            rc.refresh_now()  # re-enters the client from inside a delivery
            rc.close()

    rc.subscribe(subscriber)
    sm.put(secret_string("app_clone", "pw-2"))
    done = threading.Event()
    worker = threading.Thread(target=lambda: (rc.refresh_now(), done.set()))
    worker.start()
    worker.join(10)
    assert done.is_set(), "a subscriber calling the client deadlocked it"
    assert calls == ["refreshed", "switched", "refreshed", "closed"]
    with pytest.raises(DatabaseError, match="closed"):
        rc.database()


def test_a_subscriber_may_close_the_client_from_a_background_refresh(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    rc = make_client(sm, db_server, clock)
    closed = threading.Event()
    rc.subscribe(lambda event: rc.close() if event.kind == "switched" else None)
    rc.subscribe(lambda event: closed.set() if event.kind == "closed" else None)
    sm.put(secret_string("app_clone", "pw-2"))
    clock.advance(100.0)
    rc.database()  # starts the refresh thread, which delivers the events
    assert closed.wait(10), "close() from a subscriber on the refresh thread hung"
    for thread in list(rc._threads):
        thread.join(10)
    assert all(client.closed for client in db_server.built)


def test_overlapping_refresh_now_calls_share_one_read(
    rc: RotatingMongoClient, sm: FakeSecretsManager, db_server: FakeMongoServer
) -> None:
    sm.put(secret_string("app_clone", "pw-2"))
    sm.gate = threading.Event()
    sm.entered.clear()
    results: list[bool] = []
    first = threading.Thread(target=lambda: results.append(rc.refresh_now()))
    first.start()
    assert sm.entered.wait(5)  # one read is in flight
    tickets = threading.Semaphore(0)
    take_ticket = rc._core.read_ticket

    def counting_ticket() -> int:
        ticket = take_ticket()
        tickets.release()
        return ticket

    rc._core.read_ticket = counting_ticket  # type: ignore[method-assign]
    others = [threading.Thread(target=lambda: results.append(rc.refresh_now())) for _ in range(7)]
    for thread in others:
        thread.start()
    for _ in others:
        assert tickets.acquire(timeout=5)  # every overlapping caller has asked
    sm.gate.set()
    for thread in [first, *others]:
        thread.join(10)
    # The read in flight, plus one that starts after the seven calls, which they share.
    assert sm.get_calls() == 1 + 2
    assert results == [True] * 8
    assert len(db_server.built) == 2


def test_other_errors_are_not_retried(rc: RotatingMongoClient) -> None:
    calls = []

    def op(db: Any) -> None:
        calls.append(1)
        raise AutoReconnect("network")

    with pytest.raises(AutoReconnect):
        rc.run(op)
    assert len(calls) == 1


def test_a_planned_switch_never_closes_the_client_under_running_operations(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock
) -> None:
    started = threading.Event()
    release = threading.Event()
    seen: list[Any] = []

    def slow(db: Any) -> Any:
        seen.append(db.client)
        started.set()
        assert release.wait(10)
        return db.find_one()

    worker = threading.Thread(target=lambda: seen.append(rc.run(slow)))
    worker.start()
    assert started.wait(5)
    old = seen[0]
    sm.put(secret_string("app_clone", "pw-2"))
    assert rc.refresh_now()
    time.sleep(0.05)  # give any thread a chance to (wrongly) close it now
    assert not old.closed
    release.set()
    worker.join(10)
    assert seen[-1] == {"user": "app_clone"}  # the stable client logs in as the new user from the switch on
    for thread in list(rc._threads):
        thread.join(10)
    assert rc.client is old
    assert not old.closed


# -- surface -------------------------------------------------------------------------------------


def test_repr_and_events_never_show_the_password(
    rc: RotatingMongoClient, sm: FakeSecretsManager, events: list[ClientEvent]
) -> None:
    sm.put(secret_string("app_clone", "pw-2"))
    rc.refresh_now()
    sm.put('{"username": "x", "password": "pw-secret-3"')
    rc.refresh_now()
    text = repr(rc) + repr(rc.credentials) + "".join(repr(e) for e in events) + repr(rc.metrics)
    for password in ("pw-1", "pw-2", "pw-secret-3"):
        assert password not in text


def test_subscribers_get_events_and_their_errors_do_not_break_the_client(
    rc: RotatingMongoClient, sm: FakeSecretsManager, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[str] = []

    def broken(event: ClientEvent) -> None:
        raise RuntimeError("subscriber bug")

    rc.subscribe(broken)
    unsubscribe = rc.subscribe(lambda e: got.append(e.kind))
    sm.put(secret_string("app_clone", "pw-2"))
    assert rc.refresh_now()
    assert got == ["refreshed", "switched"]
    assert "subscriber" in caplog.text
    unsubscribe()
    rc.refresh_now()
    assert got == ["refreshed", "switched"]


def test_close_closes_every_client_and_refuses_further_use(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    with make_client(sm, db_server, clock, close_grace=60.0) as rc:
        sm.put(secret_string("app_clone", "pw-2"))
        rc.refresh_now()
    assert all(client.closed for client in db_server.built)
    assert not any(thread.is_alive() for thread in rc._threads)
    with pytest.raises(DatabaseError, match="closed"):
        rc.database()
    rc.close()  # idempotent


def test_mongo_options_reach_the_factory_but_cannot_set_the_login(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    with make_client(sm, db_server, clock, mongo_options={"maxPoolSize": 7}):
        options = db_server.built[0].options
        assert options["maxPoolSize"] == 7
        assert [type(listener).__name__ for listener in options["event_listeners"]] == ["LoginWatch"]
    with pytest.raises(ConfigurationError, match="password"):
        RotatingMongoClient("mongodb-app", secretsmanager_client=sm, clock=clock, mongo_options={"password": "x"})


def test_no_dbname_needs_an_explicit_database(db_server: FakeMongoServer, clock: FakeClock) -> None:
    sm = FakeSecretsManager(json.dumps({"username": "app", "password": "pw-1", "host": "db.example"}))
    with make_client(sm, db_server, clock) as rc:
        with pytest.raises(ConfigurationError, match="dbname"):
            rc.database()
        assert rc.database("mydb").name == "mydb"
        assert rc.run(lambda db: db.name, database="other") == "other"


def test_first_read_errors_are_translated(db_server: FakeMongoServer, clock: FakeClock) -> None:
    sm = FakeSecretsManager()
    sm.failure = throttled()
    with pytest.raises(SecretsManagerError, match="ThrottlingException"):
        make_client(sm, db_server, clock)
    sm.failure = ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "x"}}, "GetSecretValue")
    with pytest.raises(SecretNotFoundError, match="mongodb-app"):
        make_client(sm, db_server, clock)
    sm.failure = None
    sm.put('{"username": "app"}')
    with pytest.raises(SecretFormatError, match="'password'"):
        make_client(sm, db_server, clock)


def test_schedule_check_warns_and_derives_a_deadline(
    rc: RotatingMongoClient, sm: FakeSecretsManager, clock: FakeClock, events: list[ClientEvent]
) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    sm.rotation = {
        "RotationEnabled": True,
        "RotationRules": {"AutomaticallyAfterDays": 7},
        "NextRotationDate": now + dt.timedelta(seconds=30),
    }
    check = rc.check_rotation_schedule(derive_deadline=True, margin=5.0, wall_now=now)
    assert check.warning is None  # 100 s refresh vs 7-day rotation
    assert check.deadline == clock() + 35.0
    assert rc._gen.refresh_at == clock() + 35.0
    sm.rotation["RotationRules"] = {"AutomaticallyAfterDays": 1}
    with make_client(
        sm, FakeMongoServer(app="pw-1"), clock, policy=RefreshPolicy(refresh_interval=2 * 86400.0)
    ) as slow:
        assert slow.check_rotation_schedule().warning is not None
    assert "schedule_warning" not in kinds(events)


def test_public_names_are_exported() -> None:
    from secretswitch import client
    from secretswitch.client import (  # noqa: F401  (sets the submodules as attributes)
        async_rotating,
        core,
        events,
        flows,
        hub,
        mongo,
        policy,
        rotating,
        secretsmanager,
    )

    modules = (
        client, client.events, client.policy, client.rotating, client.async_rotating, client.core,
        client.secretsmanager, client.mongo, client.flows, client.hub,
    )  # fmt: skip
    for module in modules:
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"
    for module in (client.events, client.rotating, client.async_rotating):
        assert set(module.__all__) <= set(client.__all__) | {"EVENT_KINDS", "EventKind"}
    exported = {"RotatingMongoClient", "AsyncRotatingMongoClient", "RefreshPolicy", "ClientEvent", "ClientMetrics"}
    assert exported <= set(client.__all__)
    assert set(ClientMetrics.__dataclass_fields__) >= {
        "api_calls",
        "refreshes",
        "switches",
        "auth_recoveries",
        "refresh_failures",
    }


def test_the_core_and_the_policy_import_neither_boto3_nor_pymongo() -> None:
    """One pure core, two thin shells: the decisions never touch an outside system."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "client"
    for name in ("core.py", "flows.py", "hub.py", "policy.py", "credentials.py", "events.py"):
        tree = ast.parse((root / name).read_text())
        imported = {
            (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not {m for m in imported if m.split(".")[0] in {"boto3", "botocore", "pymongo", "asyncio"}}, name
