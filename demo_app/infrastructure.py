"""Where a demo run's Secrets Manager and MongoDB are: the embedded stack, or real ones checked first.

:func:`embedded_infrastructure` starts the embedded stack (moto + SecantusDB, or the MongoDB of
``MONGODB_URI``) with the rotation function behind the demo's step recorder;
:func:`external_infrastructure` checks an existing Secrets Manager and the MongoDB its secret
names before anything starts. Either way the run gets an :class:`Infrastructure`.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from secretswitch.client.credentials import MongoCredentials, parse_secret
from secretswitch.client.errors import ConfigurationError

from .config import DemoConfig
from .events import EventLog
from .rotations import StepRecorder
from .workload import COLLECTION

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from pymongo import MongoClient

    from secretswitch.embedded_stack.stack import EmbeddedStack

__all__ = ["VERIFIER_USER", "Infrastructure", "embedded_infrastructure", "external_infrastructure"]

_log = logging.getLogger(__name__)

VERIFIER_USER = "secretswitch_demo_verifier"


@dataclass
class Infrastructure:
    """Where the run's Secrets Manager and MongoDB are, and how to reach them."""

    secret_id: str
    secretsmanager: Callable[[], SecretsManagerClient]
    rotate: Callable[[], Any]
    verifier: Callable[[], MongoClient[dict[str, Any]]]
    recorder: StepRecorder | None
    description: str
    stack: EmbeddedStack | None = None
    database: str | None = None  # the application's database; None: the secret's dbname

    def app_database(self, credentials: MongoCredentials) -> str:
        return self.database or credentials.database or "mydb"

    def close(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None


def embedded_infrastructure(config: DemoConfig, events: EventLog) -> Infrastructure:
    """Start the embedded stack for the run, the rotation function behind the demo's step recorder."""
    from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack
    from secretswitch.rotation_lambda.lambda_function import make_handler
    from secretswitch.rotation_tools.rotate import rotate_secret

    recorder = StepRecorder(events)
    stack = EmbeddedStack(
        region=config.region or "us-east-1",
        rotation_handler=recorder,
        mongodb_uri=config.mongodb_uri,
        layout=config.layout,
        tls=config.tls,
    )
    stack.start()
    try:
        environ: Mapping[str, str] | None = None
        if config.rotation_guard:
            # The guard's gap in real seconds: the demo's days, compressed like everything else.
            environ = ChainMap({"MIN_ROTATION_GAP": f"{config.rotation_guard_seconds:g}"}, os.environ)
        handler = make_handler(secretsmanager_client_factory=stack.secretsmanager_client, environ=environ)
        recorder.inner = lambda event: handler(event, None)
        # The admin (userAdminAnyDatabase) cannot read mydb: a read-only user of our own checks the writes.
        verifier_password = secrets.token_urlsafe(24)
        stack.create_user(VERIFIER_USER, verifier_password, roles=[{"role": "read", "db": APP_DATABASE}])
        rotation_client = stack.secretsmanager_client()
        info = stack.info

        def rotate() -> Any:
            return rotate_secret(
                rotation_client,
                info.app_secret_id,
                rotation_lambda_arn=info.rotation_function_arn,
                rotation_days=max(1, round(config.rotation_days)),
            )

        return Infrastructure(
            secret_id=info.app_secret_id,
            secretsmanager=stack.secretsmanager_client,
            rotate=rotate,
            verifier=lambda: stack.mongo_client(VERIFIER_USER, verifier_password),
            recorder=recorder,
            description=(
                f"embedded stack: moto Secrets Manager at {info.secretsmanager_url}, "
                + (
                    f"SecantusDB at {info.mongo_host}:{info.mongo_port} (pid {stack.mongo.pid})"
                    + (", TLS only (the run's own CA)" if info.tls_ca_file else "")
                    if stack.mongo is not None
                    else f"the MongoDB of MONGODB_URI at {info.mongo_host}:{info.mongo_port}"
                )
            ),
            stack=stack,
            database=APP_DATABASE,  # the stack's application database, whatever the secret's dbname
        )
    except BaseException:
        stack.stop()
        raise


def external_infrastructure(config: DemoConfig) -> Infrastructure:
    """An existing Secrets Manager (AWS or an endpoint) and the MongoDB its secret names; checked first."""
    from pymongo.errors import PyMongoError

    from secretswitch.client.mongo import build_mongo_client, open_mongo_client
    from secretswitch.client.secretsmanager import call_limits, error_code, is_not_found, secretsmanager_client
    from secretswitch.rotation_tools.rotate import rotate_secret

    where = config.endpoint or "AWS"

    def make_client() -> SecretsManagerClient:
        return secretsmanager_client(
            region=config.region,
            endpoint_url=config.endpoint,
            endpoint_source="--secretsmanager-endpoint",
            config=call_limits(connect_timeout=3, read_timeout=10, max_attempts=2),
            region_how=" or pass --region",
        )

    client = make_client()
    try:
        metadata = client.describe_secret(SecretId=config.secret_id)
        value = client.get_secret_value(SecretId=config.secret_id, VersionStage="AWSCURRENT")
    except Exception as exc:
        if is_not_found(exc):
            raise ConfigurationError(
                f"secret {config.secret_id!r} does not exist in Secrets Manager ({where}); "
                "check --secret-id / SECRETSWITCH_SECRET_ID and the region"
            ) from exc
        if _answered(exc):
            raise ConfigurationError(
                f"Secrets Manager ({where}) refused DescribeSecret/GetSecretValue on {config.secret_id!r}: "
                f"{error_code(exc)}; check the credentials and their permissions"
            ) from exc
        raise ConfigurationError(
            f"cannot reach Secrets Manager ({where}): {exc}; check --secretsmanager-endpoint / "
            "AWS_ENDPOINT_URL_SECRETS_MANAGER, the region and the AWS credentials"
        ) from exc
    credentials = parse_secret(
        value.get("SecretString"), secret_id=config.secret_id, version_id=str(value.get("VersionId"))
    )
    if not metadata.get("RotationLambdaARN"):
        raise ConfigurationError(
            f"secret {config.secret_id!r} has no rotation function; deploy deploy/template.yaml "
            "(see docs/deploying.md) or run `secretswitch rotate SECRET_ID --lambda-arn ARN` once"
        )
    probe = build_mongo_client(credentials, {"serverSelectionTimeoutMS": 5000})
    try:
        probe.admin.command("ping")
    except PyMongoError as exc:
        raise ConfigurationError(
            f"cannot reach MongoDB at {credentials.endpoint} (named in {config.secret_id!r}) as "
            f"{credentials.username}: {type(exc).__name__}; check the secret's host and the network"
        ) from exc
    finally:
        probe.close()
    rotation_client = make_client()

    def rotate() -> Any:
        outcome = rotate_secret(rotation_client, config.secret_id, rotation_days=max(1, round(config.rotation_days)))
        if getattr(outcome, "asynchronous", False):
            return _wait_for_aws_rotation(rotation_client, config.secret_id, outcome)
        return outcome

    verify_uri = config.verify_uri

    def verifier() -> MongoClient[dict[str, Any]]:
        if verify_uri:
            reader = open_mongo_client(verify_uri, serverSelectionTimeoutMS=5000)
            try:
                app_database = config.database or credentials.database or "mydb"
                reader[app_database][COLLECTION].find_one({}, projection={"_id": 1})
                return reader
            except PyMongoError as exc:
                # e.g. `secretswitch local`'s admin URI: userAdminAnyDatabase cannot read the app's database.
                _log.warning("MONGODB_URI cannot read the application's database (%s); using AWSCURRENT", exc)
                reader.close()
        # No usable MONGODB_URI: an independent client from AWSCURRENT, built at the end.
        latest = make_client().get_secret_value(SecretId=config.secret_id, VersionStage="AWSCURRENT")
        fresh = parse_secret(latest.get("SecretString"), secret_id=config.secret_id)
        return build_mongo_client(fresh, {"serverSelectionTimeoutMS": 5000})

    return Infrastructure(
        secret_id=config.secret_id,
        secretsmanager=make_client,
        rotate=rotate,
        verifier=verifier,
        recorder=None,
        description=f"Secrets Manager: {where}; MongoDB at {credentials.endpoint} (from the secret)",
        database=config.database,
    )


def _answered(exc: BaseException) -> bool:
    """Whether Secrets Manager answered with an error (a ClientError carries its response), not unreachable."""
    return isinstance(getattr(exc, "response", None), dict)


@dataclass(frozen=True)
class _AwsOutcome:
    token: str
    completed: bool
    failed_step: str | None
    message: str


def _wait_for_aws_rotation(client: SecretsManagerClient, secret_id: str, outcome: Any, timeout: float = 300) -> Any:
    """AWS runs the function asynchronously: wait until the token's version is AWSCURRENT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        versions = client.list_secret_version_ids(SecretId=secret_id).get("Versions", [])
        for version in versions:
            if version.get("VersionId") == outcome.token and "AWSCURRENT" in version.get("VersionStages", []):
                return _AwsOutcome(outcome.token, True, None, "rotated by AWS")
        time.sleep(1.0)
    return _AwsOutcome(outcome.token, False, "timeout", f"AWS did not finish the rotation within {timeout:.0f} s")
