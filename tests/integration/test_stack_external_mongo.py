"""MONGODB_URI: the embedded Secrets Manager with a MongoDB the stack did not start.

A second SecantusDB process stands in for "a real mongod or Atlas": the stack
only sees a connection string with a user administrator, as it would there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from pymongo import MongoClient

from secretswitch.client import RotatingMongoClient
from secretswitch.client.credentials import parse_secret
from secretswitch.embedded_stack.errors import LocalStackError
from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack, SecantusServer
from secretswitch.rotation_tools.rotate import rotate_secret

ROOT_PASSWORD = "root pw with :/?#[]@%+ inside"


@pytest.fixture(scope="module")
def external_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB with auth and one user administrator, started outside the stack; yields its URI."""
    where: Path = tmp_path_factory.mktemp("external-mongo")
    server = SecantusServer(where / "data", where / "log")
    server.start(auth=False)
    with MongoClient(server.host, server.port, directConnection=True) as bootstrap:
        bootstrap.admin.command(
            "createUser", "root", pwd=ROOT_PASSWORD, roles=[{"role": "userAdminAnyDatabase", "db": "admin"}]
        )
    server.restart(auth=True)
    try:
        yield f"mongodb://root:{quote_plus(ROOT_PASSWORD)}@{server.host}:{server.port}/?authSource=admin"
    finally:
        server.stop()


def _users(uri: str) -> set[str]:
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as admin:
        return {user["user"] for user in admin.admin.command("usersInfo")["users"]}


def test_stack_provisions_rotates_and_cleans_up_on_an_external_mongodb(external_mongo: str) -> None:
    with EmbeddedStack(region="us-west-2", mongodb_uri=external_mongo) as stack:
        assert stack.mongo is None, "no SecantusDB may be started when MONGODB_URI is given"
        assert {"app", "app_clone"} <= _users(external_mongo)
        sm = stack.secretsmanager_client()
        document = json.loads(sm.get_secret_value(SecretId="mongodb-app")["SecretString"])
        assert "host" not in document
        assert document["uri"].startswith("mongodb://127.0.0.1:")
        assert "root" not in document["uri"], "the connection string in a secret carries no credentials"
        assert stack.info.environment()["SECRETSWITCH_ADMIN_MONGODB_URI"] == external_mongo
        assert "MONGODB_URI" not in stack.info.environment(), "the input variable is never exported"

        outcome = rotate_secret(sm, "mongodb-app", rotation_lambda_arn=stack.rotation_function_arn)
        assert outcome.completed, outcome.message
        current = parse_secret(
            sm.get_secret_value(SecretId="mongodb-app", VersionStage="AWSCURRENT")["SecretString"],
            secret_id="mongodb-app",
        )
        assert current.username == "app_clone"
        with RotatingMongoClient("mongodb-app", secretsmanager_client=sm) as rc:
            assert rc.active_user == "app_clone"
            assert rc.run(lambda db: db["items"].find_one({"_id": "seed"})) is not None
            assert rc.database().name == APP_DATABASE
    assert not {"app", "app_clone"} & _users(external_mongo), "the stack must drop the users it created"


def test_existing_users_are_never_taken_over(external_mongo: str) -> None:
    with MongoClient(external_mongo) as admin:
        admin.admin.command("createUser", "app", pwd="someone else's password", roles=[])
    try:
        stack = EmbeddedStack(region="eu-west-3", mongodb_uri=external_mongo)
        with pytest.raises(LocalStackError, match="user 'app' already exists"):
            stack.start()
        # The refusal changed nothing: the foreign user still logs in with its own password.
        without_credentials = "mongodb://" + external_mongo.split("@", 1)[1]
        with MongoClient(
            without_credentials, username="app", password="someone else's password", serverSelectionTimeoutMS=5000
        ) as foreign:
            foreign.admin.command("ping")
        assert "app_clone" not in _users(external_mongo)
    finally:
        with MongoClient(external_mongo) as admin:
            admin.admin.command("dropUser", "app")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://example.com", "not a valid MongoDB connection string"),
        ("mongodb://127.0.0.1:27017/", "no user name and password"),
    ],
)
def test_a_bad_mongodb_uri_is_refused_before_anything_starts(uri: str, message: str) -> None:
    with pytest.raises(LocalStackError, match=message):
        EmbeddedStack(region="eu-south-1", mongodb_uri=uri)
