"""``secretswitch rotate --emergency``: a rotation inside the guard's gap, asked for, bounded and told.

The rotation guard (:mod:`rotation_lambda.rotation_guard`) refuses a rotation
while readers may still hold the user it would change. For a leaked password
that is the wrong trade, so the operator may override it, once:

1. :func:`emergency_plan` reads who would be affected (user names, the last
   switch; never a password) and :func:`leak_sequence` says which rotations
   take a leaked password out of service soonest;
2. :func:`emergency_rotate` sets the override tag
   (``secretsmanager:TagResource``) with an expiry minutes ahead, only when the
   guard would refuse; the function's createSecret removes it when it lets the
   rotation through (it works once) and logs a warning;
3. a leaked ``AWSCURRENT`` password needs a second rotation (the first one
   changes the *other* user): locally it runs at once, on AWS the outcome says
   to run the command again once the first rotation finished.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from secretswitch.client.credentials import parse_secret
from secretswitch.client.errors import ConfigurationError
from secretswitch.client.names import AWSCURRENT
from secretswitch.client.policy import MAX_GUARD_OVERRIDE, GapDecision
from secretswitch.rotation_lambda.rotation_guard import (
    MIN_ROTATION_GAP_ENV,
    OVERRIDE_TAG,
    RotationGuard,
    format_override,
)
from secretswitch.rotation_lambda.rules import partner_user, user_plan
from secretswitch.rotation_lambda.secretsmanager import SecretsManagerGateway

from .rotate import RotationOutcome, is_local_endpoint, rotate_secret

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["EmergencyPlan", "emergency_plan", "emergency_rotate", "leak_sequence"]

_log = logging.getLogger(__name__)


def leak_sequence(current_user: str, partner: str, leaked_user: str | None) -> tuple[str, ...]:
    """The rotations that take a leaked password out of service soonest, one line each.

    A rotation changes the password of ``partner`` (the user that is not
    ``AWSCURRENT``) and makes it ``AWSCURRENT``; so a leaked partner password
    dies at the first rotation, a leaked current one only at the second.

    Raises:
        ConfigurationError: ``leaked_user`` is neither user.
    """
    if leaked_user is not None and leaked_user not in (current_user, partner):
        raise ConfigurationError(
            f"--leaked-user {leaked_user!r} is neither the current user {current_user!r} nor its partner {partner!r}"
        )
    partner_leaked = (
        f"{partner} leaked (AWSPREVIOUS): ONE emergency rotation changes its password at setSecret, seconds from now."
    )
    current_leaked = (
        f"{current_user} leaked (AWSCURRENT): TWO emergency rotations back to back; the first changes {partner} "
        f"and makes it AWSCURRENT, the second changes {current_user}, seconds later. Readers that did not re-read in "
        f"between fail once more. Gentler, if the leak can wait: the first now, the second after the readers' "
        f"refresh interval ({current_user} stays valid that long)."
    )
    if leaked_user == partner:
        return (partner_leaked,)
    if leaked_user == current_user:
        return (current_leaked,)
    return (partner_leaked, current_leaked)


@dataclass(frozen=True, slots=True)
class EmergencyPlan:
    """What an emergency rotation would do, before it does it (no passwords).

    Attributes:
        current_user: the user ``AWSCURRENT`` names.
        changed_user: the user whose password the next rotation changes (its partner).
        decision: the rotation guard's decision for a rotation now.
        rotations: how many rotations take the leaked password out of service (1 or 2).
        consequences: lines for a person: who changes, who fails, the leak sequence.
    """

    current_user: str
    changed_user: str
    decision: GapDecision
    rotations: int
    consequences: tuple[str, ...]


def emergency_plan(
    sm_client: SecretsManagerClient,
    secret_id: str,
    *,
    min_rotation_gap: float,
    leaked_user: str | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> EmergencyPlan:
    """Read who an emergency rotation of ``secret_id`` affects and what the guard says (changes nothing).

    Raises:
        SecretFormatError: AWSCURRENT cannot be parsed (``secretswitch doctor`` repairs it first).
        RotationError, ConfigurationError: the pair cannot be told, or ``leaked_user`` is not in it.
    """
    gateway = SecretsManagerGateway(sm_client)
    document_text = gateway.secret_string(secret_id, stage=AWSCURRENT)
    current = parse_secret(document_text, secret_id=secret_id)
    plan = user_plan(json.loads(document_text), environ or {}, secret_id=secret_id, current_user=current.username)
    partner = partner_user(current.username, plan)
    guard = RotationGuard(gateway, {MIN_ROTATION_GAP_ENV: f"{min_rotation_gap:g}"}, clock)
    decision, _problem = guard.decide(secret_id, None)
    since = (
        "since it stopped being AWSCURRENT"
        if decision.last_switch is None
        else f"since {_iso(decision.last_switch)}, when it stopped being AWSCURRENT"
    )
    consequences = (
        f"this rotation changes the password of {partner!r} (the user that is not AWSCURRENT) and makes it "
        f"AWSCURRENT; {current.username!r} keeps its password",
        f"readers that still hold {partner!r} (they have not re-read the secret {since}) see authentication "
        "failures (code 18): secretswitch clients re-read at once and recover; a MongoClient built once, or a "
        "cache such as aws-secretsmanager-caching (1 hour), fails until it is restarted or re-reads",
        *leak_sequence(current.username, partner, leaked_user),
    )
    rotations = 2 if leaked_user == current.username else 1
    return EmergencyPlan(current.username, partner, decision, rotations, consequences)


def _iso(seconds: float) -> str:
    return format_override(seconds)


def emergency_rotate(
    sm_client: SecretsManagerClient,
    secret_id: str,
    *,
    min_rotation_gap: float,
    leaked_user: str | None = None,
    override_seconds: float = 900.0,
    rotation_lambda_arn: str | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    report: Callable[[str], None] = print,
) -> list[RotationOutcome]:
    """Report the consequences, override the guard once if it would refuse, and rotate (twice for a leaked current).

    Args:
        override_seconds: how far ahead the override expires (at most an hour).
        report: where the consequence lines go (before anything changes).

    Returns:
        One outcome per rotation run.

    Raises:
        ConfigurationError: ``override_seconds`` is out of range or ``leaked_user`` is not in the pair.
    """
    if not 0 < override_seconds <= MAX_GUARD_OVERRIDE:
        raise ConfigurationError(
            f"the override must expire within {MAX_GUARD_OVERRIDE / 60:.0f} minutes, not {override_seconds / 60:g}"
        )
    plan = emergency_plan(
        sm_client, secret_id, min_rotation_gap=min_rotation_gap, leaked_user=leaked_user, environ=environ, clock=clock
    )
    for line in plan.consequences:
        report(f"emergency: {line}")
    gateway = SecretsManagerGateway(sm_client)
    local = is_local_endpoint(sm_client)
    outcomes: list[RotationOutcome] = []
    for number in range(1, plan.rotations + 1):
        guard = RotationGuard(gateway, {MIN_ROTATION_GAP_ENV: f"{min_rotation_gap:g}"}, clock)
        decision, _problem = guard.decide(secret_id, None)
        tagged = False
        if not decision.allowed:
            until = clock() + override_seconds
            gateway.tag(secret_id, OVERRIDE_TAG, format_override(until))
            tagged = True
            _log.warning(
                "rotation guard override set on %s until %s (emergency rotation %d of %d): %s",
                secret_id,
                format_override(until),
                number,
                plan.rotations,
                decision.reason,
            )
            report(f"emergency: override tag {OVERRIDE_TAG} set until {format_override(until)} (used once)")
        try:
            outcome = rotate_secret(
                sm_client,
                secret_id,
                rotation_lambda_arn=rotation_lambda_arn,
                min_rotation_gap=min_rotation_gap,
                clock=clock,
            )
        except Exception:
            if tagged:
                _remove_unused_override(gateway, secret_id)
            raise
        if tagged and local:
            # The steps ran already: an override the function did not use must not stay behind.
            _remove_unused_override(gateway, secret_id)
        outcomes.append(outcome)
        if not outcome.completed:
            if outcome.asynchronous and number < plan.rotations:
                report(
                    f"emergency: AWS runs rotation {number} now; once `secretswitch status {secret_id}` shows no "
                    f"rotation in progress, run `secretswitch rotate {secret_id} --emergency --leaked-user "
                    f"{leaked_user}` again: it changes {leaked_user!r}"
                )
            break
    return outcomes


def _remove_unused_override(gateway: SecretsManagerGateway, secret_id: str) -> None:
    if OVERRIDE_TAG in gateway.describe(secret_id).tags:
        gateway.untag(secret_id, OVERRIDE_TAG)
        _log.info("removed the unused rotation guard override from %s", secret_id)
