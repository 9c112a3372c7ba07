"""What the embedded stack provisions: the MongoDB users, their passwords and the two secrets' documents.

SecantusDB gets the admin and both application users (without ``--auth``: it has no
localhost exception); a MongoDB given by ``MONGODB_URI`` gets the application users only,
and never a user that exists already (the stack never changes a password it did not set).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from secretswitch.client.mongo import open_mongo_client
from secretswitch.rotation_lambda.rules import AWS_DEFAULT_EXCLUDE_CHARACTERS

from .errors import LocalStackError

if TYPE_CHECKING:
    from pymongo import MongoClient

__all__ = [
    "ADMIN_USER",
    "APP_DATABASE",
    "APP_USERS",
    "ExternalMongo",
    "create_external_users",
    "create_secantus_users",
    "drop_users",
    "new_password",
    "secret_documents",
]

APP_DATABASE = "mydb"
APP_USERS = ("app", "app_clone")
ADMIN_USER = "admin"


@dataclass(frozen=True)
class ExternalMongo:
    """A MongoDB given by URI: the URI itself, and its parts without the password."""

    uri: str = field(repr=False)
    endpoint_uri: str
    username: str
    password: str = field(repr=False)
    auth_source: str
    first_host: tuple[str, int]

    @classmethod
    def parse(cls, uri: str) -> ExternalMongo:
        from urllib.parse import urlsplit, urlunsplit

        from pymongo.errors import InvalidURI
        from pymongo.uri_parser import parse_uri

        try:
            parsed = parse_uri(uri, connect_timeout=5)
        except (InvalidURI, ValueError) as exc:
            raise LocalStackError(
                "MONGODB_URI is not a valid MongoDB connection string; use "
                "mongodb://USER:PASSWORD@HOST:PORT/?authSource=admin (or mongodb+srv://...)"
            ) from exc
        username, password = parsed.get("username"), parsed.get("password")
        if not username or not password:
            raise LocalStackError(
                "MONGODB_URI has no user name and password; give a user that may create users "
                "(userAdminAnyDatabase), e.g. mongodb://admin:PASSWORD@HOST:27017/?authSource=admin"
            )
        parts = urlsplit(uri)
        endpoint_uri = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        options = parsed.get("options", {})
        auth_source = options.get("authSource") or options.get("authsource") or parsed.get("database") or "admin"
        host, port = parsed["nodelist"][0] if parsed.get("nodelist") else (parts.hostname or "", 27017)
        return cls(uri, endpoint_uri, username, password, str(auth_source), (str(host), int(port)))


_PUNCTUATION = "".join(ch for ch in string.punctuation if ch not in AWS_DEFAULT_EXCLUDE_CHARACTERS)


def new_password(length: int = 32) -> str:
    """A password from AWS's default alphabet, with each type in it (as ``GetRandomPassword`` makes them).

    Symbols on purpose (``:%+#?`` among them): the client must cope with any
    character a rotation may produce, but none that AWS excludes.
    """
    groups = (string.ascii_lowercase, string.ascii_uppercase, string.digits, _PUNCTUATION)
    alphabet = "".join(groups)
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(ch in group for ch in password) for group in groups):
            return password


def create_secantus_users(
    host: str, port: int, tls_options: Mapping[str, Any], admin_password: str, app_passwords: Mapping[str, str]
) -> None:
    """Create the admin and the application users on a SecantusDB started without ``--auth``, and a seed document."""
    client = open_mongo_client(
        host=host, port=port, directConnection=True, serverSelectionTimeoutMS=10000, **tls_options
    )
    with client:
        client.admin.command(
            "createUser", ADMIN_USER, pwd=admin_password, roles=[{"role": "userAdminAnyDatabase", "db": "admin"}]
        )
        for user, password in app_passwords.items():
            client.admin.command("createUser", user, pwd=password, roles=[{"role": "readWrite", "db": APP_DATABASE}])
        client[APP_DATABASE]["items"].insert_one({"_id": "seed", "note": "created by the embedded stack"})


def create_external_users(
    external: ExternalMongo,
    app_passwords: Mapping[str, str],
    created: list[str],
    app_client: Callable[[str, str], MongoClient[dict[str, Any]]],
) -> str:
    """Create the application users on the ``MONGODB_URI`` server; returns the admin's password.

    Every user made is appended to ``created`` at once (so a failure halfway still drops it).
    """
    from pymongo.errors import PyMongoError

    try:
        with open_mongo_client(external.uri, serverSelectionTimeoutMS=10000) as admin:
            for user in APP_USERS:
                if admin.admin.command("usersInfo", user)["users"]:
                    raise LocalStackError(
                        f"MongoDB at {external.endpoint_uri}: user {user!r} already exists; secretswitch will "
                        "not change a password it did not set: drop the users "
                        f"{' and '.join(APP_USERS)} there or point MONGODB_URI at another server"
                    )
            for user, password in app_passwords.items():
                admin.admin.command("createUser", user, pwd=password, roles=[{"role": "readWrite", "db": APP_DATABASE}])
                created.append(user)
        with app_client(APP_USERS[0], app_passwords[APP_USERS[0]]) as app:
            app[APP_DATABASE]["items"].replace_one(
                {"_id": "seed"}, {"_id": "seed", "note": "created by the embedded stack"}, upsert=True
            )
    except PyMongoError as exc:
        code = getattr(exc, "code", None)
        raise LocalStackError(
            f"MongoDB at {external.endpoint_uri}: provisioning failed ({type(exc).__name__}"
            f"{f', code {code}' if isinstance(code, int) else ''}); "
            "MONGODB_URI must name a reachable server and a user that may create users (userAdminAnyDatabase)"
        ) from exc
    return external.password


def drop_users(external: ExternalMongo, users: list[str]) -> None:
    """Drop the users the stack created on an external MongoDB."""
    with open_mongo_client(external.uri, serverSelectionTimeoutMS=10000) as admin:
        for user in users:
            admin.admin.command("dropUser", user)


def secret_documents(
    *,
    external: ExternalMongo | None,
    address: tuple[str, int],
    tls_ca_file: str | None,
    layout: str,
    admin_password: str,
    app_passwords: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The admin secret's and the application secret's documents (the latter without ``masterarn``), pure."""
    if external is None:
        host, port = address
        common: dict[str, Any] = {"engine": "mongo", "host": host, "port": port, "ssl": False}
        if tls_ca_file is not None:
            common.update(ssl=True, tlsCAFile=tls_ca_file)
        admin_fields = {"username": ADMIN_USER, "password": admin_password, "dbname": "admin"}
    else:
        # The connection-string format: the URI (without credentials) keeps TLS and replica-set options.
        common = {"engine": "mongo", "uri": external.endpoint_uri}
        admin_fields = {"username": external.username, "password": admin_password, "authSource": external.auth_source}
    active = APP_USERS[0]
    # "aws": AWS's meaning, dbname is the login database; the application names mydb itself.
    databases = {"dbname": "admin"} if layout == "aws" else {"dbname": APP_DATABASE, "authSource": "admin"}
    app = {**common, "username": active, "password": app_passwords[active], **databases}
    return {**common, **admin_fields}, app
