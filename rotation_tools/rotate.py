"""Start, resume or cancel a rotation through ``RotateSecret``, as on AWS, with the checks AWS leaves to us.

Every rotation, local or on AWS, new or resumed, is one ``RotateSecret`` call:
Secrets Manager creates the token's version staged ``AWSPENDING`` and invokes
the configured function with createSecret, setSecret, testSecret and
finishSecret. On AWS the call returns at once and the deployed function runs
afterwards; on the embedded stack (:mod:`embedded_stack.moto_server`, which
keeps AWS's ``RotateSecret`` contract) the registered function runs during
the call and a failing step comes back as its error, so the outcome says
which step failed.

What this module adds before it calls:

* it refuses to start a rotation while ``AWSPENDING`` sits on a version that is
  not ``AWSCURRENT`` (a previous rotation is still in progress); ``AWSPENDING``
  on the ``AWSCURRENT`` version counts as finished (AWS's rule);
* ``resume=True`` sends ``RotateSecret`` with the pending token, as AWS retries
  a failed rotation, so the configured function runs the steps again;
* a rotation sends ``RotationRules`` only when a schedule is asked for (or the
  secret has none yet): they replace the secret's whole schedule;
* before anything changes it refuses a secret without ``masterarn`` (both
  strategies change passwords as the master user; a master secret itself has
  none) and a secret that another secret rotated by the same function names as
  its ``masterarn`` (rotating the master towards ``admin_clone`` is an easy slip);
* :func:`cancel_rotation` drops a stuck ``AWSPENDING`` version that never
  reached the database (no value, or a password MongoDB does not take);
* given the rotation guard's gap (``min_rotation_gap``), it applies the
  function's own rule (:mod:`rotation_lambda.rotation_guard`) before
  ``RotateSecret``, so a rotation that would be refused creates nothing.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from secretswitch.client.credentials import parse_secret
from secretswitch.client.errors import DatabaseError, SecretFormatError, SecretNotFoundError, SecretsManagerError
from secretswitch.client.names import AWSCURRENT, AWSPENDING
from secretswitch.rotation_lambda.errors import RotationError
from secretswitch.rotation_lambda.guards import master_arn_of
from secretswitch.rotation_lambda.mongo import LoginClientFactory, MongoGateway, default_mongo_client_factory
from secretswitch.rotation_lambda.rotation_guard import MIN_ROTATION_GAP_ENV, RotationGuard
from secretswitch.rotation_lambda.rules import current_version_id, pending_version_ids
from secretswitch.rotation_lambda.secretsmanager import SecretMetadata, SecretsManagerGateway

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


__all__ = [
    "DEFAULT_ROTATION_DAYS",
    "RotationOutcome",
    "cancel_rotation",
    "is_local_endpoint",
    "refuse_too_soon",
    "refuse_unrotatable",
    "rotate_secret",
    "rotation_in_progress",
    "rotation_rules",
]

_log = logging.getLogger(__name__)
_FAILED_STEP = re.compile(r"Rotation step (\w+) failed")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
DEFAULT_ROTATION_DAYS = 7
"""The schedule a secret without one gets at its first rotation."""


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    """How a rotation ended.

    Attributes:
        secret_id: the secret rotated.
        token: the rotation's ``ClientRequestToken`` (its version id).
        completed: the token's version is ``AWSCURRENT`` and nothing is pending.
        failed_step: the step that failed, or ``None``.
        message: one line for a person: what happened and what to do next.
        resumed: the steps were re-invoked for an existing pending token.
        asynchronous: AWS runs the function itself; check ``secretswitch status``.
        cancelled: the pending version was dropped (:func:`cancel_rotation`).
    """

    secret_id: str
    token: str
    completed: bool
    failed_step: str | None
    message: str
    resumed: bool = False
    asynchronous: bool = False
    cancelled: bool = False


def is_local_endpoint(sm_client: SecretsManagerClient) -> bool:
    """True when the client talks to a Secrets Manager on loopback (the embedded stack)."""
    host = urlsplit(sm_client.meta.endpoint_url).hostname or ""
    return host in _LOOPBACK


def rotation_in_progress(metadata: SecretMetadata) -> str | None:
    """The token of a rotation still in progress (AWSPENDING on a version that is not AWSCURRENT)."""
    pending = pending_version_ids(metadata.versions)
    return pending[0] if pending else None


def rotate_secret(
    sm_client: SecretsManagerClient,
    secret_id: str,
    *,
    rotation_lambda_arn: str | None = None,
    rotation_days: int | None = None,
    resume: bool = False,
    schedule_expression: str | None = None,
    min_rotation_gap: float | None = None,
    clock: Callable[[], float] = time.time,
) -> RotationOutcome:
    """Start (or resume) one rotation of ``secret_id`` the way Secrets Manager does.

    Args:
        sm_client: a boto3 ``secretsmanager`` client (local or AWS).
        secret_id: the secret's name or ARN.
        rotation_lambda_arn: the rotation function; default: the one the
            secret is configured with.
        rotation_days: a new schedule (``AutomaticallyAfterDays``); default:
            keep the secret's schedule (7 days when it has none yet).
        resume: re-run the rotation already in progress (``RotateSecret`` with
            its token: the configured function runs the steps again).
        schedule_expression: a new ``rate()``/``cron()`` schedule instead of days.
        min_rotation_gap: the rotation guard's gap in seconds, as the function
            is configured (``None``/0: leave the check to the function).
        clock: the wall clock, epoch seconds (for the guard).

    Returns:
        A :class:`RotationOutcome`; a failing step is reported there, not raised.

    Raises:
        RotationError: a rotation is already in progress (without ``resume``),
            no rotation function is configured, the secret is another
            secret's master, or the rotation guard refuses; nothing was changed.
        SecretFormatError: the secret has no ``masterarn``; nothing was changed.
        SecretsManagerError: Secrets Manager refused a call (other than a step failing).
    """
    gateway = SecretsManagerGateway(sm_client)
    metadata = gateway.describe(secret_id)
    if resume:
        return _resume(gateway, sm_client, secret_id, metadata)
    in_progress = rotation_in_progress(metadata)
    if in_progress is not None:
        raise RotationError(
            f"a previous rotation of {secret_id!r} is still in progress (version {in_progress} is AWSPENDING); "
            f"finish it with `secretswitch rotate {secret_id} --resume` or inspect it with "
            f"`secretswitch doctor {secret_id}`"
        )
    function_arn = rotation_lambda_arn or metadata.rotation_lambda_arn
    if not function_arn:
        raise RotationError(
            f"secret {secret_id!r} has no rotation function; pass its ARN (--lambda-arn) the first time"
        )
    refuse_unrotatable(sm_client, secret_id, metadata, function_arn)
    if min_rotation_gap:
        refuse_too_soon(gateway, secret_id, min_rotation_gap, clock)
    rules = rotation_rules(metadata, rotation_days, schedule_expression)
    token = str(uuid.uuid4())
    _log.info("rotation starting: secret_id=%s token=%s", secret_id, token)
    return _rotate(gateway, sm_client, secret_id, token, function_arn=function_arn, rules=rules, resumed=False)


def _rotate(
    gateway: SecretsManagerGateway,
    sm_client: SecretsManagerClient,
    secret_id: str,
    token: str,
    *,
    function_arn: str | None,
    rules: dict[str, Any] | None,
    resumed: bool,
) -> RotationOutcome:
    """``RotateSecret`` for ``token`` (a new one, or the pending one to resume), and what came of it.

    Locally the embedded stack runs the registered function during the call and reports a failing
    step in its error; on AWS the call returns at once and AWS runs the deployed function.
    """
    again = " again" if resumed else ""
    try:
        gateway.rotate(secret_id, token, rotation_lambda_arn=function_arn, rotation_rules=rules)
    except SecretsManagerError as exc:
        match = _FAILED_STEP.search(str(exc))
        if match is None:
            raise
        return RotationOutcome(
            secret_id,
            token,
            completed=False,
            failed_step=match.group(1),
            message=f"{match.group(1)} failed: {exc}. Fix the cause, then `secretswitch rotate {secret_id} --resume`"
            f"{again}.",
            resumed=resumed,
        )
    if not is_local_endpoint(sm_client):
        return RotationOutcome(
            secret_id,
            token,
            completed=False,
            failed_step=None,
            message=f"rotation {'resumed' if resumed else 'started'}; AWS runs the function now; "
            "follow it with `secretswitch status`",
            resumed=resumed,
            asynchronous=True,
        )
    return _outcome_after(gateway, secret_id, token, resumed=resumed)


def refuse_too_soon(
    gateway: SecretsManagerGateway, secret_id: str, min_rotation_gap: float, clock: Callable[[], float] = time.time
) -> None:
    """The rotation guard's decision before ``RotateSecret`` (the function decides again in createSecret).

    Raises:
        RotationError: too soon after the last switch (and no override in force); nothing was changed.
    """
    guard = RotationGuard(gateway, {MIN_ROTATION_GAP_ENV: f"{min_rotation_gap:g}"}, clock)
    decision, problem = guard.decide(secret_id, None)
    if not decision.allowed:
        raise RotationError(
            f"rotation of {secret_id!r} refused by the rotation guard: {decision.reason}"
            + (f"; {problem}" if problem else "")
            + f"; for a leaked password see `secretswitch rotate {secret_id} --emergency`; nothing was changed"
        )


def rotation_rules(
    metadata: SecretMetadata, rotation_days: int | None, schedule_expression: str | None
) -> dict[str, Any] | None:
    """The ``RotationRules`` a rotation sends, or ``None`` to keep the secret's own.

    A schedule given explicitly wins. Otherwise the secret's schedule (say, a
    SAM template's ``rate()`` with a ``Duration``) is left alone, because
    ``RotationRules`` replaces it whole; only a secret without one gets
    ``DEFAULT_ROTATION_DAYS``, so its first rotation also turns rotation on.
    """
    if schedule_expression:
        return {"ScheduleExpression": schedule_expression}
    if rotation_days is not None:
        return {"AutomaticallyAfterDays": rotation_days}
    if metadata.rotation_days is None and not metadata.schedule_expression:
        return {"AutomaticallyAfterDays": DEFAULT_ROTATION_DAYS}
    return None


def _nothing_in_progress(metadata: SecretMetadata, secret_id: str, verb: str, *, resumed: bool) -> RotationOutcome:
    """No rotation in progress (``AWSPENDING`` on ``AWSCURRENT`` counts as finished, as on AWS): say so."""
    current = current_version_id(metadata.versions) or "?"
    return RotationOutcome(
        secret_id, current, completed=True, failed_step=None,
        message=f"nothing to {verb}: no rotation in progress; AWSCURRENT is version {current}",
        resumed=resumed,
    )  # fmt: skip


def _resume(
    gateway: SecretsManagerGateway, sm_client: SecretsManagerClient, secret_id: str, metadata: SecretMetadata
) -> RotationOutcome:
    """``RotateSecret`` with the pending token: Secrets Manager (or the embedded stack) runs the steps again."""
    token = rotation_in_progress(metadata)
    if token is None:
        return _nothing_in_progress(metadata, secret_id, "resume", resumed=True)
    _log.info("rotation resuming: secret_id=%s token=%s", secret_id, token)
    return _rotate(gateway, sm_client, secret_id, token, function_arn=None, rules=None, resumed=True)


def _outcome_after(gateway: SecretsManagerGateway, secret_id: str, token: str, *, resumed: bool) -> RotationOutcome:
    after = gateway.describe(secret_id)
    stages = after.versions.get(token, ())
    # AWSPENDING left on the AWSCURRENT version means finished (AWS's rule; its templates leave it there).
    done = "AWSCURRENT" in stages and rotation_in_progress(after) is None
    message = (
        f"rotated: {_user_of(gateway, secret_id, token)} is now AWSCURRENT (version {token})"
        if done
        else f"the steps ran but version {token} has stages {sorted(stages)}; run `secretswitch doctor {secret_id}`"
    )
    return RotationOutcome(secret_id, token, completed=done, failed_step=None, message=message, resumed=resumed)


def _user_of(gateway: SecretsManagerGateway, secret_id: str, version_id: str) -> str:
    """The user a version names, for the success line (``the new user`` if it cannot be read)."""
    try:
        string = gateway.secret_string(secret_id, stage=AWSCURRENT, version_id=version_id)
        return repr(parse_secret(string, secret_id=secret_id, version_id=version_id).username)
    except (SecretsManagerError, SecretFormatError):
        return "the new user"


def refuse_unrotatable(
    sm_client: SecretsManagerClient, secret_id: str, metadata: SecretMetadata, function_arn: str
) -> None:
    """Refuse, before anything changes, a secret this rotation function must not rotate.

    * No ``masterarn``: both strategies change passwords as the master user,
      and a master secret itself has none (``rotate mongodb-admin`` would
      otherwise half-rotate the master towards ``admin_clone``).
    * A ``masterarn`` naming the secret itself.
    * A secret that another secret rotated by the same function names as its
      ``masterarn``: it is that secret's master.

    A secret whose value this caller may not read is let through: the
    function's createSecret refuses a missing ``masterarn`` on its own.

    Raises:
        SecretFormatError: no ``masterarn``.
        RotationError: the secret is a master secret.
    """
    gateway = SecretsManagerGateway(sm_client)
    try:
        document = json.loads(gateway.secret_string(secret_id, stage=AWSCURRENT))
    except (SecretsManagerError, ValueError) as exc:
        _log.warning("cannot read %s to check it before rotating (%s); the function checks it", secret_id, exc)
        return
    if not isinstance(document, dict):
        return
    own_names = {metadata.arn, metadata.name, secret_id}
    master_arn = master_arn_of(document, secret_id)
    if master_arn in own_names:
        raise RotationError(f"secret {secret_id!r} names itself as its masterarn; nothing was changed")
    dependant = _secret_using_as_master(gateway, own_names, function_arn)
    if dependant is not None:
        raise RotationError(
            f"secret {secret_id!r} is the master secret of {dependant!r}; rotate {dependant!r} instead "
            "(the master's password is changed by hand, never by this function); nothing was changed"
        )


def _secret_using_as_master(gateway: SecretsManagerGateway, own_names: set[str], function_arn: str) -> str | None:
    """The name of a secret rotated by ``function_arn`` whose ``masterarn`` is one of ``own_names``."""
    try:
        for arn, name in gateway.secrets_rotated_by(function_arn):
            if arn in own_names:
                continue
            try:
                other = json.loads(gateway.secret_string(arn, stage=AWSCURRENT))
            except (SecretsManagerError, ValueError):
                continue  # not ours to read: its own rotation checks it
            if isinstance(other, dict) and other.get("masterarn") in own_names:
                return name
    except SecretsManagerError as exc:  # no ListSecrets permission: a best-effort check
        _log.warning("cannot list secrets to check for a master secret (%s)", type(exc.__cause__).__name__)
    return None


def cancel_rotation(
    sm_client: SecretsManagerClient,
    secret_id: str,
    *,
    mongo_client_factory: LoginClientFactory | None = None,
) -> RotationOutcome:
    """Drop a stuck ``AWSPENDING`` version that never reached the database.

    A pending version never reached MongoDB when it has no value (createSecret
    never ran or failed), a value that cannot be parsed, or credentials that
    MongoDB refuses (setSecret never changed the password). Anything else is
    refused: its password is already in the database, so finish it with
    ``rotate --resume``. Only the ``AWSPENDING`` label is removed; AWSCURRENT
    and the users are not touched.

    Returns:
        A :class:`RotationOutcome` with ``cancelled=True``, or ``completed=True``
        when nothing was in progress.

    Raises:
        RotationError: the pending password is in the database, or MongoDB
            cannot be reached to tell; nothing was changed.
    """
    gateway = SecretsManagerGateway(sm_client)
    metadata = gateway.describe(secret_id)
    token = rotation_in_progress(metadata)
    if token is None:
        return _nothing_in_progress(metadata, secret_id, "cancel", resumed=False)
    reason = _never_reached_database(gateway, secret_id, token, mongo_client_factory)
    gateway.remove_stage(secret_id, AWSPENDING, token)
    _log.info("rotation cancelled: secret_id=%s token=%s reason=%s", secret_id, token, reason)
    return RotationOutcome(
        secret_id,
        token,
        completed=False,
        failed_step=None,
        message=f"cancelled: version {token} is no longer AWSPENDING ({reason}); AWSCURRENT is unchanged",
        cancelled=True,
    )


def _never_reached_database(
    gateway: SecretsManagerGateway, secret_id: str, token: str, mongo_client_factory: LoginClientFactory | None
) -> str:
    """Why the pending version never reached MongoDB.

    Raises:
        RotationError: it did, or that cannot be told.
    """
    try:
        string = gateway.secret_string(secret_id, stage=AWSPENDING, version_id=token)
    except SecretNotFoundError:
        return "it had no value: createSecret never stored one"
    try:
        pending = parse_secret(string, secret_id=secret_id, version_id=token)
    except SecretFormatError:
        return "its value is not a usable secret, so setSecret never used it"
    mongo = MongoGateway(mongo_client_factory or default_mongo_client_factory)
    try:
        reached = mongo.can_login(pending)
    except DatabaseError as exc:
        raise RotationError(
            f"cannot tell whether version {token} of {secret_id!r} reached MongoDB ({exc}); run this where "
            "MongoDB is reachable, or finish the rotation with `secretswitch rotate --resume`; nothing was changed"
        ) from exc
    if reached:
        raise RotationError(
            f"version {token} of {secret_id!r} already reached MongoDB (user {pending.username!r} logs in with "
            f"it); finish the rotation with `secretswitch rotate {secret_id} --resume`; nothing was changed"
        )
    return f"MongoDB refuses its password for user {pending.username!r}: setSecret never set it"
