"""``rotate_secret`` against a Secrets Manager that is not local: what it asks AWS, recorded with Stubber.

No network: botocore's ``Stubber`` answers every call and fails the test on a
call it does not expect, so these tests pin the exact requests (a resume is a
``RotateSecret`` with the pending token; a plain rotation leaves the secret's
schedule alone) and that no step runs in this process.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from secretswitch.client.errors import SecretFormatError
from secretswitch.client.secretsmanager import RotationSchedule
from secretswitch.rotate import register
from secretswitch.rotation_lambda.errors import RotationError
from secretswitch.rotation_lambda.secretsmanager import SecretMetadata
from secretswitch.rotation_tools.rotate import DEFAULT_ROTATION_DAYS, is_local_endpoint, rotate_secret, rotation_rules

SECRET = "mongodb-app"
ARN = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:mongodb-app-AbCdEf"
FUNCTION = "arn:aws:lambda:eu-west-2:123456789012:function:secretswitch-rotation"
CURRENT = "c" * 36
PENDING = "p" * 36


@pytest.fixture
def aws() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "secretsmanager", region_name="eu-west-2", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    assert not is_local_endpoint(client)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _described(versions: dict[str, list[str]], rules: dict[str, Any] | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "ARN": ARN,
        "Name": SECRET,
        "RotationEnabled": rules is not None,
        "VersionIdsToStages": versions,
    }
    if rules is not None:
        response["RotationRules"] = rules
        response["RotationLambdaARN"] = FUNCTION
    return response


APP_VALUE = json.dumps(
    {"engine": "mongo", "host": "db", "username": "app", "password": "pw-app-0123456789", "masterarn": "mongodb-admin"}
)
MASTER_VALUE = json.dumps({"engine": "mongo", "host": "db", "username": "admin", "password": "pw-admin-0123456789"})


def _checked_before_rotating(
    stubber: Stubber, value: str = APP_VALUE, others: list[dict[str, Any]] | None = None
) -> None:
    """The read-only checks rotate_secret makes before RotateSecret: the secret's value, then the secret list."""
    stubber.add_response(
        "get_secret_value",
        {"ARN": ARN, "Name": SECRET, "VersionId": CURRENT, "SecretString": value},
        {"SecretId": SECRET, "VersionStage": "AWSCURRENT"},
    )
    stubber.add_response("list_secrets", {"SecretList": others or []}, {})


def test_resume_on_aws_calls_rotatesecret_with_the_pending_token_and_runs_no_step_here(
    aws: tuple[Any, Stubber],
) -> None:
    client, stubber = aws
    versions = {CURRENT: ["AWSCURRENT"], PENDING: ["AWSPENDING"]}
    stubber.add_response("describe_secret", _described(versions, {"AutomaticallyAfterDays": 7}), {"SecretId": SECRET})
    stubber.add_response(
        "rotate_secret",
        {"ARN": ARN, "Name": SECRET, "VersionId": PENDING},
        {"SecretId": SECRET, "ClientRequestToken": PENDING},
    )
    outcome = rotate_secret(client, SECRET, resume=True)
    assert (outcome.token, outcome.resumed, outcome.asynchronous) == (PENDING, True, True)
    assert not outcome.completed
    assert outcome.failed_step is None


@pytest.mark.parametrize(
    "rules",
    [
        {"AutomaticallyAfterDays": 3},
        {"ScheduleExpression": "rate(3 days)", "Duration": "3h"},
        {"ScheduleExpression": "cron(0 4 ? * SUN *)", "Duration": "2h"},
    ],
)
def test_a_plain_rotation_on_aws_sends_no_rotation_rules_so_the_schedule_stays(
    aws: tuple[Any, Stubber], rules: dict[str, Any]
) -> None:
    client, stubber = aws
    stubber.add_response("describe_secret", _described({CURRENT: ["AWSCURRENT"]}, rules), {"SecretId": SECRET})
    _checked_before_rotating(stubber)
    # Stubber compares the parameters exactly: RotationRules here would fail the call.
    stubber.add_response(
        "rotate_secret",
        {"ARN": ARN, "Name": SECRET},
        {"SecretId": SECRET, "ClientRequestToken": ANY, "RotationLambdaARN": FUNCTION},
    )
    outcome = rotate_secret(client, SECRET)
    assert outcome.asynchronous


@pytest.mark.parametrize(
    ("kwargs", "sent"),
    [
        ({"rotation_days": 14}, {"AutomaticallyAfterDays": 14}),
        ({"schedule_expression": "rate(10 days)"}, {"ScheduleExpression": "rate(10 days)"}),
    ],
)
def test_an_explicit_schedule_is_sent(aws: tuple[Any, Stubber], kwargs: dict[str, Any], sent: dict[str, Any]) -> None:
    client, stubber = aws
    rules = {"ScheduleExpression": "rate(3 days)", "Duration": "3h"}
    stubber.add_response("describe_secret", _described({CURRENT: ["AWSCURRENT"]}, rules), {"SecretId": SECRET})
    _checked_before_rotating(stubber)
    stubber.add_response(
        "rotate_secret",
        {"ARN": ARN, "Name": SECRET},
        {"SecretId": SECRET, "ClientRequestToken": ANY, "RotationLambdaARN": FUNCTION, "RotationRules": sent},
    )
    rotate_secret(client, SECRET, **kwargs)


def _metadata(days: int | None = None, expression: str | None = None) -> SecretMetadata:
    return SecretMetadata(
        ARN, SECRET, True, schedule=RotationSchedule(True, rotation_days=days, schedule_expression=expression)
    )


@pytest.mark.parametrize(
    ("metadata", "days", "expression", "rules"),
    [
        (_metadata(), None, None, {"AutomaticallyAfterDays": DEFAULT_ROTATION_DAYS}),
        (_metadata(days=3), None, None, None),
        (_metadata(expression="rate(3 days)"), None, None, None),
        (_metadata(expression="rate(3 days)"), 5, None, {"AutomaticallyAfterDays": 5}),
        (_metadata(days=3), None, "rate(1 days)", {"ScheduleExpression": "rate(1 days)"}),
    ],
)
def test_rotation_rules_table(
    metadata: SecretMetadata, days: int | None, expression: str | None, rules: dict[str, Any] | None
) -> None:
    assert rotation_rules(metadata, days, expression) == rules


def test_the_cli_sends_no_days_unless_asked() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert parser.parse_args(["rotate", SECRET]).days is None
    assert parser.parse_args(["rotate", SECRET, "--days", "3"]).days == 3


def test_a_master_secret_without_masterarn_is_refused_before_rotatesecret(aws: tuple[Any, Stubber]) -> None:
    client, stubber = aws
    stubber.add_response("describe_secret", _described({CURRENT: ["AWSCURRENT"]}, None), {"SecretId": SECRET})
    stubber.add_response(
        "get_secret_value",
        {"ARN": ARN, "Name": SECRET, "VersionId": CURRENT, "SecretString": MASTER_VALUE},
        {"SecretId": SECRET, "VersionStage": "AWSCURRENT"},
    )
    # No RotateSecret is stubbed: Stubber fails the test if it is called.
    with pytest.raises(SecretFormatError, match="'masterarn': is missing") as refused:
        rotate_secret(client, SECRET, rotation_lambda_arn=FUNCTION)
    assert "\n" not in str(refused.value)


def test_a_secret_that_another_secret_names_as_its_master_is_refused(aws: tuple[Any, Stubber]) -> None:
    client, stubber = aws
    other_arn = ARN.replace("mongodb-app", "orders-app")
    stubber.add_response("describe_secret", _described({CURRENT: ["AWSCURRENT"]}, None), {"SecretId": SECRET})
    # The secret has a masterarn of its own (a chain of masters), so only the scan can tell.
    chained = json.dumps({**json.loads(MASTER_VALUE), "masterarn": "root-master"})
    _checked_before_rotating(
        stubber,
        chained,
        others=[
            {"ARN": other_arn.replace("orders", "billing"), "Name": "billing-app", "RotationLambdaARN": "another-fn"},
            {"ARN": other_arn, "Name": "orders-app", "RotationLambdaARN": FUNCTION},
        ],
    )
    stubber.add_response(
        "get_secret_value",
        {"ARN": other_arn, "Name": "orders-app", "VersionId": PENDING, "SecretString": json.dumps({"masterarn": ARN})},
        {"SecretId": other_arn, "VersionStage": "AWSCURRENT"},
    )
    with pytest.raises(RotationError, match="is the master secret of 'orders-app'"):
        rotate_secret(client, SECRET, rotation_lambda_arn=FUNCTION)
