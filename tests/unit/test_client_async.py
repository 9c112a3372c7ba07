"""AsyncRotatingMongoClient with a fake clock, a fake Secrets Manager and a recording AsyncMongoClient factory.

Each test runs its own event loop (``asyncio.run``). The fake Secrets Manager
is boto3-shaped and blocking, as boto3 is: the client calls it in a worker
thread, so a read blocked on the fake's gate must not stop the loop.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import pytest

from secretswitch.client import AsyncRotatingMongoClient, ClientEvent, RefreshPolicy, RotatingMongoClient
from secretswitch.client.errors import AuthenticationError, ConfigurationError, DatabaseError
from tests.conftest import FakeClock
from tests.fakes import FakeMongoServer, FakeSecretsManager, secret_string, throttled
from tests.helpers import settle as settle_threads

T = TypeVar("T")
POLICY = RefreshPolicy(refresh_interval=100.0, jitter=0.2, backoff_base=1.0, backoff_cap=8.0, forced_refresh_gap=5.0)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def make_client(
    sm: FakeSecretsManager,
    db_server: FakeMongoServer,
    clock: FakeClock,
    events: list[ClientEvent] | None = None,
    **options: Any,
) -> AsyncRotatingMongoClient:
    options.setdefault("policy", POLICY)
    options.setdefault("close_grace", 0.0)
    options.setdefault("login_adopter", db_server.adopt_async)
    options.setdefault("background_refresh", False)  # the tests drive the clock; the refresher has its own tests
    return AsyncRotatingMongoClient(
        "mongodb-app",
        secretsmanager_client=sm,
        clock=clock,
        rng=random.Random(1),
        client_factory=db_server.async_factory,
        on_event=events.append if events is not None else None,
        **options,
    )


async def settle(rc: AsyncRotatingMongoClient) -> None:
    """Wait for the flow in flight and the close tasks."""
    while True:
        pending = [task for task in (rc._flight, *rc._tasks) if task is not None and not task.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=10)


async def wait_entered(sm: FakeSecretsManager) -> None:
    """Until a read is blocked in the fake Secrets Manager (it runs in a worker thread)."""
    assert await asyncio.to_thread(sm.entered.wait, 5)


def find_one(db: Any) -> Awaitable[Any]:
    return db.find_one()  # type: ignore[no-any-return]


def kinds(events: list[ClientEvent]) -> list[str]:
    return [event.kind for event in events]


@pytest.fixture
def sm() -> FakeSecretsManager:
    return FakeSecretsManager()


@pytest.fixture
def db_server() -> FakeMongoServer:
    return FakeMongoServer(app="pw-1", app_clone="pw-2")


# -- the cache ----------------------------------------------------------------------------------


def test_start_reads_once_and_a_hit_makes_no_call(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    async def scenario() -> None:
        rc = make_client(sm, db_server, clock)
        with pytest.raises(DatabaseError, match="async with"):
            rc.database()
        async with rc:
            assert sm.get_calls() == 1
            first = rc.database()
            for _ in range(1000):
                clock.advance(0.01)
                assert rc.database() is first  # sync: no await on the hot path
            assert rc.database("other") is rc.database("other")
            assert await rc.run(find_one) == {"user": "app"}
            assert sm.get_calls() == 1
            assert rc.metrics.logins == 1

    run(scenario())


def test_a_thousand_tasks_on_an_expired_cache_make_one_read_and_one_build(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    """The refresh runs in a worker thread: while it is blocked, the loop keeps serving all 1,000 tasks."""

    async def scenario() -> None:
        async with make_client(sm, db_server, clock) as rc:
            sm.put(secret_string("app_clone", "pw-2"))
            sm.gate = threading.Event()
            sm.entered.clear()
            clock.advance(150.0)  # past the upper bound

            async def task() -> Any:
                rc.database()
                return await rc.run(find_one)

            results = await asyncio.gather(*(task() for _ in range(1000)))
            assert results == [{"user": "app"}] * 1000  # served by the current login, nobody waited
            await wait_entered(sm)
            sm.gate.set()
            await settle(rc)
            assert sm.get_calls() == 2  # the first read + exactly one refresh
            assert len(db_server.built) == 2  # exactly one candidate checked
            assert rc.active_user == "app_clone"
            assert db_server.built[1].closed
            assert not db_server.built[0].closed

    run(scenario())


def test_a_failed_refresh_backs_off_exactly_as_the_threaded_client(
    sm: FakeSecretsManager, db_server: FakeMongoServer
) -> None:
    """Same seed, same failures: the same retry times and the same events, from the same core."""
    threaded_clock, async_clock = FakeClock(), FakeClock()
    threaded_events: list[ClientEvent] = []
    async_events: list[ClientEvent] = []
    threaded = RotatingMongoClient(
        "mongodb-app",
        secretsmanager_client=sm,
        clock=threaded_clock,
        rng=random.Random(1),
        client_factory=db_server.factory,
        policy=POLICY,
        on_event=threaded_events.append,
        login_adopter=db_server.adopt,
        background_refresh=False,
    )
    sm.failure = throttled()
    threaded_clock.advance(100.0)
    threaded_delays = []
    for _ in range(6):
        threaded.database()
        settle_threads(threaded)
        threaded_delays.append(threaded._gen.check_at - threaded_clock())
        threaded_clock.advance(threaded._gen.check_at - threaded_clock())
    threaded.close()

    async def scenario() -> list[float]:
        sm.failure = None
        rc = make_client(sm, db_server, async_clock, async_events)
        await rc.start()
        sm.failure = throttled()
        async_clock.advance(100.0)
        delays = []
        for _ in range(6):
            rc.database()
            await settle(rc)
            delays.append(rc._gen.check_at - async_clock())
            async_clock.advance(rc._gen.check_at - async_clock())
        await rc.close()
        return delays

    assert run(scenario()) == threaded_delays
    assert [(e.kind, e.failures) for e in async_events] == [(e.kind, e.failures) for e in threaded_events]


def test_overlapping_refresh_now_calls_share_one_read(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    async def scenario() -> None:
        async with make_client(sm, db_server, clock) as rc:
            sm.put(secret_string("app_clone", "pw-2"))
            sm.gate = threading.Event()
            sm.entered.clear()
            first = asyncio.create_task(rc.refresh_now())
            await wait_entered(sm)  # one read in flight
            others = [asyncio.create_task(rc.refresh_now()) for _ in range(7)]
            await asyncio.sleep(0)  # each overlapping caller has asked and waits
            sm.gate.set()
            assert await asyncio.gather(first, *others) == [True] * 8
            assert sm.get_calls() == 1 + 2  # the read in flight + one that the seven share
            assert len(db_server.built) == 2

    run(scenario())


# -- refused logins -------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"])
def test_a_refused_login_switches_and_retries_once(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock, stage: str
) -> None:
    events: list[ClientEvent] = []
    if stage == "AWSPREVIOUS":
        sm.put(secret_string("app_clone", "pw-2"))
        sm.put(secret_string("app", "pw-1"))

    async def scenario() -> None:
        async with make_client(sm, db_server, clock, events) as rc:
            if stage == "AWSCURRENT":
                sm.put(secret_string("app", "pw-new"))
                db_server.passwords["app"] = "pw-new"
            elif stage == "AWSPENDING":
                sm.put(secret_string("app", "pw-pending"), stage="AWSPENDING")
                db_server.passwords["app"] = "pw-pending"
            else:
                db_server.passwords["app"] = "changed by hand"
            attempts: list[Any] = []

            async def op(db: Any) -> Any:
                attempts.append(db.client)
                return await db.find_one()

            assert await rc.run(op) is not None
            assert len(attempts) == 2
            assert attempts[0] is attempts[1], "the retry runs on the same (stable) client, logged in anew"
            assert not attempts[0].closed
            assert [e.stage for e in events if e.kind == "auth_recovered"] == [stage]
            assert rc.metrics.auth_recoveries == 1

    run(scenario())


def test_two_hundred_tasks_refused_at_once_cause_one_recovery(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    async def scenario() -> None:
        async with make_client(sm, db_server, clock) as rc:
            sm.put(secret_string("app", "pw-new"))
            db_server.passwords["app"] = "pw-new"
            results = await asyncio.gather(*(rc.run(find_one) for _ in range(200)))
            assert results == [{"user": "app"}] * 200
            assert sm.get_calls() == 2
            assert len(db_server.built) == 2
            assert rc.metrics.auth_recoveries == 1

    run(scenario())


def test_a_failed_recovery_fails_fast_inside_the_gap_then_a_fixed_secret_is_used(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    events: list[ClientEvent] = []

    async def scenario() -> None:
        async with make_client(sm, db_server, clock, events) as rc:
            refused = rc.client
            db_server.passwords["app"] = "nobody knows"
            with pytest.raises(AuthenticationError, match="recovery failed") as failure:
                await rc.run(find_one)
            assert "nobody knows" not in str(failure.value)
            used, calls = refused.operations, sm.get_calls()
            with pytest.raises(AuthenticationError, match="retry later"):
                await rc.run(find_one)
            with pytest.raises(AuthenticationError, match="retry later"):
                rc.database()
            assert (refused.refused_logins, sm.get_calls()) == (1, calls)
            assert refused.operations == used
            sm.put(secret_string("app", "nobody knows"))  # the secret is fixed
            clock.advance(POLICY.forced_refresh_gap)
            assert await rc.run(find_one) == {"user": "app"}
            assert rc.client is refused
            assert refused.credentials.password == "nobody knows"
            assert kinds(events).count("auth_recovery_failed") == 1

    run(scenario())


def test_database_on_a_refused_client_starts_the_repair_and_hands_out_the_stable_database(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    async def scenario() -> None:
        async with make_client(sm, db_server, clock) as rc:
            refused = rc.client
            sm.put(secret_string("app", "pw-new"))
            db_server.passwords["app"] = "pw-new"
            rc._core.refuse(rc._gen)  # what run() does when a login is refused
            held = rc.database()  # a FastAPI handler or an ODM: never an error while the repair runs
            assert rc._flight is not None, "the repair started"
            await settle(rc)
            assert await held.find_one() == {"user": "app"}
            assert rc.client is refused
            assert not refused.closed

    run(scenario())


def test_a_cancelled_caller_does_not_cancel_the_repair(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    async def scenario() -> None:
        async with make_client(sm, db_server, clock) as rc:
            sm.put(secret_string("app", "pw-new"))
            db_server.passwords["app"] = "pw-new"
            sm.gate = threading.Event()
            sm.entered.clear()
            caller = asyncio.create_task(rc.run(find_one))
            await wait_entered(sm)  # the repair is reading the secret
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            sm.gate.set()
            await settle(rc)
            assert rc.credentials.password == "pw-new"
            assert not db_server.built[0].closed  # the stable client, now logged in anew
            assert await rc.run(find_one) == {"user": "app"}

    run(scenario())


# -- surface ------------------------------------------------------------------------------------


def test_a_subscriber_may_use_the_client_and_schedule_its_close(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    async def scenario() -> None:
        rc = make_client(sm, db_server, clock)
        closing: list[asyncio.Task[None]] = []

        def subscriber(event: ClientEvent) -> None:
            if event.kind == "switched":
                assert rc.metrics.switches == 1
                rc.database()  # re-enters the client from inside a delivery
                closing.append(asyncio.get_running_loop().create_task(rc.close()))

        rc.subscribe(subscriber)
        await rc.start()
        sm.put(secret_string("app_clone", "pw-2"))
        assert await asyncio.wait_for(rc.refresh_now(), 10)
        await asyncio.wait_for(closing[0], 10)
        with pytest.raises(DatabaseError, match="closed"):
            rc.database()

    run(scenario())


def test_close_leaves_no_task_and_closes_every_client(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    async def scenario() -> None:
        rc = make_client(sm, db_server, clock, close_grace=60.0)
        await rc.start()
        sm.put(secret_string("app_clone", "pw-2"))
        await rc.refresh_now()
        await asyncio.wait_for(rc.close(), 10)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert all(client.closed for client in db_server.built)
        await rc.close()  # idempotent
        with pytest.raises(DatabaseError, match="closed"):
            await rc.run(find_one)

    run(scenario())


def test_a_planned_switch_never_closes_the_client_under_running_operations(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    async def scenario() -> None:
        async with make_client(sm, db_server, clock) as rc:
            inside, release = asyncio.Event(), asyncio.Event()

            async def slow(db: Any) -> Any:
                inside.set()
                await release.wait()
                return await db.find_one()

            worker = asyncio.create_task(rc.run(slow))
            await inside.wait()
            old = rc.client
            sm.put(secret_string("app_clone", "pw-2"))
            assert await rc.refresh_now()
            await asyncio.sleep(0.05)  # give any task a chance to (wrongly) close it now
            assert not old.closed
            release.set()
            assert await worker == {"user": "app_clone"}  # the fake answers as the login of that moment
            await settle(rc)
            assert rc.client is old
            assert not old.closed

    run(scenario())


def test_arguments_are_checked_and_repr_hides_the_password(
    sm: FakeSecretsManager, db_server: FakeMongoServer, clock: FakeClock
) -> None:
    with pytest.raises(ConfigurationError, match="secret_id"):
        AsyncRotatingMongoClient("")
    with pytest.raises(ConfigurationError, match="close_grace"):
        AsyncRotatingMongoClient("s", close_grace=-1, secretsmanager_client=sm)

    async def scenario() -> str:
        async with make_client(sm, db_server, clock) as rc:
            return repr(rc) + repr(rc.credentials)

    text = run(scenario())
    assert "pw-1" not in text
    assert "mongodb-app" in text


def test_a_client_that_fails_to_start_can_still_be_closed(db_server: FakeMongoServer, clock: FakeClock) -> None:
    sm = FakeSecretsManager()
    sm.failure = throttled()

    async def scenario() -> None:
        rc = make_client(sm, db_server, clock)
        with pytest.raises(Exception, match="ThrottlingException"):
            await rc.start()
        await rc.close()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(scenario())
