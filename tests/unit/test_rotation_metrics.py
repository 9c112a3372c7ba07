"""The rotation function's Embedded Metric Format records: the format, and the handler that writes them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secretswitch.rotation_lambda.errors import RotationError
from secretswitch.rotation_lambda.lambda_function import make_handler
from secretswitch.rotation_lambda.metrics import NAMESPACE, secret_name, step_record, write_stdout

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mongodb-app-AbCdEf"


@pytest.mark.parametrize(
    ("secret_id", "name"),
    [
        (ARN, "mongodb-app"),
        ("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:prod/orders/mongo-x1Y2z3", "prod/orders/mongo"),
        ("mongodb-app", "mongodb-app"),
        ("mongodb-app-AbCdEf", "mongodb-app-AbCdEf"),  # a name is never trimmed: only an ARN carries the suffix
        (None, "unknown"),
        (42, "unknown"),
        ("", "unknown"),
    ],
)
def test_the_dimension_is_the_secrets_name(secret_id: object, name: str) -> None:
    assert secret_name(secret_id) == name


def _emf_metrics(record: dict[str, Any]) -> tuple[str, list[list[str]], dict[str, str]]:
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    units = {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}
    # Every metric and dimension the directive names is a member of the record (the EMF rule).
    for key in (*units, *(d for dimensions in directive["Dimensions"] for d in dimensions)):
        assert key in record, key
    return directive["Namespace"], directive["Dimensions"], units


def test_a_record_is_one_line_of_emf_with_the_step_the_outcome_and_the_duration() -> None:
    line = step_record(secret_id=ARN, step="setSecret", outcome="password-set", duration=0.25, timestamp=1700000000.5)
    assert "\n" not in line
    record = json.loads(line)
    namespace, dimensions, units = _emf_metrics(record)
    assert namespace == NAMESPACE
    assert dimensions == [["SecretName"], ["SecretName", "Step"]]
    assert units == {"StepDuration": "Milliseconds", "StepSucceeded": "Count", "StepFailed": "Count"}
    assert record["_aws"]["Timestamp"] == 1700000000500
    assert {k: v for k, v in record.items() if k != "_aws"} == {
        "SecretName": "mongodb-app",
        "Step": "setSecret",
        "Outcome": "password-set",
        "StepDuration": 250.0,
        "StepSucceeded": 1,
        "StepFailed": 0,
    }


def test_a_failed_step_counts_as_failed_and_names_the_error_type_only() -> None:
    record = json.loads(
        step_record(
            secret_id="mongodb-app", step="dropSecret", outcome="failed", duration=0.001, timestamp=0, error_type="X"
        )
    )
    failed = (record["Step"], record["StepSucceeded"], record["StepFailed"], record["ErrorType"])
    assert failed == ("invalid", 0, 1, "X")


def test_the_handler_writes_one_record_per_invocation_to_stdout_even_when_it_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused event fails before any call: the record still goes out, then the error reaches Lambda."""
    ticks = iter([10.0, 10.5])
    handler = make_handler(
        secretsmanager_client_factory=lambda: pytest.fail("no event reached Secrets Manager"),
        emit_metrics=write_stdout,
        clock=lambda: next(ticks),
        wall_clock=lambda: 1700000000.0,
    )
    with pytest.raises(RotationError):
        handler({"Step": "dropSecret", "SecretId": ARN, "ClientRequestToken": "t" * 36}, None)
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert (record["SecretName"], record["Step"], record["Outcome"]) == ("mongodb-app", "invalid", "failed")
    assert (record["StepFailed"], record["ErrorType"], record["StepDuration"]) == (1, "RotationError", 500.0)
    assert "t" * 36 not in line  # the token is not a dimension or a property


def test_a_sink_that_fails_never_fails_the_step(caplog: pytest.LogCaptureFixture) -> None:
    def broken(line: str) -> None:
        raise OSError("stdout is closed")

    handler = make_handler(secretsmanager_client_factory=lambda: pytest.fail("not called"), emit_metrics=broken)
    with pytest.raises(RotationError):  # the step's own error, not the sink's
        handler({"Step": "nope", "SecretId": ARN, "ClientRequestToken": "t" * 36}, None)
    assert "could not write the step's metrics record" in caplog.text


def test_the_stand_ins_write_no_record_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    handler = make_handler(secretsmanager_client_factory=lambda: pytest.fail("not called"))
    with pytest.raises(RotationError):
        handler({"Step": "nope", "SecretId": ARN, "ClientRequestToken": "t" * 36}, None)
    assert capsys.readouterr().out == ""
