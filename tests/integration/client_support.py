"""What the rotating clients' integration tests share: one embedded stack and the moves of a rotation.

The stack (region ap-southeast-2) is shared by the threaded and the asyncio
client's modules: their tests change passwords and secrets and stop Secrets
Manager, so each test reads the secret's current state first instead of
assuming one.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from pymongo.errors import PyMongoError

from secretswitch.client import RefreshPolicy
from secretswitch.embedded_stack.stack import DUMMY_AWS_ENV, EmbeddedStack

SECRET_ID = "mongodb-app"
POLICY = RefreshPolicy(refresh_interval=600.0, jitter=0.1, backoff_base=1.0, backoff_cap=10.0)
# Old clients wait for a paused pool: keep that wait short in tests.
MONGO_OPTIONS = {"serverSelectionTimeoutMS": 2000}


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


def passive_user(document: dict[str, Any]) -> str:
    return "app_clone" if document["username"] == "app" else "app"


def rotate_passive(stack: EmbeddedStack) -> dict[str, Any]:
    """A planned rotation's effect: the passive user gets a new password, then AWSCURRENT names it."""
    document = current_secret(stack)
    passive = passive_user(document)
    new = dict(document, username=passive, password="clone :/?#[]@%+ " + secrets.token_hex(4))
    with stack.admin_client() as admin:
        admin.admin.command("updateUser", passive, pwd=new["password"])
    promote(stack, new)
    return new


def lock_out(stack: EmbeddedStack) -> str:
    """Give both application users passwords no version of the secret holds; returns the current user's."""
    password = "locked out :/?#[]@%+ " + secrets.token_hex(4)
    with stack.admin_client() as admin:
        for user in ("app", "app_clone"):
            admin.admin.command("updateUser", user, pwd=password)
    return password
