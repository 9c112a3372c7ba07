"""RotatingMongoClient on the embedded stack (moto Secrets Manager + SecantusDB).

Shares its stack (``client_stack``) with the asyncio client's tests; see
:mod:`tests.integration.client_support`.
"""

from __future__ import annotations

import secrets
import threading
import time

import pytest
from pymongo.errors import PyMongoError

from secretswitch.client import AuthenticationError, ClientEvent, DatabaseError, RefreshPolicy, RotatingMongoClient
from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack
from tests.conftest import FakeClock
from tests.helpers import settle
from tests.integration.client_support import (
    MONGO_OPTIONS,
    POLICY,
    SECRET_ID,
    burst,
    change_password,
    current_secret,
    find_seed,
    lock_out,
    promote,
    quick_sm,
)


@pytest.mark.parametrize("stage", ["AWSCURRENT", "AWSPENDING"])
def test_password_change_then_burst_gives_no_failed_operation_through_the_client(
    client_stack: EmbeddedStack, stage: str
) -> None:
    events: list[ClientEvent] = []
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=client_stack.secretsmanager_client(),
        policy=POLICY,
        mongo_options=MONGO_OPTIONS,
        on_event=events.append,
    ) as rc:
        rc.run(find_seed)  # one authenticated socket in the pool, as in a running app
        old_version = rc.credentials.version_id
        document = change_password(client_stack, stage=stage)
        ok, failed = burst(lambda: rc.run(find_seed))
        assert failed == []
        assert ok == 160
        assert rc.credentials.password == document["password"]
        assert rc.credentials.version_id != old_version
        recovered = [e for e in events if e.kind == "auth_recovered"]
        assert [e.stage for e in recovered] == [stage]
        assert rc.metrics.auth_recoveries == 1
        # Single flight: one AWSCURRENT read (+ one AWSPENDING read when AWSCURRENT had not moved).
        assert rc.metrics.api_calls == (2 if stage == "AWSCURRENT" else 3)
    if stage == "AWSPENDING":
        promote(client_stack, document)  # finish the "rotation" for the next tests


def test_collection_operations_recover_transparently_after_a_password_change(client_stack: EmbeddedStack) -> None:
    """`rc.collection(...)` needs no `run`: reads and writes recover by themselves."""
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=client_stack.secretsmanager_client(),
        policy=POLICY,
        mongo_options=MONGO_OPTIONS,
    ) as rc:
        items = rc.collection("items")
        assert items.find_one({"_id": "seed"}) is not None
        document = change_password(client_stack, stage="AWSCURRENT")
        counter = iter(range(10_000))
        lock = threading.Lock()

        def read_then_write() -> None:
            assert items.find_one({"_id": "seed"}) is not None
            with lock:
                n = next(counter)
            items.insert_one({"transparent": n})

        ok, failed = burst(read_then_write, per_thread=10)
        assert failed == []
        assert ok == 80
        assert rc.credentials.password == document["password"]
        assert rc.metrics.auth_recoveries == 1
        # Each acknowledged write is there once: a refused login means it was never sent.
        assert items.count_documents({"transparent": {"$exists": True}}) == 80
        assert items.name == "items"
        assert items.full_name == f"{APP_DATABASE}.items"  # everything else is the live collection's


def test_the_same_burst_through_a_plain_mongoclient_fails(client_stack: EmbeddedStack) -> None:
    """Why the rotating client exists: pymongo cannot recover from a password change by itself."""
    document = current_secret(client_stack)
    with client_stack.mongo_client(document["username"], document["password"], serverSelectionTimeoutMS=500) as plain:
        find_seed(plain[APP_DATABASE])
        new = change_password(client_stack, stage="AWSCURRENT")
        ok, failed = burst(lambda: find_seed(plain[APP_DATABASE]), per_thread=3)
    assert failed, "a plain MongoClient survived a password change: the premise of the client is gone"
    assert ok + len(failed) == 24
    assert new["password"] != document["password"]


def test_planned_switch_under_load_fails_nothing_and_a_handle_taken_before_follows_it(
    client_stack: EmbeddedStack,
) -> None:
    # The rotation's steps for the passive user: new password for it, then AWSCURRENT names it.
    document = current_secret(client_stack)
    passive = "app_clone" if document["username"] == "app" else "app"
    with RotatingMongoClient(
        SECRET_ID, secretsmanager_client=client_stack.secretsmanager_client(), policy=POLICY, close_grace=0.0
    ) as rc:
        old_client = rc.client
        stop = threading.Event()
        failures: list[str] = []
        done: list[int] = []

        def load() -> None:
            while not stop.is_set():
                try:
                    rc.run(find_seed)
                    done.append(1)
                except PyMongoError as exc:
                    failures.append(type(exc).__name__)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for thread in workers:
            thread.start()
        new = dict(document, username=passive, password="clone :/?#[]@%+ " + secrets.token_hex(4))
        with client_stack.admin_client() as admin:
            admin.admin.command("updateUser", passive, pwd=new["password"])
        promote(client_stack, new)
        assert rc.refresh_now()
        switched_at = len(done)
        deadline = time.monotonic() + 30
        while len(done) < switched_at + 50 and time.monotonic() < deadline:
            time.sleep(0.005)  # let the load run on the new client for a while
        stop.set()
        for thread in workers:
            thread.join(30)
        assert failures == []
        assert rc.active_user == passive
        for thread in list(rc._threads):
            thread.join(30)
        # One stable client: a handle taken before the switch logs in as the new user now.
        assert old_client is rc.client
        assert old_client[APP_DATABASE]["items"].find_one() is not None


def test_sixteen_threads_on_an_expired_cache_make_one_get_secret_value(client_stack: EmbeddedStack) -> None:
    clock = FakeClock()
    with RotatingMongoClient(
        SECRET_ID, secretsmanager_client=client_stack.secretsmanager_client(), policy=POLICY, clock=clock
    ) as rc:
        assert rc.metrics.api_calls == 1
        clock.advance(POLICY.refresh_interval * 3)
        ok, failed = burst(lambda: find_seed(rc.database()), threads=16, per_thread=1)
        assert (ok, failed) == (16, [])
        settle(rc)
        assert rc.metrics.api_calls == 2
        assert rc.metrics.refreshes == 2


def test_a_secret_with_bad_json_keeps_the_old_client(client_stack: EmbeddedStack) -> None:
    clock = FakeClock()
    good = current_secret(client_stack)
    events: list[ClientEvent] = []
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=client_stack.secretsmanager_client(),
        policy=POLICY,
        clock=clock,
        on_event=events.append,
    ) as rc:
        client = rc.client
        sm = client_stack.secretsmanager_client()
        sm.put_secret_value(SecretId=SECRET_ID, SecretString='{"username": "app", "password": "x"')
        try:
            clock.advance(POLICY.refresh_interval)
            find_seed(rc.database())  # starts the refresh; the old client keeps serving
            settle(rc)
            assert rc.client is client
            assert [e.kind for e in events][-1] == "malformed_secret"
            assert rc.run(find_seed)["_id"] == "seed"
        finally:
            promote(client_stack, good)
        clock.advance(POLICY.backoff_cap)
        find_seed(rc.database())
        settle(rc)
        assert rc.metrics.refreshes == 2
        assert rc.client is client  # same login: no switch


def test_secrets_manager_stopped_at_expiry_keeps_serving(client_stack: EmbeddedStack) -> None:
    clock = FakeClock()
    with RotatingMongoClient(SECRET_ID, secretsmanager_client=quick_sm(client_stack), policy=POLICY, clock=clock) as rc:
        client_stack.secretsmanager.stop()
        try:
            clock.advance(POLICY.refresh_interval * 2)
            for _ in range(5):
                find_seed(rc.database())
                rc.run(find_seed)
                settle(rc)
                clock.advance(1.0)
            assert rc.metrics.refresh_failures >= 1
        finally:
            client_stack.secretsmanager.restart()
        clock.advance(POLICY.backoff_cap)
        find_seed(rc.database())
        settle(rc)
        assert rc._gen.retry_at is None  # the next read succeeded
        assert rc.metrics.refreshes == 2


def test_operations_waiting_on_a_refused_client_move_to_the_new_one_at_once(client_stack: EmbeddedStack) -> None:
    """A burst after a password change ends long before pymongo would let the waiters go (a minute here).

    Before: operations already waiting on the refused client waited out server
    selection (pymongo marked the server unknown until its next heartbeat)
    before run() retried them.
    """
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=client_stack.secretsmanager_client(),
        policy=POLICY,
        mongo_options={"serverSelectionTimeoutMS": 60_000, "heartbeatFrequencyMS": 60_000},
    ) as rc:
        rc.run(find_seed)
        change_password(client_stack, stage="AWSCURRENT")
        ok, failed = burst(lambda: rc.run(find_seed), wait=30.0)
        assert failed == []
        assert ok == 160
        assert rc.metrics.auth_recoveries == 1


def test_a_failed_recovery_fails_fast_then_a_fixed_secret_is_used_by_the_first_call_after_the_gap(
    client_stack: EmbeddedStack,
) -> None:
    clock = FakeClock()
    policy = RefreshPolicy(refresh_interval=600.0, forced_refresh_gap=30.0)
    events: list[ClientEvent] = []
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=client_stack.secretsmanager_client(),
        policy=policy,
        clock=clock,
        # Every operation opens a new connection (a login), as connections churn in production.
        mongo_options={**MONGO_OPTIONS, "maxIdleTimeMS": 1},
        on_event=events.append,
    ) as rc:
        rc.run(find_seed)
        refused = rc.client
        document = current_secret(client_stack)
        password = lock_out(client_stack)
        time.sleep(0.01)  # past maxIdleTimeMS: the pooled connection is dropped, the next one logs in
        with pytest.raises(AuthenticationError, match="recovery failed"):
            rc.run(find_seed)
        # Inside the gap: the same error at once, not pymongo's server selection timeout on a poisoned pool.
        for attempt in (lambda: rc.run(find_seed), lambda: find_seed(rc.database())):
            with pytest.raises(AuthenticationError, match="retry later"):
                attempt()
        promote(client_stack, dict(document, password=password))  # an operator fixes the secret
        clock.advance(policy.forced_refresh_gap)
        assert rc.run(find_seed)["_id"] == "seed"  # the first call after the gap, no heartbeat needed
        assert rc.client is refused  # the same stable client, logged in anew
        assert [e.kind for e in events if e.kind.startswith("auth_")] == ["auth_recovery_failed", "auth_recovered"]


def test_a_subscriber_that_closes_the_client_on_a_switch_does_not_hang_it(client_stack: EmbeddedStack) -> None:
    seen: list[str] = []
    rc = RotatingMongoClient(SECRET_ID, secretsmanager_client=client_stack.secretsmanager_client(), policy=POLICY)

    def subscriber(event: ClientEvent) -> None:
        seen.append(event.kind)
        if event.kind == "switched":
            rc.close()

    rc.subscribe(subscriber)
    document = current_secret(client_stack)
    passive = "app_clone" if document["username"] == "app" else "app"
    new = dict(document, username=passive, password="clone :/?#[]@%+ " + secrets.token_hex(4))
    with client_stack.admin_client() as admin:
        admin.admin.command("updateUser", passive, pwd=new["password"])
    promote(client_stack, new)
    worker = threading.Thread(target=rc.refresh_now, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "close() from a subscriber deadlocked the client"
    assert seen == ["refreshed", "switched", "closed"]
    with pytest.raises(DatabaseError, match="closed"):
        rc.run(find_seed)
    assert not any(thread.is_alive() for thread in rc._threads)
