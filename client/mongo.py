"""The MongoDB seam: the only client module that builds ``MongoClient`` objects.

A client is built from :meth:`MongoCredentials.client_kwargs` (the password is
a keyword argument, never spliced into a URI) plus the application's options
(timeouts, pool size). The options cannot override the login.
:func:`check_login` runs one ``ping``, which opens and authenticates a socket,
and translates pymongo's errors into the secretswitch error tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from client.credentials import MongoCredentials
from client.errors import AuthenticationError, ConfigurationError, DatabaseError
from client.policy import is_auth_failure_code

__all__ = [
    "LOGIN_OPTIONS",
    "MongoClientFactory",
    "build_mongo_client",
    "check_login",
    "is_auth_failure",
    "translate_error",
]

MongoClientFactory = Callable[[MongoCredentials, Mapping[str, Any]], "MongoClient[dict[str, Any]]"]
"""Builds a client from credentials and extra options (tests pass a recording fake)."""

# Options that belong to the secret, not to the application.
LOGIN_OPTIONS = frozenset({"host", "port", "username", "password", "authSource", "authMechanism"})

# A new client must not wait the default 30 s to learn that a server is down.
_DEFAULT_OPTIONS: Mapping[str, Any] = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000}


def build_mongo_client(credentials: MongoCredentials, options: Mapping[str, Any]) -> MongoClient[dict[str, Any]]:
    """A new, not yet connected ``MongoClient`` logged in as ``credentials``.

    Args:
        credentials: the snapshot to log in with.
        options: extra ``MongoClient`` keyword arguments.

    Raises:
        ConfigurationError: ``options`` tries to set a login field.
        DatabaseError: pymongo refused the arguments.
    """
    clash = LOGIN_OPTIONS.intersection(options)
    if clash:
        raise ConfigurationError(
            f"mongo_options must not set {sorted(clash)}: the login comes from the secret {credentials.secret_id!r}"
        )
    kwargs = {**_DEFAULT_OPTIONS, **credentials.client_kwargs(), **options}
    try:
        return MongoClient(**kwargs)
    except (PyMongoError, OSError, ValueError, TypeError) as exc:
        # OSError: a TLS file named by the secret is missing or unreadable.
        raise DatabaseError(
            f"cannot build a MongoClient for user {credentials.username!r} at {credentials.endpoint!r}: "
            f"{type(exc).__name__}; check the secret's host and options"
        ) from None


def check_login(client: MongoClient[dict[str, Any]], credentials: MongoCredentials) -> None:
    """Run ``ping`` on a new socket: proves the server is reachable and takes the login.

    Raises:
        AuthenticationError: the server refused the user name or password.
        DatabaseError: the server could not be reached or failed otherwise.
    """
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        raise translate_error(exc, credentials) from exc


def is_auth_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) is MongoDB refusing the user name or password."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, AuthenticationError):
            return True
        if isinstance(current, OperationFailure) and is_auth_failure_code(current.code):
            return True
        current = current.__cause__
        seen += 1
    return False


def translate_error(exc: PyMongoError, credentials: MongoCredentials) -> DatabaseError:
    """A secretswitch error for a pymongo error (names the user and version, never the password)."""
    who = f"user {credentials.username!r} (version {credentials.version_id}) at {credentials.endpoint!r}"
    if is_auth_failure(exc):
        return AuthenticationError(f"MongoDB refused {who}: authentication failed; the password may have rotated")
    return DatabaseError(f"MongoDB failed for {who}: {type(exc).__name__}")
