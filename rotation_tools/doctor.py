"""``secretswitch doctor``: find a stuck rotation, credentials that fail and role drift; repair what is safe."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from client.credentials import MongoCredentials, parse_secret
from client.errors import AuthenticationError, DatabaseError, SecretSwitchError
from rotation_lambda.core import AWSPENDING, connection_differences, normalize_roles, partner_user, user_plan
from rotation_lambda.errors import RotationError
from rotation_lambda.mongo import MongoGateway, default_mongo_client_factory
from rotation_lambda.secretsmanager import SecretsManagerGateway
from rotation_tools.rotate import rotate_secret, rotation_in_progress

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from rotation_lambda.lambda_function import Handler

__all__ = ["Finding", "diagnose"]


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
    unreachable = _unreachable(mongo, current)
    if unreachable is not None:
        # Nothing below can tell a refused password from a database that does not answer.
        return [Finding("database-unreachable", unreachable)]
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
        message = f"MongoDB refuses the AWSCURRENT credentials (user {current.username!r}): they do not log in"
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


def _unreachable(mongo: MongoGateway, current: MongoCredentials) -> str | None:
    """Why MongoDB cannot be checked at all (``None``: it answers, whether or not it takes the password)."""
    try:
        mongo.check_login(current)
    except AuthenticationError:
        return None  # it answered: the credentials are judged below
    except DatabaseError as exc:
        return (
            f"the database is unreachable at {current.endpoint}: {exc}; start it or check the host, port, TLS "
            "and network (the credentials were not checked)"
        )
    return None


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
