"""Secrets Manager's part of a rotation, played locally (and a thin RotateSecret call on AWS).

moto cannot run Lambda code without Docker. The embedded stack routes moto's
own ``RotateSecret`` Lambda invocations to the rotation function in-process
(see :mod:`demo_app.moto_server`), so a local rotation is the real flow:
``RotateSecret`` creates the token's version staged ``AWSPENDING`` without a
value, then invokes createSecret, setSecret, testSecret and finishSecret with
the events AWS sends, and stops at the first failing step.

This module adds what moto leaves out of AWS's documented contract:

* it refuses to start a rotation while ``AWSPENDING`` sits on a version that is
  not ``AWSCURRENT`` (a previous rotation is still in progress);
* ``AWSPENDING`` left on the ``AWSCURRENT`` version counts as finished (AWS's
  rule; moto would call it "in progress"), so the stray label is removed;
* ``resume=True`` re-invokes the four steps for the pending token, as AWS
  retries a failed rotation (on AWS: ``RotateSecret`` with that token, so the
  deployed function runs them);
* a rotation sends ``RotationRules`` only when a schedule is asked for (or the
  secret has none yet): they replace the secret's whole schedule.

Against real AWS (an endpoint that is not on loopback) ``RotateSecret`` returns
at once and AWS runs the deployed function; the outcome says so.

moto quirk left alone: a bare ``GetSecretValue`` (no ``VersionStage``) follows
an internal default version that only moto's own ``RotateSecret`` moves, so
after a *resumed* rotation it may still name the previous version until the
next rotation. Ask for ``VersionStage="AWSCURRENT"`` (the client library does).
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from client.errors import RotationError, SecretsManagerError, SecretSwitchError
from rotation_lambda.core import (
    AWSPENDING,
    STEPS,
    connection_differences,
    current_version_id,
    partner_user,
    pending_version_ids,
    user_plan,
)
from rotation_lambda.secretsmanager import SecretMetadata, SecretsManagerGateway

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from client.credentials import MongoCredentials
    from rotation_lambda.lambda_function import Handler

__all__ = [
    "DEFAULT_ROTATION_DAYS",
    "Finding",
    "RotationInterrupted",
    "RotationOutcome",
    "SecretStatus",
    "VersionStatus",
    "diagnose",
    "secret_status",
    "crash_after",
    "interrupted_rotation",
    "is_local_endpoint",
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
    """

    secret_id: str
    token: str
    completed: bool
    failed_step: str | None
    message: str
    resumed: bool = False
    asynchronous: bool = False


class RotationInterrupted(SecretSwitchError):
    """Raised by :func:`crash_after` to simulate a rotation killed between two steps."""


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
    handler: Handler | None = None,
    schedule_expression: str | None = None,
) -> RotationOutcome:
    """Start (or resume) one rotation of ``secret_id`` the way Secrets Manager does.

    Args:
        sm_client: a boto3 ``secretsmanager`` client (local or AWS).
        secret_id: the secret's name or ARN.
        rotation_lambda_arn: the rotation function; default: the one the
            secret is configured with.
        rotation_days: a new schedule (``AutomaticallyAfterDays``); default:
            keep the secret's schedule (7 days when it has none yet).
        resume: re-run the rotation already in progress (locally: invoke the
            steps; on AWS: ``RotateSecret`` with its token).
        handler: what runs the steps on a local resume; default: the
            project's rotation function using ``sm_client``.
        schedule_expression: a new ``rate()``/``cron()`` schedule instead of days.

    Returns:
        A :class:`RotationOutcome`; a failing step is reported there, not raised.

    Raises:
        RotationError: a rotation is already in progress (without ``resume``),
            or no rotation function is configured.
        SecretsManagerError: Secrets Manager refused a call (other than a step failing).
    """
    gateway = SecretsManagerGateway(sm_client)
    metadata = gateway.describe(secret_id)
    if resume:
        return _resume(gateway, sm_client, secret_id, metadata, handler)
    in_progress = rotation_in_progress(metadata)
    if in_progress is not None:
        raise RotationError(
            f"a previous rotation of {secret_id!r} is still in progress (version {in_progress} is AWSPENDING); "
            "finish it with `secretswitch rotate --resume` or inspect it with `secretswitch doctor`"
        )
    _drop_pending_label_on_current(gateway, secret_id, metadata)
    function_arn = rotation_lambda_arn or metadata.rotation_lambda_arn
    if not function_arn:
        raise RotationError(
            f"secret {secret_id!r} has no rotation function; pass its ARN (--lambda-arn) the first time"
        )
    rules = rotation_rules(metadata, rotation_days, schedule_expression)
    token = str(uuid.uuid4())
    local = is_local_endpoint(sm_client)
    _log.info("rotation starting: secret_id=%s token=%s local=%s", secret_id, token, local)
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
            message=f"{match.group(1)} failed: {exc}. Fix the cause, then `secretswitch rotate --resume`.",
        )
    if not local:
        return RotationOutcome(
            secret_id,
            token,
            completed=False,
            failed_step=None,
            message="rotation started; AWS runs the function now; follow it with `secretswitch status`",
            asynchronous=True,
        )
    return _outcome_after(gateway, secret_id, token, resumed=False)


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


def _resume(
    gateway: SecretsManagerGateway,
    sm_client: SecretsManagerClient,
    secret_id: str,
    metadata: SecretMetadata,
    handler: Handler | None,
) -> RotationOutcome:
    token = rotation_in_progress(metadata)
    if token is None:
        _drop_pending_label_on_current(gateway, secret_id, metadata)
        current = current_version_id(metadata.versions) or "?"
        return RotationOutcome(
            secret_id, current, completed=True, failed_step=None,
            message=f"nothing to resume: no rotation in progress; AWSCURRENT is version {current}",
            resumed=True,
        )  # fmt: skip
    if not is_local_endpoint(sm_client):
        # On AWS the deployed function must run the steps: RotateSecret with the
        # pending token is idempotent and makes Secrets Manager invoke it again.
        _log.info("rotation resuming on AWS: secret_id=%s token=%s", secret_id, token)
        gateway.rotate(secret_id, token, rotation_lambda_arn=None, rotation_rules=None)
        return RotationOutcome(
            secret_id,
            token,
            completed=False,
            failed_step=None,
            message="rotation resumed; AWS runs the function now; follow it with `secretswitch status`",
            resumed=True,
            asynchronous=True,
        )
    if handler is None:
        from rotation_lambda.lambda_function import make_handler

        handler = make_handler(secretsmanager_client_factory=lambda: sm_client)
    _log.info("rotation resuming: secret_id=%s token=%s", secret_id, token)
    for step in STEPS:
        try:
            handler({"Step": step, "SecretId": secret_id, "ClientRequestToken": token}, None)
        except Exception as exc:  # noqa: BLE001 - any failure of a step is the outcome, as on AWS
            return RotationOutcome(
                secret_id,
                token,
                completed=False,
                failed_step=step,
                message=f"{step} failed: {type(exc).__name__}: {exc}. Fix the cause, then resume again.",
                resumed=True,
            )
    return _outcome_after(gateway, secret_id, token, resumed=True)


def _outcome_after(gateway: SecretsManagerGateway, secret_id: str, token: str, *, resumed: bool) -> RotationOutcome:
    after = gateway.describe(secret_id)
    stages = after.versions.get(token, ())
    done = "AWSCURRENT" in stages and rotation_in_progress(after) is None and AWSPENDING not in stages
    message = (
        f"rotated: version {token} is AWSCURRENT"
        if done
        else f"the steps ran but version {token} has stages {sorted(stages)}; run `secretswitch doctor`"
    )
    return RotationOutcome(secret_id, token, completed=done, failed_step=None, message=message, resumed=resumed)


def _drop_pending_label_on_current(gateway: SecretsManagerGateway, secret_id: str, metadata: SecretMetadata) -> None:
    current = current_version_id(metadata.versions)
    if current is not None and AWSPENDING in metadata.versions[current]:
        # AWS treats this as a finished rotation; moto would refuse the next one.
        _log.info("removing a stray AWSPENDING from the AWSCURRENT version %s of %s", current, secret_id)
        gateway.remove_stage(secret_id, AWSPENDING, current)


# -- simulating a rotation killed between two steps -----------------------------


def crash_after(step: str, handler: Handler) -> Callable[[dict[str, Any]], None]:
    """Wrap ``handler`` so the rotation dies right after ``step`` completes.

    ``step`` may also be ``"start"``: killed after ``RotateSecret`` made the
    empty pending version, before createSecret ran.
    """
    if step != "start" and step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected 'start' or one of {', '.join(STEPS)}")
    crash_index = -1 if step == "start" else STEPS.index(step)

    def invoker(event: dict[str, Any]) -> None:
        index = STEPS.index(event["Step"]) if event.get("Step") in STEPS else len(STEPS)
        if index > crash_index:
            raise RotationInterrupted(f"simulated crash after {step}")
        handler(event, None)
        if index == crash_index:
            raise RotationInterrupted(f"simulated crash after {step}")

    return invoker


@contextmanager
def _routed(function_arn: str, invoker: Callable[[dict[str, Any]], None], restore: Handler) -> Iterator[None]:
    from demo_app.moto_server import register_rotation_function

    register_rotation_function(function_arn, invoker)
    try:
        yield
    finally:
        register_rotation_function(function_arn, lambda event: restore(event, None))


def interrupted_rotation(
    sm_client: SecretsManagerClient,
    secret_id: str,
    *,
    crash_after_step: str,
    function_arn: str,
    handler: Handler | None = None,
    rotation_days: int | None = None,
) -> RotationOutcome:
    """Start a rotation on the embedded stack that is killed after ``crash_after_step``.

    The in-process route for ``function_arn`` (see
    :func:`demo_app.moto_server.register_rotation_function`) is swapped for a
    crashing wrapper during the call, then set back to ``handler`` unwrapped.
    Resume with ``rotate_secret(..., resume=True)``.
    """
    if handler is None:
        from rotation_lambda.lambda_function import make_handler

        handler = make_handler(secretsmanager_client_factory=lambda: sm_client)
    with _routed(function_arn, crash_after(crash_after_step, handler), handler):
        return rotate_secret(sm_client, secret_id, rotation_lambda_arn=function_arn, rotation_days=rotation_days)


# -- status and doctor ---------------------------------------------------------


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
    import datetime as dt

    from client.credentials import parse_secret

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


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem ``doctor`` found (and whether ``--fix`` repaired it)."""

    kind: str
    message: str
    fixed: bool = False


def diagnose(
    sm_client: SecretsManagerClient,
    secret_id: str,
    *,
    fix: bool = False,
    handler: Handler | None = None,
    mongo_client_factory: Any = None,
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Find a stuck rotation, credentials that do not log in and role drift; repair what is safe.

    Repairs (``fix=True``): a stuck rotation is resumed (every step is safe
    to re-run); a pending version with no usable value is abandoned (its
    AWSPENDING label removed); AWSCURRENT credentials refused by MongoDB are
    written back into MongoDB as master; the passive user gets the active
    user's roles. The last two act as master without the rotation function's
    guards, so they run only when the passive user is the current user's
    partner (the rotation function's rule) and the master secret reaches
    MongoDB exactly as AWSCURRENT does; otherwise the finding says why not.

    Args:
        environ: where ``ROTATION_STRATEGY`` / ``ROTATION_USERS`` are read
            when the secret names no user pair (default ``os.environ``).

    Returns:
        The findings; an empty list means healthy.
    """
    from client.credentials import parse_secret
    from rotation_lambda.core import normalize_roles
    from rotation_lambda.mongo import MongoGateway, default_mongo_client_factory

    gateway = SecretsManagerGateway(sm_client)
    mongo = MongoGateway(mongo_client_factory or default_mongo_client_factory)
    env = os.environ if environ is None else environ
    findings: list[Finding] = []

    def credentials(stage: str, version_id: str | None = None) -> MongoCredentials | None:
        try:
            return parse_secret(
                gateway.secret_string(secret_id, stage=stage, version_id=version_id), secret_id=secret_id
            )
        except SecretSwitchError:
            return None

    def logs_in(creds: MongoCredentials | None) -> bool:
        if creds is None:
            return False
        try:
            return mongo.can_login(creds)
        except SecretSwitchError:
            return False

    metadata = gateway.describe(secret_id)
    pending_token = rotation_in_progress(metadata)
    current = credentials("AWSCURRENT")
    if current is None:
        return [Finding("current-unreadable", f"AWSCURRENT of {secret_id!r} cannot be read or parsed")]
    pending = credentials(AWSPENDING, pending_token) if pending_token is not None else None
    document: dict[str, Any] = {}
    master: MongoCredentials | None = None
    try:
        document = json.loads(gateway.secret_string(secret_id, stage="AWSCURRENT"))
        master_arn = document.get("masterarn")
        if isinstance(master_arn, str):
            master = parse_secret(gateway.secret_string(master_arn, stage="AWSCURRENT"), secret_id=master_arn)
            # Checked before logging in as master, as setSecret does.
            refusal = _master_refusal(master, current)
            if refusal is not None:
                raise RotationError(refusal)
            mongo.check_login(master)
    except (SecretSwitchError, ValueError, AttributeError) as exc:
        findings.append(Finding("master-unusable", f"the master secret cannot be used: {exc}"))
        master = None

    # Role drift first: a resumed rotation's testSecret refuses a drifted pair.
    passive_stage = AWSPENDING if pending is not None else "AWSPREVIOUS"
    passive = pending if pending is not None else credentials("AWSPREVIOUS")
    if passive is not None and passive.username != current.username:
        refusal = _partner_refusal(document, env, current, passive, secret_id)
        if refusal is not None:
            findings.append(
                Finding("unexpected-user", f"{passive_stage} names {refusal}; doctor will not change that user")
            )
            passive = None
    if master is not None and passive is not None and passive.username != current.username:
        try:
            active_roles = mongo.user_roles(master, current.username, current.auth_source)
            passive_roles = mongo.user_roles(master, passive.username, passive.auth_source)
        except SecretSwitchError as exc:
            findings.append(Finding("roles-unreadable", f"cannot read the users' roles: {exc}"))
        else:
            if passive_roles is not None and normalize_roles(active_roles or []) != normalize_roles(passive_roles):
                fixed = False
                if fix and active_roles is not None:
                    try:
                        mongo.set_roles(master, passive.username, passive.auth_source, active_roles)
                        fixed = True
                    except SecretSwitchError:
                        fixed = False
                findings.append(
                    Finding(
                        "role-drift",
                        f"roles differ: {current.username!r} {normalize_roles(active_roles or [])} vs "
                        f"{passive.username!r} {normalize_roles(passive_roles)}",
                        fixed,
                    )
                )

    current_ok = logs_in(current)
    if pending_token is not None:
        if pending is not None and pending.username != current.username and not current_ok and not logs_in(pending):
            findings.append(
                Finding(
                    "both-users-fail",
                    f"neither AWSCURRENT ({current.username!r}) nor AWSPENDING ({pending.username!r}) logs in",
                )
            )
        message = f"a rotation is stuck: version {pending_token} is AWSPENDING but not AWSCURRENT"
        fixed = False
        if fix:
            outcome = rotate_secret(sm_client, secret_id, resume=True, handler=handler)
            fixed = outcome.completed
            if not fixed and outcome.failed_step == "createSecret" and pending is None:
                gateway.remove_stage(secret_id, AWSPENDING, pending_token)
                fixed = True
                message += "; its version had no usable value and was abandoned"
            else:
                message += f"; resume: {outcome.message}"
        findings.append(Finding("stuck-rotation", message, fixed))
        current = credentials("AWSCURRENT") or current
        current_ok = logs_in(current)
    if not current_ok:
        fixed = False
        message = f"AWSCURRENT ({current.username!r}) does not log in to MongoDB"
        # A resumed rotation may have moved AWSCURRENT: check the guards again for what is current now.
        refusal = None if master is None else _master_refusal(master, current)
        if refusal is None and master is not None:
            refusal = _partner_refusal(document, env, current, None, secret_id)
        if refusal is not None:
            message += f"; doctor will not reset its password: {refusal}"
        elif fix and master is not None:
            try:
                mongo.set_password(master, current)
                fixed = logs_in(current)
            except SecretSwitchError:
                fixed = False
        findings.append(Finding("current-fails", message, fixed))
    return findings


def _master_refusal(master: MongoCredentials, current: MongoCredentials) -> str | None:
    """Why the master secret may not act for ``current`` (``None``: it may), as setSecret decides."""
    differences = connection_differences(master, current, compare_auth_source=False)
    if differences:
        return (
            f"the master secret differs from AWSCURRENT in {', '.join(differences)} "
            f"(master endpoint {master.endpoint!r}, AWSCURRENT {current.endpoint!r})"
        )
    if (master.username, master.auth_source) == (current.username, current.auth_source):
        return f"AWSCURRENT names the master user {master.username!r}"
    return None


def _partner_refusal(
    document: Mapping[str, Any],
    environ: Mapping[str, str],
    current: MongoCredentials,
    passive: MongoCredentials | None,
    secret_id: str,
) -> str | None:
    """Why ``passive`` is not the partner of ``current`` under the rotation function's rules (``None``: it is).

    With ``passive=None`` only checks that ``current`` is one of the rotating users.
    """
    try:
        plan = user_plan(document, environ, secret_id=secret_id)
        expected = partner_user(current.username, plan)
    except SecretSwitchError as exc:
        return f"no partner can be derived for {current.username!r}: {exc}"
    if passive is not None and passive.username != expected:
        return f"user {passive.username!r}, not the partner of {current.username!r} (expected {expected!r})"
    return None
