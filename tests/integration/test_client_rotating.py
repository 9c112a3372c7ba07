"""RotatingMongoClient on the embedded stack (moto Secrets Manager + SecantusDB).

The module has a stack of its own (region ap-southeast-2): its tests change
passwords, secrets and stop Secrets Manager.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from pymongo.errors import PyMongoError

from client import AuthenticationError, ClientEvent, DatabaseError, RefreshPolicy, RotatingMongoClient
from embedded_stack.stack import APP_DATABASE, DUMMY_AWS_ENV, EmbeddedStack
from tests.conftest import FakeClock
from tests.helpers import settle

SECRET_ID = "mongodb-app"
POLICY = RefreshPolicy(refresh_interval=600.0, jitter=0.1, backoff_base=1.0, backoff_cap=10.0)
# Old clients wait for a paused pool: keep that wait short in tests.
MONGO_OPTIONS = {"serverSelectionTimeoutMS": 2000}


@pytest.fixture(scope="module")
def own_stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(region="ap-southeast-2") as running:
        yield running


def quick_sm(stack: EmbeddedStack) -> Any:
    """A Secrets Manager client that fails fast (one attempt) when the server is down."""
    session = boto3.session.Session(
        aws_access_key_id=DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=stack.region,
    )
    config = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 1})
    return session.client("secretsmanager", endpoint_url=stack.secretsmanager.url, config=config)


def current_secret(stack: EmbeddedStack) -> dict[str, Any]:
    sm = stack.secretsmanager_client()
    return dict(json.loads(sm.get_secret_value(SecretId=SECRET_ID)["SecretString"]))


def change_password(stack: EmbeddedStack, *, stage: str) -> dict[str, Any]:
    """What an admin (or a rotation's setSecret step) does: new version in ``stage``, then the database."""
    document = current_secret(stack)
    document["password"] = "n3w :/?#[]@%+ " + secrets.token_hex(4)
    sm = stack.secretsmanager_client()
    sm.put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(document), VersionStages=[stage])
    with stack.admin_client() as admin:
        admin.admin.command("updateUser", document["username"], pwd=document["password"])
    return document


def promote(stack: EmbeddedStack, document: dict[str, Any]) -> None:
    stack.secretsmanager_client().put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps(document), VersionStages=["AWSCURRENT"]
    )


def burst(
    op: Callable[[], object], *, threads: int = 8, per_thread: int = 20, wait: float = 60.0
) -> tuple[int, list[str]]:
    """Run ``op`` from many threads at once; count successes and collect failures (and threads still running)."""
    barrier = threading.Barrier(threads)
    ok: list[int] = []
    failed: list[str] = []

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            try:
                op()
                ok.append(1)
            except PyMongoError as exc:
                failed.append(f"{type(exc).__name__}: {getattr(exc, 'code', None)}")

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    deadline = time.monotonic() + wait
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))
    failed.extend("still running" for thread in workers if thread.is_alive())
    return len(ok), failed


def find_seed(db: Any) -> Any:
    document = db["items"].find_one({"_id": "seed"})
    assert document is not None
    return document


@pytest.mark.parametrize("stage", ["AWSCURRENT", "AWSPENDING"])
def test_password_change_then_burst_gives_no_failed_operation_through_the_client(
    own_stack: EmbeddedStack, stage: str
) -> None:
    events: list[ClientEvent] = []
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=own_stack.secretsmanager_client(),
        policy=POLICY,
        mongo_options=MONGO_OPTIONS,
        on_event=events.append,
    ) as rc:
        rc.run(find_seed)  # one authenticated socket in the pool, as in a running app
        old_version = rc.credentials.version_id
        document = change_password(own_stack, stage=stage)
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
        promote(own_stack, document)  # finish the "rotation" for the next tests


def test_collection_operations_recover_transparently_after_a_password_change(own_stack: EmbeddedStack) -> None:
    """`rc.collection(...)` needs no `run`: reads and writes recover by themselves."""
    with RotatingMongoClient(
        SECRET_ID, secretsmanager_client=own_stack.secretsmanager_client(), policy=POLICY, mongo_options=MONGO_OPTIONS
    ) as rc:
        items = rc.collection("items")
        assert items.find_one({"_id": "seed"}) is not None
        document = change_password(own_stack, stage="AWSCURRENT")
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


def test_the_same_burst_through_a_plain_mongoclient_fails(own_stack: EmbeddedStack) -> None:
    """Why the rotating client exists: pymongo cannot recover from a password change by itself."""
    document = current_secret(own_stack)
    with own_stack.mongo_client(document["username"], document["password"], serverSelectionTimeoutMS=500) as plain:
        find_seed(plain[APP_DATABASE])
        new = change_password(own_stack, stage="AWSCURRENT")
        ok, failed = burst(lambda: find_seed(plain[APP_DATABASE]), per_thread=3)
    assert failed, "a plain MongoClient survived a password change: the premise of the client is gone"
    assert ok + len(failed) == 24
    assert new["password"] != document["password"]


def test_planned_switch_under_load_fails_nothing_and_closes_the_old_client(own_stack: EmbeddedStack) -> None:
    # The rotation's steps for the passive user: new password for it, then AWSCURRENT names it.
    document = current_secret(own_stack)
    passive = "app_clone" if document["username"] == "app" else "app"
    with RotatingMongoClient(
        SECRET_ID, secretsmanager_client=own_stack.secretsmanager_client(), policy=POLICY, close_grace=0.0
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
        with own_stack.admin_client() as admin:
            admin.admin.command("updateUser", passive, pwd=new["password"])
        promote(own_stack, new)
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
        with pytest.raises(PyMongoError):  # closed after the running operations finished
            old_client[APP_DATABASE]["items"].find_one()


def test_sixteen_threads_on_an_expired_cache_make_one_get_secret_value(own_stack: EmbeddedStack) -> None:
    clock = FakeClock()
    with RotatingMongoClient(
        SECRET_ID, secretsmanager_client=own_stack.secretsmanager_client(), policy=POLICY, clock=clock
    ) as rc:
        assert rc.metrics.api_calls == 1
        clock.advance(POLICY.refresh_interval * 3)
        ok, failed = burst(lambda: find_seed(rc.database()), threads=16, per_thread=1)
        assert (ok, failed) == (16, [])
        settle(rc)
        assert rc.metrics.api_calls == 2
        assert rc.metrics.refreshes == 2


def test_a_secret_with_bad_json_keeps_the_old_client(own_stack: EmbeddedStack) -> None:
    clock = FakeClock()
    good = current_secret(own_stack)
    events: list[ClientEvent] = []
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=own_stack.secretsmanager_client(),
        policy=POLICY,
        clock=clock,
        on_event=events.append,
    ) as rc:
        client = rc.client
        sm = own_stack.secretsmanager_client()
        sm.put_secret_value(SecretId=SECRET_ID, SecretString='{"username": "app", "password": "x"')
        try:
            clock.advance(POLICY.refresh_interval)
            find_seed(rc.database())  # starts the refresh; the old client keeps serving
            settle(rc)
            assert rc.client is client
            assert [e.kind for e in events][-1] == "malformed_secret"
            assert rc.run(find_seed)["_id"] == "seed"
        finally:
            promote(own_stack, good)
        clock.advance(POLICY.backoff_cap)
        find_seed(rc.database())
        settle(rc)
        assert rc.metrics.refreshes == 2
        assert rc.client is client  # same login: no switch


def test_secrets_manager_stopped_at_expiry_keeps_serving(own_stack: EmbeddedStack) -> None:
    clock = FakeClock()
    with RotatingMongoClient(SECRET_ID, secretsmanager_client=quick_sm(own_stack), policy=POLICY, clock=clock) as rc:
        own_stack.secretsmanager.stop()
        try:
            clock.advance(POLICY.refresh_interval * 2)
            for _ in range(5):
                find_seed(rc.database())
                rc.run(find_seed)
                settle(rc)
                clock.advance(1.0)
            assert rc.metrics.refresh_failures >= 1
        finally:
            own_stack.secretsmanager.restart()
        clock.advance(POLICY.backoff_cap)
        find_seed(rc.database())
        settle(rc)
        assert rc._gen.retry_at is None  # the next read succeeded
        assert rc.metrics.refreshes == 2


def lock_out(stack: EmbeddedStack) -> str:
    """Give both application users passwords no version of the secret holds; returns the current user's."""
    password = "locked out :/?#[]@%+ " + secrets.token_hex(4)
    with stack.admin_client() as admin:
        for user in ("app", "app_clone"):
            admin.admin.command("updateUser", user, pwd=password)
    return password


def test_operations_waiting_on_a_refused_client_move_to_the_new_one_at_once(own_stack: EmbeddedStack) -> None:
    """A burst after a password change ends long before pymongo would let the waiters go (a minute here).

    Before: operations already waiting on the refused client waited out server
    selection (pymongo marked the server unknown until its next heartbeat)
    before run() retried them.
    """
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=own_stack.secretsmanager_client(),
        policy=POLICY,
        mongo_options={"serverSelectionTimeoutMS": 60_000, "heartbeatFrequencyMS": 60_000},
    ) as rc:
        rc.run(find_seed)
        change_password(own_stack, stage="AWSCURRENT")
        ok, failed = burst(lambda: rc.run(find_seed), wait=30.0)
        assert failed == []
        assert ok == 160
        assert rc.metrics.auth_recoveries == 1


def test_a_failed_recovery_fails_fast_then_a_fixed_secret_is_used_by_the_first_call_after_the_gap(
    own_stack: EmbeddedStack,
) -> None:
    clock = FakeClock()
    policy = RefreshPolicy(refresh_interval=600.0, forced_refresh_gap=30.0)
    events: list[ClientEvent] = []
    with RotatingMongoClient(
        SECRET_ID,
        secretsmanager_client=own_stack.secretsmanager_client(),
        policy=policy,
        clock=clock,
        # Every operation opens a new connection (a login), as connections churn in production.
        mongo_options={**MONGO_OPTIONS, "maxIdleTimeMS": 1},
        on_event=events.append,
    ) as rc:
        rc.run(find_seed)
        refused = rc.client
        document = current_secret(own_stack)
        password = lock_out(own_stack)
        time.sleep(0.01)  # past maxIdleTimeMS: the pooled connection is dropped, the next one logs in
        with pytest.raises(AuthenticationError, match="recovery failed"):
            rc.run(find_seed)
        # Inside the gap: the same error at once, not pymongo's server selection timeout on a poisoned pool.
        for attempt in (lambda: rc.run(find_seed), lambda: find_seed(rc.database())):
            with pytest.raises(AuthenticationError, match="retry later"):
                attempt()
        promote(own_stack, dict(document, password=password))  # an operator fixes the secret
        clock.advance(policy.forced_refresh_gap)
        assert rc.run(find_seed)["_id"] == "seed"  # the first call after the gap, no heartbeat needed
        assert rc.client is not refused
        assert [e.kind for e in events if e.kind.startswith("auth_")] == ["auth_recovery_failed", "auth_recovered"]


def test_a_subscriber_that_closes_the_client_on_a_switch_does_not_hang_it(own_stack: EmbeddedStack) -> None:
    seen: list[str] = []
    rc = RotatingMongoClient(SECRET_ID, secretsmanager_client=own_stack.secretsmanager_client(), policy=POLICY)

    def subscriber(event: ClientEvent) -> None:
        seen.append(event.kind)
        if event.kind == "switched":
            rc.close()

    rc.subscribe(subscriber)
    document = current_secret(own_stack)
    passive = "app_clone" if document["username"] == "app" else "app"
    new = dict(document, username=passive, password="clone :/?#[]@%+ " + secrets.token_hex(4))
    with own_stack.admin_client() as admin:
        admin.admin.command("updateUser", passive, pwd=new["password"])
    promote(own_stack, new)
    worker = threading.Thread(target=rc.refresh_now, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "close() from a subscriber deadlocked the client"
    assert seen == ["refreshed", "switched", "closed"]
    with pytest.raises(DatabaseError, match="closed"):
        rc.run(find_seed)
    assert not any(thread.is_alive() for thread in rc._threads)
