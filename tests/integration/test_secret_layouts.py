"""Every real secret layout rotates under load: AWS's format, the article's, the stack's and the ``uri`` one.

Each layout gets its own users and secret on the session's embedded stack and
is rotated 4 times with plain boto3 ``rotate_secret`` (moto invokes the
rotation function in-process) while a ``RotatingMongoClient`` runs inserts and
reads from worker threads. After each rotation: AWSCURRENT and AWSPREVIOUS log
in and read the application's database, nothing is left ``AWSPENDING``, and the
client switches to the new user (its clock is a fake one, moved past the
refresh interval). At the end: 0 failed operations and every acknowledged
insert is there exactly once.

The article's format without a port means 27017: that case starts a stack of
its own on 27017 and is skipped, with the reason, when the port is taken.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymongo import MongoClient

from secretswitch.client import RefreshPolicy, RotatingMongoClient
from secretswitch.client.credentials import parse_secret
from secretswitch.embedded_stack.errors import LocalStackError
from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack
from secretswitch.rotation_lambda.rules import AWS_DEFAULT_EXCLUDE_CHARACTERS
from secretswitch.rotation_tools.rotate import rotate_secret
from tests.conftest import FakeClock
from tests.helpers import settle

ROTATIONS = 4
WORKERS = 3
POLICY = RefreshPolicy(refresh_interval=600.0, jitter=0.1, backoff_base=1.0, backoff_cap=10.0)
# The application's roles: read and write mydb, nothing on the login database.
APP_ROLES = [{"role": "readWrite", "db": APP_DATABASE}]
RESULTS: dict[str, dict[str, int]] = {}  # layout -> counts, printed at the end of the module


@dataclass(frozen=True)
class Layout:
    """How one secret layout names the server and the databases."""

    name: str
    users_db: str  # where the users are defined (the login database)
    fields: Callable[[str, int], dict[str, Any]]  # host, port -> the secret's connection fields
    uri_master: bool = False  # the master secret must be in the uri format too


LAYOUTS = [
    Layout("aws-users-in-admin-dbname-admin", "admin", lambda h, p: {"engine": "mongo", "host": h, "port": p,
                                                                      "dbname": "admin", "ssl": False}),
    Layout("aws-users-in-admin-no-dbname", "admin", lambda h, p: {"engine": "mongo", "host": h, "port": p}),
    Layout("aws-users-in-mydb-dbname-mydb", APP_DATABASE, lambda h, p: {"engine": "mongo", "host": h, "port": str(p),
                                                                         "dbname": APP_DATABASE, "ssl": "false"}),
    Layout("stack-dbname-mydb-authsource-admin", "admin", lambda h, p: {"engine": "mongo", "host": h, "port": p,
                                                                         "dbname": APP_DATABASE,
                                                                         "authSource": "admin"}),
    Layout("article-ipaddress-with-port", "admin", lambda h, p: {"ipaddress": h, "port": p}),
    Layout("uri", "admin", lambda h, p: {"engine": "mongo", "uri": f"mongodb://{h}:{p}/?directConnection=true"},
           uri_master=True),
]  # fmt: skip
ARTICLE_27017 = Layout("article-ipaddress-port-27017-implied", "admin", lambda h, p: {"ipaddress": h})


@dataclass
class Workload:
    """Worker threads inserting and reading through the rotating client."""

    rc: RotatingMongoClient
    run_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    acknowledged: list[tuple[int, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    operations: list[int] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for worker in range(WORKERS):
            thread = threading.Thread(target=self._work, args=(worker,), name=f"layout-worker-{worker}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _work(self, worker: int) -> None:
        seq = 0
        done = 0
        while not self.stop.is_set():
            seq += 1
            document = {"_id": uuid.uuid4().hex, "run": self.run_id, "worker": worker, "seq": seq}
            try:
                self.rc.run(lambda db, document=document: db["layout_writes"].insert_one(document))
                with self.lock:
                    self.acknowledged.append((worker, seq))
                self.rc.run(lambda db: db["layout_writes"].find_one({"run": self.run_id}, projection={"_id": 1}))
                done += 2
            except Exception as exc:
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(0.005)
        with self.lock:
            self.operations.append(done)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _versions(sm: Any, secret_id: str) -> dict[str, list[str]]:
    stages = sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    return {version: sorted(labels) for version, labels in stages.items() if labels}


def _client_for(stack: EmbeddedStack, secret_string: str) -> MongoClient[dict[str, Any]]:
    credentials = parse_secret(secret_string, secret_id="layout-check")
    return MongoClient(**credentials.client_kwargs(), serverSelectionTimeoutMS=3000)


def _reads_app_database(stack: EmbeddedStack, secret_string: str) -> bool:
    with _client_for(stack, secret_string) as client:
        try:
            client[APP_DATABASE].list_collection_names()
        except Exception:
            return False
    return True


def _master_arn(stack: EmbeddedStack, layout: Layout, host: str, port: int) -> str:
    if not layout.uri_master:
        return stack.info.admin_secret_arn
    # connection_differences compares how the two secrets reach MongoDB: the master must use the same URI.
    sm = stack.secretsmanager_client()
    document = {
        **layout.fields(host, port),
        "username": stack.info.admin_username,
        "password": stack.info.admin_password,
        "authSource": "admin",
    }
    name = f"layout-master-{uuid.uuid4().hex[:6]}"
    return sm.create_secret(Name=name, SecretString=json.dumps(document))["ARN"]


def _provision(stack: EmbeddedStack, layout: Layout) -> tuple[str, str]:
    """Create the layout's first user (its partner is created by the first rotation) and its secret."""
    host, port = stack.info.mongo_host, stack.info.mongo_port
    user = f"l{uuid.uuid4().hex[:6]}"
    password = "Lay0ut-" + secrets.token_urlsafe(18)
    with stack.admin_client() as admin:
        admin[layout.users_db].command("createUser", user, pwd=password, roles=APP_ROLES)
    document = {**layout.fields(host, port), "username": user, "password": password}
    document["masterarn"] = _master_arn(stack, layout, host, port)
    secret_id = f"layout-{layout.name}-{uuid.uuid4().hex[:6]}"
    stack.secretsmanager_client().create_secret(Name=secret_id, SecretString=json.dumps(document))
    return secret_id, user


def _rotate_under_load(stack: EmbeddedStack, layout: Layout) -> dict[str, int]:
    sm = stack.secretsmanager_client()
    secret_id, first_user = _provision(stack, layout)
    clock = FakeClock()
    rc = RotatingMongoClient(
        secret_id,
        database=APP_DATABASE,
        secretsmanager_client=sm,
        policy=POLICY,
        clock=clock,
        mongo_options={"serverSelectionTimeoutMS": 3000},
        close_grace=0.1,  # operations go through run(): no handle outlives a switch
    )
    workload = Workload(rc, run_id=uuid.uuid4().hex)
    users = [rc.active_user]
    try:
        workload.start()
        for rotation in range(1, ROTATIONS + 1):
            # Plain boto3, as an operator or the schedule would; moto runs the four steps in-process.
            sm.rotate_secret(
                SecretId=secret_id,
                RotationLambdaARN=stack.rotation_function_arn,
                RotationRules={"AutomaticallyAfterDays": 7},
            )
            versions = _versions(sm, secret_id)
            assert not any("AWSPENDING" in stages for stages in versions.values()), (rotation, versions)
            current = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
            previous = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSPREVIOUS")
            # AWS's default alphabet: nothing that breaks a connection string (mongosh) or a shell.
            assert not set(json.loads(current["SecretString"])["password"]) & set(AWS_DEFAULT_EXCLUDE_CHARACTERS)
            assert _reads_app_database(stack, current["SecretString"]), (layout.name, rotation, "AWSCURRENT")
            assert _reads_app_database(stack, previous["SecretString"]), (layout.name, rotation, "AWSPREVIOUS")
            # The client's next refresh is due: it switches to the new user (no wall-clock wait).
            clock.advance(POLICY.refresh_interval + 1)
            rc.run(lambda db: db.command("ping"))
            settle(rc)
            assert rc.credentials.version_id == current["VersionId"], (layout.name, rotation)
            users.append(rc.active_user)
    finally:
        workload.finish()
    with _client_for(stack, sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]) as c:
        found = [
            (doc["worker"], doc["seq"])
            for doc in c[APP_DATABASE]["layout_writes"].find({"run": workload.run_id}, projection={"_id": 0})
        ]
    rc.close()
    assert workload.failures == [], workload.failures[:5]
    assert users == [first_user, f"{first_user}_clone"] * (ROTATIONS // 2) + [first_user]
    assert sorted(found) == sorted(workload.acknowledged), "an acknowledged write is missing or duplicated"
    assert len(workload.acknowledged) > 0
    return {
        "rotations": ROTATIONS,
        "operations": sum(workload.operations),
        "failed": len(workload.failures),
        "writes": len(workload.acknowledged),
    }


@pytest.mark.parametrize("layout", LAYOUTS, ids=[layout.name for layout in LAYOUTS])
def test_each_layout_rotates_four_times_under_load(stack: EmbeddedStack, layout: Layout) -> None:
    RESULTS[layout.name] = _rotate_under_load(stack, layout)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def stack_on_27017() -> Iterator[EmbeddedStack]:
    if not _port_free(27017):
        pytest.skip("port 27017 is taken on this machine; the article's format implies it")
    try:
        with EmbeddedStack(region="ap-northeast-3", mongo_port=27017) as running:
            yield running
    except LocalStackError as exc:
        if "already in use" in str(exc):
            pytest.skip(f"port 27017 was taken meanwhile: {exc}")
        raise


def test_the_article_format_without_a_port_rotates_on_27017(stack_on_27017: EmbeddedStack) -> None:
    RESULTS[ARTICLE_27017.name] = _rotate_under_load(stack_on_27017, ARTICLE_27017)


def test_a_secret_left_by_awss_own_function_rotates_with_ours(stack: EmbeddedStack) -> None:
    """AWS's function copies the whole document, changes username and password, and leaves AWSPENDING on AWSCURRENT."""
    sm = stack.secretsmanager_client()
    host, port = stack.info.mongo_host, stack.info.mongo_port
    base = f"aws{uuid.uuid4().hex[:6]}"
    passwords = {base: "Aws-" + secrets.token_urlsafe(18), f"{base}_clone": "Aws-" + secrets.token_urlsafe(18)}
    with stack.admin_client() as admin:
        for user, password in passwords.items():
            admin.admin.command("createUser", user, pwd=password, roles=APP_ROLES)
    document = {"engine": "mongo", "host": host, "port": port, "username": base, "password": passwords[base],
                "dbname": "admin", "masterarn": stack.info.admin_secret_arn}  # fmt: skip
    secret_id = f"aws-left-{uuid.uuid4().hex[:6]}"
    first = sm.create_secret(Name=secret_id, SecretString=json.dumps(document))["VersionId"]
    # What AWS's SecretsManagerMongoDBRotationMultiUser leaves after its rotation: the clone promoted,
    # AWSPENDING still on that version (AWS counts it as finished).
    clone = {**document, "username": f"{base}_clone", "password": passwords[f"{base}_clone"]}
    promoted = sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(clone), VersionStages=["AWSCURRENT"])
    sm.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", MoveToVersionId=promoted["VersionId"])
    assert _versions(sm, secret_id) == {first: ["AWSPREVIOUS"], promoted["VersionId"]: ["AWSCURRENT", "AWSPENDING"]}

    outcome = rotate_secret(sm, secret_id, rotation_lambda_arn=stack.rotation_function_arn)
    assert outcome.completed, outcome.message
    current = json.loads(sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"])
    assert current["username"] == base  # the clone's partner: AWS's _clone rule, continued
    assert {k: v for k, v in current.items() if k != "password"} == {
        k: v for k, v in document.items() if k != "password"
    }
    versions = _versions(sm, secret_id)
    assert versions[outcome.token] == ["AWSCURRENT"]
    assert not any("AWSPENDING" in stages for stages in versions.values()), versions
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        assert _reads_app_database(stack, sm.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])


def test_the_stacks_first_passwords_follow_awss_alphabet(stack: EmbeddedStack) -> None:
    passwords = [stack.info.admin_password, *stack.info.app_passwords.values()]
    assert all(len(password) >= 32 for password in passwords)
    assert not set("".join(passwords)) & set(AWS_DEFAULT_EXCLUDE_CHARACTERS)
    # Still symbols in them: the client must cope with any character a rotation may produce.
    assert any(not ch.isalnum() for ch in "".join(passwords))


def test_zz_matrix_results(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the matrix (rotations, operations, failed, writes per layout) for the record."""
    assert RESULTS, "no layout ran"
    with capsys.disabled():
        print("\nlayout matrix:")
        for name, counts in RESULTS.items():
            print(f"  {name:40} " + " ".join(f"{key}={value}" for key, value in counts.items()))
