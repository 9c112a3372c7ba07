"""AsyncRotatingMongoClient on the embedded stack, mirroring the threaded client's tests.

Real ``AsyncMongoClient`` against SecantusDB, real boto3 against moto's
server (in a worker thread). Each test runs its own event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from pymongo import monitoring
from pymongo.errors import PyMongoError

from secretswitch.client import AsyncRotatingMongoClient, AuthenticationError, ClientEvent, RefreshPolicy
from secretswitch.demo_app.async_app import run_example
from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack
from tests.conftest import FakeClock
from tests.integration.client_support import (
    MONGO_OPTIONS,
    POLICY,
    SECRET_ID,
    change_password,
    current_secret,
    lock_out,
    passive_user,
    promote,
    quick_sm,
    rotate_passive,
)

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def find_seed(db: Any) -> Any:
    document = await db["items"].find_one({"_id": "seed"})
    assert document is not None
    return document


async def burst(op: Any, tasks: int) -> tuple[int, list[str]]:
    """Run ``op()`` from ``tasks`` tasks at once; count successes and collect failures."""
    results = await asyncio.gather(*(op() for _ in range(tasks)), return_exceptions=True)
    failed = [f"{type(r).__name__}: {getattr(r, 'code', None)}" for r in results if isinstance(r, BaseException)]
    return len(results) - len(failed), failed


async def settle(rc: AsyncRotatingMongoClient) -> None:
    while pending := [task for task in (rc._flight, *rc._tasks) if task is not None and not task.done()]:
        await asyncio.wait(pending, timeout=30)


class ConnectionCounter(monitoring.ConnectionPoolListener):
    """Counts the sockets the client's pools open and close."""

    def __init__(self) -> None:
        self.created = 0
        self.closed = 0

    def connection_created(self, event: Any) -> None:
        self.created += 1

    def connection_closed(self, event: Any) -> None:
        self.closed += 1

    def pool_created(self, event: Any) -> None: ...
    def pool_ready(self, event: Any) -> None: ...
    def pool_cleared(self, event: Any) -> None: ...
    def pool_closed(self, event: Any) -> None: ...
    def connection_ready(self, event: Any) -> None: ...
    def connection_check_out_started(self, event: Any) -> None: ...
    def connection_check_out_failed(self, event: Any) -> None: ...
    def connection_checked_out(self, event: Any) -> None: ...
    def connection_checked_in(self, event: Any) -> None: ...


@pytest.mark.parametrize("stage", ["AWSCURRENT", "AWSPENDING"])
def test_password_change_then_200_tasks_fail_nothing_with_at_most_3_reads(
    client_stack: EmbeddedStack, stage: str
) -> None:
    events: list[ClientEvent] = []

    async def scenario() -> dict[str, Any]:
        async with AsyncRotatingMongoClient(
            SECRET_ID,
            secretsmanager_client=client_stack.secretsmanager_client(),
            policy=POLICY,
            mongo_options=MONGO_OPTIONS,
            on_event=events.append,
        ) as rc:
            await rc.run(find_seed)  # one authenticated socket in the pool, as in a running app
            old_version = rc.credentials.version_id
            document = change_password(client_stack, stage=stage)
            ok, failed = await burst(lambda: rc.run(find_seed), 200)
            assert failed == []
            assert ok == 200
            assert rc.credentials.password == document["password"]
            assert rc.credentials.version_id != old_version
            assert [e.stage for e in events if e.kind == "auth_recovered"] == [stage]
            assert rc.metrics.auth_recoveries == 1
            assert rc.metrics.api_calls <= 3
            return document

    document = run(scenario())
    if stage == "AWSPENDING":
        promote(client_stack, document)  # finish the "rotation" for the next tests


def test_collection_operations_recover_transparently(client_stack: EmbeddedStack) -> None:
    async def scenario() -> None:
        async with AsyncRotatingMongoClient(
            SECRET_ID,
            database=APP_DATABASE,
            secretsmanager_client=client_stack.secretsmanager_client(),
            policy=POLICY,
            mongo_options=MONGO_OPTIONS,
        ) as rc:
            items = rc.collection("items")
            assert await items.find_one({"_id": "seed"}) is not None
            change_password(client_stack, stage="AWSCURRENT")

            async def read_then_write(n: int) -> None:
                assert await items.find_one({"_id": "seed"}) is not None
                await items.insert_one({"async_transparent": n})

            results = await asyncio.gather(*(read_then_write(n) for n in range(50)), return_exceptions=True)
            assert [r for r in results if r is not None] == []
            assert rc.metrics.auth_recoveries == 1
            # Each acknowledged write is there once: a refused login means it was never sent.
            assert await items.count_documents({"async_transparent": {"$exists": True}}) == 50
            assert items.full_name == f"{APP_DATABASE}.items"

    run(scenario())


def test_a_rotation_under_load_fails_nothing_and_switches_once(client_stack: EmbeddedStack) -> None:
    async def scenario() -> None:
        async with AsyncRotatingMongoClient(
            SECRET_ID, secretsmanager_client=client_stack.secretsmanager_client(), policy=POLICY, close_grace=0.0
        ) as rc:
            old_client = rc.client
            stop = asyncio.Event()
            failures: list[str] = []
            done = [0]

            async def load() -> None:
                while not stop.is_set():
                    try:
                        await rc.run(find_seed)
                        done[0] += 1
                    except PyMongoError as exc:
                        failures.append(type(exc).__name__)

            workers = [asyncio.create_task(load()) for _ in range(8)]
            await asyncio.sleep(0.05)
            new = await asyncio.to_thread(rotate_passive, client_stack)
            assert await rc.refresh_now()
            switched_at = done[0]
            deadline = time.monotonic() + 30
            while done[0] < switched_at + 100 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)  # let the load run on the new client for a while
            stop.set()
            await asyncio.gather(*workers)
            assert failures == []
            assert rc.active_user == new["username"]
            assert rc.metrics.switches == 1
            await settle(rc)
            # One stable client: a handle taken before the switch logs in as the new user now.
            assert old_client is rc.client
            assert await old_client[APP_DATABASE]["items"].find_one() is not None

    run(scenario())


def test_secrets_manager_down_past_the_refresh_time_keeps_operations_working(client_stack: EmbeddedStack) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        async with AsyncRotatingMongoClient(
            SECRET_ID, secretsmanager_client=quick_sm(client_stack), policy=POLICY, clock=clock
        ) as rc:
            client_stack.secretsmanager.stop()
            try:
                clock.advance(POLICY.refresh_interval * 2)
                for _ in range(5):
                    await find_seed(rc.database())
                    await rc.run(find_seed)
                    await settle(rc)
                    clock.advance(1.0)
                assert rc.metrics.refresh_failures >= 1
            finally:
                client_stack.secretsmanager.restart()
            clock.advance(POLICY.backoff_cap)
            await find_seed(rc.database())
            await settle(rc)
            assert rc._gen.retry_at is None  # the next read succeeded
            assert rc.metrics.refreshes == 2

    run(scenario())


def test_waiters_on_a_refused_client_move_to_the_new_one_at_once(client_stack: EmbeddedStack) -> None:
    """With server selection and heartbeats at a minute, 100 tasks after a password change still end quickly."""

    async def scenario() -> None:
        async with AsyncRotatingMongoClient(
            SECRET_ID,
            secretsmanager_client=client_stack.secretsmanager_client(),
            policy=POLICY,
            mongo_options={"serverSelectionTimeoutMS": 60_000, "heartbeatFrequencyMS": 60_000},
        ) as rc:
            await rc.run(find_seed)
            change_password(client_stack, stage="AWSCURRENT")
            ok, failed = await asyncio.wait_for(burst(lambda: rc.run(find_seed), 100), 30)
            assert (ok, failed) == (100, [])

    run(scenario())


def test_a_failed_recovery_fails_fast_then_a_fixed_secret_is_used_after_the_gap(client_stack: EmbeddedStack) -> None:
    clock = FakeClock()
    policy = RefreshPolicy(refresh_interval=600.0, forced_refresh_gap=30.0)

    async def scenario() -> None:
        async with AsyncRotatingMongoClient(
            SECRET_ID,
            secretsmanager_client=client_stack.secretsmanager_client(),
            policy=policy,
            clock=clock,
            mongo_options={**MONGO_OPTIONS, "maxIdleTimeMS": 1},
        ) as rc:
            await rc.run(find_seed)
            refused = rc.client
            document = current_secret(client_stack)
            password = lock_out(client_stack)
            await asyncio.sleep(0.01)  # past maxIdleTimeMS: the next operation logs in again
            with pytest.raises(AuthenticationError, match="recovery failed"):
                await rc.run(find_seed)
            with pytest.raises(AuthenticationError, match="retry later"):
                await rc.run(find_seed)
            with pytest.raises(AuthenticationError, match="retry later"):
                rc.database()
            promote(client_stack, dict(document, password=password))
            clock.advance(policy.forced_refresh_gap)
            assert (await rc.run(find_seed))["_id"] == "seed"
            assert rc.client is refused  # the same stable client, logged in anew

    run(scenario())


def test_close_leaves_no_task_and_no_socket_behind(client_stack: EmbeddedStack) -> None:
    counter = ConnectionCounter()

    async def scenario() -> None:
        rc = AsyncRotatingMongoClient(
            SECRET_ID,
            secretsmanager_client=client_stack.secretsmanager_client(),
            policy=POLICY,
            close_grace=60.0,
            mongo_options={"event_listeners": [counter]},
        )
        await rc.start()
        await asyncio.gather(*(rc.run(find_seed) for _ in range(20)))
        await asyncio.to_thread(rotate_passive, client_stack)
        assert await rc.refresh_now()  # the old client now waits out 60 s of grace in a task
        await asyncio.gather(*(rc.run(find_seed) for _ in range(20)))
        await asyncio.wait_for(rc.close(), 30)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(scenario())
    assert counter.created > 0
    assert counter.closed == counter.created, f"{counter.created - counter.closed} sockets left open"


def test_users_alternate_across_rotations(client_stack: EmbeddedStack) -> None:
    async def scenario() -> list[str]:
        async with AsyncRotatingMongoClient(
            SECRET_ID, secretsmanager_client=client_stack.secretsmanager_client(), policy=POLICY
        ) as rc:
            users = [rc.active_user]
            for _ in range(2):
                expected = passive_user(current_secret(client_stack))
                await asyncio.to_thread(rotate_passive, client_stack)
                assert await rc.refresh_now()
                users.append(rc.active_user)
                assert users[-1] == expected
            return users

    users = run(scenario())
    assert users[0] == users[2] != users[1]


def test_the_asyncio_example_app_serves_through_two_rotations_without_a_failed_request(
    client_stack: EmbeddedStack,
) -> None:
    """Two rotations in a row: the second changes the password of the user the app still holds."""

    async def scenario() -> Any:
        async with AsyncRotatingMongoClient(
            SECRET_ID,
            database=APP_DATABASE,
            secretsmanager_client=client_stack.secretsmanager_client(),
            policy=POLICY,
            mongo_options={**MONGO_OPTIONS, "maxIdleTimeMS": 50},  # connections churn, as in production
        ) as rc:
            first_user = rc.active_user

            async def rotate(served: int) -> None:
                if served in (40, 80):
                    await asyncio.to_thread(rotate_passive, client_stack)
                    await asyncio.sleep(0.1)  # idle connections expire: the next requests log in again

            report = await run_example(rc, requests=160, concurrency=20, between=rotate)
            return report, first_user, rc.metrics, rc.credentials.password

    report, first_user, metrics, password = run(scenario())
    assert report.failed == []
    assert report.served == 160
    # Kept the still-valid user across the first rotation; the second changed its password under it
    # (alternating users: the same name, a new password), which the client recovered from.
    assert report.users == [first_user]
    assert metrics.auth_recoveries == 1
    assert password == current_secret(client_stack)["password"]
