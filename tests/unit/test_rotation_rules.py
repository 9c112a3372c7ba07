"""Pure rotation rules: events, version checks, partner users, pending secrets, password policy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secretswitch.client.errors import ConfigurationError, SecretFormatError
from secretswitch.rotation_lambda import rules
from secretswitch.rotation_lambda.errors import RotationError
from secretswitch.rotation_lambda.rules import (
    AWS_DEFAULT_EXCLUDE_CHARACTERS,
    PasswordPolicy,
    Readiness,
    Strategy,
    UserPlan,
    backoff_delays,
    build_pending_secret,
    change_refusal,
    clone_pair,
    connection_differences,
    field_differences,
    parse_event,
    partner_user,
    read_database,
    readiness,
    user_plan,
)
from tests.faults import RotationInterrupted, crash_after

TOKEN = "a" * 36


def test_a_complete_event_is_accepted_with_its_rotation_token() -> None:
    event = parse_event({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": TOKEN, "RotationToken": "r"})
    assert (event.step, event.secret_id, event.token, event.rotation_token) == ("setSecret", "s", TOKEN, "r")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "JSON object"),
        ({"SecretId": "s", "ClientRequestToken": TOKEN}, "no 'Step'"),
        ({"Step": "createSecret", "ClientRequestToken": TOKEN}, "no 'SecretId'"),
        ({"Step": "createSecret", "SecretId": "s"}, "no 'ClientRequestToken'"),
        ({"Step": "createSecret", "SecretId": " ", "ClientRequestToken": TOKEN}, "non-empty"),
        ({"Step": "rollback", "SecretId": "s", "ClientRequestToken": TOKEN}, "unknown rotation step"),
        ({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": TOKEN, "RotationToken": 1}, "RotationToken"),
    ],
)
def test_bad_events_are_refused_with_the_key_named(event: Any, message: str) -> None:
    with pytest.raises(RotationError, match=message):
        parse_event(event)


@pytest.mark.parametrize(
    ("enabled", "versions", "expected"),
    [
        (True, {TOKEN: ("AWSPENDING",)}, Readiness.PROCEED),
        (True, {TOKEN: ("AWSCURRENT",)}, Readiness.ALREADY_CURRENT),
        (True, {TOKEN: ("AWSCURRENT", "AWSPENDING")}, Readiness.ALREADY_CURRENT),
        (False, {TOKEN: ("AWSPENDING",)}, "not have rotation enabled"),
        (None, {TOKEN: ("AWSPENDING",)}, "not have rotation enabled"),
        (True, {"other": ("AWSCURRENT",)}, "not a version"),
        (True, {TOKEN: ("AWSPREVIOUS",)}, "not staged AWSPENDING"),
        (True, {TOKEN: ()}, "not staged AWSPENDING"),
    ],
)
def test_readiness_table(enabled: bool | None, versions: dict[str, tuple[str, ...]], expected: object) -> None:
    if isinstance(expected, Readiness):
        assert readiness("s", TOKEN, enabled, versions) is expected
    else:
        with pytest.raises(RotationError, match=str(expected)):
            readiness("s", TOKEN, enabled, versions)


@pytest.mark.parametrize(
    ("user", "plan", "partner"),
    [
        ("app", UserPlan(Strategy.ALTERNATING), "app_clone"),
        ("app_clone", UserPlan(Strategy.ALTERNATING), "app"),
        ("_clone", UserPlan(Strategy.ALTERNATING), "_clone_clone"),
        ("blue", UserPlan(Strategy.ALTERNATING, ("blue", "green")), "green"),
        ("green", UserPlan(Strategy.ALTERNATING, ("blue", "green")), "blue"),
        ("app", UserPlan(Strategy.SINGLE), "app"),
    ],
)
def test_partner_user(user: str, plan: UserPlan, partner: str) -> None:
    assert partner_user(user, plan) == partner


def test_a_user_outside_the_explicit_pair_is_refused() -> None:
    with pytest.raises(RotationError, match="not one of"):
        partner_user("red", UserPlan(Strategy.ALTERNATING, ("blue", "green")))


@pytest.mark.parametrize(
    ("secret", "environ", "current", "pair"),
    [
        ({}, {}, "app", ("app", "app_clone")),
        ({}, {}, "app_clone", ("app", "app_clone")),
        ({}, {"ROTATION_USERS": "c, d"}, "d", ("c", "d")),
        # The secret may restate the configured pair, in any order.
        ({"rotationUsers": ["app_clone", "app"]}, {}, "app", ("app", "app_clone")),
        ({"rotationUsers": ["c", "d"]}, {"ROTATION_USERS": "d,c"}, "c", ("d", "c")),
        ({}, {"ROTATION_STRATEGY": "single"}, "app", None),
        ({}, {"ROTATION_STRATEGY": "single", "ROTATION_USERS": "app,other"}, "app", ("app", "other")),
    ],
)
def test_the_pair_comes_from_the_configuration_and_the_current_user(
    secret: dict[str, Any], environ: dict[str, str], current: str, pair: tuple[str, str] | None
) -> None:
    assert user_plan(secret, environ, secret_id="s", current_user=current).pair == pair


@pytest.mark.parametrize(
    ("secret", "environ", "current", "error", "message"),
    [
        ({"rotationUsers": ["a"]}, {}, "a", SecretFormatError, "two user names"),
        ({"rotationUsers": "a,b"}, {}, "a", SecretFormatError, "two user names"),
        ({"rotationUsers": ["a", "a"]}, {}, "a", SecretFormatError, "two different"),
        ({}, {"ROTATION_USERS": "a"}, "a", ConfigurationError, "two users"),
        ({}, {"ROTATION_USERS": "a,a"}, "a", ConfigurationError, "two different"),
        ({}, {"ROTATION_STRATEGY": "round-robin"}, "a", ConfigurationError, "alternating"),
        # The secret cannot choose the users: not the master, not a third user, not a wider pair.
        ({"rotationUsers": ["app", "admin"]}, {}, "app", RotationError, "cannot choose"),
        ({"rotationUsers": ["app", "dba"]}, {"ROTATION_USERS": "app,app_clone"}, "app", RotationError, "cannot choose"),
        ({"rotationUsers": ["dba", "dba_clone"]}, {"ROTATION_STRATEGY": "single"}, "app", RotationError, "cannot"),
        # AWSCURRENT naming a user outside ROTATION_USERS is refused for both strategies.
        ({}, {"ROTATION_USERS": "app,app_clone"}, "dba", RotationError, "not one of ROTATION_USERS"),
        ({}, {"ROTATION_USERS": "app,app_clone", "ROTATION_STRATEGY": "single"}, "dba", RotationError, "not one"),
    ],
)
def test_user_plan_refusals(
    secret: dict[str, Any], environ: dict[str, str], current: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        user_plan(secret, environ, secret_id="s", current_user=current)


def test_clone_pair() -> None:
    assert clone_pair("app") == clone_pair("app_clone") == ("app", "app_clone")
    assert clone_pair("_clone") == ("_clone", "_clone_clone")


@pytest.mark.parametrize(
    ("current_roles", "partner_roles", "partner", "refusal"),
    [
        ([{"role": "readWrite", "db": "mydb"}], [{"role": "readWrite", "db": "mydb"}], "app_clone", None),
        ([{"role": "readWrite", "db": "mydb"}], None, "app_clone", None),  # createUser copies the roles
        ([{"role": "readWrite", "db": "mydb"}], [], "app_clone", None),  # fewer roles: testSecret reports the drift
        (
            [{"role": "readWrite", "db": "mydb"}],
            [{"role": "readWrite", "db": "mydb"}, {"role": "root", "db": "admin"}],
            "app_clone",
            "has roles the current user 'app' lacks: root@admin",
        ),
        ([{"role": "readWrite", "db": "mydb"}], None, "admin", "is the master user"),
        (None, None, "app_clone", "does not exist"),
    ],
)
def test_change_refusal_table(
    current_roles: list[dict[str, str]] | None,
    partner_roles: list[dict[str, str]] | None,
    partner: str,
    refusal: str | None,
) -> None:
    found = change_refusal(
        current=("app", "admin"),
        partner=(partner, "admin"),
        master=("admin", "admin"),
        current_roles=current_roles,
        partner_roles=partner_roles,
    )
    if refusal is None:
        assert found is None
    else:
        assert found is not None
        assert refusal in found


def test_a_current_user_that_is_the_master_is_refused_whatever_the_partner() -> None:
    found = change_refusal(
        current=("admin", "admin"),
        partner=("admin", "admin"),
        master=("admin", "admin"),
        current_roles=[],
        partner_roles=None,
    )
    assert found is not None
    assert "AWSCURRENT names the master user" in found
    # The same name in another database is another user.
    assert (
        change_refusal(
            current=("app", "mydb"),
            partner=("admin", "mydb"),
            master=("admin", "admin"),
            current_roles=[],
            partner_roles=None,
        )
        is None
    )


@pytest.mark.parametrize(
    ("changes", "differences"),
    [
        ({"username": "app_clone", "password": "new"}, []),
        ({"masterarn": "arn:evil"}, ["masterarn"]),
        ({"host": "evil.example.com", "note": "x"}, ["host", "note"]),
        ({"rotationUsers": ["app", "admin"]}, ["rotationUsers"]),
        ({"ssl": None}, ["ssl"]),
    ],
)
def test_field_differences_name_every_field_but_the_two_a_rotation_owns(
    changes: dict[str, Any], differences: list[str]
) -> None:
    current = {"engine": "mongo", "host": "db", "username": "app", "password": "old", "masterarn": "arn:m", "ssl": True}
    assert field_differences(current, {**current, **changes}) == differences


@pytest.mark.parametrize(
    ("roles", "app_database", "database"),
    [
        ([{"role": "readWrite", "db": "mydb"}], "admin", "mydb"),  # AWS format, users in admin: not the login db
        ([{"role": "readWrite", "db": "mydb"}], None, "mydb"),
        ([{"role": "readWrite", "db": "mydb"}], "mydb", "mydb"),
        ([{"role": "read", "db": "zeta"}, {"role": "readWrite", "db": "mydb"}], "zeta", "zeta"),
        ([{"role": "read", "db": "zeta"}, {"role": "readWrite", "db": "mydb"}], None, "mydb"),
        ([{"role": "readAnyDatabase", "db": "admin"}], "mydb", "mydb"),
        ([{"role": "readAnyDatabase", "db": "admin"}], None, "admin"),
        ([{"role": "clusterMonitor", "db": "admin"}], "mydb", "admin"),
        ([], "mydb", None),
    ],
)
def test_the_read_check_follows_the_roles_not_dbname(
    roles: list[dict[str, str]], app_database: str | None, database: str | None
) -> None:
    assert read_database(roles, app_database) == database


def test_the_pending_secret_keeps_every_field_it_does_not_own() -> None:
    current = {"engine": "mongo", "host": "h", "username": "app", "password": "old", "ssl": True, "extra": [1]}
    pending = json.loads(build_pending_secret(current, "app_clone", "n:/?#[]@%+"))
    assert pending == {**current, "username": "app_clone", "password": "n:/?#[]@%+"}
    assert current["password"] == "old"


_CURRENT = {"username": "app", "password": "p", "host": "db1,db2", "tls": True, "replicaSet": "rs0"}


@pytest.mark.parametrize(
    ("changes", "differences", "without_auth_source"),
    [
        ({}, [], []),
        ({"username": "app_clone", "password": "q", "host": "DB2,db1"}, [], []),
        ({"host": "db1,db3"}, ["endpoint"], ["endpoint"]),
        ({"authSource": "mydb"}, ["authSource"], []),
        ({"replicaSet": "rs1"}, ["replicaSet"], ["replicaSet"]),
        ({"replicaSet": None}, ["replicaSet"], ["replicaSet"]),
        ({"tls": False}, ["tls"], ["tls"]),
        ({"tlsAllowInvalidCertificates": True}, ["TLS options"], ["TLS options"]),
        ({"tlsCAFile": "certs/other-ca.pem"}, ["TLS options"], ["TLS options"]),
        ({"host": "evil", "tls": False, "authSource": "x"}, ["endpoint", "authSource", "tls"], ["endpoint", "tls"]),
    ],
)
def test_connection_differences_name_every_setting_that_changes_how_mongodb_is_reached(
    changes: dict[str, Any], differences: list[str], without_auth_source: list[str]
) -> None:
    from secretswitch.client.credentials import parse_secret_dict

    current = parse_secret_dict(_CURRENT, secret_id="s")
    other = parse_secret_dict({**_CURRENT, **changes}, secret_id="s")
    assert connection_differences(other, current) == differences
    assert connection_differences(other, current, compare_auth_source=False) == without_auth_source


def test_connection_differences_never_quote_a_value() -> None:
    from secretswitch.client.credentials import parse_secret_dict

    secret_value = "key-file-password-" + "x" * 8
    current = parse_secret_dict(_CURRENT, secret_id="s")
    other = parse_secret_dict({**_CURRENT, "tlsCertificateKeyFilePassword": secret_value}, secret_id="s")
    assert secret_value not in " ".join(connection_differences(other, current))


def test_password_policy_defaults_and_environment() -> None:
    assert PasswordPolicy.from_environ({}).request()["PasswordLength"] == 32
    # AWS's templates' default: no character that breaks a connection string or a shell.
    assert PasswordPolicy.from_environ({}).request()["ExcludeCharacters"] == AWS_DEFAULT_EXCLUDE_CHARACTERS == "/@\"'\\"
    policy = PasswordPolicy.from_environ(
        {"PASSWORD_LENGTH": "40", "EXCLUDE_CHARACTERS": "xyz", "EXCLUDE_PUNCTUATION": "yes"}
    )
    assert (policy.length, policy.exclude_characters, policy.exclude_punctuation) == (40, "xyz", True)


@pytest.mark.parametrize("environ", [{"PASSWORD_LENGTH": "7"}, {"PASSWORD_LENGTH": "x"}, {"EXCLUDE_NUMBERS": "maybe"}])
def test_password_policy_refuses_bad_values(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        PasswordPolicy.from_environ(environ)


def test_backoff_doubles_and_caps() -> None:
    assert backoff_delays(4, 0.5) == (0.5, 1.0, 2.0)
    assert backoff_delays(6, 4.0) == (4.0, 8.0, 8.0, 8.0, 8.0)
    assert backoff_delays(1, 1.0) == ()


def test_crash_after_runs_the_steps_up_to_the_crash_then_raises() -> None:
    ran: list[str] = []
    invoker = crash_after("setSecret", lambda event, context: ran.append(event["Step"]))
    invoker({"Step": "createSecret"})
    with pytest.raises(RotationInterrupted):
        invoker({"Step": "setSecret"})
    with pytest.raises(RotationInterrupted):
        invoker({"Step": "testSecret"})
    assert ran == ["createSecret", "setSecret"]


def test_all_names_in_dunder_all_exist() -> None:
    from secretswitch import rotation_tools
    from secretswitch.rotation_lambda import guards
    from secretswitch.rotation_tools import rotate

    for module in (rules, guards, rotate, rotation_tools):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
