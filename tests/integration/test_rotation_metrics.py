"""The rotation function's EMF records from a captured stdout, across a rotation and a failed one on the stack.

The stack runs the project's function with its records on (as ``lambda_handler``
does on AWS); the test reads them back from the captured output as CloudWatch
Logs would receive them, one JSON object per line.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from secretswitch.embedded_stack.stack import EmbeddedStack
from secretswitch.rotation_lambda.lambda_function import Handler, make_handler
from secretswitch.rotation_lambda.metrics import NAMESPACE, write_stdout
from secretswitch.rotation_lambda.rules import STEPS
from secretswitch.rotation_tools.rotate import rotate_secret

REGION = "af-south-1"
_stacks: list[EmbeddedStack] = []


def _stack_client() -> Any:
    return _stacks[0].secretsmanager_client()  # the stack starts after its rotation function is built


def _function() -> Handler:
    return make_handler(
        secretsmanager_client_factory=_stack_client,
        sleep=lambda seconds: None,
        emit_metrics=write_stdout,
    )


@pytest.fixture(scope="module")
def mstack() -> Iterator[EmbeddedStack]:
    function = _function()
    with EmbeddedStack(region=REGION, rotation_handler=lambda event: function(event, None)) as running:
        _stacks.append(running)
        try:
            yield running
        finally:
            _stacks.clear()


def _records(captured: str) -> list[dict[str, Any]]:
    records = []
    for line in captured.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            assert record["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE
            records.append(record)
    return records


def _passwords(stack: EmbeddedStack) -> set[str]:
    sm = stack.secretsmanager_client()
    found = {stack.info.admin_password, *stack.info.app_passwords.values()}
    for version in sm.list_secret_version_ids(SecretId=stack.info.app_secret_id)["Versions"]:
        document = json.loads(
            sm.get_secret_value(SecretId=stack.info.app_secret_id, VersionId=version["VersionId"])["SecretString"]
        )
        found.add(document.get("password", ""))
    return found - {""}


def test_a_rotation_writes_one_record_per_step(mstack: EmbeddedStack, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    outcome = rotate_secret(
        mstack.secretsmanager_client(), mstack.info.app_secret_id, rotation_lambda_arn=mstack.rotation_function_arn
    )
    assert outcome.completed, outcome.message
    captured = capsys.readouterr().out
    records = _records(captured)
    assert [r["Step"] for r in records] == list(STEPS)
    assert {r["SecretName"] for r in records} == {"mongodb-app"}
    assert [(r["StepSucceeded"], r["StepFailed"]) for r in records] == [(1, 0)] * 4
    assert all(r["StepDuration"] >= 0 and r["Outcome"] != "failed" for r in records)
    for password in _passwords(mstack):
        assert password not in captured


def test_a_failed_step_writes_a_failed_record_and_the_resumed_steps_theirs(
    mstack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = mstack.secretsmanager_client()
    admin_id = mstack.info.admin_secret_id
    good = sm.get_secret_value(SecretId=admin_id)["SecretString"]
    sm.put_secret_value(SecretId=admin_id, SecretString=json.dumps(dict(json.loads(good), password=uuid.uuid4().hex)))
    capsys.readouterr()
    try:
        failed = rotate_secret(sm, mstack.info.app_secret_id, rotation_lambda_arn=mstack.rotation_function_arn)
        assert failed.failed_step == "setSecret"
    finally:
        sm.put_secret_value(SecretId=admin_id, SecretString=good)
    resumed = rotate_secret(sm, mstack.info.app_secret_id, resume=True)
    assert resumed.completed, resumed.message
    records = _records(capsys.readouterr().out)
    assert [(r["Step"], r["StepFailed"], r.get("ErrorType")) for r in records] == [
        ("createSecret", 0, None),
        ("setSecret", 1, "RotationError"),  # the master's password is wrong
        *((step, 0, None) for step in STEPS),  # the resume re-runs every step; createSecret finds its version
    ]
    assert records[1]["Outcome"] == "failed"
