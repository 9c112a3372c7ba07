"""Fakes for the rotating clients' unit tests: a boto3-shaped Secrets Manager and MongoDB clients.

The fake database accepts a login when its password table says so; the
recording factories keep every client they built (sync and async), so tests
count builds and check which client was closed.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError
from pymongo.errors import AutoReconnect, OperationFailure

from secretswitch.client.credentials import MongoCredentials


def secret_string(username: str = "app", password: str = "pw-1", **extra: Any) -> str:
    document = {
        "engine": "mongo",
        "host": "db.example",
        "port": 27017,
        "username": username,
        "password": password,
        "dbname": "mydb",
        "authSource": "admin",
        "ssl": False,
    }
    document.update(extra)
    return json.dumps(document)


class FakeSecretsManager:
    """A boto3-shaped Secrets Manager client holding one secret's versions in memory."""

    def __init__(self, initial: str | None = None) -> None:
        self.versions: dict[str, str] = {}
        self.stages: dict[str, str] = {}
        self.calls: list[tuple[str, str | None]] = []
        self.failure: Exception | None = None
        self.gate: threading.Event | None = None  # when set, calls block until it is set
        self.entered = threading.Event()
        self.rotation: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.put(initial if initial is not None else secret_string())

    def put(self, string: str, stage: str = "AWSCURRENT") -> str:
        version_id = str(uuid.uuid4())
        with self._lock:
            self.versions[version_id] = string
            if stage == "AWSCURRENT" and "AWSCURRENT" in self.stages:
                self.stages["AWSPREVIOUS"] = self.stages["AWSCURRENT"]
            self.stages[stage] = version_id
        return version_id

    def get_calls(self) -> int:
        return sum(1 for name, _ in self.calls if name == "GetSecretValue")

    def get_secret_value(self, *, SecretId: str, VersionStage: str = "AWSCURRENT") -> dict[str, Any]:
        with self._lock:
            self.calls.append(("GetSecretValue", VersionStage))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if self.failure is not None:
            raise self.failure
        with self._lock:
            version_id = self.stages.get(VersionStage)
            if version_id is None:
                raise ClientError(
                    {"Error": {"Code": "ResourceNotFoundException", "Message": "no such version"}}, "GetSecretValue"
                )
            return {
                "VersionId": version_id,
                "VersionStages": [s for s, v in self.stages.items() if v == version_id],
                "SecretString": self.versions[version_id],
            }

    def describe_secret(self, *, SecretId: str) -> dict[str, Any]:
        self.calls.append(("DescribeSecret", None))
        return dict(self.rotation)


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetSecretValue")


def unreachable() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


class FakeDatabase:
    def __init__(self, client: FakeMongoClient, name: str) -> None:
        self.client = client
        self.name = name

    def command(self, name: str) -> dict[str, Any]:
        self.client.check()
        return {"ok": 1}

    def find_one(self) -> dict[str, Any]:
        self.client.check()
        return {"user": self.client.credentials.username}


class FakeMongoClient:
    """Accepts the login when the database says so; records closes."""

    def __init__(self, server: FakeMongoServer, credentials: MongoCredentials, options: Mapping[str, Any]) -> None:
        self.server = server
        self.credentials = credentials
        self.options = dict(options)
        self.closed = False
        self.operations = 0
        self.refused_logins = 0
        self.admin = FakeDatabase(self, "admin")

    def __getitem__(self, name: str) -> FakeDatabase:
        return FakeDatabase(self, name)

    def check(self) -> None:
        self.operations += 1
        if self.closed:
            raise AssertionError("operation on a closed client")
        if self.server.down:
            raise AutoReconnect("server down")
        if self.server.passwords.get(self.credentials.username) != self.credentials.password:
            self.refused_logins += 1
            raise OperationFailure("Authentication failed.", code=18)

    def close(self) -> None:
        self.closed = True


class FakeMongoServer:
    """What the database accepts, and a recording client factory."""

    def __init__(self, **passwords: str) -> None:
        self.passwords = dict(passwords) or {"app": "pw-1"}
        self.down = False
        self.built: list[FakeMongoClient] = []
        self.adopted: list[MongoCredentials] = []

    def adopt(self, stable: FakeMongoClient, candidate: FakeMongoClient) -> None:
        """The fake's login hand-over: the stable client logs in as the checked candidate."""
        stable.credentials = candidate.credentials
        self.adopted.append(candidate.credentials)

    async def adopt_async(self, stable: FakeMongoClient, candidate: FakeMongoClient) -> None:
        self.adopt(stable, candidate)

    def factory(self, credentials: MongoCredentials, options: Mapping[str, Any]) -> Any:
        client = FakeMongoClient(self, credentials, options)
        self.built.append(client)
        return client

    def async_factory(self, credentials: MongoCredentials, options: Mapping[str, Any]) -> Any:
        client = FakeAsyncMongoClient(self, credentials, options)
        self.built.append(client)
        return client


class FakeAsyncDatabase:
    def __init__(self, client: FakeAsyncMongoClient, name: str) -> None:
        self.client = client
        self.name = name

    async def command(self, name: str) -> dict[str, Any]:
        self.client.check()
        return {"ok": 1}

    async def find_one(self) -> dict[str, Any]:
        self.client.check()
        return {"user": self.client.credentials.username}


class FakeAsyncMongoClient(FakeMongoClient):
    """The same login rules, with awaitable operations and ``close``."""

    def __init__(self, server: FakeMongoServer, credentials: MongoCredentials, options: Mapping[str, Any]) -> None:
        super().__init__(server, credentials, options)
        self.admin = FakeAsyncDatabase(self, "admin")

    def __getitem__(self, name: str) -> FakeAsyncDatabase:
        return FakeAsyncDatabase(self, name)

    async def close(self) -> None:
        self.closed = True
