"""The rotation function's only door to MongoDB.

Clients are built by the project's one MongoDB seam,
:func:`client.mongo.build_mongo_client`: credentials go to ``MongoClient`` as
keyword arguments (``Database.authenticate`` is gone in PyMongo 4, and a
password spliced into a URI breaks on ``@:/?#%``).
TLS is taken from the secret exactly as it is: there is no plaintext fallback,
and certificate and host-name verification stay on unless the secret itself
turns them off (which the guards refuse in a pending version).

The CA comes from the function's own configuration: ``TLS_CA_FILE`` names a
PEM bundle inside the deployment package (a relative path, from the zip's root,
``LAMBDA_TASK_ROOT``) or a layer (``/opt/...``); ``secretswitch package-lambda
--ca-bundle FILE`` puts one in the zip and the SAM template's ``TlsCaFile``
sets the variable. When it is set it replaces the secret's ``tlsCAFile`` for
every connection with TLS on: that field is a path on the application's host,
and who may write the secret must not choose what the function trusts. Unset,
the secret's ``tlsCAFile`` is used as it is (right when the function runs on
the application's host, as in the embedded stack), else the system's CA store.
Why this name: AWS's templates set no CA variable at all; ``TLS_CA_FILE``
follows the function's other unprefixed settings and pymongo's ``tlsCAFile``,
and is deliberately not ``SSL_CERT_FILE`` / ``AWS_CA_BUNDLE``, which would
also change the CAs boto3 trusts for Secrets Manager.

pymongo errors are translated here; the messages carry the server's code and
text, which never contain the password (and are scrubbed anyway). A TLS
failure says what failed and which CA setting to change
(:func:`client.mongo.tls_failure`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secretswitch.client.credentials import MongoCredentials
from secretswitch.client.errors import AuthenticationError, ConfigurationError, DatabaseError
from secretswitch.client.mongo import build_mongo_client, tls_failure
from secretswitch.client.policy import is_auth_failure_code

from .rules import read_database

if TYPE_CHECKING:
    from pymongo import MongoClient

__all__ = [
    "TLS_CA_FILE_ENV",
    "LoginClientFactory",
    "MongoGateway",
    "default_mongo_client_factory",
    "function_ca_file",
    "function_client_options",
    "function_trust",
    "mongo_client_factory_for",
]

LoginClientFactory = Callable[[MongoCredentials], "MongoClient[dict[str, Any]]"]
"""Builds a client logged in as one set of credentials, the options being the function's own (the test seam;
not the client seam's ``MongoClientFactory``, which also takes the options)."""

TIMEOUT_MS = 5000
TLS_CA_FILE_ENV = "TLS_CA_FILE"
"""The function's CA bundle for MongoDB's TLS (see the module docstring)."""


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def function_ca_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The CA bundle ``TLS_CA_FILE`` names, resolved from the package's root; ``None`` when unset.

    Raises:
        ConfigurationError: the file is missing or unreadable where the function runs.
    """
    env = _environ(environ)
    value = env.get(TLS_CA_FILE_ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_absolute():
        path = Path(env.get("LAMBDA_TASK_ROOT") or Path.cwd()) / path
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"{TLS_CA_FILE_ENV}={value!r}: {path} cannot be read where the rotation function runs "
            f"({type(exc).__name__}); put the CA bundle in the zip (`secretswitch package-lambda --ca-bundle FILE`, "
            f"then {TLS_CA_FILE_ENV}=<its file name>) or in a layer ({TLS_CA_FILE_ENV}=/opt/<path>)"
        ) from None
    return path


def function_client_options(credentials: MongoCredentials, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options the function adds to the secret's: short timeouts, and its own CA when TLS is on."""
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": TIMEOUT_MS,
        "connectTimeoutMS": TIMEOUT_MS,
        "appname": "secretswitch-rotation",
    }
    ca_file = function_ca_file(environ)
    if ca_file is not None and credentials.uses_tls:
        options["tlsCAFile"] = str(ca_file)
    return options


def function_trust(credentials: MongoCredentials, environ: Mapping[str, str] | None = None) -> str:
    """Which CA the function (or ``doctor``, which reads the same setting) trusts, and how to change it."""
    value = _environ(environ).get(TLS_CA_FILE_ENV, "").strip()
    if value:
        return (
            f"{TLS_CA_FILE_ENV} ({value!r}) names the CA bundle trusted here: point it at the bundle that signed "
            "the server's certificate (on Lambda: `secretswitch package-lambda --ca-bundle FILE`)"
        )
    ca_file = dict(credentials.tls_options).get("tlsCAFile")
    where = (
        f"the secret's tlsCAFile ({ca_file!r}, a path on the application's host)"
        if ca_file
        else "the system's CA store only (no tlsCAFile, no TLS_CA_FILE)"
    )
    return (
        f"trusted here: {where}; set {TLS_CA_FILE_ENV} to the CA bundle that signed the server's certificate "
        "(the rotation function's own CA setting: a file in its zip or a layer, `secretswitch package-lambda "
        "--ca-bundle FILE`, the template's TlsCaFile; DocumentDB: global-bundle.pem)"
    )


def mongo_client_factory_for(environ: Mapping[str, str] | None = None) -> LoginClientFactory:
    """The function's client factory; ``environ`` (default ``os.environ``) is read at each call."""

    def factory(credentials: MongoCredentials) -> MongoClient[dict[str, Any]]:
        return build_mongo_client(credentials, function_client_options(credentials, environ))

    return factory


def default_mongo_client_factory(credentials: MongoCredentials) -> MongoClient[dict[str, Any]]:
    """A client for ``credentials`` with short timeouts (a Lambda has minutes, not hours) and ``TLS_CA_FILE``."""
    return build_mongo_client(credentials, function_client_options(credentials))


def _scrub(text: str, credentials: tuple[MongoCredentials, ...]) -> str:
    for creds in credentials:
        if creds.password:
            text = text.replace(creds.password, "***")
    return text


class MongoGateway:
    """MongoDB operations the rotation steps need.

    Args:
        client_factory: builds a ``MongoClient`` from credentials.
        environ: the function's configuration, for the CA named in TLS messages
            (default ``os.environ``, read when a message is made).
    """

    def __init__(
        self,
        client_factory: LoginClientFactory = default_mongo_client_factory,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._client_factory = client_factory
        self._environ = environ

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
            tls = tls_failure(exc, credentials, trust=function_trust(credentials, self._environ))
            if tls is not None:
                raise DatabaseError(f"MongoDB unreachable as {who}: {_scrub(tls, hidden)}") from None
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
        :func:`~rotation_lambda.rules.read_database` picks the database.

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
