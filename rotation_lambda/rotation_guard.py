"""The rotation guard: never change the password of a user that readers may still hold.

A rotation changes the password of the current user's partner, the user that
was ``AWSCURRENT`` until the previous switch; a reader that fetched the secret
before that switch holds the partner until its next refresh (5 days for the
client's default). So createSecret, before it writes anything, refuses a
rotation while the last switch is less than ``MIN_ROTATION_GAP`` ago (the rule
is :func:`client.policy.rotation_gap_decision`, shared with the client's
``check_rotation_schedule()`` and ``secretswitch status``).

* **Configuration** is the function's environment only: ``MIN_ROTATION_GAP``
  in seconds (``default`` = :data:`~client.policy.DEFAULT_MIN_ROTATION_GAP`,
  5.5 days; unset or ``0`` = off, as on the local stack). The SAM template sets
  it. Nothing in the secret's value is read for it: content is not authority.
* **Data** is what Secrets Manager itself records: ``DescribeSecret``'s
  ``LastRotatedDate`` and labels, and the versions' ``CreatedDate``
  (``ListSecretVersionIds``, deprecated versions included). Nobody can write
  those dates; a ``PutSecretValue`` makes a new, later date (a stricter guard),
  never an earlier one.
* **The emergency override** is a tag on the secret, :data:`OVERRIDE_TAG`,
  whose value is an ISO-8601 UTC expiry at most an hour ahead (set with
  ``secretsmanager:TagResource``, e.g. by ``secretswitch rotate --emergency``).
  It is honoured once: the rotation it lets through removes it
  (``secretsmanager:UntagResource``) before anything is written, and logs a
  warning saying so. An expired tag, or one set further ahead, is ignored.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from secretswitch.client.errors import ConfigurationError, SecretsManagerError
from secretswitch.client.policy import (
    AWSCURRENT,
    DEFAULT_MIN_ROTATION_GAP,
    GapDecision,
    RotationRecord,
    rotation_gap_decision,
)

from .errors import RotationError
from .secretsmanager import SecretMetadata, SecretsManagerGateway

__all__ = [
    "MIN_ROTATION_GAP_ENV",
    "OVERRIDE_TAG",
    "RotationGuard",
    "format_override",
    "min_rotation_gap",
    "override_expiry",
    "rotation_record",
]

_log = logging.getLogger(__name__)

MIN_ROTATION_GAP_ENV = "MIN_ROTATION_GAP"
OVERRIDE_TAG = "secretswitch:rotation-guard-override-until"
"""The emergency override: a tag whose value is the override's expiry, e.g. ``2026-12-02T18:30:00Z``."""


def min_rotation_gap(environ: Mapping[str, str]) -> float:
    """The minimum gap in seconds from ``MIN_ROTATION_GAP`` (0 = off).

    Raises:
        ConfigurationError: the value is not ``default`` or a number of seconds >= 0.
    """
    raw = environ.get(MIN_ROTATION_GAP_ENV, "").strip()
    if not raw:
        return 0.0
    if raw.lower() == "default":
        return DEFAULT_MIN_ROTATION_GAP
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(
            f"{MIN_ROTATION_GAP_ENV} must be a number of seconds >= 0 or 'default' "
            f"({DEFAULT_MIN_ROTATION_GAP:.0f}), not {raw!r}; 0 turns the rotation guard off"
        )
    return value


def format_override(expiry: float) -> str:
    """The tag value for an override expiring at ``expiry`` (epoch seconds)."""
    return dt.datetime.fromtimestamp(expiry, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def override_expiry(tags: Mapping[str, str]) -> tuple[float | None, str | None]:
    """The override's expiry from the secret's tags, and why a tag present is unusable.

    Returns:
        ``(expiry, None)``, ``(None, None)`` without the tag, or ``(None,
        problem)`` when its value is not an ISO-8601 time with a time zone.
    """
    raw = tags.get(OVERRIDE_TAG)
    if raw is None:
        return None, None
    try:
        when = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        return None, f"the tag {OVERRIDE_TAG} is ignored: its value is not an ISO-8601 UTC time (2026-12-02T18:30:00Z)"
    return when.timestamp(), None


def _seconds(value: Any) -> float | None:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def rotation_record(
    metadata: SecretMetadata, created: Mapping[str, Any], pending_token: str | None = None
) -> RotationRecord:
    """What Secrets Manager recorded, for the rule (no value is read).

    Args:
        metadata: ``DescribeSecret`` (``LastRotatedDate``, labels).
        created: each version's ``CreatedDate`` (``ListSecretVersionIds``).
        pending_token: the rotation being decided (its own version does not count as history).
    """
    current = next((v for v, stages in metadata.versions.items() if AWSCURRENT in stages), None)
    others = [v for v in created.keys() | metadata.versions.keys() if v not in (current, pending_token)]
    return RotationRecord(
        last_rotated=_seconds(metadata.last_rotated),
        current_created=_seconds(created.get(current)) if current is not None else None,
        other_versions=len(others),
        rotation_started=_seconds(created.get(pending_token)) if pending_token is not None else None,
    )


class RotationGuard:
    """Applies the rule for createSecret (see the module docstring).

    Args:
        secrets: the Secrets Manager gateway (DescribeSecret, ListSecretVersionIds, UntagResource).
        environ: the function's configuration (``MIN_ROTATION_GAP``).
        clock: the wall clock, epoch seconds (injected by tests).
    """

    def __init__(
        self, secrets: SecretsManagerGateway, environ: Mapping[str, str], clock: Callable[[], float] = time.time
    ) -> None:
        self.secrets = secrets
        self.environ = environ
        self.clock = clock

    def decide(self, secret_id: str, pending_token: str | None) -> tuple[GapDecision, str | None]:
        """The decision for a rotation starting now, and a problem with the override tag (if any)."""
        gap = min_rotation_gap(self.environ)
        if gap <= 0:
            return GapDecision(True, "the rotation guard is off", None, None), None
        metadata = self.secrets.describe(secret_id)
        record = rotation_record(metadata, self.secrets.version_dates(secret_id), pending_token)
        expiry, problem = override_expiry(metadata.tags)
        return rotation_gap_decision(self.clock(), record, min_gap=gap, override_until=expiry), problem

    def check(self, secret_id: str, token: str) -> GapDecision:
        """Refuse the rotation ``token`` when it comes too soon; consume an override that lets it through.

        Raises:
            RotationError: refused (one line: why, and when the next rotation is safe); nothing was changed.
            ConfigurationError: ``MIN_ROTATION_GAP`` is malformed.
        """
        decision, problem = self.decide(secret_id, token)
        if not decision.allowed:
            raise RotationError(
                f"createSecret refused by the rotation guard for {secret_id!r}: {decision.reason}"
                + (f"; {problem}" if problem else "")
                + f"; for a leaked password see `secretswitch rotate {secret_id} --emergency`; nothing was changed"
            )
        if decision.overridden:
            try:
                self.secrets.untag(secret_id, OVERRIDE_TAG)
            except SecretsManagerError as exc:
                raise RotationError(
                    f"createSecret refused: the emergency override on {secret_id!r} must be removed when it is "
                    f"used (it works once), and UntagResource failed ({exc}); give the function "
                    "secretsmanager:UntagResource on the secret; nothing was changed"
                ) from exc
            _log.warning(
                "%s",
                json.dumps(
                    {
                        "secret_id": secret_id,
                        "step": "createSecret",
                        "token": token,
                        "outcome": "rotation-guard-overridden",
                        "reason": decision.reason,
                        "override_tag": f"{OVERRIDE_TAG} removed",
                    }
                ),
            )
        return decision
