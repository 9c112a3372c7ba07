"""The embedded local stack: moto's Secrets Manager and SecantusDB on loopback.

Used by the demo, the tests, the benchmarks and ``secretswitch local``::

    with EmbeddedStack() as stack:
        sm = stack.secretsmanager_client()
        ...

Start-up follows the seed article: SecantusDB starts once without ``--auth``,
the users are created, then it restarts with ``--auth`` (it has no localhost
exception). Then the two secrets are written:

* ``mongodb-admin``: the admin user (``userAdminAnyDatabase`` on ``admin``);
* ``mongodb-app``: the active application user in the AWS rotation-template
  format, with ``masterarn`` pointing at ``mongodb-admin``. Its layout is
  ``dbname: mydb`` + ``authSource: admin`` by default (``layout="stack"``), or
  AWS's own for users defined in ``admin`` (``layout="aws"``: ``dbname: admin``,
  no ``authSource``; the application then names ``mydb`` itself).

Every password the stack makes up follows AWS's default alphabet (no
``/@"'\\``), as the rotation function's do.

Every process the stack starts is stopped by PID on exit (Ctrl-C and failing
tests included) and its temporary directory removed.

With ``mongodb_uri`` (``MONGODB_URI``: a real mongod or Atlas, as a user that
may create users) no SecantusDB is started: the stack creates ``app`` and
``app_clone`` on that server (it refuses if they exist: it never changes a
password it did not set), writes secrets in the connection-string format, and
drops the users it created on exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from embedded_stack.errors import LocalStackError
from rotation_lambda.core import AWS_DEFAULT_EXCLUDE_CHARACTERS

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from pymongo import MongoClient

__all__ = [
    "APP_DATABASE",
    "APP_USERS",
    "DUMMY_AWS_ENV",
    "SECRET_LAYOUTS",
    "EmbeddedStack",
    "SecantusServer",
    "StackInfo",
    "free_port",
]

_log = logging.getLogger(__name__)

APP_DATABASE = "mydb"
APP_USERS = ("app", "app_clone")
ADMIN_USER = "admin"
ACCOUNT_ID = "123456789012"  # moto's default account
DUMMY_AWS_ENV: Mapping[str, str] = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
ROTATION_FUNCTION_NAME = "secretswitch-mongodb-rotation"
SECRET_LAYOUTS = ("stack", "aws")
"""How ``mongodb-app`` names its databases: ``stack`` (``dbname: mydb``, ``authSource: admin``) or
``aws`` (AWS's format with the users in ``admin``: ``dbname: admin``)."""

# moto keeps one state per process, keyed by region: two live stacks must not share one.
_live_regions: set[str] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As a server binds: connections of a previous run in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


class SecantusServer:
    """One SecantusDB process on loopback, started and stopped by PID.

    Args:
        data_dir: its storage directory (kept across restarts).
        log_path: where its output goes.
        host: the address to bind.
        port: the port; ``None`` picks a free one.
        sync_on_commit: pass ``--sync-on-commit`` (durable across SIGKILL).
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        sync_on_commit: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.sync_on_commit = sync_on_commit
        self.auth = False
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, auth: bool, timeout: float = 30.0) -> None:
        """Start the server and wait until it accepts connections.

        Raises:
            LocalStackError: SecantusDB is missing, the port is taken, or the
                server exited or stayed silent; the message shows its log tail.
        """
        if self.running:
            raise LocalStackError(f"SecantusDB: already running (pid {self.pid})")
        try:
            import secantus  # noqa: F401
        except ImportError as exc:
            raise LocalStackError(
                "SecantusDB: the package is not installed; run `pip install 'secretswitch[local]'`"
            ) from exc
        if _port_in_use(self.host, self.port):
            raise LocalStackError(
                f"SecantusDB: port {self.port} on {self.host} is already in use; "
                "choose another port or leave it out to pick a free one"
            )
        command = [
            sys.executable, "-m", "secantus",
            "--host", self.host, "--port", str(self.port),
            "--storage-path", str(self.data_dir),
            "--log-level", "WARNING",
        ]  # fmt: skip
        if auth:
            command.append("--auth")
        if self.sync_on_commit:
            command.append("--sync-on-commit")
        with open(self.log_path, "ab") as log:
            # A session of its own: Ctrl-C reaches us, and we stop it in order.
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.auth = auth
        _log.info("SecantusDB starting: pid %s, %s:%s, auth=%s", self.pid, self.host, self.port, auth)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise LocalStackError(
                    f"SecantusDB: exited with code {code} on start ({self.host}:{self.port}); "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise LocalStackError(
                    f"SecantusDB: no answer on {self.host}:{self.port} after {timeout:.0f} s; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGINT, then SIGTERM), SIGKILL only as the last resort."""
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            if sig == signal.SIGINT:
                self._wake_accept_loop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout / 2 if sig != signal.SIGKILL else timeout)
            if sig == signal.SIGKILL:
                _log.warning("SecantusDB pid %s needed SIGKILL; its last writes may be lost", process.pid)
        _log.info("SecantusDB stopped: pid %s, exit %s", process.pid, process.returncode)

    def _wake_accept_loop(self) -> None:
        # SecantusDB's accept thread stays blocked in accept() after its
        # listening socket is closed, and its shutdown waits 2 s for it; one
        # connection wakes it, and the stop takes ~0.3 s instead of ~2.1 s.
        with contextlib.suppress(OSError):
            socket.create_connection((self.host, self.port), timeout=0.5).close()

    def restart(self, *, auth: bool | None = None) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop()
        self.start(auth=self.auth if auth is None else auth)


@dataclass(frozen=True)
class _ExternalMongo:
    """A MongoDB given by URI: the URI itself, and its parts without the password."""

    uri: str = field(repr=False)
    endpoint_uri: str
    username: str
    password: str = field(repr=False)
    auth_source: str
    first_host: tuple[str, int]

    @classmethod
    def parse(cls, uri: str) -> _ExternalMongo:
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


@dataclass(frozen=True)
class StackInfo:
    """Where the embedded stack listens and what it created.

    The passwords are here because the stack made them up for a throwaway
    local database; they are hidden from ``repr``.
    """

    secretsmanager_url: str
    region: str
    mongo_host: str
    mongo_port: int
    app_secret_id: str
    admin_secret_id: str
    admin_secret_arn: str
    rotation_function_arn: str
    mongodb_uri: str | None = field(default=None, repr=False)
    admin_username: str = ADMIN_USER
    admin_password: str = field(default="", repr=False)
    app_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)

    def environment(self) -> dict[str, str]:
        """The variables that point boto3 and an application at this stack."""
        from urllib.parse import quote_plus

        return {
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.secretsmanager_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **DUMMY_AWS_ENV,
            "SECRETSWITCH_SECRET_ID": self.app_secret_id,
            "SECRETSWITCH_MASTER_SECRET_ID": self.admin_secret_id,
            "SECRETSWITCH_ROTATION_LAMBDA_ARN": self.rotation_function_arn,
            "MONGODB_URI": self.mongodb_uri
            or (
                f"mongodb://{quote_plus(self.admin_username)}:{quote_plus(self.admin_password)}"
                f"@{self.mongo_host}:{self.mongo_port}/?authSource=admin"
            ),
        }


class EmbeddedStack:
    """moto Secrets Manager + SecantusDB, provisioned as the seed article does.

    Args:
        region: the AWS region the secrets live in.
        app_secret_id: name of the application's secret.
        admin_secret_id: name of the master (admin) secret.
        mongo_port: SecantusDB's port; ``None`` picks a free one.
        secretsmanager_port: moto's port; ``0`` picks a free one.
        sync_on_commit: run SecantusDB with ``--sync-on-commit``.
        rotation_handler: what moto's ``RotateSecret`` invokes for each step;
            by default the project's rotation function, pointed at this stack.
        work_dir: where data and logs go; a new temporary directory (removed
            on exit) by default.
        mongodb_uri: use this MongoDB (credentials of a user administrator in
            the URI) instead of starting SecantusDB.
        layout: how the application secret names its databases (see
            :data:`SECRET_LAYOUTS`).
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        app_secret_id: str = "mongodb-app",
        admin_secret_id: str = "mongodb-admin",
        mongo_port: int | None = None,
        secretsmanager_port: int = 0,
        sync_on_commit: bool = False,
        rotation_handler: Callable[[dict[str, Any]], object] | None = None,
        work_dir: Path | None = None,
        mongodb_uri: str | None = None,
        layout: str = "stack",
    ) -> None:
        from embedded_stack.moto_server import MotoSecretsManagerServer

        if layout not in SECRET_LAYOUTS:
            raise LocalStackError(f"layout must be one of {', '.join(SECRET_LAYOUTS)}, not {layout!r}")
        self.layout = layout
        self.region = region
        self.app_secret_id = app_secret_id
        self.admin_secret_id = admin_secret_id
        self._owns_work_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="secretswitch-stack-"))
        self.external_mongo = _ExternalMongo.parse(mongodb_uri) if mongodb_uri else None
        # The SecantusDB process, or None when an external MongoDB is used.
        self.mongo: SecantusServer | None = None
        if self.external_mongo is None:
            self.mongo = SecantusServer(
                self.work_dir / "secantus-data",
                self.work_dir / "secantus.log",
                port=mongo_port,
                sync_on_commit=sync_on_commit,
            )
        self._created_users: list[str] = []
        self.secretsmanager = MotoSecretsManagerServer(port=secretsmanager_port)
        self.rotation_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{ROTATION_FUNCTION_NAME}"
        self._rotation_handler = rotation_handler
        self._info: StackInfo | None = None
        self._holds_region = False

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def info(self) -> StackInfo:
        if self._info is None:
            raise LocalStackError("the embedded stack is not started; call start() or use it as a context manager")
        return self._info

    def start(self) -> StackInfo:
        """Start both servers, create the users and the secrets.

        Raises:
            LocalStackError: a server did not start, or another live stack in
                this process uses the same region.
        """
        if self.region in _live_regions:
            raise LocalStackError(
                f"moto Secrets Manager: another embedded stack in this process already uses region {self.region!r}; "
                "give this one another region (moto keeps one state per region)"
            )
        _live_regions.add(self.region)
        self._holds_region = True
        try:
            self.secretsmanager.start(reset_region=self.region)
            app_passwords = {user: _new_password() for user in APP_USERS}
            if self.mongo is not None:
                admin_password = _new_password()
                self.mongo.start(auth=False)
                self._provision_users(admin_password, app_passwords)
                self.mongo.restart(auth=True)
            else:
                admin_password = self._provision_external(app_passwords)
            admin_arn = self._create_secrets(admin_password, app_passwords)
            self._register_rotation_function()
        except BaseException:
            self.stop()
            raise
        host, port = self._mongo_address()
        self._info = StackInfo(
            secretsmanager_url=self.secretsmanager.url,
            region=self.region,
            mongo_host=host,
            mongo_port=port,
            mongodb_uri=self.external_mongo.uri if self.external_mongo else None,
            app_secret_id=self.app_secret_id,
            admin_secret_id=self.admin_secret_id,
            admin_secret_arn=admin_arn,
            rotation_function_arn=self.rotation_function_arn,
            admin_username=self.external_mongo.username if self.external_mongo else ADMIN_USER,
            admin_password=admin_password,
            app_passwords=app_passwords,
        )
        return self._info

    def stop(self) -> None:
        """Stop every server this stack started and remove its temporary files."""
        from embedded_stack.moto_server import unregister_rotation_function

        unregister_rotation_function(self.rotation_function_arn)
        errors: list[BaseException] = []
        stops = [self._drop_created_users, self.secretsmanager.stop]
        if self.mongo is not None:
            stops.insert(0, self.mongo.stop)
        for stop in stops:
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest, report after
                errors.append(exc)
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        self._info = None
        if self._holds_region:
            _live_regions.discard(self.region)
            self._holds_region = False
        if errors:
            raise LocalStackError(f"the embedded stack did not stop cleanly: {errors[0]}") from errors[0]

    # -- clients -------------------------------------------------------------

    def secretsmanager_client(self) -> SecretsManagerClient:
        """A boto3 Secrets Manager client pointed at the embedded server."""
        import boto3

        session = boto3.session.Session(
            aws_access_key_id=DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=self.region,
        )
        return session.client("secretsmanager", endpoint_url=self.secretsmanager.url)

    def mongo_client(self, username: str, password: str, **options: Any) -> MongoClient[dict[str, Any]]:
        """A pymongo client logged in as ``username`` (defined in ``admin``)."""
        from pymongo import MongoClient

        options.setdefault("serverSelectionTimeoutMS", 5000)
        options.setdefault("authSource", "admin")
        if self.external_mongo is not None:
            return MongoClient(self.external_mongo.endpoint_uri, username=username, password=password, **options)
        server = self._secantus()
        return MongoClient(host=server.host, port=server.port, username=username, password=password, **options)

    def admin_client(self, **options: Any) -> MongoClient[dict[str, Any]]:
        """A pymongo client logged in as the admin (the ``MONGODB_URI`` user, when given)."""
        if self.external_mongo is not None:
            options.setdefault("authSource", self.external_mongo.auth_source)
        return self.mongo_client(self.info.admin_username, self.info.admin_password, **options)

    def create_user(self, username: str, password: str, roles: list[dict[str, str]]) -> None:
        """Create a user as the admin; it is dropped again when the stack stops."""
        with self.admin_client() as admin:
            admin.admin.command("createUser", username, pwd=password, roles=roles)
        self._created_users.append(username)

    def _mongo_address(self) -> tuple[str, int]:
        if self.external_mongo is not None:
            return self.external_mongo.first_host
        server = self._secantus()
        return server.host, server.port

    def _secantus(self) -> SecantusServer:
        if self.mongo is None:
            raise LocalStackError("this stack uses the MongoDB at MONGODB_URI, not SecantusDB")
        return self.mongo

    # -- provisioning --------------------------------------------------------

    def _provision_users(self, admin_password: str, app_passwords: Mapping[str, str]) -> None:
        from pymongo import MongoClient

        server = self._secantus()
        client: MongoClient[dict[str, Any]] = MongoClient(
            host=server.host, port=server.port, directConnection=True, serverSelectionTimeoutMS=10000
        )
        with client:
            client.admin.command(
                "createUser", ADMIN_USER, pwd=admin_password, roles=[{"role": "userAdminAnyDatabase", "db": "admin"}]
            )
            for user, password in app_passwords.items():
                client.admin.command(
                    "createUser", user, pwd=password, roles=[{"role": "readWrite", "db": APP_DATABASE}]
                )
            client[APP_DATABASE]["items"].insert_one({"_id": "seed", "note": "created by the embedded stack"})

    def _provision_external(self, app_passwords: Mapping[str, str]) -> str:
        """Create the app users on the ``MONGODB_URI`` server; returns the admin's password."""
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        external = self.external_mongo
        if external is None:
            raise LocalStackError("no MONGODB_URI was given to provision")
        try:
            admin: MongoClient[dict[str, Any]] = MongoClient(external.uri, serverSelectionTimeoutMS=10000)
            with admin:
                for user in APP_USERS:
                    if admin.admin.command("usersInfo", user)["users"]:
                        raise LocalStackError(
                            f"MongoDB at {external.endpoint_uri}: user {user!r} already exists; secretswitch will "
                            "not change a password it did not set: drop the users "
                            f"{' and '.join(APP_USERS)} there or point MONGODB_URI at another server"
                        )
                for user, password in app_passwords.items():
                    admin.admin.command(
                        "createUser", user, pwd=password, roles=[{"role": "readWrite", "db": APP_DATABASE}]
                    )
                    self._created_users.append(user)
            with self.mongo_client(APP_USERS[0], app_passwords[APP_USERS[0]]) as app:
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

    def _drop_created_users(self) -> None:
        """Drop the users this stack created on an external MongoDB (SecantusDB's data is removed anyway)."""
        users, self._created_users = self._created_users, []
        if self.external_mongo is None or not users:
            return
        from pymongo import MongoClient

        admin: MongoClient[dict[str, Any]] = MongoClient(self.external_mongo.uri, serverSelectionTimeoutMS=10000)
        with admin:
            for user in users:
                admin.admin.command("dropUser", user)

    def _create_secrets(self, admin_password: str, app_passwords: Mapping[str, str]) -> str:
        client = self.secretsmanager_client()
        external = self.external_mongo
        if external is None:
            host, port = self._mongo_address()
            common: dict[str, Any] = {"engine": "mongo", "host": host, "port": port, "ssl": False}
            admin_fields = {"username": ADMIN_USER, "password": admin_password, "dbname": "admin"}
        else:
            # The connection-string format: the URI (without credentials) keeps TLS and replica-set options.
            common = {"engine": "mongo", "uri": external.endpoint_uri}
            admin_fields = {
                "username": external.username,
                "password": admin_password,
                "authSource": external.auth_source,
            }
        admin = client.create_secret(
            Name=self.admin_secret_id,
            Description="MongoDB admin (master) user for secretswitch rotation",
            SecretString=json.dumps({**common, **admin_fields}),
        )
        active = APP_USERS[0]
        # "aws": AWS's meaning, dbname is the login database; the application names mydb itself.
        databases = {"dbname": "admin"} if self.layout == "aws" else {"dbname": APP_DATABASE, "authSource": "admin"}
        client.create_secret(
            Name=self.app_secret_id,
            Description="MongoDB application user, rotated with alternating users",
            SecretString=json.dumps(
                {
                    **common,
                    "username": active,
                    "password": app_passwords[active],
                    **databases,
                    "masterarn": admin["ARN"],
                }
            ),
        )
        return admin["ARN"]

    def _register_rotation_function(self) -> None:
        from embedded_stack.moto_server import register_rotation_function

        handler = self._rotation_handler or _default_rotation_handler(self.secretsmanager_client)
        register_rotation_function(self.rotation_function_arn, handler)


def _default_rotation_handler(
    client_factory: Callable[[], SecretsManagerClient],
) -> Callable[[dict[str, Any]], object]:
    """The project's rotation function, talking to this stack's Secrets Manager."""
    from rotation_lambda.lambda_function import make_handler

    handler = make_handler(secretsmanager_client_factory=client_factory)
    return lambda event: handler(event, None)


_PUNCTUATION = "".join(ch for ch in string.punctuation if ch not in AWS_DEFAULT_EXCLUDE_CHARACTERS)


def _new_password(length: int = 32) -> str:
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
