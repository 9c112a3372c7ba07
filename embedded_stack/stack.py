"""The embedded local stack: moto's Secrets Manager and SecantusDB on loopback; its lifecycle.

This module starts, stops and hands out clients; the processes it supervises are
:mod:`embedded_stack.processes` and what it provisions (users, the secrets'
documents) :mod:`embedded_stack.provisioning`. Their public names are re-exported here.

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

SecantusDB runs with ``--sync-on-commit``: every acknowledged write is on disk,
so a ``kill -9`` of the database loses none (and cannot roll back a finished
rotation). ``mongodb-app`` comes with rotation configured as a deployed
``RotationSchedule`` leaves it: the stack's rotation function and
``rate(7 days)``, so a plain ``RotateSecret`` works from the first call.

Every process the stack starts is stopped by PID on exit (Ctrl-C at any moment
of start-up and failing tests included) and its temporary directory removed;
the directory is only made by :meth:`EmbeddedStack.start`, after every input
was checked. :meth:`EmbeddedStack.leftovers` says whether anything survived.

With ``mongodb_uri`` (``MONGODB_URI``: a real mongod or Atlas, as a user that
may create users) no SecantusDB is started: the stack creates ``app`` and
``app_clone`` on that server (it refuses if they exist: it never changes a
password it did not set), writes secrets in the connection-string format, and
drops the users it created on exit.

With ``tls=True`` (``secretswitch local --tls``) SecantusDB speaks TLS only,
with a CA and a server certificate made for this stack in its folder
(:mod:`embedded_stack.tls`); provisioning, the secrets (``"ssl": true`` and
``tlsCAFile``) and every client of the stack verify the certificate and the
host name.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from secretswitch.client.mongo import open_mongo_client
from secretswitch.client.secretsmanager import REGION_PATTERN, secretsmanager_client

from .errors import LocalStackError
from .processes import SecantusServer, check_port, free_port, pid_alive
from .provisioning import (
    ADMIN_USER,
    APP_DATABASE,
    APP_USERS,
    ExternalMongo,
    create_external_users,
    create_secantus_users,
    drop_users,
    new_password,
    secret_documents,
)
from .signals import signals_deferred

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from pymongo import MongoClient

    from .functions import FunctionHost, RotationFunction
    from .tls import TlsFiles

__all__ = [
    "ADMIN_URI_ENV",
    "APP_DATABASE",
    "APP_USERS",
    "DEFAULT_SCHEDULE",
    "DUMMY_AWS_ENV",
    "SECRET_LAYOUTS",
    "TLS_CA_FILE_ENV",
    "EmbeddedStack",
    "SecantusServer",
    "StackInfo",
    "free_port",
]

_log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"  # moto's default account
DUMMY_AWS_ENV: Mapping[str, str] = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
ROTATION_FUNCTION_NAME = "secretswitch-mongodb-rotation"
SECRET_LAYOUTS = ("stack", "aws")
"""How ``mongodb-app`` names its databases: ``stack`` (``dbname: mydb``, ``authSource: admin``) or
``aws`` (AWS's format with the users in ``admin``: ``dbname: admin``)."""
DEFAULT_SCHEDULE = "rate(7 days)"
ADMIN_URI_ENV = "SECRETSWITCH_ADMIN_MONGODB_URI"
"""Where :meth:`StackInfo.environment` puts the admin URI: a name no tool reads as input (``MONGODB_URI`` is one)."""
TLS_CA_FILE_ENV = "SECRETSWITCH_TLS_CA_FILE"
"""Where :meth:`StackInfo.environment` names a TLS stack's CA file (the secrets' ``tlsCAFile``)."""
WORK_DIR_PREFIX = "secretswitch-stack-"

# moto keeps one state per process, keyed by region: two live stacks must not share one.
_live_regions: set[str] = set()


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
    min_rotation_gap: float | None = None
    rotation_functions: Mapping[str, str] = field(default_factory=dict)
    """Registered rotation functions: name -> Lambda ARN (see :mod:`embedded_stack.functions`)."""
    tls_ca_file: str | None = None
    """The CA that signed SecantusDB's certificate (a TLS stack), else ``None``."""

    def environment(self) -> dict[str, str]:
        """The variables that point boto3 and an application at this stack.

        The admin's URI is under :data:`ADMIN_URI_ENV`, never ``MONGODB_URI``;
        a TLS stack adds its CA file (:data:`TLS_CA_FILE_ENV`) and puts it in that URI.
        """
        from urllib.parse import quote_plus

        return {
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.secretsmanager_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **DUMMY_AWS_ENV,
            "SECRETSWITCH_SECRET_ID": self.app_secret_id,
            "SECRETSWITCH_MASTER_SECRET_ID": self.admin_secret_id,
            "SECRETSWITCH_ROTATION_LAMBDA_ARN": self.rotation_function_arn,
            # Not MONGODB_URI: `secretswitch local` and the demo read that as "use this MongoDB",
            # so a second stack started from a shell with these exports would take over this one's.
            ADMIN_URI_ENV: self.mongodb_uri
            or (
                f"mongodb://{quote_plus(self.admin_username)}:{quote_plus(self.admin_password)}"
                f"@{self.mongo_host}:{self.mongo_port}/?authSource=admin"
                + (f"&tls=true&tlsCAFile={quote_plus(self.tls_ca_file)}" if self.tls_ca_file else "")
            ),
            # The rotation guard as the stack's function applies it, for a `rotate --resume` from this shell.
            **({"MIN_ROTATION_GAP": f"{self.min_rotation_gap:g}"} if self.min_rotation_gap is not None else {}),
            **({TLS_CA_FILE_ENV: self.tls_ca_file} if self.tls_ca_file else {}),
        }


class EmbeddedStack:
    """moto Secrets Manager + SecantusDB, provisioned as the seed article does.

    Args:
        region: the AWS region the secrets live in.
        app_secret_id: name of the application's secret.
        admin_secret_id: name of the master (admin) secret.
        mongo_port: SecantusDB's port (1-65535); ``None`` picks a free one.
        secretsmanager_port: moto's port (1-65535); ``0`` picks a free one.
        sync_on_commit: run SecantusDB with ``--sync-on-commit`` (the default:
            no acknowledged write is lost when the process dies).
        rotation_handler: what ``RotateSecret`` invokes for each step;
            by default the project's rotation function, pointed at this stack.
        work_dir: where data and logs go; a new temporary directory (made by
            :meth:`start`, removed by :meth:`stop`) by default.
        mongodb_uri: use this MongoDB (credentials of a user administrator in
            the URI) instead of starting SecantusDB.
        layout: how the application secret names its databases (see
            :data:`SECRET_LAYOUTS`).
        min_rotation_gap: the rotation guard of the stack's function, in
            seconds (``MIN_ROTATION_GAP``); ``None`` (the default) turns it
            off, so that rotating on demand keeps working.
        rotation_clock: the wall clock (epoch seconds) the stack's function
            judges the gap by; tests inject one instead of waiting days.
        rotation_functions: more rotation functions, each run in a worker
            process under ``arn:aws:lambda:<region>:<account>:function:<name>``
            (see :mod:`embedded_stack.functions`).
        rotation_retries: how many times a failed rotation is run again from
            createSecret with the same token, as AWS retries one (0 to 10; 0 by
            default: the steps run during the call, see docs/emulator.md).
        tls: run SecantusDB TLS-only with a CA and certificate made for this
            stack (not with ``mongodb_uri``: its URI carries its own TLS options).

    Raises:
        LocalStackError: an argument cannot work (a port out of range, a bad
            region or URI); nothing was started and no folder made.
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        app_secret_id: str = "mongodb-app",
        admin_secret_id: str = "mongodb-admin",
        mongo_port: int | None = None,
        secretsmanager_port: int = 0,
        sync_on_commit: bool = True,
        rotation_handler: Callable[[dict[str, Any]], object] | None = None,
        work_dir: Path | None = None,
        mongodb_uri: str | None = None,
        layout: str = "stack",
        min_rotation_gap: float | None = None,
        rotation_clock: Callable[[], float] | None = None,
        rotation_functions: Sequence[RotationFunction] = (),
        rotation_retries: int = 0,
        tls: bool = False,
    ) -> None:
        from .moto_server import MotoSecretsManagerServer

        if layout not in SECRET_LAYOUTS:
            raise LocalStackError(f"layout must be one of {', '.join(SECRET_LAYOUTS)}, not {layout!r}")
        self.layout = layout
        if min_rotation_gap is not None and not 0 <= min_rotation_gap < float("inf"):
            raise LocalStackError(f"min_rotation_gap must be a number of seconds >= 0, not {min_rotation_gap!r}")
        self.min_rotation_gap = min_rotation_gap
        self.rotation_clock = rotation_clock
        # Every input is checked before anything exists (a process, a folder).
        if not REGION_PATTERN.fullmatch(region):
            raise LocalStackError(f"region {region!r} is not an AWS region name; use e.g. us-east-1 or eu-west-1")
        if mongo_port is not None:
            check_port(mongo_port, "SecantusDB port")
        if secretsmanager_port != 0:
            check_port(secretsmanager_port, "Secrets Manager port")
        self.external_mongo = ExternalMongo.parse(mongodb_uri) if mongodb_uri else None
        if tls and self.external_mongo is not None:
            raise LocalStackError(
                "--tls makes a CA for the stack's own SecantusDB; with MONGODB_URI put tls=true and "
                "tlsCAFile=... in the URI instead"
            )
        self.region = region
        self.app_secret_id = app_secret_id
        self.admin_secret_id = admin_secret_id
        self._owns_work_dir = work_dir is None
        # Named now, made by start(): a stack that never starts leaves no folder behind.
        self.work_dir = work_dir or Path(tempfile.gettempdir()) / f"{WORK_DIR_PREFIX}{secrets.token_hex(8)}"
        self._made_work_dir = False
        # The SecantusDB process, or None when an external MongoDB is used.
        self.mongo: SecantusServer | None = None
        self.tls = _tls_files(self.work_dir) if tls else None
        if self.external_mongo is None:
            self.mongo = SecantusServer(
                self.work_dir / "secantus-data",
                self.work_dir / "secantus.log",
                port=mongo_port,
                sync_on_commit=sync_on_commit,
                tls=self.tls,
            )
        self._created_users: list[str] = []
        self.secretsmanager = MotoSecretsManagerServer(port=secretsmanager_port)
        self.rotation_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{ROTATION_FUNCTION_NAME}"
        self._rotation_handler = rotation_handler
        self.rotation_functions = _check_functions(rotation_functions)
        self.rotation_retries = _check_retries(rotation_retries)
        self.function_host: FunctionHost | None = None
        """The worker processes of ``rotation_functions`` (made by :meth:`start`)."""
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
        """Start both servers, create the users and the secrets, and configure rotation.

        An exception (``KeyboardInterrupt`` included) at any moment stops
        whatever was started and removes the folder before it propagates.

        Raises:
            LocalStackError: a server did not start, or another live stack in
                this process uses the same region.
        """
        if self.region in _live_regions:
            raise LocalStackError(
                f"moto Secrets Manager: another embedded stack in this process already uses region {self.region!r}; "
                "give this one another region (moto keeps one state per region)"
            )
        try:
            with signals_deferred():
                _live_regions.add(self.region)
                self._holds_region = True
                self._make_work_dir()
            if self.tls is not None:
                _make_tls(self.tls)
            self.secretsmanager.start(reset_region=self.region)
            app_passwords = {user: new_password() for user in APP_USERS}
            if self.mongo is not None:
                admin_password = new_password()
                # Provisioning runs without --auth (SecantusDB has no localhost exception), then restarts with it.
                self.mongo.start(auth=False)
                create_secantus_users(
                    self.mongo.host, self.mongo.port, self._tls_options(), admin_password, app_passwords
                )
                _log.info("embedded stack: users created; restarting SecantusDB with --auth")
                self.mongo.restart(auth=True)
            else:
                if self.external_mongo is None:
                    raise LocalStackError("no MONGODB_URI was given to provision")
                admin_password = create_external_users(
                    self.external_mongo, app_passwords, self._created_users, self.mongo_client
                )
            admin_arn = self._create_secrets(admin_password, app_passwords)
            self._register_rotation_function()
            self._configure_rotation()
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
            rotation_functions={f.name: self.function_arn(f.name) for f in self.rotation_functions},
            admin_username=self.external_mongo.username if self.external_mongo else ADMIN_USER,
            admin_password=admin_password,
            app_passwords=app_passwords,
            min_rotation_gap=self.min_rotation_gap,
            tls_ca_file=str(self.tls.ca_file) if self.tls is not None else None,
        )
        _log.info("embedded stack: ready")
        return self._info

    def stop(self) -> None:
        """Stop every server this stack started and remove its temporary files.

        Safe to call more than once; a signal that arrives meanwhile is
        delivered after the clean-up, never in the middle of it.

        Raises:
            LocalStackError: something did not stop (see :meth:`leftovers`).
        """
        with signals_deferred():
            self._stop()

    def _stop(self) -> None:
        from .moto_server import unregister_rotation_function

        unregister_rotation_function(self.rotation_function_arn)
        for function in self.rotation_functions:
            unregister_rotation_function(self.function_arn(function.name))
        if self.function_host is not None:
            self.function_host.stop()
        errors: list[BaseException] = []
        stops = [self._drop_created_users, self.secretsmanager.stop]
        if self.mongo is not None:
            stops.insert(0, self.mongo.stop)
        for stop in stops:
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest, report after
                errors.append(exc)
        if self._owns_work_dir and self._made_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self._made_work_dir = self.work_dir.exists()
        self._info = None
        if self._holds_region:
            _live_regions.discard(self.region)
            self._holds_region = False
        if errors:
            raise LocalStackError(f"the embedded stack did not stop cleanly: {errors[0]}") from errors[0]

    def leftovers(self) -> list[str]:
        """What this stack started that still exists (processes, ports, its folder); empty after a clean stop."""
        found: list[str] = []
        if self.mongo is not None:
            found += [f"SecantusDB process {pid}" for pid in self.mongo.started_pids if pid_alive(pid)]
        if self.function_host is not None:
            found += [f"rotation function worker {pid}" for pid in self.function_host.started_pids if pid_alive(pid)]
        if self.secretsmanager.running:
            found.append(f"moto Secrets Manager on port {self.secretsmanager.port}")
        if self._owns_work_dir and self.work_dir.exists():
            found.append(f"folder {self.work_dir}")
        return found

    def _make_work_dir(self) -> None:
        try:
            self.work_dir.mkdir(mode=0o700, parents=not self._owns_work_dir, exist_ok=not self._owns_work_dir)
        except OSError as exc:
            raise LocalStackError(f"cannot make the stack's folder {self.work_dir}: {exc.strerror}") from exc
        self._made_work_dir = True
        _log.info("embedded stack: folder %s", self.work_dir)

    def _configure_rotation(self) -> None:
        """Rotation on, as a deployed ``RotationSchedule`` leaves it: the stack's function, ``rate(7 days)``."""
        from .moto_server import configure_rotation

        configure_rotation(
            ACCOUNT_ID,
            self.region,
            self.app_secret_id,
            function_arn=self.rotation_function_arn,
            schedule_expression=DEFAULT_SCHEDULE,
        )

    # -- clients -------------------------------------------------------------

    def secretsmanager_client(self) -> SecretsManagerClient:
        """A boto3 Secrets Manager client pointed at the embedded server (moto's dummy keys)."""
        return secretsmanager_client(
            region=self.region,
            endpoint_url=self.secretsmanager.url,
            aws_access_key_id=DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def mongo_client(self, username: str, password: str, **options: Any) -> MongoClient[dict[str, Any]]:
        """A pymongo client logged in as ``username`` (defined in ``admin``)."""
        options.setdefault("serverSelectionTimeoutMS", 5000)
        options.setdefault("authSource", "admin")
        if self.external_mongo is not None:
            return open_mongo_client(self.external_mongo.endpoint_uri, username=username, password=password, **options)
        server = self._secantus()
        options.update(self._tls_options())
        return open_mongo_client(host=server.host, port=server.port, username=username, password=password, **options)

    def _tls_options(self) -> dict[str, Any]:
        """How a client reaches a TLS stack: TLS on, its CA, certificate and host name verified."""
        return {} if self.tls is None else {"tls": True, "tlsCAFile": str(self.tls.ca_file)}

    def admin_client(self, **options: Any) -> MongoClient[dict[str, Any]]:
        """A pymongo client logged in as the admin (the ``mongodb_uri`` user, when given)."""
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

    def _drop_created_users(self) -> None:
        """Drop the users this stack created on an external MongoDB (SecantusDB's data is removed anyway)."""
        users, self._created_users = self._created_users, []
        if self.external_mongo is not None and users:
            drop_users(self.external_mongo, users)

    def _create_secrets(self, admin_password: str, app_passwords: Mapping[str, str]) -> str:
        client = self.secretsmanager_client()
        admin_document, app_document = secret_documents(
            external=self.external_mongo,
            address=self._mongo_address() if self.external_mongo is None else ("", 0),
            tls_ca_file=str(self.tls.ca_file) if self.tls is not None else None,
            layout=self.layout,
            admin_password=admin_password,
            app_passwords=app_passwords,
        )
        admin = client.create_secret(
            Name=self.admin_secret_id,
            Description="MongoDB admin (master) user for secretswitch rotation",
            SecretString=json.dumps(admin_document),
        )
        client.create_secret(
            Name=self.app_secret_id,
            Description="MongoDB application user, rotated with alternating users",
            SecretString=json.dumps({**app_document, "masterarn": admin["ARN"]}),
        )
        return admin["ARN"]

    def _register_rotation_function(self) -> None:
        from .moto_server import register_rotation_function

        handler = self._rotation_handler or _default_rotation_handler(
            self.secretsmanager_client, min_rotation_gap=self.min_rotation_gap, clock=self.rotation_clock
        )
        register_rotation_function(self.rotation_function_arn, handler, retries=self.rotation_retries)
        if self.rotation_functions:
            from .functions import FunctionHost

            self.function_host = FunctionHost(
                self.rotation_functions,
                region=self.region,
                account_id=ACCOUNT_ID,
                endpoint_url=self.secretsmanager.url,
                credentials=DUMMY_AWS_ENV,
            )
            for function in self.rotation_functions:
                register_rotation_function(
                    self.function_arn(function.name),
                    self.function_host.invoker(function.name),
                    retries=self.rotation_retries,
                )

    def function_arn(self, name: str) -> str:
        """The Lambda ARN of a registered rotation function."""
        from .functions import function_arn

        return function_arn(self.region, ACCOUNT_ID, name)


def _default_rotation_handler(
    client_factory: Callable[[], SecretsManagerClient],
    *,
    min_rotation_gap: float | None = None,
    clock: Callable[[], float] | None = None,
) -> Callable[[dict[str, Any]], object]:
    """The project's rotation function, talking to this stack's Secrets Manager."""
    from collections import ChainMap

    from secretswitch.rotation_lambda.lambda_function import make_handler

    # The guard is set here, whatever the shell says: off unless asked for. The rest is read live.
    environ = ChainMap({"MIN_ROTATION_GAP": f"{min_rotation_gap or 0:g}"}, os.environ)
    handler = make_handler(secretsmanager_client_factory=client_factory, environ=environ, wall_clock=clock or time.time)
    return lambda event: handler(event, None)


def _check_functions(functions: Sequence[RotationFunction]) -> tuple[RotationFunction, ...]:
    names = [function.name for function in functions]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LocalStackError(f"rotation functions {duplicates} are given twice; give each function one name")
    if ROTATION_FUNCTION_NAME in names:
        raise LocalStackError(f"rotation function name {ROTATION_FUNCTION_NAME!r} is the stack's own; choose another")
    return tuple(functions)


def _check_retries(retries: int) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise LocalStackError(f"rotation retries {retries!r} must be a whole number from 0 to 10")
    return retries


def _tls_files(work_dir: Path) -> TlsFiles:
    try:
        from .tls import TlsFiles
    except ImportError as exc:  # cryptography comes with the local extra (moto needs it too)
        raise LocalStackError("--tls needs the cryptography package; run `pip install 'secretswitch[local]'`") from exc
    return TlsFiles(work_dir.absolute() / "tls")


def _make_tls(files: TlsFiles) -> None:
    from .tls import make_stack_tls

    try:
        make_stack_tls(files.folder)
    except OSError as exc:
        raise LocalStackError(f"cannot write the stack's TLS files in {files.folder}: {exc.strerror}") from exc
    _log.info("embedded stack: TLS CA and server certificate in %s", files.folder)
