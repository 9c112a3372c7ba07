"""``secretswitch status``: a secret's versions, stages, users and schedule, without a password.

It also shows the rotation guard's view (:mod:`rotation_lambda.rotation_guard`,
same rule and same Secrets Manager records): when ``AWSCURRENT`` last moved,
the earliest time the next rotation is safe, and whether the configured
schedule keeps the gap (:func:`client.policy.schedule_keeps_gap`, the rule of
the client's ``check_rotation_schedule()``).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from secretswitch.client.credentials import parse_secret
from secretswitch.client.errors import SecretNotFoundError, SecretSwitchError
from secretswitch.client.policy import rotation_gap_decision, schedule_keeps_gap, shortest_rotation_gap
from secretswitch.client.secretsmanager import next_rotation_after, rotation_schedule_of
from secretswitch.rotation_lambda.rotation_guard import override_expiry, rotation_record
from secretswitch.rotation_lambda.secretsmanager import SecretsManagerGateway

from .rotate import rotation_in_progress

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["GuardStatus", "SecretStatus", "VersionStatus", "schedule_of", "secret_status"]


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """One version of the secret, without its password."""

    version_id: str
    stages: tuple[str, ...]
    username: str | None
    created: Any = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class GuardStatus:
    """The rotation guard's view of the secret (times are aware UTC datetimes).

    Attributes:
        min_gap: the gap in seconds the view was computed with (0: the guard is off).
        last_switch: when AWSCURRENT last moved as Secrets Manager records it (``None``: no history).
        safe_at: the earliest safe time for the next rotation, last switch + gap (``None``: any time).
        allowed_now: a rotation now would pass the guard.
        shortest_gap: the least time the schedule leaves between two rotations (``None``: no rate schedule).
        schedule_keeps_gap: whether that is more than ``min_gap`` (``None``: cannot tell, e.g. cron).
        override_until: an emergency override's expiry, if the tag is set.
        reason: the guard's one line.
    """

    min_gap: float
    last_switch: dt.datetime | None
    safe_at: dt.datetime | None
    allowed_now: bool
    shortest_gap: float | None
    schedule_keeps_gap: bool | None
    override_until: dt.datetime | None
    reason: str


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
    guard: GuardStatus | None = None


def schedule_of(rules: Mapping[str, Any]) -> tuple[float | None, float]:
    """``(interval, window)`` in seconds from a ``RotationRules`` structure (``None`` interval: cron or none)."""
    schedule = rotation_schedule_of({"RotationRules": rules})
    return schedule.interval_seconds, schedule.window_seconds


def _aware(seconds: float | None) -> dt.datetime | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def secret_status(
    sm_client: SecretsManagerClient,
    secret_id: str,
    *,
    min_rotation_gap: float | None = None,
    clock: Callable[[], float] = time.time,
) -> SecretStatus:
    """Versions with stages, users and creation times, the rotation schedule and the guard's view (no passwords).

    Args:
        min_rotation_gap: the rotation guard's gap in seconds, as the function is
            configured (0: off); ``None`` leaves the guard's view out.
        clock: the wall clock (epoch seconds).
    """
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
            version = gateway.version(secret_id, version_id=version_id)
            created = version.created
            username = parse_secret(version.secret_string, secret_id=secret_id).username
        except SecretNotFoundError:
            problem = "no value yet"
        except SecretSwitchError as exc:
            problem = str(exc)  # names ids and fields, never a value
        versions.append(VersionStatus(version_id, tuple(stages), username, created, problem))
    next_rotation = metadata.next_rotation
    if next_rotation is None and metadata.last_rotated is not None:
        next_rotation = next_rotation_after(metadata.last_rotated, metadata.schedule.interval_hours)
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
        guard=_guard_status(gateway, secret_id, metadata, min_rotation_gap, clock)
        if min_rotation_gap is not None
        else None,
    )


def _guard_status(
    gateway: SecretsManagerGateway, secret_id: str, metadata: Any, min_gap: float, clock: Callable[[], float]
) -> GuardStatus:
    record = rotation_record(metadata, gateway.version_dates(secret_id), rotation_in_progress(metadata))
    expiry, _problem = override_expiry(metadata.tags)
    decision = rotation_gap_decision(clock(), record, min_gap=min_gap, override_until=expiry)
    interval, window = metadata.schedule.interval_seconds, metadata.schedule.window_seconds
    keeps = (
        schedule_keeps_gap(min_gap, interval, rotation_window=window) if interval is not None and min_gap > 0 else None
    )
    switch = decision.last_switch
    safe_at = switch + min_gap if switch is not None and math.isfinite(switch) and min_gap > 0 else decision.safe_at
    return GuardStatus(
        min_gap=min_gap,
        last_switch=_aware(switch),
        safe_at=_aware(safe_at),
        allowed_now=decision.allowed,
        shortest_gap=shortest_rotation_gap(interval, rotation_window=window) if interval is not None else None,
        schedule_keeps_gap=keeps,
        override_until=_aware(expiry),
        reason=decision.reason,
    )
