"""The rotation function's only door to Secrets Manager.

Wraps a boto3 ``secretsmanager`` client: every call the steps make, with
botocore errors translated by the client seam's one translation
(:func:`secretswitch.client.secretsmanager.translate_error`: one not-found
rule, one advice table). AWS error messages never carry secret values; ours
name the secret id, the version and the stage only.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from secretswitch.client.errors import SecretsManagerError
from secretswitch.client.secretsmanager import (
    RotationSchedule,
    SecretVersion,
    rotation_schedule_of,
    translate_error,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from .rules import PasswordPolicy

__all__ = ["ListedVersion", "SecretMetadata", "SecretsManagerGateway"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ListedVersion:
    """One version as ``ListSecretVersionIds`` lists it (no value)."""

    version_id: str
    stages: tuple[str, ...]
    created: Any = None


@dataclass(frozen=True, slots=True)
class SecretMetadata:
    """What ``DescribeSecret`` says about a secret (no values)."""

    arn: str
    name: str
    rotation_enabled: bool | None
    versions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rotation_lambda_arn: str | None = None
    schedule: RotationSchedule = field(default_factory=lambda: RotationSchedule(False))
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def rotation_days(self) -> int | None:
        return self.schedule.rotation_days

    @property
    def schedule_expression(self) -> str | None:
        return self.schedule.schedule_expression

    @property
    def last_rotated(self) -> dt.datetime | None:
        return self.schedule.last_rotated

    @property
    def next_rotation(self) -> dt.datetime | None:
        return self.schedule.next_rotation


class SecretsManagerGateway:
    """Secrets Manager calls used by the rotation steps and the stand-in.

    Args:
        client: a boto3 ``secretsmanager`` client.
    """

    def __init__(self, client: SecretsManagerClient) -> None:
        self.client = client

    def describe(self, secret_id: str) -> SecretMetadata:
        response = self._call("DescribeSecret", secret_id, lambda: self.client.describe_secret(SecretId=secret_id))
        return SecretMetadata(
            arn=response["ARN"],
            name=response["Name"],
            rotation_enabled=response.get("RotationEnabled"),
            versions={v: tuple(stages) for v, stages in (response.get("VersionIdsToStages") or {}).items()},
            rotation_lambda_arn=response.get("RotationLambdaARN") or None,
            schedule=rotation_schedule_of(response),
            tags={str(tag.get("Key")): str(tag.get("Value", "")) for tag in response.get("Tags") or ()},
        )

    def version_dates(self, secret_id: str) -> dict[str, Any]:
        """Every version's ``CreatedDate`` (``ListSecretVersionIds``, deprecated versions included)."""
        dates: dict[str, Any] = {}
        token: str | None = None
        while True:
            response = self._call("ListSecretVersionIds", secret_id, self._list_versions(secret_id, token))
            for version in response.get("Versions") or ():
                dates[version["VersionId"]] = version.get("CreatedDate")
            token = response.get("NextToken") or None
            if token is None:
                return dates

    def listed_versions(self, secret_id: str) -> tuple[ListedVersion, ...]:
        """``ListSecretVersionIds``: every version that carries a stage, newest first (no values)."""
        found: list[ListedVersion] = []
        token: str | None = None
        while True:
            response = self._call("ListSecretVersionIds", secret_id, self._list_versions(secret_id, token, False))
            for version in response.get("Versions") or ():
                stages = tuple(version.get("VersionStages") or ())
                if stages:
                    found.append(ListedVersion(str(version["VersionId"]), stages, version.get("CreatedDate")))
            token = response.get("NextToken") or None
            if token is None:
                return tuple(sorted(found, key=lambda v: str(v.created or ""), reverse=True))

    def secrets_rotated_by(self, function_arn: str) -> Iterator[tuple[str, str]]:
        """``ListSecrets``: ``(arn, name)`` of each secret whose rotation function is ``function_arn``."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"NextToken": token} if token else {}
            response = self._call("ListSecrets", "*", functools.partial(self.client.list_secrets, **kwargs))
            for entry in response.get("SecretList") or ():
                if entry.get("RotationLambdaARN") == function_arn:
                    yield str(entry["ARN"]), str(entry.get("Name") or entry["ARN"])
            token = response.get("NextToken") or None
            if token is None:
                return

    def _list_versions(self, secret_id: str, token: str | None, deprecated: bool = True) -> Callable[[], Any]:
        kwargs: dict[str, Any] = {"SecretId": secret_id, "IncludeDeprecated": deprecated}
        if token:
            kwargs["NextToken"] = token
        return lambda: self.client.list_secret_version_ids(**kwargs)

    def tag(self, secret_id: str, key: str, value: str) -> None:
        """``TagResource``: set one tag on the secret."""
        self._call(
            "TagResource",
            secret_id,
            lambda: self.client.tag_resource(SecretId=secret_id, Tags=[{"Key": key, "Value": value}]),
            f"tag {key}",
        )

    def untag(self, secret_id: str, key: str) -> None:
        """``UntagResource``: remove one tag from the secret."""
        self._call(
            "UntagResource", secret_id, lambda: self.client.untag_resource(SecretId=secret_id, TagKeys=[key]), key
        )

    def secret_string(self, secret_id: str, *, stage: str | None, version_id: str | None = None) -> str:
        """The ``SecretString`` of the version with ``stage`` (and ``version_id`` when given; ``stage=None``: any).

        Raises:
            SecretNotFoundError: no such version, or the version has no value yet.
            SecretsManagerError: the call failed otherwise, or the value is binary.
        """
        kwargs: dict[str, Any] = {"SecretId": secret_id}
        if stage is not None:
            kwargs["VersionStage"] = stage
        if version_id is not None:
            kwargs["VersionId"] = version_id
        where = " ".join(part for part in (stage, f"version {version_id}" if version_id else None) if part)
        response = self._call("GetSecretValue", secret_id, lambda: self.client.get_secret_value(**kwargs), where)
        value = response.get("SecretString")
        if value is None:
            raise SecretsManagerError(f"secret {secret_id!r} {where} has no SecretString (binary secrets are not used)")
        return value

    def version(self, secret_id: str, *, version_id: str) -> SecretVersion:
        """``GetSecretValue`` of one version by id, with its stages and ``CreatedDate``.

        Raises:
            SecretNotFoundError: no such version, or the version has no value yet.
            SecretsManagerError: the call failed otherwise.
        """
        response = self._call(
            "GetSecretValue",
            secret_id,
            lambda: self.client.get_secret_value(SecretId=secret_id, VersionId=version_id),
            f"version {version_id}",
        )
        return SecretVersion(
            version_id=response.get("VersionId"),
            stages=tuple(response.get("VersionStages") or ()),
            secret_string=response.get("SecretString"),
            created=response.get("CreatedDate"),
        )

    def put_pending(self, secret_id: str, token: str, secret_string: str, rotation_token: str | None) -> None:
        kwargs: dict[str, Any] = {
            "SecretId": secret_id,
            "ClientRequestToken": token,
            "SecretString": secret_string,
            "VersionStages": ["AWSPENDING"],
        }
        if rotation_token is not None:
            kwargs["RotationToken"] = rotation_token
        self._call("PutSecretValue", secret_id, lambda: self.client.put_secret_value(**kwargs), f"version {token}")

    def random_password(self, policy: PasswordPolicy) -> str:
        response = self._call("GetRandomPassword", "-", lambda: self.client.get_random_password(**policy.request()))
        return response["RandomPassword"]

    def move_current(self, secret_id: str, token: str, from_version: str | None) -> None:
        """Stage AWSCURRENT on ``token`` (Secrets Manager marks the old one AWSPREVIOUS)."""
        kwargs: dict[str, Any] = {"SecretId": secret_id, "VersionStage": "AWSCURRENT", "MoveToVersionId": token}
        if from_version is not None:
            kwargs["RemoveFromVersionId"] = from_version
        self._call(
            "UpdateSecretVersionStage", secret_id, lambda: self.client.update_secret_version_stage(**kwargs), token
        )

    def remove_stage(self, secret_id: str, stage: str, version_id: str) -> None:
        self._call(
            "UpdateSecretVersionStage",
            secret_id,
            lambda: self.client.update_secret_version_stage(
                SecretId=secret_id, VersionStage=stage, RemoveFromVersionId=version_id
            ),
            f"{stage} from version {version_id}",
        )

    def rotate(
        self,
        secret_id: str,
        token: str,
        *,
        rotation_lambda_arn: str | None,
        rotation_rules: Mapping[str, Any] | None,
    ) -> None:
        """``RotateSecret``; ``None`` leaves the function or the schedule as the secret has them."""
        kwargs: dict[str, Any] = {"SecretId": secret_id, "ClientRequestToken": token}
        # RotationRules replaces the whole schedule (Duration, cron): send it only when asked.
        if rotation_rules is not None:
            kwargs["RotationRules"] = dict(rotation_rules)
        if rotation_lambda_arn is not None:
            kwargs["RotationLambdaARN"] = rotation_lambda_arn
        self._call("RotateSecret", secret_id, lambda: self.client.rotate_secret(**kwargs), f"token {token}")

    def _call(self, operation: str, secret_id: str, call: Callable[[], _T], where: str = "") -> _T:
        try:
            return call()
        except Exception as exc:
            raise translate_error(exc, operation=operation, secret_id=secret_id, where=where) from exc
