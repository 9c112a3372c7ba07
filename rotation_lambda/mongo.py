"""The rotation function's only door to MongoDB.

Clients are built by the project's one MongoDB seam,
:func:`client.mongo.build_mongo_client`: credentials go to ``MongoClient`` as
keyword arguments (``Database.authenticate`` is gone in PyMongo 4, and a
password spliced into a URI breaks on ``@:/?#%``).
TLS is taken from the secret exactly as it is: there is no plaintext fallback.
pymongo errors are translated here; the messages carry the server's code and
text, which never contain the password (and are scrubbed anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from secretswitch.client.credentials import MongoCredentials
from secretswitch.client.errors import AuthenticationError, DatabaseError
from secretswitch.client.mongo import build_mongo_client
from secretswitch.client.policy import is_auth_failure_code

from .core import read_database

if TYPE_CHECKING:
    from pymongo import MongoClient

__all__ = [
    "MongoClientFactory",
    "MongoGateway",
    "default_mongo_client_factory",
]

MongoClientFactory = Callable[[MongoCredentials], "MongoClient[dict[str, Any]]"]
"""Builds a client for one set of credentials (the test seam)."""

TIMEOUT_MS = 5000


def default_mongo_client_factory(credentials: MongoCredentials) -> MongoClient[dict[str, Any]]:
    """A client for ``credentials`` with short timeouts (a Lambda has minutes, not hours)."""
    return build_mongo_client(
        credentials,
        {"serverSelectionTimeoutMS": TIMEOUT_MS, "connectTimeoutMS": TIMEOUT_MS, "appname": "secretswitch-rotation"},
    )


def _scrub(text: str, credentials: tuple[MongoCredentials, ...]) -> str:
    for creds in credentials:
        if creds.password:
            text = text.replace(creds.password, "***")
    return text


class MongoGateway:
    """MongoDB operations the rotation steps need.

    Args:
        client_factory: builds a ``MongoClient`` from credentials.
    """

    def __init__(self, client_factory: MongoClientFactory = default_mongo_client_factory) -> None:
        self._client_factory = client_factory

    @contextmanager
    def _session(self, credentials: MongoCredentials, *also_secret: MongoCredentials) -> Iterator[Any]:
        """A client logged in as ``credentials``; pymongo errors become ours."""
        from pymongo.errors import OperationFailure, PyMongoError

        who = f"user {credentials.username!r} on {credentials.endpoint}"
        hidden = (credentials, *also_secret)
        client = None
        try:
            client = self._client_factory(credentials)
            yield client
        except OperationFailure as exc:
            detail = _scrub(str((exc.details or {}).get("errmsg") or exc), hidden)
            if is_auth_failure_code(exc.code):
                raise AuthenticationError(f"MongoDB refused the password of {who} (code {exc.code})") from None
            raise DatabaseError(f"MongoDB refused a command as {who}: code {exc.code}: {detail}") from None
        except PyMongoError as exc:
            # Not chained: pymongo's own text is safe, but its cause may hold the client options.
            raise DatabaseError(
                f"MongoDB unreachable or failing as {who}: {type(exc).__name__}: {_scrub(str(exc), hidden)}"
            ) from None
        finally:
            if client is not None:
                client.close()

    def check_login(self, credentials: MongoCredentials) -> None:
        """Log in (``ping`` authenticates first).

        Raises:
            AuthenticationError: the password is refused.
            DatabaseError: the server cannot be reached or fails.
        """
        with self._session(credentials) as client:
            client.admin.command("ping")

    def can_login(self, credentials: MongoCredentials) -> bool:
        """True when the credentials log in; False on a refused password (other errors raise)."""
        try:
            self.check_login(credentials)
        except AuthenticationError:
            return False
        return True

    def read_check(self, credentials: MongoCredentials) -> str:
        """Log in, ask the server who we are and with which roles, and list a database those roles cover.

        The login database is not assumed readable (AWS's format with users
        in ``admin`` has ``dbname: admin``): ``connectionStatus`` (allowed to
        every user) names the authenticated user and its roles, and
        :func:`~rotation_lambda.core.read_database` picks the database.

        Returns:
            The database that was read.

        Raises:
            AuthenticationError: the password is refused.
            DatabaseError: another user is authenticated, the user has no role,
                or the read fails.
        """
        with self._session(credentials) as client:
            status = client[credentials.auth_source].command("connectionStatus")
            auth_info = status.get("authInfo") or {}
            users = {(u.get("user"), u.get("db")) for u in auth_info.get("authenticatedUsers") or []}
            if (credentials.username, credentials.auth_source) not in users:
                raise DatabaseError(
                    f"MongoDB did not authenticate user {credentials.username!r} in database "
                    f"{credentials.auth_source!r} on {credentials.endpoint}"
                )
            database = read_database(auth_info.get("authenticatedUserRoles") or [], credentials.database)
            if database is None:
                raise DatabaseError(
                    f"user {credentials.username!r} has no roles on {credentials.endpoint}; "
                    "give it the roles the application needs"
                )
            # authorizedCollections: any privilege on the database is enough to list what it may see.
            client[database].list_collection_names(authorizedCollections=True, nameOnly=True)
        return database

    def user_roles(self, master: MongoCredentials, username: str, auth_source: str) -> list[dict[str, Any]] | None:
        """The roles of ``username`` (defined in ``auth_source``), read as master; ``None`` when no such user."""
        with self._session(master) as client:
            reply = client[auth_source].command({"usersInfo": {"user": username, "db": auth_source}})
        users = reply.get("users") or []
        if not users:
            return None
        return [{"role": r["role"], "db": r["db"]} for r in users[0].get("roles", [])]

    def set_password(self, master: MongoCredentials, user: MongoCredentials) -> None:
        """As master, change ``user``'s password (``updateUser``)."""
        with self._session(master, user) as client:
            client[user.auth_source].command("updateUser", user.username, pwd=user.password)

    def create_user(self, master: MongoCredentials, user: MongoCredentials, roles: Sequence[Mapping[str, Any]]) -> None:
        """As master, create ``user`` with ``roles`` (``createUser``)."""
        with self._session(master, user) as client:
            client[user.auth_source].command(
                "createUser", user.username, pwd=user.password, roles=[dict(role) for role in roles]
            )

    def revoke_roles(
        self, master: MongoCredentials, username: str, auth_source: str, roles: Sequence[Mapping[str, Any]]
    ) -> None:
        """As master, take ``roles`` away from ``username`` (``revokeRolesFromUser``).

        There is deliberately no way to grant a role here: repairs only ever
        narrow what a user may do (see docs/SECURITY.md).
        """
        with self._session(master) as client:
            client[auth_source].command(
                "revokeRolesFromUser", username, roles=[{"role": r["role"], "db": r["db"]} for r in roles]
            )
