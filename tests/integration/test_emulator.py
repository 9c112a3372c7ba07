"""The local stack as a rotation emulator: any rotation function, and AWS's API down to the version list.

Plain boto3 calls, as the AWS CLI makes them (``aws secretsmanager
list-secret-version-ids --secret-id X`` is ``list_secret_version_ids(SecretId="X")``).
The functions registered here run in worker processes of their own:
``thirdparty_rotation`` (a single-user MongoDB rotation written only against
AWS's documented contract) and ``misbehaving_rotation`` (exits, hangs, echoes).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from pymongo.errors import OperationFailure

from secretswitch.embedded_stack.errors import FunctionInvocationError
from secretswitch.embedded_stack.functions import FunctionHost, RotationFunction
from secretswitch.embedded_stack.moto_server import register_rotation_function
from secretswitch.embedded_stack.stack import EmbeddedStack

REGION = "us-east-2"
MISBEHAVING = "tests.integration.misbehaving_rotation"
FUNCTIONS = [
    RotationFunction("thirdparty", "tests.integration.thirdparty_rotation:lambda_handler"),
    RotationFunction("exits", f"{MISBEHAVING}:exiting_handler"),
    RotationFunction("hangs", f"{MISBEHAVING}:hanging_handler", timeout=2),
    RotationFunction("echo", f"{MISBEHAVING}:echo_handler", environment={"GREETING": "hello"}),
    RotationFunction("broken", "tests.integration.no_such_module:lambda_handler"),
    RotationFunction(
        "pymongo3",
        "secretswitch.embedded_stack.pymongo4_shim:lambda_handler",
        environment={"ROTATION_TEMPLATE_MODULE": "tests.integration.pymongo3_style_rotation"},
    ),
    RotationFunction("pymongo3-unshimmed", "tests.integration.pymongo3_style_rotation:lambda_handler"),
    RotationFunction("flaky", f"{MISBEHAVING}:flaky_handler"),
]
STEP_FAILED = "Rotation step createSecret failed"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def estack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    own = tmp_path_factory.mktemp("own-packages")
    (own / "pymongo").mkdir()
    (own / "pymongo" / "__init__.py").write_text('version = "3.13.0-of-the-function"\n')
    (own / "own_pymongo_rotation.py").write_text(
        "import pymongo\n\n\ndef lambda_handler(event, context):\n"
        "    raise RuntimeError('pymongo ' + pymongo.version + ' at ' + pymongo.__file__)\n"
    )
    own_function = RotationFunction(
        "ownpymongo", "own_pymongo_rotation:lambda_handler", path=(str(own),), python=sys.executable
    )
    with EmbeddedStack(region=REGION, rotation_functions=[*FUNCTIONS, own_function]) as running:
        yield running
    assert running.leftovers() == [], "every worker process is stopped with the stack"


@pytest.fixture
def sm(estack: EmbeddedStack) -> Any:
    return estack.secretsmanager_client()


@pytest.fixture(scope="module")
def own_password_role(estack: EmbeddedStack) -> str:
    """A role that may change its own password: what a single-user rotation needs (MongoDB's changeOwnPassword)."""
    with estack.admin_client() as admin:
        admin.admin.command(
            "createRole",
            "changeOwnPassword",
            privileges=[{"resource": {"db": "admin", "collection": ""}, "actions": ["changeOwnPassword"]}],
            roles=[],
        )
    return "changeOwnPassword"


def _single_user_secret(estack: EmbeddedStack, sm: Any, role: str, user: str) -> str:
    """A user that changes its own password, and a secret for it in AWS's single-user format; returns the password."""
    password = f"Initial-password-of-{user}-0001"
    estack.create_user(user, password, [{"role": "readWrite", "db": "mydb"}, {"role": role, "db": "admin"}])
    document = {
        "engine": "mongo",
        "host": estack.info.mongo_host,
        "port": estack.info.mongo_port,
        "username": user,
        "password": password,
        "dbname": "admin",
    }
    sm.create_secret(Name=user, SecretString=json.dumps(document))
    return password


def _logs_in_only_with_the_new_password(estack: EmbeddedStack, sm: Any, user: str, old_password: str) -> str:
    current = sm.get_secret_value(SecretId=user, VersionStage="AWSCURRENT")
    new_password = str(json.loads(current["SecretString"])["password"])
    assert new_password != old_password
    with estack.mongo_client(user, new_password) as client:
        client["mydb"]["items"].find_one()
    with pytest.raises(OperationFailure), estack.mongo_client(user, old_password) as client:
        client.admin.command("ping")
    return new_password


def _secret_with_deprecated_version(sm: Any, name: str) -> tuple[str, str, str]:
    """A secret with three versions: v1 (no label left), v2 AWSPREVIOUS, v3 AWSCURRENT."""
    v1 = sm.create_secret(Name=name, SecretString=json.dumps({"n": 1}))["VersionId"]
    v2 = sm.put_secret_value(SecretId=name, SecretString=json.dumps({"n": 2}))["VersionId"]
    v3 = sm.put_secret_value(SecretId=name, SecretString=json.dumps({"n": 3}))["VersionId"]
    return v1, v2, v3


def _failed_rotation(sm: Any, estack: EmbeddedStack, name: str, function: str = "exits") -> tuple[str, str]:
    """A secret whose rotation died in createSecret: (AWSCURRENT's version, the valueless AWSPENDING one)."""
    current = sm.create_secret(Name=name, SecretString=json.dumps({"username": "u", "password": "p" * 8}))
    with pytest.raises(ClientError):
        sm.rotate_secret(SecretId=name, RotationLambdaARN=estack.function_arn(function))
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    pending = next(v for v, labels in stages.items() if labels == ["AWSPENDING"])
    return current["VersionId"], pending


def _versions(sm: Any, name: str, **kwargs: Any) -> dict[str, list[str]]:
    listed = sm.list_secret_version_ids(SecretId=name, **kwargs)["Versions"]
    return {entry["VersionId"]: entry["VersionStages"] for entry in listed}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/status") as status:  # a zombie holds nothing
        return "State:\tZ" not in status.read()


# -- the seven API differences, one test each ---------------------------------------------------


def test_1_list_secret_version_ids_shows_unlabeled_versions_only_with_include_deprecated(sm: Any) -> None:
    v1, v2, v3 = _secret_with_deprecated_version(sm, "deprecated-listing")
    assert _versions(sm, "deprecated-listing") == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    assert _versions(sm, "deprecated-listing", IncludeDeprecated=True) == {
        v1: [],
        v2: ["AWSPREVIOUS"],
        v3: ["AWSCURRENT"],
    }


def test_2_list_secret_version_ids_lists_only_versions_with_a_value(sm: Any, estack: EmbeddedStack) -> None:
    current, pending = _failed_rotation(sm, estack, "valueless-listing")
    assert pending in sm.describe_secret(SecretId="valueless-listing")["VersionIdsToStages"]
    assert _versions(sm, "valueless-listing", IncludeDeprecated=True) == {current: ["AWSCURRENT"]}


def test_3_version_dates_are_the_versions_own(sm: Any) -> None:
    """CreatedDate is when the version was made; LastAccessedDate the day it was last read, absent before."""
    version = sm.create_secret(Name="dated", SecretString=json.dumps({"n": 1}))["VersionId"]
    (entry,) = sm.list_secret_version_ids(SecretId="dated")["Versions"]
    assert "LastAccessedDate" not in entry, "never read yet"

    read = sm.get_secret_value(SecretId="dated")
    (again,) = sm.list_secret_version_ids(SecretId="dated")["Versions"]
    assert entry["CreatedDate"] == again["CreatedDate"] == read["CreatedDate"]
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert again["LastAccessedDate"] == today, "AWS keeps the date of the last access, not the time"
    assert again["VersionId"] == version
    assert sm.describe_secret(SecretId="dated")["LastAccessedDate"] == today


def test_4_describe_secret_lists_only_versions_with_labels(sm: Any) -> None:
    v1, v2, v3 = _secret_with_deprecated_version(sm, "deprecated-describe")
    described = sm.describe_secret(SecretId="deprecated-describe")["VersionIdsToStages"]
    assert described == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    assert v1 not in described


def test_5_list_secret_version_ids_names_the_arn_and_pages_with_next_token(sm: Any) -> None:
    v1, v2, v3 = _secret_with_deprecated_version(sm, "paged")
    arn = sm.describe_secret(SecretId="paged")["ARN"]
    whole = sm.list_secret_version_ids(SecretId="paged", IncludeDeprecated=True)
    assert whole["ARN"] == arn
    assert "NextToken" not in whole, "no more results: no NextToken at all"

    seen: list[str] = []
    kwargs: dict[str, Any] = {"SecretId": "paged", "IncludeDeprecated": True, "MaxResults": 2}
    while True:
        page = sm.list_secret_version_ids(**kwargs)
        seen += [entry["VersionId"] for entry in page["Versions"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert seen == [v1, v2, v3]


def test_6_cancel_rotate_secret_returns_the_version_the_rotation_created(sm: Any, estack: EmbeddedStack) -> None:
    current, pending = _failed_rotation(sm, estack, "cancelled")
    response = sm.cancel_rotate_secret(SecretId="cancelled")
    assert response["VersionId"] == pending != current
    assert sm.describe_secret(SecretId="cancelled")["RotationEnabled"] is False


def test_7_get_secret_value_of_a_valueless_version_names_what_was_asked(sm: Any, estack: EmbeddedStack) -> None:
    _, pending = _failed_rotation(sm, estack, "valueless-get")
    with pytest.raises(ClientError) as by_id:
        sm.get_secret_value(SecretId="valueless-get", VersionId=pending)
    assert by_id.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert by_id.value.response["Error"]["Message"].endswith(f"secret value for VersionId: {pending}")
    with pytest.raises(ClientError) as by_stage:
        sm.get_secret_value(SecretId="valueless-get", VersionId=pending, VersionStage="AWSPENDING")
    assert by_stage.value.response["Error"]["Message"].endswith("secret value for staging label: AWSPENDING")


# -- RotateSecret as AWS does it, for any function ----------------------------------------------


def test_the_function_gets_aws_events_its_environment_and_a_valueless_awspending_version(
    sm: Any, estack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")  # the caller's profile must not reach the function
    sm.create_secret(Name="echoed", SecretString=json.dumps({"n": 1}))
    token = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(ClientError) as failed:
        sm.rotate_secret(SecretId="echoed", ClientRequestToken=token, RotationLambdaARN=estack.function_arn("echo"))
    message = failed.value.response["Error"]["Message"]
    assert message.startswith(f"{STEP_FAILED} for token {token}: RuntimeError: ")
    seen = ast.literal_eval(message.split("RuntimeError: ", 1)[1])
    arn = sm.describe_secret(SecretId="echoed")["ARN"]
    assert {key: seen["event"][key] for key in ("Step", "SecretId", "ClientRequestToken")} == {
        "Step": "createSecret",
        "SecretId": arn,
        "ClientRequestToken": token,
    }
    assert seen["event"]["RotationToken"]
    assert seen["pid"] != os.getpid()
    assert (seen["function"], seen["arn"]) == ("echo", estack.function_arn("echo"))
    assert seen["endpoint"] == seen["sm_endpoint"] == estack.secretsmanager.url
    assert (seen["greeting"], seen["profile"]) == ("hello", None)
    # What AWS's templates check in their first lines holds when createSecret runs:
    described = sm.describe_secret(SecretId="echoed")
    assert described["RotationEnabled"] is True
    assert described["VersionIdsToStages"][token] == ["AWSPENDING"]
    with pytest.raises(ClientError) as no_value:
        sm.get_secret_value(SecretId="echoed", VersionId=token, VersionStage="AWSPENDING")
    assert no_value.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_third_party_function_rotates_four_times_through_rotate_secret(
    sm: Any, estack: EmbeddedStack, own_password_role: str
) -> None:
    """The proof: a single-user MongoDB rotation that knows nothing of secretswitch, through plain RotateSecret."""
    password = _single_user_secret(estack, sm, own_password_role, "tp_user")
    arn = estack.function_arn("thirdparty")

    versions = []
    for rotation in range(4):
        if rotation == 0:
            response = sm.rotate_secret(
                SecretId="tp_user", RotationLambdaARN=arn, RotationRules={"AutomaticallyAfterDays": 30}
            )
        else:  # `aws secretsmanager rotate-secret --secret-id tp_user`: the configured function
            response = sm.rotate_secret(SecretId="tp_user")
        assert sm.get_secret_value(SecretId="tp_user")["VersionId"] == response["VersionId"]
        password = _logs_in_only_with_the_new_password(estack, sm, "tp_user", password)
        versions.append(response["VersionId"])
    assert len(set(versions)) == 4
    described = sm.describe_secret(SecretId="tp_user")
    assert described["RotationLambdaARN"] == arn
    assert described["RotationRules"] == {"AutomaticallyAfterDays": 30}


@pytest.mark.parametrize(
    ("function", "error"),
    [
        ("exits", "Runtime.ExitError: RequestId: "),
        ("hangs", "Sandbox.Timedout: RequestId: "),
        ("broken", "Runtime.ImportModuleError: Unable to import module 'tests.integration.no_such_module'"),
    ],
)
def test_a_function_that_exits_hangs_or_cannot_load_fails_the_rotation_and_the_stack_serves_on(
    sm: Any, estack: EmbeddedStack, function: str, error: str
) -> None:
    host = estack.function_host
    assert host is not None
    started = len(host.started_pids)
    name = f"misbehaves-{function}"
    sm.create_secret(Name=name, SecretString=json.dumps({"username": "u", "password": "p" * 8}))

    with pytest.raises(ClientError) as failed:
        sm.rotate_secret(SecretId=name, RotationLambdaARN=estack.function_arn(function))

    assert failed.value.response["Error"]["Code"] == "InvalidRequestException"
    message = failed.value.response["Error"]["Message"]
    assert message.startswith(STEP_FAILED)
    assert error in message
    if function == "exits":
        assert message.endswith("Runtime exited with error: exit status 3")
    if function == "hangs":
        assert message.endswith("Task timed out after 2.00 seconds")
    assert not any(_alive(pid) for pid in host.started_pids[started:]), "the worker is gone, threads and all"
    # As AWS leaves a failed rotation: the token's version, AWSPENDING and empty; rotation stays on.
    described = sm.describe_secret(SecretId=name)
    assert sorted(map(tuple, described["VersionIdsToStages"].values())) == [("AWSCURRENT",), ("AWSPENDING",)]
    assert described["RotationEnabled"] is True
    # The stack serves on, and its own function still rotates by default.
    version = sm.rotate_secret(SecretId=estack.app_secret_id)["VersionId"]
    assert sm.get_secret_value(SecretId=estack.app_secret_id)["VersionId"] == version


def test_the_pymongo4_shim_runs_a_function_written_for_pymongo_3(
    sm: Any, estack: EmbeddedStack, own_password_role: str
) -> None:
    """AWS's MongoDB templates call Database.authenticate/logout (removed in PyMongo 4); the shim stands in."""
    password = _single_user_secret(estack, sm, own_password_role, "pm3_user")
    with pytest.raises(ClientError) as unshimmed:
        sm.rotate_secret(SecretId="pm3_user", RotationLambdaARN=estack.function_arn("pymongo3-unshimmed"))
    assert "Rotation step setSecret failed" in str(unshimmed.value)
    assert "TypeError: 'Collection' object is not callable" in str(unshimmed.value)
    pending = sm.cancel_rotate_secret(SecretId="pm3_user")["VersionId"]
    sm.update_secret_version_stage(SecretId="pm3_user", VersionStage="AWSPENDING", RemoveFromVersionId=pending)

    for _ in range(2):
        sm.rotate_secret(SecretId="pm3_user", RotationLambdaARN=estack.function_arn("pymongo3"))
        password = _logs_in_only_with_the_new_password(estack, sm, "pm3_user", password)


def test_secretswitch_local_registers_functions_from_the_command_line(tmp_path: Path) -> None:
    """`secretswitch local --rotation-function NAME=module:fn --rotation-env NAME=K=V`, then the AWS CLI's call."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_") and key != "MONGODB_URI"}
    env["TMPDIR"] = str(tmp_path)
    command = [
        sys.executable, "-m", "secretswitch", "local", "--region", "ap-east-1",
        "--rotation-function", f"echo={MISBEHAVING}:echo_handler",
        "--rotation-env", "echo=GREETING=from-the-command-line",
        "--rotation-timeout", "5",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    assert process.stdout is not None
    lines: list[str] = []
    watchdog = threading.Timer(120, process.kill)  # never hang the suite
    watchdog.start()
    try:
        for line in iter(process.stdout.readline, ""):
            lines.append(line)
            if "Ctrl-C" in line:
                break
        exports = dict(
            line.removeprefix("export ").strip().replace("'", "").split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        arn = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("# rotation function echo:"))
        sm = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="ap-east-1"
        ).client("secretsmanager", endpoint_url=exports["AWS_ENDPOINT_URL_SECRETS_MANAGER"])
        sm.create_secret(Name="from-the-cli", SecretString=json.dumps({"n": 1}))
        with pytest.raises(ClientError) as failed:
            sm.rotate_secret(SecretId="from-the-cli", RotationLambdaARN=arn)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    assert arn == "arn:aws:lambda:ap-east-1:123456789012:function:echo"
    seen = ast.literal_eval(str(failed.value.response["Error"]["Message"]).split("RuntimeError: ", 1)[1])
    assert seen["greeting"] == "from-the-command-line"
    assert process.returncode == 0, err
    assert "every process started was ended" in err


def test_with_retries_a_failed_rotation_runs_again_from_createsecret_as_aws_retries_it(
    sm: Any, estack: EmbeddedStack, own_password_role: str
) -> None:
    """AWS retries the whole rotation when a step fails: createSecret must then find its own pending value."""
    arn = estack.function_arn("flaky")
    host = estack.function_host
    assert host is not None
    without = _single_user_secret(estack, sm, own_password_role, "flaky_once")
    with pytest.raises(ClientError, match=r"setSecret failed .*ConnectionError: simulated network blip"):
        sm.rotate_secret(SecretId="flaky_once", RotationLambdaARN=arn)
    with estack.mongo_client("flaky_once", without) as client:
        client.admin.command("ping")  # nothing changed in the database
    # Retried by hand as on AWS: RotateSecret with the pending version as the token runs the same function again.
    stages = sm.describe_secret(SecretId="flaky_once")["VersionIdsToStages"]
    pending = next(v for v, labels in stages.items() if labels == ["AWSPENDING"])
    assert sm.rotate_secret(SecretId="flaky_once", ClientRequestToken=pending)["VersionId"] == pending
    _logs_in_only_with_the_new_password(estack, sm, "flaky_once", without)

    register_rotation_function(arn, host.invoker("flaky"), retries=1)  # EmbeddedStack(rotation_retries=1)
    try:
        password = _single_user_secret(estack, sm, own_password_role, "flaky_retried")
        version = sm.rotate_secret(SecretId="flaky_retried", RotationLambdaARN=arn)["VersionId"]
    finally:
        register_rotation_function(arn, host.invoker("flaky"), retries=0)
    assert sm.get_secret_value(SecretId="flaky_retried")["VersionId"] == version
    _logs_in_only_with_the_new_password(estack, sm, "flaky_retried", password)


def test_a_function_imports_its_own_packages_and_the_stack_keeps_its_own(sm: Any, estack: EmbeddedStack) -> None:
    import pymongo

    sm.create_secret(Name="own-packages", SecretString=json.dumps({"n": 1}))
    with pytest.raises(ClientError) as failed:
        sm.rotate_secret(SecretId="own-packages", RotationLambdaARN=estack.function_arn("ownpymongo"))
    assert "RuntimeError: pymongo 3.13.0-of-the-function at " in str(failed.value)
    assert pymongo.version.startswith("4."), "the stack's process never saw the function's pymongo"
    sm.rotate_secret(SecretId=estack.app_secret_id)  # and the stack's own function still uses PyMongo 4


def test_a_worker_stays_warm_across_invocations_and_stops_with_its_host() -> None:
    """As a Lambda execution environment: reused after a handled error, replaced after an exit, gone at stop."""
    host = FunctionHost(
        [
            RotationFunction("echo", f"{MISBEHAVING}:echo_handler"),
            RotationFunction("exits", f"{MISBEHAVING}:exiting_handler"),
        ],
        region=REGION,
        account_id="123456789012",
        endpoint_url="http://127.0.0.1:9",
        credentials={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    try:
        pids = []
        for _ in range(2):
            with pytest.raises(FunctionInvocationError) as echoed:
                host.invoke("echo", {"Step": "createSecret"})
            assert echoed.value.error_type == "RuntimeError"
            pids.append(ast.literal_eval(echoed.value.error_message)["pid"])
        assert pids[0] == pids[1], "the same worker answered both"
        for _ in range(2):
            with pytest.raises(FunctionInvocationError) as exited:
                host.invoke("exits", {"Step": "createSecret"})
            assert exited.value.error_type == "Runtime.ExitError"
        assert len(host.started_pids) == 3, "an exited worker is replaced, a warm one is not"
        assert host.live_pids() == [pids[0]]
    finally:
        host.stop()
    assert not any(_alive(pid) for pid in host.started_pids)
    with pytest.raises(FunctionInvocationError, match="stopping"):
        host.invoke("echo", {"Step": "createSecret"})


def test_rotate_immediately_false_runs_only_the_functions_testsecret_on_a_copy(
    sm: Any, estack: EmbeddedStack, own_password_role: str
) -> None:
    """AWS tests the configuration: testSecret on a pending copy of AWSCURRENT, then removes it."""
    password = _single_user_secret(estack, sm, own_password_role, "later_user")
    before = sm.describe_secret(SecretId="later_user")["VersionIdsToStages"]
    sm.rotate_secret(
        SecretId="later_user",
        RotationLambdaARN=estack.function_arn("thirdparty"),
        RotationRules={"ScheduleExpression": "rate(10 days)", "Duration": "3h"},
        RotateImmediately=False,
    )
    described = sm.describe_secret(SecretId="later_user")
    assert described["VersionIdsToStages"] == before, "no version left behind"
    assert described["RotationRules"] == {
        "AutomaticallyAfterDays": 10,
        "ScheduleExpression": "rate(10 days)",
        "Duration": "3h",
    }
    assert described["RotationEnabled"] is True
    with estack.mongo_client("later_user", password) as client:
        client.admin.command("ping")  # the password did not change

    sm.create_secret(Name="later_echo", SecretString=json.dumps({"n": 1}))
    with pytest.raises(ClientError, match="Rotation step testSecret failed") as echoed:
        sm.rotate_secret(SecretId="later_echo", RotationLambdaARN=estack.function_arn("echo"), RotateImmediately=False)
    seen = ast.literal_eval(str(echoed.value.response["Error"]["Message"]).split("RuntimeError: ", 1)[1])
    assert seen["event"]["Step"] == "testSecret", "the only step invoked"
    assert list(sm.describe_secret(SecretId="later_echo")["VersionIdsToStages"].values()) == [["AWSCURRENT"]]
