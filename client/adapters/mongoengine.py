"""MongoEngine on a rotating client: ``connect`` wiring (``secretswitch[mongoengine]``).

::

    from secretswitch.client import RotatingMongoClient
    from secretswitch.client.adapters.mongoengine import connect

    rc = RotatingMongoClient("mongodb-app", database="mydb")
    connect(rc)                      # MongoEngine's default alias, rc's database

MongoEngine builds its client through ``connect(mongo_client_class=...)``;
this adapter hands it a :class:`SharedClient`, which forwards everything to
``rc.client`` (stable for the life of ``rc``: a switch or a repair changes
its login in place) except ``close()``: MongoEngine's ``disconnect`` closes
the client it got, and the rotating client's must stay open for everything
else that uses it. Close ``rc`` itself at shutdown.

Do not ``disconnect``/``connect`` on a ``switched`` or ``auth_recovered``
event: nothing needs re-wiring (and a re-connect while requests run takes
their client away from them).
"""

from __future__ import annotations

from typing import Any

from bson.binary import UuidRepresentation

from secretswitch.client.errors import ConfigurationError
from secretswitch.client.rotating import RotatingMongoClient

__all__ = ["SharedClient", "connect"]

# connect() options that would build a second login beside the secret's.
_CONNECTION_OPTIONS = frozenset(
    {"host", "port", "username", "password", "authentication_source", "authentication_mechanism", "mongo_client_class"}
)

_UUID_NAMES = {
    UuidRepresentation.UNSPECIFIED: "unspecified",
    UuidRepresentation.STANDARD: "standard",
    UuidRepresentation.PYTHON_LEGACY: "pythonLegacy",
    UuidRepresentation.JAVA_LEGACY: "javaLegacy",
    UuidRepresentation.CSHARP_LEGACY: "csharpLegacy",
}


class SharedClient:
    """``rc.client`` as MongoEngine sees it: every attribute is the client's, ``close()`` does nothing."""

    __slots__ = ("_rc",)

    def __init__(self, rc: RotatingMongoClient) -> None:
        self._rc = rc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rc.client, name)

    def __getitem__(self, name: str) -> Any:
        return self._rc.client[name]

    def close(self) -> None:
        """MongoEngine's ``disconnect`` calls this: the rotating client stays open (close ``rc`` instead)."""

    def __repr__(self) -> str:
        return f"SharedClient({self._rc!r})"


def connect(rc: RotatingMongoClient, *, db: str | None = None, alias: str | None = None, **options: Any) -> Any:
    """Register ``rc``'s client with MongoEngine under ``alias`` (default: MongoEngine's default alias).

    Args:
        rc: the rotating client MongoEngine should use.
        db: the database name (default: ``rc``'s default database).
        alias: MongoEngine's connection alias.
        options: other ``mongoengine.connect`` keyword arguments that do not
            name a connection (``tz_aware``, ``uuidRepresentation``, ``read_preference``, …).

    Returns:
        What ``mongoengine.connect`` returns (a :class:`SharedClient`).

    Raises:
        ConfigurationError: ``options`` names a host or a login (they come from the secret).
    """
    import mongoengine

    clash = _CONNECTION_OPTIONS.intersection(options)
    if clash:
        raise ConfigurationError(f"connect(rc, ...) takes its connection from rc's secret; drop {sorted(clash)}")
    name = db if db is not None else rc.database().name
    shared = SharedClient(rc)
    # MongoEngine records (and warns about) the UUID representation it would build a client with; the
    # client is rc's, so tell it rc's (set it with mongo_options={"uuidRepresentation": ...} on rc).
    options.setdefault(
        "uuidRepresentation", _UUID_NAMES.get(rc.client.codec_options.uuid_representation, "unspecified")
    )
    if alias is not None:
        options["alias"] = alias
    return mongoengine.connect(db=name, mongo_client_class=lambda **_settings: shared, **options)
