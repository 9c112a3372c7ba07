"""Pure rotation rules: events, version checks, partner users, pending secrets, password policy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from client.errors import ConfigurationError, SecretFormatError
from embedded_stack.faults import RotationInterrupted, crash_after
from rotation_lambda import core
from rotation_lambda.core import (
    PasswordPolicy,
    Readiness,
    Strategy,
    UserPlan,
    backoff_delays,
    build_pending_secret,
    connection_differences,
    parse_event,
    partner_user,
    readiness,
    user_plan,
)
from rotation_lambda.errors import RotationError

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


def test_user_plan_reads_the_pair_from_the_secret_before_the_environment() -> None:
    secret = {"rotationUsers": ["a", "b"]}
    assert user_plan(secret, {"ROTATION_USERS": "c,d"}, secret_id="s").pair == ("a", "b")
    assert user_plan({}, {"ROTATION_USERS": "c, d"}, secret_id="s").pair == ("c", "d")
    assert user_plan({}, {"ROTATION_STRATEGY": "single"}, secret_id="s").strategy is Strategy.SINGLE


@pytest.mark.parametrize(
    ("secret", "environ", "error"),
    [
        ({"rotationUsers": ["a"]}, {}, SecretFormatError),
        ({"rotationUsers": "a,b"}, {}, SecretFormatError),
        ({}, {"ROTATION_USERS": "a"}, ConfigurationError),
        ({}, {"ROTATION_USERS": "a,a"}, ConfigurationError),
        ({}, {"ROTATION_STRATEGY": "round-robin"}, ConfigurationError),
    ],
)
def test_user_plan_errors(secret: dict[str, Any], environ: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        user_plan(secret, environ, secret_id="s")


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
    from client.credentials import parse_secret_dict

    current = parse_secret_dict(_CURRENT, secret_id="s")
    other = parse_secret_dict({**_CURRENT, **changes}, secret_id="s")
    assert connection_differences(other, current) == differences
    assert connection_differences(other, current, compare_auth_source=False) == without_auth_source


def test_connection_differences_never_quote_a_value() -> None:
    from client.credentials import parse_secret_dict

    secret_value = "key-file-password-" + "x" * 8
    current = parse_secret_dict(_CURRENT, secret_id="s")
    other = parse_secret_dict({**_CURRENT, "tlsCertificateKeyFilePassword": secret_value}, secret_id="s")
    assert secret_value not in " ".join(connection_differences(other, current))


def test_password_policy_defaults_and_environment() -> None:
    assert PasswordPolicy.from_environ({}).request()["PasswordLength"] == 32
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
    for name in core.__all__:
        assert hasattr(core, name), name
