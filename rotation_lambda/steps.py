"""The four rotation steps, each safe to run again and checked before it acts.

Data flows one way: event → checks (pure, :mod:`rotation_lambda.core`) →
Secrets Manager (:mod:`rotation_lambda.secretsmanager`) → MongoDB
(:mod:`rotation_lambda.mongo`). A step whose checks fail changes nothing.
Every step logs one structured line: secret id, step, outcome, users and
versions — never a password or a URI with credentials.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from client.credentials import MongoCredentials, parse_secret, parse_secret_dict
from client.errors import AuthenticationError, DatabaseError, SecretFormatError, SecretNotFoundError
from rotation_lambda.core import (
    AWSCURRENT,
    AWSPENDING,
    PasswordPolicy,
    Readiness,
    RotationEvent,
    Strategy,
    UserPlan,
    backoff_delays,
    build_pending_secret,
    connection_differences,
    current_version_id,
    normalize_roles,
    partner_user,
    readiness,
    user_plan,
)
from rotation_lambda.errors import RotationError
from rotation_lambda.mongo import MongoGateway
from rotation_lambda.secretsmanager import SecretsManagerGateway

__all__ = ["Rotator", "StepResult"]

_log = logging.getLogger("secretswitch.rotation")


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did, as logged."""

    step: str
    outcome: str
    fields: Mapping[str, Any]


class Rotator:
    """Runs one rotation step at a time against one Secrets Manager and MongoDB.

    Args:
        secrets: the Secrets Manager gateway.
        mongo: the MongoDB gateway.
        environ: the environment (password policy, strategy, user pair).
        sleep: how to wait between testSecret attempts.
        test_attempts: how many times testSecret tries before failing.
        first_retry_delay: the first wait, doubled after each failure.
    """

    def __init__(
        self,
        secrets: SecretsManagerGateway,
        mongo: MongoGateway,
        *,
        environ: Mapping[str, str],
        sleep: Callable[[float], None] = time.sleep,
        test_attempts: int = 4,
        first_retry_delay: float = 0.5,
    ) -> None:
        self.secrets = secrets
        self.mongo = mongo
        self.environ = environ
        self.sleep = sleep
        self.test_attempts = test_attempts
        self.first_retry_delay = first_retry_delay

    def run(self, event: RotationEvent) -> StepResult:
        """Check the versions, then run the event's step.

        Raises:
            RotationError: a check refused the event or the step failed.
            SecretsManagerError, DatabaseError, SecretFormatError: from the
                boundaries, with what to fix in the message.
        """
        metadata = self.secrets.describe(event.secret_id)
        state = readiness(event.secret_id, event.token, metadata.rotation_enabled, metadata.versions)
        if state is Readiness.ALREADY_CURRENT:
            stages = metadata.versions[event.token]
            if event.step == "finishSecret" and AWSPENDING in stages:
                # A finishSecret interrupted between its two calls: complete it.
                self.secrets.remove_stage(event.secret_id, AWSPENDING, event.token)
                return self._done(event, "removed-pending-from-current", version=event.token)
            return self._done(event, "already-current", version=event.token)
        step = {
            "createSecret": self.create_secret,
            "setSecret": self.set_secret,
            "testSecret": self.test_secret,
            "finishSecret": self.finish_secret,
        }[event.step]
        return step(event)

    # -- the steps -----------------------------------------------------------

    def create_secret(self, event: RotationEvent) -> StepResult:
        """Store the partner user with a new password as AWSPENDING under the token (once)."""
        current_string = self.secrets.secret_string(event.secret_id, stage=AWSCURRENT)
        current_document = _decode(current_string, event.secret_id)
        current = parse_secret_dict(current_document, secret_id=event.secret_id)
        try:
            pending = self._pending(event)
        except SecretNotFoundError:
            pending = None
        if pending is not None:
            return self._done(event, "pending-exists", current_user=current.username, pending_user=pending.username)
        plan = user_plan(current_document, self.environ, secret_id=event.secret_id)
        next_user = partner_user(current.username, plan)
        policy = PasswordPolicy.from_environ(self.environ)
        password = self.secrets.random_password(policy)
        self.secrets.put_pending(
            event.secret_id,
            event.token,
            build_pending_secret(current_document, next_user, password),
            event.rotation_token,
        )
        return self._done(event, "created", current_user=current.username, pending_user=next_user)

    def set_secret(self, event: RotationEvent) -> StepResult:
        """Give the pending user the pending password in MongoDB, as master (once)."""
        current_document = _decode(self.secrets.secret_string(event.secret_id, stage=AWSCURRENT), event.secret_id)
        current = parse_secret_dict(current_document, secret_id=event.secret_id)
        pending = self._pending(event)
        plan = user_plan(current_document, self.environ, secret_id=event.secret_id)
        self._check_pending_target(event, current, pending, plan)
        users = {"current_user": current.username, "pending_user": pending.username}
        if self.mongo.can_login(pending):
            return self._done(event, "already-set", **users)
        if plan.strategy is Strategy.ALTERNATING:
            # Confused-deputy guard: only rotate for someone who holds working credentials.
            try:
                self.mongo.check_login(current)
            except AuthenticationError as exc:
                raise RotationError(
                    f"setSecret refused: the AWSCURRENT credentials of {event.secret_id!r} "
                    f"(user {current.username!r}) do not log in, so the rotation will not change "
                    f"{pending.username!r}; fix the current secret first (see `secretswitch doctor`)"
                ) from exc
        master = self._master(event, current_document, current)
        roles = self.mongo.user_roles(master, pending.username, pending.auth_source)
        try:
            if roles is None:
                source_roles = self.mongo.user_roles(master, current.username, current.auth_source)
                if source_roles is None:
                    raise RotationError(
                        f"setSecret: neither {pending.username!r} nor {current.username!r} exists in "
                        f"{current.auth_source!r}; create the application user first"
                    )
                self.mongo.create_user(master, pending, source_roles)
                outcome = "created-user"
            else:
                self.mongo.set_password(master, pending)
                outcome = "password-set"
        except DatabaseError as exc:
            raise RotationError(f"setSecret could not change user {pending.username!r}: {exc}") from exc
        return self._done(event, outcome, master_user=master.username, **users)

    def test_secret(self, event: RotationEvent) -> StepResult:
        """Verify the pending credentials (login, read, roles); retry a few times for propagation lag."""
        current_document = _decode(self.secrets.secret_string(event.secret_id, stage=AWSCURRENT), event.secret_id)
        current = parse_secret_dict(current_document, secret_id=event.secret_id)
        pending = self._pending(event)
        delays = backoff_delays(self.test_attempts, self.first_retry_delay)
        last_error: DatabaseError | None = None
        for attempt in range(self.test_attempts):
            try:
                self._verify(event, current_document, current, pending)
                break
            except DatabaseError as exc:
                # A first failure may be propagation lag (replica sets, Atlas): try again.
                # Role drift is a RotationError, not a DatabaseError: it is not retried.
                last_error = exc
                if attempt < len(delays):
                    _log.warning(
                        "%s",
                        _line(event, "retrying", attempt=attempt + 1, delay_s=delays[attempt], error=str(exc)),
                    )
                    self.sleep(delays[attempt])
        else:
            raise RotationError(
                f"testSecret: the pending credentials (user {pending.username!r}, version {event.token}) "
                f"failed {self.test_attempts} times; the rotation stops before finishSecret: {last_error}"
            ) from last_error
        return self._done(event, "tested", current_user=current.username, pending_user=pending.username)

    def finish_secret(self, event: RotationEvent) -> StepResult:
        """Verify the pending credentials as testSecret does, then move AWSCURRENT to the token's version."""
        metadata = self.secrets.describe(event.secret_id)
        old_current = current_version_id(metadata.versions)
        current_document = _decode(self.secrets.secret_string(event.secret_id, stage=AWSCURRENT), event.secret_id)
        current = parse_secret_dict(current_document, secret_id=event.secret_id)
        pending = self._pending(event)
        # Never finish an untested version, even when invoked out of order or
        # after a failed testSecret: the same checks, once, without retries.
        try:
            self._verify(event, current_document, current, pending)
        except DatabaseError as exc:
            raise RotationError(
                f"finishSecret refused: the pending credentials (user {pending.username!r}, version "
                f"{event.token}) do not pass testSecret's checks; run setSecret and testSecret first: {exc}"
            ) from exc
        self.secrets.move_current(event.secret_id, event.token, old_current)
        # AWS treats AWSPENDING on the AWSCURRENT version as finished; moto does
        # not, and a stray label would look like a rotation in progress. Remove it.
        self.secrets.remove_stage(event.secret_id, AWSPENDING, event.token)
        return self._done(
            event, "finished", pending_user=pending.username, version=event.token, previous_version=old_current
        )

    def _verify(
        self,
        event: RotationEvent,
        current_document: Mapping[str, Any],
        current: MongoCredentials,
        pending: MongoCredentials,
    ) -> None:
        """Log in as the pending user, read its database, and compare its roles with its partner's.

        Raises:
            DatabaseError: the login or the read failed (may be propagation lag).
            RotationError: the roles drifted, or the master secret cannot be used.
        """
        self.mongo.read_check(pending)
        if pending.username == current.username:
            return  # single-user strategy: no partner to compare with
        master = self._master(event, current_document, current)
        pending_roles = self.mongo.user_roles(master, pending.username, pending.auth_source)
        partner_roles = self.mongo.user_roles(master, current.username, current.auth_source)
        if normalize_roles(pending_roles or []) != normalize_roles(partner_roles or []):
            raise RotationError(
                f"{event.step}: role drift between {pending.username!r} {_roles(pending_roles)} and "
                f"{current.username!r} {_roles(partner_roles)}; align them (`secretswitch doctor --fix`) "
                "and resume the rotation"
            )

    # -- helpers -------------------------------------------------------------

    def _pending(self, event: RotationEvent) -> MongoCredentials:
        string = self.secrets.secret_string(event.secret_id, stage=AWSPENDING, version_id=event.token)
        return parse_secret(string, secret_id=event.secret_id, version_id=event.token)

    def _check_pending_target(
        self, event: RotationEvent, current: MongoCredentials, pending: MongoCredentials, plan: UserPlan
    ) -> None:
        expected = partner_user(current.username, plan)
        if pending.username != expected:
            raise RotationError(
                f"setSecret refused: the pending user {pending.username!r} is not the partner of the current "
                f"user {current.username!r} (expected {expected!r}); nothing was changed"
            )
        differences = connection_differences(pending, current)
        if differences:
            # Names only: a TLS option may be a key-file password.
            raise RotationError(
                f"setSecret refused: the pending secret differs from the current one in {', '.join(differences)} "
                f"(pending endpoint {pending.endpoint!r}, current {current.endpoint!r}); nothing was changed"
            )

    def _master(
        self, event: RotationEvent, current_document: Mapping[str, Any], current: MongoCredentials
    ) -> MongoCredentials:
        master_arn = current_document.get("masterarn")
        if not isinstance(master_arn, str) or not master_arn.strip():
            raise SecretFormatError(
                "is missing; it must name the master secret used to change passwords",
                secret_id=event.secret_id,
                field="masterarn",
            )
        master = parse_secret(self.secrets.secret_string(master_arn, stage=AWSCURRENT), secret_id=master_arn)
        differences = connection_differences(master, current, compare_auth_source=False)
        if differences:
            raise RotationError(
                f"the master secret {master_arn!r} differs from the application secret in {', '.join(differences)} "
                f"(master endpoint {master.endpoint!r}, application {current.endpoint!r}); refusing to log in as master"
            )
        try:
            self.mongo.check_login(master)
        except AuthenticationError as exc:
            raise RotationError(
                f"cannot log in with the master secret {master_arn!r} (user {master.username!r}); "
                "fix its password; the application's credentials were not changed"
            ) from exc
        return master

    def _done(self, event: RotationEvent, outcome: str, **fields: Any) -> StepResult:
        _log.info("%s", _line(event, outcome, **fields))
        return StepResult(event.step, outcome, fields)


def _decode(secret_string: str, secret_id: str) -> dict[str, Any]:
    try:
        document = json.loads(secret_string)
    except ValueError:
        raise SecretFormatError("the SecretString is not valid JSON", secret_id=secret_id) from None
    if not isinstance(document, dict):
        raise SecretFormatError("the SecretString must be a JSON object", secret_id=secret_id)
    return document


def _roles(roles: list[dict[str, Any]] | None) -> str:
    if roles is None:
        return "(no such user)"
    return "[" + ", ".join(f"{db}.{role}" for db, role in normalize_roles(roles)) + "]"


def _line(event: RotationEvent, outcome: str, **fields: Any) -> str:
    """One JSON log line: only ids, names, versions and outcomes go in."""
    record = {"secret_id": event.secret_id, "step": event.step, "token": event.token, "outcome": outcome}
    record.update(fields)
    return json.dumps(record, sort_keys=False, default=str)
