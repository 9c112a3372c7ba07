"""A single-user rotation in the style of AWS's MongoDB templates: PyMongo 3's ``authenticate``/``logout``.

The calls are the ones AWS's templates make (``MongoClient(host=, port=, ssl=)``,
``client[dbname].authenticate(user, password)``, ``db.command(...)``,
``db.logout()``); under PyMongo 4 they fail unless
:mod:`secretswitch.embedded_stack.pymongo4_shim` stands in for ``MongoClient``.
Written for the test, not copied from the templates.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from pymongo import MongoClient, errors

__all__ = ["lambda_handler"]


def lambda_handler(event: dict[str, Any], context: Any) -> None:
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    client = boto3.client("secretsmanager", endpoint_url=os.environ["SECRETS_MANAGER_ENDPOINT"])
    stages = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    if "AWSCURRENT" in stages[token]:
        return
    if "AWSPENDING" not in stages[token]:
        raise ValueError(f"version {token} is not AWSPENDING")
    current = json.loads(client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    if step == "createSecret":
        try:
            client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        except client.exceptions.ResourceNotFoundException:
            password = client.get_random_password(ExcludeCharacters="/@\"'\\:%")["RandomPassword"]
            client.put_secret_value(
                SecretId=arn,
                ClientRequestToken=token,
                SecretString=json.dumps({**current, "password": password}),
                VersionStages=["AWSPENDING"],
            )
        return
    pending = json.loads(
        client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")["SecretString"]
    )
    if step == "setSecret":
        if _connect(pending) is None:
            db = _connect(current)
            if db is None:
                raise ValueError("cannot log in with AWSCURRENT")
            db.command("updateUser", pending["username"], pwd=pending["password"])
            db.logout()
    elif step == "testSecret":
        db = _connect(pending)
        if db is None:
            raise ValueError("cannot log in with AWSPENDING")
        db.logout()
    elif step == "finishSecret":
        old = next(v for v, labels in stages.items() if "AWSCURRENT" in labels)
        client.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=old
        )


def _connect(document: dict[str, Any]) -> Any:
    db = MongoClient(host=document["host"], port=int(document["port"]), serverSelectionTimeoutMS=5000, ssl=False)[
        document.get("dbname", "admin")
    ]
    try:
        db.authenticate(document["username"], document["password"])
    except errors.PyMongoError:
        return None
    return db
