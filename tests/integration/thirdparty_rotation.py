"""A third-party rotation function, written only against AWS's documented contract: not secretswitch's.

Single-user MongoDB password rotation with plain boto3 and pymongo, the way a
team would write its own Lambda from the Secrets Manager user guide: the
handler prologue of AWS's templates (rotation enabled, the token is a version,
already AWSCURRENT means done, AWSPENDING must be on it), then the four steps.
It imports nothing from secretswitch: the emulator must run it as AWS would.

The secret: ``{"engine": "mongo", "host", "port", "username", "password", "dbname"}``
(``dbname`` is where the user is defined).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import boto3
from pymongo import MongoClient
from pymongo.errors import PyMongoError

__all__ = ["lambda_handler"]

logger = logging.getLogger(__name__)


def lambda_handler(event: dict[str, Any], context: Any) -> None:
    arn = event["SecretId"]
    token = event["ClientRequestToken"]
    step = event["Step"]
    client = boto3.client("secretsmanager", endpoint_url=os.environ.get("SECRETS_MANAGER_ENDPOINT"))

    metadata = client.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise ValueError(f"Secret {arn} is not enabled for rotation")
    versions = metadata["VersionIdsToStages"]
    if token not in versions:
        raise ValueError(f"Secret version {token} has no stage for rotation of secret {arn}")
    if "AWSCURRENT" in versions[token]:
        logger.info("version %s is already AWSCURRENT", token)
        return
    if "AWSPENDING" not in versions[token]:
        raise ValueError(f"Secret version {token} not set as AWSPENDING for rotation of secret {arn}")

    if step == "createSecret":
        _create(client, arn, token)
    elif step == "setSecret":
        _set(client, arn, token)
    elif step == "testSecret":
        _test(client, arn, token)
    elif step == "finishSecret":
        _finish(client, arn, token, metadata)
    else:
        raise ValueError(f"Invalid step parameter {step}")


def _secret(client: Any, arn: str, stage: str, token: str | None = None) -> dict[str, Any]:
    kwargs = {"SecretId": arn, "VersionStage": stage}
    if token is not None:
        kwargs["VersionId"] = token
    document: dict[str, Any] = json.loads(client.get_secret_value(**kwargs)["SecretString"])
    return document


def _create(client: Any, arn: str, token: str) -> None:
    current = _secret(client, arn, "AWSCURRENT")
    try:
        _secret(client, arn, "AWSPENDING", token)
        return  # a retried createSecret: the pending value exists already
    except client.exceptions.ResourceNotFoundException:
        pass
    password = client.get_random_password(ExcludeCharacters="/@\"'\\:%")["RandomPassword"]
    client.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=json.dumps({**current, "password": password}),
        VersionStages=["AWSPENDING"],
    )


def _connect(document: dict[str, Any]) -> MongoClient[dict[str, Any]] | None:
    client: MongoClient[dict[str, Any]] = MongoClient(
        host=document["host"],
        port=int(document.get("port", 27017)),
        username=document["username"],
        password=document["password"],
        authSource=document.get("dbname", "admin"),
        serverSelectionTimeoutMS=5000,
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        client.close()
        return None
    return client


def _set(client: Any, arn: str, token: str) -> None:
    pending = _secret(client, arn, "AWSPENDING", token)
    already = _connect(pending)
    if already is not None:
        already.close()
        return
    current = _secret(client, arn, "AWSCURRENT")
    if (current["username"], current["host"]) != (pending["username"], pending["host"]):
        raise ValueError("the pending version names another user or host than AWSCURRENT")
    connection = _connect(current)
    if connection is None:
        raise ValueError(f"cannot log in as {current['username']} with AWSCURRENT")
    with connection:
        connection[current.get("dbname", "admin")].command("updateUser", pending["username"], pwd=pending["password"])


def _test(client: Any, arn: str, token: str) -> None:
    connection = _connect(_secret(client, arn, "AWSPENDING", token))
    if connection is None:
        raise ValueError("cannot log in with the AWSPENDING version")
    connection.close()


def _finish(client: Any, arn: str, token: str, metadata: dict[str, Any]) -> None:
    current_version = next(v for v, stages in metadata["VersionIdsToStages"].items() if "AWSCURRENT" in stages)
    client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current_version
    )
