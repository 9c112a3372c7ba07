"""Who may be changed: the one place that decides, used by the rotation steps and ``doctor --fix``.

The rotation function and ``doctor --fix`` both hold the master (user
administrator) password, while far more people can write the application's
secret. So nothing the master does is chosen by the secret's content alone
(docs/SECURITY.md has the threat model). Before any password changes:

1. the user pair comes from the function's configuration (``ROTATION_USERS``,
   else the ``_clone`` rule on the user AWSCURRENT names) — a ``rotationUsers``
   field may only restate it (:func:`rotation_lambda.rules.user_plan`);
2. the target is the current user's partner and a pending version differs from
   AWSCURRENT in ``username`` and ``password`` only (:meth:`Guard.check_pending`,
   run again by testSecret and finishSecret);
3. the master secret reaches MongoDB exactly as AWSCURRENT does (host, replica
   set, TLS) — checked before logging in as master;
4. AWSCURRENT logs in with its own password, whatever the strategy: whoever
   asks for a change holds the current user's password already;
5. neither user is the master user, and a partner that exists holds no role the
   current user lacks (:func:`rotation_lambda.rules.change_refusal`).

:meth:`Guard.authorize` runs rules 1 and 3 to 5 and returns an :class:`Authority`,
the only way steps and repairs obtain the master credentials for a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secretswitch.client.credentials import MongoCredentials, parse_secret
from secretswitch.client.errors import AuthenticationError, SecretFormatError
from secretswitch.client.names import AWSCURRENT

from .errors import RotationError
from .mongo import MongoGateway
from .rules import UserPlan, change_refusal, connection_differences, field_differences, partner_user, user_plan
from .secretsmanager import SecretsManagerGateway

__all__ = ["MASTER_SECRET_ARN_ENV", "Authority", "Guard", "master_arn_of"]


@dataclass(frozen=True, slots=True)
class Authority:
    """Proof that the master may act on ``target`` for this secret, with what was read on the way.

    Attributes:
        master: the master credentials (logged in once already).
        plan: the strategy and user pair.
        target: the user that may be changed (the current user's partner).
        current_roles: the current user's roles, as ``{"role", "db"}`` dicts.
        target_roles: the target's roles, or ``None`` when it does not exist.
    """

    master: MongoCredentials
    plan: UserPlan
    target: str
    current_roles: tuple[Mapping[str, Any], ...]
    target_roles: tuple[Mapping[str, Any], ...] | None


MASTER_SECRET_ARN_ENV = "MASTER_SECRET_ARN"


def master_arn_of(document: Mapping[str, Any], secret_id: str, environ: Mapping[str, str] | None = None) -> str:
    """The secret's ``masterarn``, checked against the function's ``MASTER_SECRET_ARN`` when that is set.

    The deployed function pins its master secret in ``MASTER_SECRET_ARN`` (the
    SAM template sets it): then a ``masterarn`` naming anything else is refused,
    so a writer of the application's secret cannot pick which master is used.

    Raises:
        SecretFormatError: it is missing or not a string.
        RotationError: it differs from ``MASTER_SECRET_ARN``.
    """
    master_arn = document.get("masterarn")
    if not isinstance(master_arn, str) or not master_arn.strip():
        raise SecretFormatError(
            "is missing; it must name the master secret used to change passwords (is this secret itself a "
            "master secret? rotate the application's secret instead)",
            secret_id=secret_id,
            field="masterarn",
        )
    master_arn = master_arn.strip()
    pinned = (environ or {}).get(MASTER_SECRET_ARN_ENV, "").strip()
    if pinned and master_arn != pinned:
        raise RotationError(
            f"secret {secret_id!r} names the master secret {master_arn!r}, but this function is configured "
            f"with {MASTER_SECRET_ARN_ENV}={pinned!r}; set the secret's masterarn to that ARN (the secret "
            "cannot choose another master); nothing was changed"
        )
    return master_arn


class Guard:
    """Applies the rules above for one secret.

    Args:
        secrets: the Secrets Manager gateway (reads the master secret).
        mongo: the MongoDB gateway (logins and role reads).
        environ: the function's configuration (``ROTATION_STRATEGY``, ``ROTATION_USERS``,
            ``MASTER_SECRET_ARN``).
    """

    def __init__(self, secrets: SecretsManagerGateway, mongo: MongoGateway, environ: Mapping[str, str]) -> None:
        self.secrets = secrets
        self.mongo = mongo
        self.environ = environ

    def plan(self, secret_id: str, current_document: Mapping[str, Any], current: MongoCredentials) -> UserPlan:
        """The strategy and pair (rule 1)."""
        return user_plan(current_document, self.environ, secret_id=secret_id, current_user=current.username)

    def check_pending(
        self,
        step: str,
        secret_id: str,
        *,
        current_document: Mapping[str, Any],
        current: MongoCredentials,
        pending_document: Mapping[str, Any],
        pending: MongoCredentials,
    ) -> UserPlan:
        """Refuse a pending version that is not createSecret's copy of AWSCURRENT for the partner (rule 2).

        Pure: no login, no master. Names fields, never values.

        Raises:
            RotationError: the pending user is not the partner, or another field differs.
        """
        plan = self.plan(secret_id, current_document, current)
        expected = partner_user(current.username, plan)
        if pending.username != expected:
            raise RotationError(
                f"{step} refused: the pending user {pending.username!r} is not the partner of the current "
                f"user {current.username!r} (expected {expected!r}); nothing was changed"
            )
        differences = field_differences(current_document, pending_document)
        differences += [d for d in connection_differences(pending, current) if d not in differences]
        if differences:
            raise RotationError(
                f"{step} refused: the pending version differs from AWSCURRENT in {', '.join(differences)} "
                f"(pending endpoint {pending.endpoint!r}, current {current.endpoint!r}); createSecret copies "
                "AWSCURRENT and changes only username and password; nothing was changed"
            )
        return plan

    def master(
        self, secret_id: str, current_document: Mapping[str, Any], current: MongoCredentials
    ) -> MongoCredentials:
        """Read the master secret, check it reaches MongoDB as AWSCURRENT does (rule 3), and log in as master.

        Raises:
            SecretFormatError: ``masterarn`` is missing.
            RotationError: the master secret points elsewhere or its password is refused.
        """
        master = self._read_master(secret_id, current_document, current)
        self._login_master(master)
        return master

    def _read_master(
        self, secret_id: str, current_document: Mapping[str, Any], current: MongoCredentials
    ) -> MongoCredentials:
        master_arn = master_arn_of(current_document, secret_id, self.environ)
        master = parse_secret(self.secrets.secret_string(master_arn, stage=AWSCURRENT), secret_id=master_arn)
        differences = connection_differences(master, current, compare_auth_source=False)
        if differences:
            raise RotationError(
                f"the master secret {master_arn!r} differs from the application secret in {', '.join(differences)} "
                f"(master endpoint {master.endpoint!r}, application {current.endpoint!r}); refusing to log in as master"
            )
        return master

    def _login_master(self, master: MongoCredentials) -> None:
        try:
            self.mongo.check_login(master)
        except AuthenticationError as exc:
            raise RotationError(
                f"cannot log in with the master secret {master.secret_id!r} (user {master.username!r}); "
                "fix its password; the application's credentials were not changed"
            ) from exc

    def prove_current(self, action: str, secret_id: str, current: MongoCredentials) -> None:
        """AWSCURRENT must log in with its own password before the master acts (rule 4).

        Raises:
            RotationError: the password is refused.
        """
        try:
            self.mongo.check_login(current)
        except AuthenticationError as exc:
            raise RotationError(
                f"{action} refused: the AWSCURRENT credentials of {secret_id!r} (user {current.username!r}) do not "
                "log in, and the master acts only for someone who holds working credentials; fix the current "
                "secret first (see `secretswitch doctor`); nothing was changed"
            ) from exc

    def authorize(
        self,
        action: str,
        secret_id: str,
        current_document: Mapping[str, Any],
        current: MongoCredentials,
        target: str,
        *,
        allow_extra_roles: bool = False,
    ) -> Authority:
        """Run rules 1 and 3 to 5 for a change of ``target``'s password or roles.

        Args:
            action: the step or repair asking (for messages).
            target: the user to change; must be the current user's partner.
            allow_extra_roles: accept a target holding roles the current user
                lacks (only for a repair that takes those roles away).

        Raises:
            RotationError: a rule refuses; nothing was changed.
            SecretFormatError, DatabaseError, SecretsManagerError: from the boundaries.
        """
        plan = self.plan(secret_id, current_document, current)
        expected = partner_user(current.username, plan)
        if target != expected:
            raise RotationError(
                f"{action} refused: user {target!r} is not the partner of the current user "
                f"{current.username!r} (expected {expected!r}); nothing was changed"
            )
        # The master secret is read, not used, first: a change aimed at the master is refused before any login.
        master = self._read_master(secret_id, current_document, current)
        identities = {
            "current": (current.username, current.auth_source),
            "partner": (target, current.auth_source),
            "master": (master.username, master.auth_source),
        }
        early = change_refusal(**identities, current_roles=(), partner_roles=None)
        if early is not None:
            raise RotationError(f"{action} refused: {early}; nothing was changed")
        self.prove_current(action, secret_id, current)
        self._login_master(master)
        current_roles = self.mongo.user_roles(master, current.username, current.auth_source)
        target_roles = self.mongo.user_roles(master, target, current.auth_source)
        refusal = change_refusal(
            **identities,
            current_roles=current_roles,
            partner_roles=None if allow_extra_roles else target_roles,
        )
        if refusal is not None:
            raise RotationError(f"{action} refused: {refusal}; nothing was changed")
        return Authority(
            master=master,
            plan=plan,
            target=target,
            current_roles=tuple(current_roles or ()),
            target_roles=tuple(target_roles) if target_roles is not None else None,
        )
