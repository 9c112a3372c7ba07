"""The operator's rotation tools: start or resume a rotation, show a secret's state, diagnose and repair.

They work against the embedded stack and real AWS alike, and are used by the
command line (``secretswitch rotate/status/doctor``), the demo, the stack's
fault injection and the tests. They build on the rotation function's pure
rules and its two gateways; they never import the demo or the command line.
"""

from __future__ import annotations

from .doctor import Finding, diagnose
from .rotate import (
    DEFAULT_ROTATION_DAYS,
    RotationOutcome,
    cancel_rotation,
    is_local_endpoint,
    rotate_secret,
    rotation_in_progress,
    rotation_rules,
)
from .status import SecretStatus, VersionStatus, secret_status

__all__ = [
    "DEFAULT_ROTATION_DAYS",
    "Finding",
    "RotationOutcome",
    "SecretStatus",
    "VersionStatus",
    "cancel_rotation",
    "diagnose",
    "is_local_endpoint",
    "rotate_secret",
    "rotation_in_progress",
    "rotation_rules",
    "secret_status",
]
