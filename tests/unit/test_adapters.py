"""The adapters' own checks, and MongoEngine's ``disconnect`` (the stacks: tests/integration/test_stacks.py)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from bson.codec_options import CodecOptions

from secretswitch.client import ConfigurationError, RotatingMongoClient


class _RecordingClient:
    """Stands in for ``rc.client``: records ``close()`` and names databases."""

    codec_options = CodecOptions()

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1

    def __getitem__(self, name: str) -> str:
        return f"db:{name}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", 27017)


class _Database:
    name = "mydb"


class _FakeRotating:
    def __init__(self) -> None:
        self.client = _RecordingClient()

    def database(self, name: str | None = None) -> _Database:
        return _Database()


def test_mongoengine_disconnect_never_closes_the_rotating_client() -> None:
    import mongoengine

    from secretswitch.client.adapters.mongoengine import SharedClient, connect

    fake = _FakeRotating()
    shared = connect(cast(RotatingMongoClient, fake), alias="adapter-test")
    try:
        assert isinstance(shared, SharedClient)
        assert mongoengine.get_connection("adapter-test") is shared
        assert shared["reports"] == "db:reports"  # everything else is rc.client's
        assert shared.address == ("127.0.0.1", 27017)
        assert mongoengine.get_db("adapter-test") == "db:mydb"  # rc's default database
        settings = mongoengine.connection._connection_settings["adapter-test"]
        assert settings["uuidRepresentation"] == "unspecified"  # what rc's client uses, not MongoEngine's guess
    finally:
        mongoengine.disconnect("adapter-test")
    assert fake.client.closed == 0


@pytest.mark.parametrize("option", ["host", "username", "password", "mongo_client_class"])
def test_mongoengine_connect_refuses_a_second_login(option: str) -> None:
    from secretswitch.client.adapters.mongoengine import connect

    with pytest.raises(ConfigurationError, match=option):
        connect(cast(RotatingMongoClient, _FakeRotating()), alias="refused", **{option: "x"})


def test_beanie_needs_the_asyncio_client() -> None:
    from secretswitch.client.adapters.beanie import init_beanie

    with pytest.raises(ConfigurationError, match="AsyncRotatingMongoClient"):
        asyncio.run(init_beanie(cast(Any, _FakeRotating()), document_models=[]))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"NAME": "mydb", "OPTIONS": {}}, "needs 'secret_id'"),
        ({"NAME": "mydb", "OPTIONS": {"secret_id": ""}}, "needs 'secret_id'"),
        ({"NAME": "mydb", "HOST": "db.example", "OPTIONS": {"secret_id": "s"}}, "leave HOST empty"),
        ({"NAME": "mydb", "USER": "u", "PASSWORD": "p", "OPTIONS": {"secret_id": "s"}}, "leave USER, PASSWORD empty"),
    ],
)
def test_the_django_engine_takes_its_login_from_the_secret_only(settings: dict[str, Any], message: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from secretswitch.client.adapters.django.base import rotating_client

    with pytest.raises(ImproperlyConfigured, match=message):
        rotating_client(f"alias-{message}", settings)
