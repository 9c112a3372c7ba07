"""Pure decisions of the rotation function: no boto3, no pymongo, no I/O.

Each function here takes plain values and returns plain values, so the rules
(which event is valid, which version a step may touch, who the partner user
is and whether it may be changed, what the pending secret looks like, which
database proves a login, which password policy applies) are table-tested
without a server.

The authority over *which* users a rotation may touch is the function's own
configuration (``ROTATION_USERS``, else the ``_clone`` rule applied to the
user AWSCURRENT names) and the database's state, never the secret's content:
a ``rotationUsers`` field in the secret may only restate that pair. See
docs/SECURITY.md.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from secretswitch.client.credentials import MongoCredentials
from secretswitch.client.errors import ConfigurationError, SecretFormatError
from secretswitch.client.names import AWSCURRENT, AWSPENDING, STEPS

from .errors import RotationError

__all__ = [
    "AWS_DEFAULT_EXCLUDE_CHARACTERS",
    "CLONE_SUFFIX",
    "STEPS",
    "RotationEvent",
    "PasswordPolicy",
    "Readiness",
    "Strategy",
    "UserPlan",
    "backoff_delays",
    "build_pending_secret",
    "change_refusal",
    "clone_pair",
    "connection_differences",
    "current_version_id",
    "field_differences",
    "normalize_roles",
    "parse_event",
    "partner_user",
    "pending_version_ids",
    "read_database",
    "readiness",
    "user_plan",
]

CLONE_SUFFIX = "_clone"
# Field of the secret (or variable of the environment) naming the user pair.
ROTATION_USERS_FIELD = "rotationUsers"
ROTATION_USERS_ENV = "ROTATION_USERS"
ROTATION_STRATEGY_ENV = "ROTATION_STRATEGY"
# AWS's rotation templates' default EXCLUDE_CHARACTERS: safe in a connection string and a shell.
AWS_DEFAULT_EXCLUDE_CHARACTERS = "/@\"'\\"
# The fields a rotation owns; every other field is copied as it is.
OWNED_FIELDS = ("username", "password")


@dataclass(frozen=True, slots=True)
class RotationEvent:
    """The event Secrets Manager sends to a rotation function, checked."""

    step: str
    secret_id: str
    token: str
    rotation_token: str | None = None


def parse_event(event: object) -> RotationEvent:
    """Check the event before anything is called.

    Raises:
        RotationError: a key is missing or has the wrong type, or the step is unknown.
    """
    if not isinstance(event, Mapping):
        raise RotationError(f"the rotation event must be a JSON object, not {type(event).__name__}")
    values: dict[str, str] = {}
    for key in ("Step", "SecretId", "ClientRequestToken"):
        value = event.get(key)
        if value is None:
            raise RotationError(f"the rotation event has no {key!r}; Secrets Manager always sends it")
        if not isinstance(value, str) or not value.strip():
            raise RotationError(f"the rotation event's {key!r} must be a non-empty string")
        values[key] = value
    if values["Step"] not in STEPS:
        raise RotationError(f"unknown rotation step {values['Step']!r}; expected one of {', '.join(STEPS)}")
    rotation_token = event.get("RotationToken")
    if rotation_token is not None and not isinstance(rotation_token, str):
        raise RotationError("the rotation event's 'RotationToken' must be a string")
    return RotationEvent(values["Step"], values["SecretId"], values["ClientRequestToken"], rotation_token)


class Readiness(enum.Enum):
    """What the version checks allow a step to do."""

    PROCEED = "proceed"  # the token is AWSPENDING: run the step
    ALREADY_CURRENT = "already-current"  # the token is AWSCURRENT: nothing to do


def readiness(
    secret_id: str, token: str, rotation_enabled: bool | None, versions: Mapping[str, Sequence[str]]
) -> Readiness:
    """Apply the checks every step makes first.

    Raises:
        RotationError: rotation is not enabled, the token is not a version,
            or it is neither AWSCURRENT nor AWSPENDING.
    """
    if rotation_enabled is not True:
        raise RotationError(
            f"secret {secret_id!r} does not have rotation enabled; start rotations with RotateSecret "
            "(or `secretswitch rotate`), which enables it"
        )
    if token not in versions:
        raise RotationError(f"version {token} is not a version of secret {secret_id!r}; nothing was changed")
    stages = versions[token]
    if AWSCURRENT in stages:
        return Readiness.ALREADY_CURRENT
    if AWSPENDING not in stages:
        raise RotationError(
            f"version {token} of secret {secret_id!r} is not staged AWSPENDING (stages: {sorted(stages)}); "
            "nothing was changed"
        )
    return Readiness.PROCEED


def current_version_id(versions: Mapping[str, Sequence[str]]) -> str | None:
    """The version staged AWSCURRENT, or ``None``."""
    return next((version for version, stages in versions.items() if AWSCURRENT in stages), None)


def pending_version_ids(versions: Mapping[str, Sequence[str]]) -> list[str]:
    """Versions staged AWSPENDING that are not AWSCURRENT (a rotation in progress)."""
    return [v for v, stages in versions.items() if AWSPENDING in stages and AWSCURRENT not in stages]


class Strategy(enum.Enum):
    """How a rotation chooses the user whose password changes."""

    ALTERNATING = "alternating"  # change the partner's password, then switch to it
    SINGLE = "single"  # change the user's own password (with the master secret)


@dataclass(frozen=True, slots=True)
class UserPlan:
    """The strategy and the user pair for one rotation.

    Attributes:
        strategy: alternating users or a single user.
        pair: the two users that alternate (from ``ROTATION_USERS`` or the
            ``_clone`` rule); ``None`` only for the single-user strategy
            without ``ROTATION_USERS``.
        source: where the pair came from, for messages.
    """

    strategy: Strategy
    pair: tuple[str, str] | None = None
    source: str = "the _clone rule"


def clone_pair(username: str) -> tuple[str, str]:
    """The pair the ``_clone`` rule gives ``username``: ``(base, base_clone)``."""
    if username.endswith(CLONE_SUFFIX) and len(username) > len(CLONE_SUFFIX):
        base = username[: -len(CLONE_SUFFIX)]
    else:
        base = username
    return (base, base + CLONE_SUFFIX)


def user_plan(secret: Mapping[str, Any], environ: Mapping[str, str], *, secret_id: str, current_user: str) -> UserPlan:
    """Decide the strategy and the user pair from the function's configuration.

    The pair is ``ROTATION_USERS`` when set, else the ``_clone`` rule applied
    to ``current_user`` (the user AWSCURRENT names; the steps prove it logs in
    before anything changes). A ``rotationUsers`` field in the secret may only
    restate that pair: whoever can write the application's secret must not
    choose which database users the master changes.

    Raises:
        ConfigurationError: the strategy or ``ROTATION_USERS`` is malformed.
        SecretFormatError: the secret's ``rotationUsers`` is malformed.
        RotationError: ``current_user`` is outside the configured pair, or
            ``rotationUsers`` disagrees with it.
    """
    raw_strategy = environ.get(ROTATION_STRATEGY_ENV, Strategy.ALTERNATING.value).strip().lower()
    try:
        strategy = Strategy(raw_strategy)
    except ValueError:
        raise ConfigurationError(
            f"{ROTATION_STRATEGY_ENV} must be 'alternating' or 'single', not {raw_strategy!r}"
        ) from None
    configured: tuple[str, str] | None = None
    if environ.get(ROTATION_USERS_ENV, "").strip():
        names = [part.strip() for part in environ[ROTATION_USERS_ENV].split(",")]
        if len(names) != 2 or not all(names):
            raise ConfigurationError(f"{ROTATION_USERS_ENV} must name two users separated by a comma")
        if names[0] == names[1]:
            raise ConfigurationError(f"{ROTATION_USERS_ENV} must name two different users")
        configured = (names[0], names[1])
        if current_user not in configured:
            raise RotationError(
                f"the AWSCURRENT user {current_user!r} of {secret_id!r} is not one of {ROTATION_USERS_ENV} "
                f"{list(configured)}; the function rotates only those users; nothing was changed"
            )
    source = ROTATION_USERS_ENV if configured is not None else "the _clone rule"
    if configured is None and strategy is Strategy.ALTERNATING:
        configured = clone_pair(current_user)
    claimed = _secret_pair(secret, secret_id)
    if claimed is not None:
        agrees = (
            set(claimed) == set(configured)
            if configured is not None
            else current_user in claimed  # single strategy without ROTATION_USERS: it may only name the user
        )
        if not agrees:
            expected = list(configured) if configured is not None else [current_user]
            raise RotationError(
                f"the secret {secret_id!r} names {ROTATION_USERS_FIELD} {list(claimed)}, but the function's "
                f"configuration ({source}) gives {expected}; the secret cannot choose which users are changed: "
                f"remove the field or make it agree; nothing was changed"
            )
    return UserPlan(strategy, configured, source)


def _secret_pair(secret: Mapping[str, Any], secret_id: str) -> tuple[str, str] | None:
    if secret.get(ROTATION_USERS_FIELD) is None:
        return None
    value = secret[ROTATION_USERS_FIELD]
    names = value if isinstance(value, list) else None
    if names is None or len(names) != 2 or not all(isinstance(n, str) and n.strip() for n in names):
        raise SecretFormatError("must be a list of two user names", secret_id=secret_id, field=ROTATION_USERS_FIELD)
    pair = (names[0].strip(), names[1].strip())
    if pair[0] == pair[1]:
        raise SecretFormatError("must name two different users", secret_id=secret_id, field=ROTATION_USERS_FIELD)
    return pair


def partner_user(username: str, plan: UserPlan) -> str:
    """The user whose password the next rotation changes.

    Raises:
        RotationError: the user is not one of the plan's pair.
    """
    if plan.strategy is Strategy.SINGLE:
        return username
    pair = plan.pair if plan.pair is not None else clone_pair(username)
    first, second = pair
    if username == first:
        return second
    if username == second:
        return first
    raise RotationError(f"user {username!r} is not one of the alternating users {list(pair)}")


def build_pending_secret(current: Mapping[str, Any], username: str, password: str) -> str:
    """The pending secret string: the current one with the user and password replaced.

    Every other field (host, TLS options, masterarn, unknown fields) is kept as it is.
    """
    pending = dict(current)
    pending["username"] = username
    pending["password"] = password
    return json.dumps(pending)


def connection_differences(
    first: MongoCredentials, second: MongoCredentials, *, compare_auth_source: bool = True
) -> list[str]:
    """What differs in how two secrets reach MongoDB: names only, never values.

    The endpoint (URI or hosts, case-insensitive), the replica set, the TLS
    flag and every TLS option are compared, so a version that quietly turns
    off certificate checks (``tlsAllowInvalidCertificates``) or points at
    another replica set is told apart; the ``authSource`` too unless
    ``compare_auth_source`` is false (the master user lives elsewhere).

    Returns:
        The names of the settings that differ, in a fixed order; empty when they agree.
    """
    checks: list[tuple[str, object, object]] = [
        ("endpoint", _endpoint_key(first), _endpoint_key(second)),
        ("replicaSet", first.replica_set, second.replica_set),
        ("tls", first.tls, second.tls),
        ("TLS options", frozenset(first.tls_options), frozenset(second.tls_options)),
    ]
    if compare_auth_source:
        checks.insert(1, ("authSource", first.auth_source, second.auth_source))
    return [name for name, left, right in checks if left != right]


def _endpoint_key(credentials: MongoCredentials) -> tuple[str | None, frozenset[str]]:
    return (credentials.uri, frozenset(host.lower() for host in credentials.hosts))


def field_differences(current: Mapping[str, Any], pending: Mapping[str, Any]) -> list[str]:
    """Top-level fields, other than ``username`` and ``password``, whose values differ: names only.

    createSecret copies AWSCURRENT whole (as AWS's functions do), so a pending
    version that differs anywhere else (``masterarn``, ``host``, ``dbname``,
    a TLS option, ``rotationUsers``…) was written by someone else.
    """
    names = (set(current) | set(pending)) - set(OWNED_FIELDS)
    return sorted(name for name in names if current.get(name, _MISSING) != pending.get(name, _MISSING))


_MISSING = object()
Roles = Iterable[Mapping[str, Any]]


def change_refusal(
    *,
    current: tuple[str, str],
    partner: tuple[str, str],
    master: tuple[str, str],
    current_roles: Roles | None,
    partner_roles: Roles | None,
) -> str | None:
    """Why the master may not change ``partner``'s password (``None``: it may).

    Users are ``(name, database)`` pairs. The master user itself is never
    changed, nor is a user AWSCURRENT does not name through a user that
    exists; and a partner that already exists must not hold a role the
    current user lacks (changing its password would hand those roles to
    whoever reads the application's secret).
    """
    if current == master:
        return f"AWSCURRENT names the master user {current[0]!r} (database {current[1]!r})"
    if partner == master:
        return f"the partner user {partner[0]!r} is the master user (database {partner[1]!r})"
    if current_roles is None:
        return f"the current user {current[0]!r} does not exist in database {current[1]!r}"
    if partner_roles is not None:
        extra = sorted(set(normalize_roles(partner_roles)) - set(normalize_roles(current_roles)))
        if extra:
            listed = ", ".join(f"{role}@{db}" for db, role in extra)
            return (
                f"the partner user {partner[0]!r} has roles the current user {current[0]!r} lacks: {listed}; "
                f"revoke them from {partner[0]!r} (or drop that user) first"
            )
    return None


# Roles in "admin" that cover every database, so any database may prove a login.
_ANY_DATABASE_ROLES = frozenset({"readAnyDatabase", "readWriteAnyDatabase", "dbAdminAnyDatabase", "root", "__system"})


def read_database(roles: Roles, app_database: str | None) -> str | None:
    """The database whose collections a user's roles let it list (to prove a login), or ``None``.

    The login database (``authSource``) is not necessarily readable: with
    AWS's format and users in ``admin``, ``dbname`` is ``admin`` and the
    application's roles are on another database. So the choice follows the
    roles: the application database (``dbname``) when a role covers it, else
    the first database a role names, else ``admin`` for the *AnyDatabase*
    roles. ``None`` when the user has no role at all.
    """
    pairs = normalize_roles(roles)
    if not pairs:
        return None
    databases = sorted({db for db, _ in pairs if db and db != "admin"})
    any_database = any(db == "admin" and role in _ANY_DATABASE_ROLES for db, role in pairs)
    if app_database is not None and (app_database in databases or any_database):
        return app_database
    if databases:
        return databases[0]
    return "admin"


def normalize_roles(roles: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Roles as sorted ``(db, role)`` pairs, for comparison."""
    return tuple(sorted((str(role.get("db", "")), str(role.get("role", ""))) for role in roles))


def backoff_delays(attempts: int, first_delay: float, factor: float = 2.0, max_delay: float = 8.0) -> tuple[float, ...]:
    """Delays between ``attempts`` tries: ``first_delay``, doubled each time, capped."""
    return tuple(min(max_delay, first_delay * factor**i) for i in range(max(0, attempts - 1)))


_TRUE = frozenset({"true", "1", "y", "yes"})
_FALSE = frozenset({"false", "0", "n", "no"})


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Arguments for ``GetRandomPassword``, read from the AWS templates' variables.

    The default alphabet is AWS's (``/@"'\\`` excluded, as in its rotation
    templates): this project hands passwords to pymongo as keyword arguments,
    but operators paste them into connection strings (``mongosh``), where
    ``@`` and ``/`` break the URI.
    """

    length: int = 32
    exclude_characters: str = AWS_DEFAULT_EXCLUDE_CHARACTERS
    exclude_numbers: bool = False
    exclude_punctuation: bool = False
    exclude_uppercase: bool = False
    exclude_lowercase: bool = False
    require_each_included_type: bool = True

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> PasswordPolicy:
        """Read ``PASSWORD_LENGTH``, ``EXCLUDE_CHARACTERS``, ``EXCLUDE_NUMBERS`` … as the AWS templates do.

        Raises:
            ConfigurationError: a value cannot be used.
        """
        default = cls()
        raw_length = environ.get("PASSWORD_LENGTH", str(default.length)).strip()
        if not raw_length.isdigit() or not 8 <= int(raw_length) <= 4096:
            raise ConfigurationError(f"PASSWORD_LENGTH must be a whole number from 8 to 4096, not {raw_length!r}")
        return cls(
            length=int(raw_length),
            exclude_characters=environ.get("EXCLUDE_CHARACTERS", default.exclude_characters),
            exclude_numbers=_env_bool(environ, "EXCLUDE_NUMBERS", default.exclude_numbers),
            exclude_punctuation=_env_bool(environ, "EXCLUDE_PUNCTUATION", default.exclude_punctuation),
            exclude_uppercase=_env_bool(environ, "EXCLUDE_UPPERCASE", default.exclude_uppercase),
            exclude_lowercase=_env_bool(environ, "EXCLUDE_LOWERCASE", default.exclude_lowercase),
            require_each_included_type=_env_bool(
                environ, "REQUIRE_EACH_INCLUDED_TYPE", default.require_each_included_type
            ),
        )

    def request(self) -> dict[str, Any]:
        """Keyword arguments for boto3's ``get_random_password``."""
        return {
            "PasswordLength": self.length,
            "ExcludeCharacters": self.exclude_characters,
            "ExcludeNumbers": self.exclude_numbers,
            "ExcludePunctuation": self.exclude_punctuation,
            "ExcludeUppercase": self.exclude_uppercase,
            "ExcludeLowercase": self.exclude_lowercase,
            "RequireEachIncludedType": self.require_each_included_type,
        }


def _env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")
