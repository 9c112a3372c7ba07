"""``secretswitch doctor``: find a stuck rotation, credentials that fail and role drift; repair what is safe.

Repairs hold the master password, so they go through the rotation function's
own guards (:class:`rotation_lambda.guards.Guard`), never around them: the
master acts only for the current user's partner, only after AWSCURRENT logs in
with its own password, and only to take roles away. doctor never writes a
password and never grants a role (docs/SECURITY.md):

* a stuck rotation is resumed (every step re-checks everything); if it cannot
  finish and its pending version never reached MongoDB, that version is
  dropped (:func:`rotation_tools.rotate.cancel_rotation`);
* a partner holding roles the current user lacks loses them; roles it lacks
  are reported, for a person to grant;
* AWSCURRENT credentials that MongoDB refuses (or that cannot be parsed at
  all) are not written into MongoDB (that is how a tampered secret would take
  over a user): AWSCURRENT moves back to the newest version that parses and
  logs in, when that version is the current user's or its partner's and agrees
  with AWSCURRENT (or, when AWSCURRENT cannot be parsed, with AWSPREVIOUS) in
  every other field; the next rotation then gives the other user a fresh
  password;
* a pending version that cannot go on because AWSCURRENT cannot be read is
  never resumed, only dropped when it never reached MongoDB (no value).

Every finding is reported, not only the first: rotation turned off
(``cancel-rotate-secret``), AWSCURRENT unreadable, a stuck rotation, the
database unreachable, the master unusable, role drift, AWSCURRENT refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from secretswitch.client.credentials import MongoCredentials, parse_secret_dict
from secretswitch.client.errors import AuthenticationError, DatabaseError, SecretSwitchError
from secretswitch.client.names import AWSCURRENT, AWSPENDING, AWSPREVIOUS
from secretswitch.rotation_lambda.errors import RotationError
from secretswitch.rotation_lambda.guards import Guard
from secretswitch.rotation_lambda.mongo import LoginClientFactory, MongoGateway, default_mongo_client_factory
from secretswitch.rotation_lambda.rules import (
    connection_differences,
    current_version_id,
    field_differences,
    normalize_roles,
    partner_user,
    pending_version_ids,
)
from secretswitch.rotation_lambda.secretsmanager import SecretMetadata, SecretsManagerGateway

from .rotate import cancel_rotation, rotate_secret, rotation_in_progress

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


__all__ = ["Finding", "diagnose"]

_FIX = "doctor --fix"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem ``doctor`` found (and whether ``--fix`` repaired it)."""

    kind: str
    message: str
    fixed: bool = False


@dataclass(frozen=True, slots=True)
class _Version:
    """One readable version of the secret: its id, document and credentials."""

    version_id: str | None
    stage: str
    document: dict[str, Any]
    credentials: MongoCredentials


class _Doctor:
    def __init__(
        self,
        sm_client: SecretsManagerClient,
        secret_id: str,
        *,
        fix: bool,
        mongo_client_factory: LoginClientFactory | None,
        environ: Mapping[str, str],
    ) -> None:
        self.sm_client = sm_client
        self.secret_id = secret_id
        self.fix = fix
        self.mongo_client_factory = mongo_client_factory
        self.gateway = SecretsManagerGateway(sm_client)
        self.mongo = MongoGateway(mongo_client_factory or default_mongo_client_factory)
        self.guard = Guard(self.gateway, self.mongo, environ)
        self.read_errors: dict[str, str] = {}  # stage -> why it could not be read (fields, never values)

    def read(self, metadata: SecretMetadata, stage: str, version_id: str | None = None) -> _Version | None:
        if version_id is None:
            version_id = next((v for v, stages in metadata.versions.items() if stage in stages), None)
            if version_id is None:
                return None
        return self._read(stage, version_id, stage)

    def read_version(self, version_id: str) -> _Version | None:
        """A version by id, whatever its labels (deprecated versions included)."""
        return self._read(f"version {version_id}", version_id, None)

    def _read(self, label: str, version_id: str, stage: str | None) -> _Version | None:
        try:
            document = json.loads(self.gateway.secret_string(self.secret_id, stage=stage, version_id=version_id))
            if not isinstance(document, dict):
                self.read_errors[label] = "the SecretString is not a JSON object"
                return None
            credentials = parse_secret_dict(document, secret_id=self.secret_id, version_id=version_id)
        except SecretSwitchError as exc:
            self.read_errors[label] = str(exc)  # names fields, never values
            return None
        except ValueError:
            self.read_errors[label] = "the SecretString is not valid JSON"
            return None
        return _Version(version_id, label, document, credentials)

    def logs_in(self, version: _Version | None) -> bool:
        if version is None:
            return False
        try:
            return self.mongo.can_login(version.credentials)
        except SecretSwitchError:
            return False

    def partner_refusal(self, current: _Version, other: _Version) -> str | None:
        """Why ``other`` is not createSecret's copy of ``current`` for the partner (``None``: it is)."""
        try:
            self.guard.check_pending(
                _FIX,
                self.secret_id,
                current_document=current.document,
                current=current.credentials,
                pending_document=other.document,
                pending=other.credentials,
            )
        except SecretSwitchError as exc:
            return str(exc)
        return None

    def role_drift(self, master: MongoCredentials, current: _Version, partner: _Version) -> Finding | None:
        active_name, partner_name = current.credentials.username, partner.credentials.username
        database = current.credentials.auth_source
        try:
            active_roles = self.mongo.user_roles(master, active_name, database)
            partner_roles = self.mongo.user_roles(master, partner_name, database)
        except SecretSwitchError as exc:
            return Finding("roles-unreadable", f"cannot read the users' roles: {exc}")
        if partner_roles is None or active_roles is None:
            return None  # a missing partner is created by setSecret with the current user's roles
        extra = sorted(set(normalize_roles(partner_roles)) - set(normalize_roles(active_roles)))
        missing = sorted(set(normalize_roles(active_roles)) - set(normalize_roles(partner_roles)))
        if not extra and not missing:
            return None
        message = (
            f"roles differ: {active_name!r} {normalize_roles(active_roles)} vs "
            f"{partner_name!r} {normalize_roles(partner_roles)}"
        )
        fixed = False
        if self.fix and extra:
            try:
                authority = self.guard.authorize(
                    _FIX, self.secret_id, current.document, current.credentials, partner_name, allow_extra_roles=True
                )
                self.mongo.revoke_roles(
                    authority.master, partner_name, database, [{"db": db, "role": role} for db, role in extra]
                )
                message += f"; revoked {_listed(extra)} from {partner_name!r}"
                fixed = not missing
            except SecretSwitchError as exc:
                message += f"; not repaired: {exc}"
        if missing:
            message += (
                f"; {partner_name!r} lacks {_listed(missing)}: grant them by hand if they belong to the "
                "application (doctor never grants roles)"
            )
        return Finding("role-drift", message, fixed)

    def stuck(self, token: str, pending: _Version | None, current: _Version) -> list[Finding]:
        findings: list[Finding] = []
        differs = pending is not None and pending.credentials.username != current.credentials.username
        if differs and not self.logs_in(current) and not self.logs_in(pending):
            findings.append(
                Finding(
                    "both-users-fail",
                    f"neither AWSCURRENT ({current.credentials.username!r}) nor AWSPENDING logs in",
                )
            )
        message = f"a rotation is stuck: version {token} is AWSPENDING but not AWSCURRENT"
        fixed = False
        if self.fix and pending is None:
            # No usable value: createSecret never finished, nothing reached MongoDB. Dropping it is safe;
            # resuming would change a password now, long after whoever started it asked.
            try:
                cancelled = cancel_rotation(
                    self.sm_client, self.secret_id, mongo_client_factory=self.mongo_client_factory
                )
                fixed = True
                message += f"; {cancelled.message}"
            except SecretSwitchError as exc:
                message += f"; not dropped: {exc}"
        elif self.fix:
            outcome = rotate_secret(self.sm_client, self.secret_id, resume=True)
            fixed = outcome.completed or outcome.asynchronous
            message += f"; resume: {outcome.message}"
            if not fixed:
                try:
                    cancelled = cancel_rotation(
                        self.sm_client, self.secret_id, mongo_client_factory=self.mongo_client_factory
                    )
                    fixed = True
                    message += f"; {cancelled.message}"
                except SecretSwitchError as exc:
                    message += f"; not cancelled either: {exc}"
        findings.append(Finding("stuck-rotation", message, fixed))
        return findings

    def pair_refusal(self, reference: _Version, candidate: _Version) -> str | None:
        """Why ``candidate`` may not become AWSCURRENT in place of ``reference`` (``None``: it may).

        The guards' rules 1 and 2 (docs/SECURITY.md): its user is the reference's
        user or that user's partner (the pair from the function's configuration),
        and every other field agrees with the reference.
        """
        try:
            plan = self.guard.plan(self.secret_id, reference.document, reference.credentials)
            partner = partner_user(reference.credentials.username, plan)
        except SecretSwitchError as exc:
            return str(exc)
        user = candidate.credentials.username
        if user not in (reference.credentials.username, partner):
            return f"its user {user!r} is neither {reference.credentials.username!r} nor its partner {partner!r}"
        differences = field_differences(reference.document, candidate.document)
        differences += [
            d for d in connection_differences(candidate.credentials, reference.credentials) if d not in differences
        ]
        if differences:
            return f"it differs from {reference.stage} in {', '.join(differences)}"
        return None

    def roll_back(self, current: _Version | None) -> str:
        """Move AWSCURRENT back to the newest version that parses and logs in, if it is a user of the pair.

        The pair and the other fields are judged against AWSCURRENT, or against
        AWSPREVIOUS when AWSCURRENT cannot be parsed. No password is written.

        Raises:
            RotationError: no version may.
        """
        metadata = self.gateway.describe(self.secret_id)
        reference = current if current is not None else self.read(metadata, AWSPREVIOUS)
        if reference is None:
            raise RotationError("there is no readable AWSPREVIOUS either, to tell which users may be AWSCURRENT")
        current_id = current_version_id(metadata.versions)
        skip = {current_id, *pending_version_ids(metadata.versions)}
        dates = self.gateway.version_dates(self.secret_id)
        newest_first = sorted(
            (v for v in dates.keys() | metadata.versions.keys() if v not in skip),
            key=lambda v: _timestamp(dates.get(v)),
            reverse=True,
        )
        passed: list[str] = []
        for version_id in newest_first:
            candidate = self.read_version(version_id)
            if candidate is None:
                continue
            refusal = self.pair_refusal(reference, candidate)
            if refusal is not None:
                passed.append(f"version {version_id}: {refusal}")
                continue
            if not self.logs_in(candidate):
                passed.append(f"version {version_id} ({candidate.credentials.username!r}) does not log in")
                continue
            self.gateway.move_current(self.secret_id, version_id, current_id)
            message = (
                f"moved AWSCURRENT back to version {version_id} (user {candidate.credentials.username!r}, the newest "
                "version that parses and logs in)"
            )
            if current is not None and candidate.credentials.username != current.credentials.username:
                message += f"; the next rotation gives {current.credentials.username!r} a new password"
            return message
        raise RotationError(
            "no version both logs in and is the current user's or its partner's"
            + (f" ({'; '.join(passed[:3])})" if passed else "")
        )

    def unreadable_current(self, pending_token: str | None) -> list[Finding]:
        """AWSCURRENT cannot be parsed: drop a pending version that never reached MongoDB, then roll back."""
        findings: list[Finding] = []
        if pending_token is not None:
            message = (
                f"a rotation is stuck: version {pending_token} is AWSPENDING but not AWSCURRENT, and it cannot go on "
                "while AWSCURRENT cannot be read"
            )
            fixed = False
            if self.fix:
                try:
                    cancelled = cancel_rotation(
                        self.sm_client, self.secret_id, mongo_client_factory=self.mongo_client_factory
                    )
                    message += f"; {cancelled.message}"
                    fixed = True
                except SecretSwitchError as exc:
                    message += f"; not dropped: {exc}"
            else:
                message += "; --fix drops it if it never reached the database (it is never resumed from here)"
            findings.append(Finding("stuck-rotation", message, fixed))
        reason = self.read_errors.get(AWSCURRENT, "it has no AWSCURRENT version")
        message = f"AWSCURRENT of {self.secret_id!r} cannot be read or parsed: {reason}"
        fixed = False
        if self.fix:
            try:
                message += "; " + self.roll_back(None)
                fixed = True
            except SecretSwitchError as exc:
                message += f"; not repaired: {exc}"
        else:
            message += (
                "; --fix moves AWSCURRENT back to the newest version that parses and logs in (a user of the pair "
                "AWSPREVIOUS names)"
            )
        findings.insert(0, Finding("current-unreadable", message, fixed))
        return findings


def _timestamp(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float("-inf")


def diagnose(
    sm_client: SecretsManagerClient,
    secret_id: str,
    *,
    fix: bool = False,
    mongo_client_factory: LoginClientFactory | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Find a stuck rotation, credentials that do not log in and role drift; repair what is safe.

    See the module docstring for what ``fix=True`` repairs and what it never does.

    Args:
        environ: where ``ROTATION_STRATEGY`` / ``ROTATION_USERS`` are read
            (default ``os.environ``), as the rotation function reads its own.

    Returns:
        The findings; an empty list means healthy.
    """
    doctor = _Doctor(
        sm_client,
        secret_id,
        fix=fix,
        mongo_client_factory=mongo_client_factory,
        environ=os.environ if environ is None else environ,
    )
    metadata = doctor.gateway.describe(secret_id)
    findings: list[Finding] = []
    if metadata.rotation_enabled is not True:
        findings.append(
            Finding(
                "rotation-disabled",
                f"rotation of {secret_id!r} is turned off (never configured, or cancel-rotate-secret): no scheduled "
                f"rotation runs; `secretswitch rotate {secret_id}` (RotateSecret) turns it on again and rotates now "
                "(doctor does not)",
            )
        )
    pending_token = rotation_in_progress(metadata)
    current = doctor.read(metadata, AWSCURRENT)
    if current is None:
        unreadable = doctor.unreadable_current(pending_token)
        findings.extend(unreadable)
        if not all(f.fixed for f in unreadable):
            return findings
        metadata = doctor.gateway.describe(secret_id)
        pending_token = rotation_in_progress(metadata)
        current = doctor.read(metadata, AWSCURRENT)
        if current is None:
            return findings
    unreachable = _unreachable(doctor.mongo, current.credentials)
    if unreachable is not None:
        # Nothing below can tell a refused password from a database that does not answer.
        findings.append(Finding("database-unreachable", unreachable))
        if pending_token is not None:
            findings.append(
                Finding(
                    "stuck-rotation",
                    f"a rotation is stuck: version {pending_token} is AWSPENDING but not AWSCURRENT (not resumed: "
                    "the database cannot be checked)",
                )
            )
        return findings
    master: MongoCredentials | None = None
    try:
        master = doctor.guard.master(secret_id, current.document, current.credentials)
    except SecretSwitchError as exc:
        findings.append(Finding("master-unusable", f"the master secret cannot be used: {exc}"))

    # Role drift first: a resumed rotation's testSecret refuses a drifted pair.
    pending = doctor.read(metadata, AWSPENDING, pending_token) if pending_token is not None else None
    partner = pending if pending is not None else doctor.read(metadata, AWSPREVIOUS)
    if partner is not None and partner.credentials.username != current.credentials.username:
        refusal = doctor.partner_refusal(current, partner)
        if refusal is not None:
            findings.append(
                Finding("unexpected-user", f"{partner.stage} is refused ({refusal}); doctor will not change that user")
            )
        elif master is not None:
            drift = doctor.role_drift(master, current, partner)
            if drift is not None:
                findings.append(drift)

    if pending_token is not None:
        findings.extend(doctor.stuck(pending_token, pending, current))
        metadata = doctor.gateway.describe(secret_id)
        current = doctor.read(metadata, AWSCURRENT) or current
    if not doctor.logs_in(current):
        message = (
            f"MongoDB refuses the AWSCURRENT credentials (user {current.credentials.username!r}): they do not log in"
        )
        fixed = False
        if fix:
            try:
                message += "; " + doctor.roll_back(current)
                fixed = True
            except SecretSwitchError as exc:
                message += f"; not repaired: {exc}"
        else:
            message += (
                "; --fix moves AWSCURRENT back to the newest version that logs in, the current user's or its "
                "partner's (doctor never writes a password)"
            )
        findings.append(Finding("current-fails", message, fixed))
    return findings


def _listed(pairs: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{role}@{db}" for db, role in pairs) + "]"


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
