"""The embedded Secrets Manager keeps AWS's RotateSecret contract for any client: plain boto3 calls, as the AWS CLI.

Each test calls the API the way a person with the AWS CLI would
(``aws secretsmanager rotate-secret --secret-id mongodb-app`` is
``rotate_secret(SecretId="mongodb-app")``), then checks what AWS documents:
the configured function and schedule are reused and never lost, the function
gets the four events in order, AWSPENDING on AWSCURRENT means finished, a
rotation in progress refuses a new one, and a refused call changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from secretswitch.cli import main
from secretswitch.client.credentials import parse_secret
from secretswitch.embedded_stack.moto_server import register_rotation_function
from secretswitch.embedded_stack.stack import EmbeddedStack
from secretswitch.rotation_lambda.lambda_function import make_handler
from tests.faults import interrupted_rotation

REGION = "ap-northeast-1"
SECRET = "mongodb-app"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cstack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(region=REGION) as running:
        yield running


@pytest.fixture
def sm(cstack: EmbeddedStack) -> Any:
    return cstack.secretsmanager_client()


@pytest.fixture
def cli_env(cstack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment `secretswitch local` prints, as a person pastes it."""
    for name in ("AWS_PROFILE", "SECRETS_MANAGER_ENDPOINT", "MONGODB_URI"):
        monkeypatch.delenv(name, raising=False)
    environment = cstack.info.environment()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


def _described(sm: Any, secret_id: str = SECRET) -> dict[str, Any]:
    response = sm.describe_secret(SecretId=secret_id)
    return {
        "enabled": response.get("RotationEnabled"),
        "function": response.get("RotationLambdaARN"),
        "rules": response.get("RotationRules"),
        "versions": {v: sorted(s) for v, s in response["VersionIdsToStages"].items() if s},
    }


def _current(sm: Any) -> tuple[str, str]:
    """(version id, user name) of AWSCURRENT."""
    response = sm.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")
    return response["VersionId"], parse_secret(response["SecretString"], secret_id=SECRET).username


def _logs_in(stack: EmbeddedStack, sm: Any) -> bool:
    response = sm.get_secret_value(SecretId=SECRET)  # no stage: what AWS's default version answers
    credentials = parse_secret(response["SecretString"], secret_id=SECRET)
    with stack.mongo_client(credentials.username, credentials.password, serverSelectionTimeoutMS=3000) as client:
        client["mydb"].command("ping")
    return True


@pytest.fixture
def recorded_events(cstack: EmbeddedStack) -> Iterator[list[dict[str, Any]]]:
    """Every event the rotation function receives during the test (then the plain function again)."""
    events: list[dict[str, Any]] = []
    handler = make_handler(secretsmanager_client_factory=cstack.secretsmanager_client)

    def recording(event: dict[str, Any]) -> None:
        events.append(dict(event))
        handler(event, None)

    register_rotation_function(cstack.rotation_function_arn, recording)
    yield events
    register_rotation_function(cstack.rotation_function_arn, lambda event: handler(event, None))


def test_a_fresh_stack_comes_with_rotation_configured(cstack: EmbeddedStack, sm: Any) -> None:
    """As a deployed RotationSchedule leaves it: the stack's function, rate(7 days), rotation on."""
    described = _described(sm)
    assert described["enabled"] is True
    assert described["function"] == cstack.rotation_function_arn
    assert described["rules"] == {"AutomaticallyAfterDays": 7, "ScheduleExpression": "rate(7 days)"}
    assert sm.describe_secret(SecretId=SECRET).get("NextRotationDate") is not None


def test_plain_rotate_secret_runs_the_configured_function_step_by_step(
    cstack: EmbeddedStack, sm: Any, recorded_events: list[dict[str, Any]]
) -> None:
    """`aws secretsmanager rotate-secret --secret-id mongodb-app`: no ARN, no rules, a real rotation."""
    before = _described(sm)
    _, user_before = _current(sm)

    version_id = sm.rotate_secret(SecretId=SECRET)["VersionId"]

    after = _described(sm)
    current_version, user_after = _current(sm)
    assert current_version == version_id
    assert user_after != user_before, "the alternating strategy switches users"
    assert (after["function"], after["rules"], after["enabled"]) == (before["function"], before["rules"], True)
    assert not any("AWSPENDING" in stages for stages in after["versions"].values())
    assert _logs_in(cstack, sm)
    arn = sm.describe_secret(SecretId=SECRET)["ARN"]
    assert [event["Step"] for event in recorded_events] == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    assert {event["SecretId"] for event in recorded_events} == {arn}, "AWS sends the secret's ARN"
    assert {event["ClientRequestToken"] for event in recorded_events} == {version_id}
    assert len({event["RotationToken"] for event in recorded_events}) == 1


def test_awspending_on_the_current_version_counts_as_finished(cstack: EmbeddedStack, sm: Any) -> None:
    """AWS's own templates leave AWSPENDING on the new AWSCURRENT; the next rotation must still run."""
    current_version, user_before = _current(sm)
    sm.update_secret_version_stage(SecretId=SECRET, VersionStage="AWSPENDING", MoveToVersionId=current_version)

    version_id = sm.rotate_secret(SecretId=SECRET)["VersionId"]

    assert _current(sm) == (version_id, "app" if user_before == "app_clone" else "app_clone")
    stages = _described(sm)["versions"]
    assert "AWSPENDING" not in stages.get(current_version, []), "the label moved off the old version"


def test_secretswitch_rotate_exits_0_when_the_function_leaves_awspending_on_awscurrent(
    cstack: EmbeddedStack, sm: Any, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    handler = make_handler(secretsmanager_client_factory=cstack.secretsmanager_client)

    def like_the_aws_templates(event: dict[str, Any]) -> None:
        handler(event, None)
        if event["Step"] == "finishSecret":
            # The AWS templates' finishSecret moves AWSCURRENT only; AWSPENDING stays on the same version.
            sm.update_secret_version_stage(
                SecretId=SECRET, VersionStage="AWSPENDING", MoveToVersionId=event["ClientRequestToken"]
            )

    register_rotation_function(cstack.rotation_function_arn, like_the_aws_templates)
    try:
        assert main(["rotate", SECRET]) == 0
        assert "is now AWSCURRENT (version " in capsys.readouterr().out
        assert main(["rotate", SECRET]) == 0, "and the next rotation is not refused"
    finally:
        register_rotation_function(cstack.rotation_function_arn, lambda event: handler(event, None))
    assert main(["doctor", SECRET]) == 0


def test_the_exports_of_local_are_enough_for_rotate_status_and_doctor(
    cstack: EmbeddedStack,
    sm: Any,
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No SECRET_ID argument ($SECRETSWITCH_SECRET_ID) and AWS_REGION alone (botocore reads only AWS_DEFAULT_REGION).

    rotate's line names the user that is now AWSCURRENT and gives the version id once.
    """
    assert cli_env["SECRETSWITCH_SECRET_ID"] == SECRET
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    capsys.readouterr()
    assert main(["rotate"]) == 0
    out = capsys.readouterr().out
    version, user = _current(sm)
    assert out.strip() == f"{SECRET}: rotated: {user!r} is now AWSCURRENT (version {version})"
    assert out.count(version) == 1
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert f"secret    {SECRET} (" in status
    assert version in status
    assert main(["doctor"]) == 0
    assert f"{SECRET}: healthy" in capsys.readouterr().out


def test_a_rotation_in_progress_refuses_a_new_one_until_it_is_retried_with_its_token(
    cstack: EmbeddedStack, sm: Any
) -> None:
    outcome = interrupted_rotation(sm, SECRET, crash_after_step="setSecret", function_arn=cstack.rotation_function_arn)
    pending = outcome.token
    before = _described(sm)
    assert before["versions"][pending] == ["AWSPENDING"]

    with pytest.raises(ClientError) as refused:
        sm.rotate_secret(SecretId=SECRET)
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
    assert f"version {pending} is AWSPENDING" in str(refused.value)
    assert _described(sm) == before, "a refused call changes nothing"

    assert sm.rotate_secret(SecretId=SECRET, ClientRequestToken=pending)["VersionId"] == pending
    assert _current(sm)[0] == pending
    assert _logs_in(cstack, sm)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"RotationLambdaARN": f"arn:aws:lambda:{REGION}:123456789012:function:wrong"}, "cannot invoke"),
        ({"RotationRules": {"ScheduleExpression": "rate(2 hours)"}}, "at most every 4 hours"),
        ({"RotationRules": {"ScheduleExpression": "rate(7 days)", "Duration": "25h"}}, "1h to 24h"),
        ({"RotationRules": {"ScheduleExpression": "weekly"}}, "neither rate"),
        ({"RotationRules": {"AutomaticallyAfterDays": 2000}}, "1 to 1000"),
    ],
)
def test_a_refused_call_keeps_the_function_the_schedule_and_the_versions(
    sm: Any, kwargs: dict[str, Any], message: str
) -> None:
    before = _described(sm)
    with pytest.raises(ClientError) as refused:
        sm.rotate_secret(SecretId=SECRET, **kwargs)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert message in str(refused.value)
    assert _described(sm) == before


def test_a_schedule_expression_turns_rotation_on_and_is_kept(cstack: EmbeddedStack, sm: Any) -> None:
    """`rotate --schedule 'rate(10 days)'` on a secret whose rotation is off rotates and keeps the rate."""
    sm.cancel_rotate_secret(SecretId=SECRET)
    assert _described(sm)["enabled"] is False

    version_id = sm.rotate_secret(SecretId=SECRET, RotationRules={"ScheduleExpression": "rate(10 days)"})["VersionId"]

    described = _described(sm)
    assert _current(sm)[0] == version_id
    assert described["enabled"] is True
    assert described["function"] == cstack.rotation_function_arn
    assert described["rules"] == {"AutomaticallyAfterDays": 10, "ScheduleExpression": "rate(10 days)"}
    sm.rotate_secret(SecretId=SECRET, RotationRules={"ScheduleExpression": "rate(7 days)"})


def test_rotate_immediately_false_tests_the_configuration_without_rotating(
    sm: Any, recorded_events: list[dict[str, Any]]
) -> None:
    before = _described(sm)
    sm.rotate_secret(SecretId=SECRET, RotationRules={"AutomaticallyAfterDays": 5}, RotateImmediately=False)
    after = _described(sm)
    assert [event["Step"] for event in recorded_events] == ["testSecret"]
    assert after["versions"] == before["versions"], "no version is left behind"
    assert after["rules"] == {"AutomaticallyAfterDays": 5}
    sm.rotate_secret(SecretId=SECRET, RotationRules={"ScheduleExpression": "rate(7 days)"}, RotateImmediately=False)


def test_a_deleted_secret_is_named_as_such(
    sm: Any, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sm.create_secret(Name="doomed", SecretString=json.dumps({"username": "nobody", "password": "x" * 8}))
    sm.delete_secret(SecretId="doomed", RecoveryWindowInDays=7)
    assert main(["rotate", "doomed"]) == 1
    err = capsys.readouterr().err
    assert "scheduled for deletion" in err
    assert "aws secretsmanager restore-secret --secret-id doomed" in err
    assert len(err.strip().splitlines()) == 1


def test_doctor_tells_an_unreachable_database_from_refused_credentials(
    cstack: EmbeddedStack, sm: Any, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(sm.get_secret_value(SecretId=SECRET)["SecretString"])
    sm.create_secret(Name="refused", SecretString=json.dumps({**document, "password": "not-the-password"}))
    assert main(["doctor", "refused"]) == 1
    refused = capsys.readouterr().out
    assert "MongoDB refuses the AWSCURRENT credentials" in refused
    assert "unreachable" not in refused

    assert cstack.mongo is not None
    cstack.mongo.stop()
    try:
        assert main(["doctor", SECRET]) == 1
    finally:
        cstack.mongo.start(auth=True)
    unreachable = capsys.readouterr().out
    assert "the database is unreachable" in unreachable
    assert "refuses" not in unreachable


def test_status_into_a_closed_pipe_ends_quietly(cli_env: dict[str, str]) -> None:
    """`secretswitch status mongodb-app | head -c1`: no BrokenPipe traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "secretswitch", "status", SECRET],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141


def test_a_second_local_stack_starts_from_the_first_ones_exports(cstack: EmbeddedStack, tmp_path: Path) -> None:
    """A shell with the first stack's exports pasted starts a second stack of its own."""
    env = {**os.environ, **cstack.info.environment(), "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "secretswitch", "local", "--region", "ap-northeast-3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    watchdog = threading.Timer(120, process.kill)  # never hang the suite
    watchdog.start()
    try:
        for line in iter(process.stdout.readline, ""):
            lines.append(line)
            if "Ctrl-C" in line:
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    output = "".join(lines)
    assert "SecantusDB pid" in output, output + err
    assert process.returncode == 0, err
    assert "every process started was ended" in err
    assert not list(tmp_path.glob("secretswitch-stack-*"))


def test_doctor_says_why_awscurrent_cannot_be_parsed(
    sm: Any, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(sm.get_secret_value(SecretId=SECRET)["SecretString"])
    sm.create_secret(Name="unparsable", SecretString=json.dumps({**document, "ssl": "yes"}))
    assert main(["doctor", "unparsable"]) == 1
    out = capsys.readouterr().out
    assert "current-unreadable" in out
    assert "'ssl': must be true or false" in out
    assert document["password"] not in out
