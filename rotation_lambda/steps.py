"""The four rotation steps, each safe to run again and checked before it acts.

Data flows one way: event → checks (pure, :mod:`rotation_lambda.rules`) →
Secrets Manager (:mod:`rotation_lambda.secretsmanager`) → MongoDB
(:mod:`rotation_lambda.mongo`). A step whose checks fail changes nothing.
Who may be changed is decided in one place, :mod:`rotation_lambda.guards`,
which ``doctor --fix`` uses too; setSecret, testSecret and finishSecret all
re-check the pending version against AWSCURRENT there.
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

from secretswitch.client.credentials import MongoCredentials, parse_secret_dict
from secretswitch.client.errors import DatabaseError, SecretFormatError, SecretNotFoundError, SecretsManagerError
from secretswitch.client.names import AWSCURRENT, AWSPENDING

from .errors import RotationError
from .guards import Guard, master_arn_of
from .mongo import MongoGateway
from .rotation_guard import RotationGuard
from .rules import (
    PasswordPolicy,
    Readiness,
    RotationEvent,
    backoff_delays,
    build_pending_secret,
    change_refusal,
    current_version_id,
    normalize_roles,
    partner_user,
    readiness,
)
from .secretsmanager import SecretsManagerGateway

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
        clock: the wall clock in epoch seconds (the rotation guard's "now").
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secrets = secrets
        self.mongo = mongo
        self.environ = environ
        self.sleep = sleep
        self.test_attempts = test_attempts
        self.first_retry_delay = first_retry_delay
        self.guard = Guard(secrets, mongo, environ)
        self.rotation_guard = RotationGuard(secrets, environ, clock)

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
        current_document, current = self._current(event)
        try:
            pending = self._pending(event)
        except SecretNotFoundError:
            pending = None
        if pending is not None:
            return self._done(event, "pending-exists", current_user=current.username, pending_user=pending[1].username)
        # Before anything is written: too soon after the last switch, the partner may still be in use.
        try:
            gap = self.rotation_guard.check(event.secret_id, event.token)
        except RotationError as exc:
            if not self._release(event):
                raise
            raise RotationError(f"{exc}; the empty pending version {event.token} was released") from exc
        # Refused here, before a version is written, rather than at setSecret: a secret without a
        # master (a master secret itself, rotated by mistake) must leave nothing to clean up.
        master_arn_of(current_document, event.secret_id, self.environ)
        plan = self.guard.plan(event.secret_id, current_document, current)
        next_user = partner_user(current.username, plan)
        policy = PasswordPolicy.from_environ(self.environ)
        password = self.secrets.random_password(policy)
        self.secrets.put_pending(
            event.secret_id,
            event.token,
            build_pending_secret(current_document, next_user, password),
            event.rotation_token,
        )
        return self._done(
            event,
            "created",
            current_user=current.username,
            pending_user=next_user,
            rotation_guard="overridden" if gap.overridden else gap.reason,
        )

    def set_secret(self, event: RotationEvent) -> StepResult:
        """Give the pending user the pending password in MongoDB, as master (once)."""
        current_document, current = self._current(event)
        pending_document, pending = self._pending(event)
        self._check_pending(event, current_document, current, pending_document, pending)
        users = {"current_user": current.username, "pending_user": pending.username}
        if self.mongo.can_login(pending):
            return self._done(event, "already-set", **users)
        # Every strategy: AWSCURRENT logs in, the partner is neither the master nor richer in roles.
        authority = self.guard.authorize(event.step, event.secret_id, current_document, current, pending.username)
        try:
            if authority.target_roles is None:
                self.mongo.create_user(authority.master, pending, authority.current_roles)
                outcome = "created-user"
            else:
                self.mongo.set_password(authority.master, pending)
                outcome = "password-set"
        except DatabaseError as exc:
            raise RotationError(f"setSecret could not change user {pending.username!r}: {exc}") from exc
        return self._done(event, outcome, master_user=authority.master.username, **users)

    def test_secret(self, event: RotationEvent) -> StepResult:
        """Verify the pending credentials (guards, login, read, roles); retry a few times for propagation lag."""
        current_document, current = self._current(event)
        pending_document, pending = self._pending(event)
        if dict(pending_document) == dict(current_document):
            # RotateSecret with RotateImmediately=false: AWS tests the configuration with a pending
            # copy of AWSCURRENT (then removes it). Nothing can change through an identical copy.
            return self._done(
                event,
                "configuration-tested",
                current_user=current.username,
                read_database=self.mongo.read_check(pending),
            )
        self._check_pending(event, current_document, current, pending_document, pending)
        delays = backoff_delays(self.test_attempts, self.first_retry_delay)
        last_error: DatabaseError | None = None
        database = None
        for attempt in range(self.test_attempts):
            try:
                database = self._verify(event, current_document, current, pending)
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
        return self._done(
            event, "tested", current_user=current.username, pending_user=pending.username, read_database=database
        )

    def finish_secret(self, event: RotationEvent) -> StepResult:
        """Verify the pending credentials as testSecret does, then move AWSCURRENT to the token's version."""
        metadata = self.secrets.describe(event.secret_id)
        old_current = current_version_id(metadata.versions)
        current_document, current = self._current(event)
        pending_document, pending = self._pending(event)
        # Never finish an untested or tampered version, even when invoked out of order or
        # after a failed testSecret: the same guards and checks, once, without retries.
        self._check_pending(event, current_document, current, pending_document, pending)
        try:
            self._verify(event, current_document, current, pending)
        except DatabaseError as exc:
            raise RotationError(
                f"finishSecret refused: the pending credentials (user {pending.username!r}, version "
                f"{event.token}) do not pass testSecret's checks; run setSecret and testSecret first: {exc}"
            ) from exc
        self.secrets.move_current(event.secret_id, event.token, old_current)
        # AWS (and the embedded stack) count AWSPENDING on the AWSCURRENT version as finished, and AWS's
        # templates leave it there. We remove it (one more call per rotation) so that every reader (a
        # person with the AWS CLI or the console, status, doctor, other tools) sees a clean end state
        # without knowing that rule: only AWSPENDING on another version ever means "in progress".
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
    ) -> str:
        """Log in as the pending user, read a database its roles cover, and compare its roles with its partner's.

        Returns:
            The database that was read.

        Raises:
            DatabaseError: the login or the read failed (may be propagation lag).
            RotationError: the roles drifted, or the master secret cannot be used.
        """
        database = self.mongo.read_check(pending)
        if pending.username == current.username:
            return database  # single-user strategy: no partner to compare with
        master = self.guard.master(event.secret_id, current_document, current)
        pending_roles = self.mongo.user_roles(master, pending.username, pending.auth_source)
        partner_roles = self.mongo.user_roles(master, current.username, current.auth_source)
        refusal = change_refusal(
            current=(current.username, current.auth_source),
            partner=(pending.username, pending.auth_source),
            master=(master.username, master.auth_source),
            current_roles=partner_roles,
            partner_roles=pending_roles,
        )
        if refusal is not None or normalize_roles(pending_roles or []) != normalize_roles(partner_roles or []):
            raise RotationError(
                f"{event.step}: role drift between {pending.username!r} {_roles(pending_roles)} and "
                f"{current.username!r} {_roles(partner_roles)}; give {pending.username!r} exactly the roles of "
                f"{current.username!r} (`secretswitch doctor --fix` revokes extra roles; it never grants any) "
                "and resume the rotation"
            )
        return database

    # -- helpers -------------------------------------------------------------

    def _release(self, event: RotationEvent) -> bool:
        """Drop AWSPENDING from the token's version, which has no value (RotateSecret made it).

        A rotation the guard refused then leaves nothing in progress behind, and the
        next one may start once it is safe. Returns whether the label was removed.
        """
        try:
            self.secrets.remove_stage(event.secret_id, AWSPENDING, event.token)
        except SecretsManagerError as exc:
            _log.warning("%s", _line(event, "pending-not-released", error=str(exc)))
            return False
        return True

    def _check_pending(
        self,
        event: RotationEvent,
        current_document: Mapping[str, Any],
        current: MongoCredentials,
        pending_document: Mapping[str, Any],
        pending: MongoCredentials,
    ) -> None:
        self.guard.check_pending(
            event.step,
            event.secret_id,
            current_document=current_document,
            current=current,
            pending_document=pending_document,
            pending=pending,
        )

    def _current(self, event: RotationEvent) -> tuple[dict[str, Any], MongoCredentials]:
        document = _decode(self.secrets.secret_string(event.secret_id, stage=AWSCURRENT), event.secret_id)
        return document, parse_secret_dict(document, secret_id=event.secret_id)

    def _pending(self, event: RotationEvent) -> tuple[dict[str, Any], MongoCredentials]:
        string = self.secrets.secret_string(event.secret_id, stage=AWSPENDING, version_id=event.token)
        document = _decode(string, event.secret_id)
        return document, parse_secret_dict(document, secret_id=event.secret_id, version_id=event.token)

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
