"""AWS's documented ``RotateSecret`` contract as pure functions: what a request may do, before it does anything.

The embedded Secrets Manager (:mod:`embedded_stack.moto_server`) decides every
``RotateSecret`` with these functions, whoever sends it (boto3, the AWS CLI,
``secretswitch rotate``); the command line uses the same checks to refuse a
bad ``--schedule`` before it calls anything. Nothing here does I/O.

What AWS documents, and what follows from it here:

* ``RotationRules`` takes ``AutomaticallyAfterDays`` (1-1000) *or* a
  ``ScheduleExpression`` (``rate(N days)``, ``rate(N hours)`` with N >= 4, or a
  six-field ``cron()``), not both, and an optional ``Duration`` (``"3h"``, at
  most 24 hours, shorter than a rate in hours).
* Without ``RotationLambdaARN`` or ``RotationRules`` the secret's configured
  ones are reused; a call that is refused changes neither.
* ``AWSPENDING`` on the ``AWSCURRENT`` version (or on no version) means the
  last rotation finished; ``AWSPENDING`` on another version means one is still
  in progress, and only a retry of that rotation (``ClientRequestToken`` = the
  pending version) may run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from secretswitch.client import secretsmanager as _seam
from secretswitch.client.names import AWSCURRENT, AWSPENDING

__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "RequestKind",
    "RotationRequest",
    "classify_request",
    "next_rotation",
    "parse_rotation_rules",
    "parse_schedule_expression",
]


MAX_DAYS = 1000
MIN_RATE_HOURS = 4
_RATE = re.compile(r"rate\(\s*(\d+)\s+(hour|hours|day|days)\s*\)")
_CRON = re.compile(r"cron\((.*)\)")
_DURATION = re.compile(r"(\d{1,2})h")
_MAX_EXPRESSION_LENGTH = 256


def parse_schedule_expression(expression: str) -> _seam.RotationSchedule:
    """Validate a ``ScheduleExpression``.

    Raises:
        ValueError: the expression is not one Secrets Manager accepts; the message says which form is.
    """
    text = expression.strip() if isinstance(expression, str) else ""
    if not text or len(text) > _MAX_EXPRESSION_LENGTH:
        raise ValueError(f"ScheduleExpression {expression!r} is empty or too long; use rate(7 days) or cron(...)")
    rate = _RATE.fullmatch(text)
    if rate is not None:
        value, unit = int(rate.group(1)), rate.group(2)
        if unit.startswith("day"):
            if not 1 <= value <= MAX_DAYS:
                raise ValueError(f"ScheduleExpression {expression!r}: a rate in days must be 1 to {MAX_DAYS}")
            return _seam.RotationSchedule(
                True, rotation_days=value, schedule_expression=text, interval_hours=value * 24
            )
        if not MIN_RATE_HOURS <= value <= MAX_DAYS * 24:
            raise ValueError(
                f"ScheduleExpression {expression!r}: Secrets Manager rotates at most every {MIN_RATE_HOURS} hours"
            )
        return _seam.RotationSchedule(True, schedule_expression=text, interval_hours=value)
    cron = _CRON.fullmatch(text)
    if cron is not None:
        fields = cron.group(1).split()
        if len(fields) != 6:
            raise ValueError(
                f"ScheduleExpression {expression!r}: cron() takes 6 fields (minutes hours day-of-month month "
                "day-of-week year), e.g. cron(0 16 ? * SAT *)"
            )
        return _seam.RotationSchedule(True, schedule_expression=text)
    raise ValueError(
        f"ScheduleExpression {expression!r} is neither rate(N days), rate(N hours) nor cron(...); e.g. rate(7 days)"
    )


def parse_rotation_rules(rules: Mapping[str, Any]) -> _seam.RotationSchedule:
    """Validate a ``RotationRules`` structure as ``RotateSecret`` receives it.

    Raises:
        ValueError: the rules break one of AWS's documented constraints; the message names it.
    """
    days = rules.get("AutomaticallyAfterDays")
    expression = rules.get("ScheduleExpression")
    duration = rules.get("Duration")
    if days is not None and expression is not None:
        raise ValueError(
            "RotationRules: set AutomaticallyAfterDays or ScheduleExpression, not both "
            "(for a schedule in hours or a window, use ScheduleExpression)"
        )
    if days is None and expression is None:
        raise ValueError(
            "RotationRules: give AutomaticallyAfterDays (1-1000) or a ScheduleExpression, e.g. rate(7 days)"
        )
    if expression is not None:
        schedule = parse_schedule_expression(expression)
    else:
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise ValueError(f"RotationRules.AutomaticallyAfterDays must be a whole number from 1 to {MAX_DAYS}")
        schedule = _seam.RotationSchedule(True, rotation_days=days, interval_hours=days * 24)
    if duration is None:
        return schedule
    match = _DURATION.fullmatch(str(duration)) if isinstance(duration, str) else None
    hours = int(match.group(1)) if match else 0
    if not 1 <= hours <= 24:
        raise ValueError(f"RotationRules.Duration {duration!r} must be hours from 1h to 24h, e.g. 3h")
    if schedule.interval_hours is not None and schedule.interval_hours < 24 and hours >= schedule.interval_hours:
        raise ValueError(
            f"RotationRules.Duration {duration!r} must be shorter than the rotation interval "
            f"({schedule.interval_hours} hours): a window may not reach into the next one"
        )
    return dataclasses.replace(schedule, window_hours=hours)


def next_rotation(schedule: _seam.RotationSchedule, rotated_at: dt.datetime) -> dt.datetime | None:
    """When the next window opens after a rotation at ``rotated_at``: the seam's one formula
    (:func:`secretswitch.client.secretsmanager.next_rotation_after`); ``None`` for ``cron()``."""
    return _seam.next_rotation_after(rotated_at, schedule.interval_hours)


class RequestKind(enum.Enum):
    """What a ``RotateSecret`` request is, given the secret's versions."""

    NEW = "new"  # start a rotation with a new AWSPENDING version
    RETRY = "retry"  # re-run the steps of the rotation in progress (same token)
    ALREADY_DONE = "already-done"  # the token's rotation finished: nothing to do
    REFUSED = "refused"  # a rotation is in progress, or the token names another version


@dataclass(frozen=True, slots=True)
class RotationRequest:
    """The decision for one request.

    Attributes:
        kind: what to do.
        token: the version the steps run for (``NEW``: the new token; ``RETRY``: the pending version).
        reason: for ``REFUSED``, one line saying why and what to do.
    """

    kind: RequestKind
    token: str | None
    reason: str = ""


def classify_request(
    secret_name: str, versions: Mapping[str, Sequence[str]], token: str | None, new_token: str
) -> RotationRequest:
    """Decide a ``RotateSecret`` request from the secret's versions and its ``ClientRequestToken``.

    Args:
        secret_name: for messages.
        versions: version id -> staging labels.
        token: the request's ``ClientRequestToken`` (``None`` if it sent none).
        new_token: the version id to use when the request sent no token.
    """
    in_progress = [v for v, stages in versions.items() if AWSPENDING in stages and AWSCURRENT not in stages]
    if token is not None and token in versions:
        stages = versions[token]
        if token in in_progress:
            return RotationRequest(RequestKind.RETRY, token)
        if AWSCURRENT in stages:
            return RotationRequest(RequestKind.ALREADY_DONE, token)
        return RotationRequest(
            RequestKind.REFUSED,
            None,
            f"version {token} of secret {secret_name!r} already exists with stages {sorted(stages)}; "
            "send a new ClientRequestToken (or none) to start a rotation",
        )
    if in_progress:
        pending = in_progress[0]
        return RotationRequest(
            RequestKind.REFUSED,
            None,
            f"A previous rotation of {secret_name!r} isn't complete: version {pending} is AWSPENDING. Retry it with "
            f"ClientRequestToken={pending} (`secretswitch rotate {secret_name} --resume`), or drop it "
            f"(`secretswitch doctor {secret_name} --fix`)",
        )
    return RotationRequest(RequestKind.NEW, token if token is not None else new_token)
