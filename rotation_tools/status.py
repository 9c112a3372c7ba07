"""``secretswitch status``: a secret's versions, stages, users and schedule, without a password."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from secretswitch.client.credentials import parse_secret
from secretswitch.client.errors import SecretSwitchError
from secretswitch.rotation_lambda.secretsmanager import SecretsManagerGateway

from .rotate import rotation_in_progress

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["SecretStatus", "VersionStatus", "secret_status"]


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """One version of the secret, without its password."""

    version_id: str
    stages: tuple[str, ...]
    username: str | None
    created: Any = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class SecretStatus:
    """What ``secretswitch status`` shows."""

    secret_id: str
    arn: str
    rotation_enabled: bool
    rotation_days: int | None
    schedule_expression: str | None
    rotation_lambda_arn: str | None
    last_rotated: Any
    next_rotation: Any
    versions: tuple[VersionStatus, ...]
    in_progress: str | None


def secret_status(sm_client: SecretsManagerClient, secret_id: str) -> SecretStatus:
    """Versions with stages, users and creation times, and the rotation schedule (no passwords)."""
    gateway = SecretsManagerGateway(sm_client)
    metadata = gateway.describe(secret_id)
    versions: list[VersionStatus] = []
    for version_id, stages in metadata.versions.items():
        if not stages:
            continue  # deprecated versions: Secrets Manager drops them eventually
        username: str | None = None
        created: Any = None
        problem: str | None = None
        try:
            response = sm_client.get_secret_value(SecretId=secret_id, VersionId=version_id)
            created = response.get("CreatedDate")
            username = parse_secret(response.get("SecretString"), secret_id=secret_id).username
        except SecretSwitchError as exc:
            problem = str(exc)
        except Exception as exc:  # noqa: BLE001 - botocore's errors: report, never the value
            problem = "no value yet" if "ResourceNotFound" in str(exc) else type(exc).__name__
        versions.append(VersionStatus(version_id, tuple(stages), username, created, problem))
    next_rotation = metadata.next_rotation
    if next_rotation is None and isinstance(metadata.last_rotated, dt.datetime) and metadata.rotation_days:
        next_rotation = metadata.last_rotated + dt.timedelta(days=metadata.rotation_days)
    return SecretStatus(
        secret_id=secret_id,
        arn=metadata.arn,
        rotation_enabled=bool(metadata.rotation_enabled),
        rotation_days=metadata.rotation_days,
        schedule_expression=metadata.schedule_expression,
        rotation_lambda_arn=metadata.rotation_lambda_arn,
        last_rotated=metadata.last_rotated,
        next_rotation=next_rotation,
        versions=tuple(versions),
        in_progress=rotation_in_progress(metadata),
    )
