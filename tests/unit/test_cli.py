"""The command line answers bad input in one line, exit 2, before anything starts; AWS errors get their own advice."""

from __future__ import annotations

import http.server
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import secretswitch.rotate
from secretswitch.cli import build_parser, main
from secretswitch.client.secretsmanager import aws_error_advice
from secretswitch.simulate import Progress

ARN = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:mongodb-app-AbCdEf"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS configuration at all (as on a fresh machine), and a temporary folder of the test's own."""
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "SECRETS_MANAGER_ENDPOINT",
        "SECRETSWITCH_ROTATION_LAMBDA_ARN",
        "SECRETSWITCH_SECRET_ID",
        "MONGODB_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's errors
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


BAD_INPUTS: list[tuple[list[str], str]] = [
    (["no-such-command"], "invalid choice"),
    # local: checked before any process or folder exists
    (["local", "--mongo-port", "70000"], "70000 is out of range"),
    (["local", "--sm-port", "-1"], "-1 is out of range"),
    (["local", "--mongo-port", "mongo"], "'mongo' is not a port number"),
    (["local", "--region", "moon-base-one"], "is not an AWS region name"),
    (["local", "--mongodb-uri", "http://example.com"], "not a valid MongoDB connection string"),
    (["local", "--mongodb-uri", "mongodb://127.0.0.1:27017/"], "no user name and password"),
    (["local", "--min-rotation-gap", "-5"], "out of range; give a number of seconds >= 0"),
    (["local", "--min-rotation-gap", "soon"], "'soon' is not a number of seconds"),
    (["local", "--rotation-function", "my_rotation:lambda_handler"], "give NAME=module:function"),
    (["local", "--rotation-function", "mine=m:f", "--rotation-env", "ghost=K=V"], "no rotation function 'ghost'"),
    (["local", "--rotation-function", "mine=m:f", "--rotation-timeout", "0"], "timeout 0.0 must be seconds"),
    (["local", "--rotation-function", "secretswitch-mongodb-rotation=m:f"], "is the stack's own"),
    (["local", "--rotation-config", "no-such-file.toml"], "cannot read it"),
    (["local", "--rotation-retries", "11"], "rotation retries 11 must be a whole number from 0 to 10"),
    # simulate: every range
    (["simulate", "--days", "0"], "--days 0 is out of range"),
    (["simulate", "--days", "-3"], "--days -3 is out of range"),
    (["simulate", "--days", "nan"], "--days nan is out of range"),
    (["simulate", "--days", "a year"], "invalid float value"),
    (["simulate", "--rotation-days", "0"], "--rotation-days 0 is out of range"),
    (["simulate", "--window-hours", "0"], "--window-hours 0 is out of range"),
    (["simulate", "--window-hours", "25"], "--window-hours 25 is out of range"),
    (["simulate", "--ops-per-second", "0"], "--ops-per-second 0 is out of range"),
    (["simulate", "--instances", "999999999"], "--instances 999,999,999 is out of range"),
    (["simulate", "--instances", "-5"], "--instances -5 is out of range"),
    (["simulate", "--jitter", "1.5"], "--jitter 1.5 is out of range"),
    (["simulate", "--refresh-days", "inf"], "--refresh-days inf is out of range"),
    (["simulate", "--manual-rotations", "-1"], "--manual-rotations -1 is out of range"),
    (["simulate", "--rotation-seconds", "-1"], "--rotation-seconds -1 is out of range"),
    (["simulate", "--sweep-instances", "0"], "--sweep-instances 0 is out of range"),
    # rotate / status / doctor: checked before the first AWS call
    (["rotate"], "no secret id: give SECRET_ID or set $SECRETSWITCH_SECRET_ID"),
    (["status"], "no secret id: give SECRET_ID or set $SECRETSWITCH_SECRET_ID"),
    (["doctor", "--fix"], "no secret id: give SECRET_ID or set $SECRETSWITCH_SECRET_ID"),
    (["rotate", "--cancel"], "no secret id: give SECRET_ID or set $SECRETSWITCH_SECRET_ID"),
    (["rotate", "mongodb-app", "--days", "0"], "--days 0 is out of range"),
    (["rotate", "mongodb-app", "--days", "1001"], "--days 1001 is out of range"),
    (["rotate", "mongodb-app", "--schedule", "every week"], "'every week' is neither rate"),
    (["rotate", "mongodb-app", "--schedule", "rate(2 hours)"], "at most every 4 hours"),
    (["rotate", "mongodb-app", "--schedule", "cron(0 4 * *)"], "cron() takes 6 fields"),
    (["rotate", "mongodb-app", "--lambda-arn", "my-function"], "--lambda-arn 'my-function' is not a Lambda"),
    (["rotate", "mongodb-app", "--days", "7", "--schedule", "rate(7 days)"], "not allowed with"),
    (["rotate", "mongodb-app", "--resume", "--days", "3"], "--resume re-runs the rotation in progress"),
    (["rotate", "mongodb-app"], "no AWS region is configured; set AWS_REGION"),
    (["status", "mongodb-app"], "no AWS region is configured; set AWS_REGION"),
    (["doctor", "mongodb-app"], "or pass --region"),
    (["rotate", "mongodb-app", "--emergency", "--resume"], "not allowed with"),
    (["rotate", "mongodb-app", "--leaked-user", "app"], "--leaked-user goes with --emergency"),
    (["status", "mongodb-app", "--min-rotation-gap", "-1"], "--min-rotation-gap -1 is out of range"),
    (["status", " "], "SECRET_ID is empty"),
    (["doctor", "mongodb-app", "--region", "nowhere"], "--region 'nowhere' is not an AWS region name"),
    # demo and package-lambda
    (["demo", "--rotations", "0"], "--rotations must be a positive whole number"),
    (["demo", "--refresh-days", "7"], "--refresh-days (7) must be shorter"),
    (["package-lambda", "--wheel-dir", "w", "--from-current-env"], "not allowed with"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUTS, ids=[" ".join(a) or "-" for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_nothing_is_made(
    argv: list[str], expected: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(argv, capsys)
    assert status == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("secretswitch"), err
    assert expected in lines[0]
    assert "Traceback" not in err + out
    assert not list(clean_env.glob("secretswitch-stack-*")), "a folder was made before the input was checked"


BAD_ENVIRONMENT: list[tuple[dict[str, str], list[str], str]] = [
    ({"AWS_ENDPOINT_URL_SECRETS_MANAGER": "htp://127.0.0.1:4566"}, ["status", "mongodb-app"],
     "AWS_ENDPOINT_URL_SECRETS_MANAGER 'htp://127.0.0.1:4566' is not an http:// or https:// URL"),
    ({"AWS_ENDPOINT_URL": "127.0.0.1:4566"}, ["doctor", "mongodb-app"],
     "AWS_ENDPOINT_URL '127.0.0.1:4566' is not an http:// or https:// URL"),
    ({"SECRETS_MANAGER_ENDPOINT": "http//127.0.0.1:4566"}, ["rotate", "mongodb-app"],
     "SECRETS_MANAGER_ENDPOINT 'http//127.0.0.1:4566' is not an http:// or https:// URL"),
    ({"SECRETSWITCH_SECRET_ID": " "}, ["status"], "SECRET_ID is empty"),
]  # fmt: skip


@pytest.mark.parametrize(("environ", "argv", "expected"), BAD_ENVIRONMENT, ids=[e for _, _, e in BAD_ENVIRONMENT])
@pytest.mark.usefixtures("clean_env")
def test_a_bad_environment_value_is_one_line_exit_2_naming_the_variable(
    environ: dict[str, str],
    argv: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    status, out, err = _run(argv, capsys)
    assert status == 2, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert "Traceback" not in err + out


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    """A plain-HTTP server that answers a TLS hello with 400 and keeps stderr for the command."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_https_to_the_local_plain_http_endpoint_is_one_line_with_advice(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`https://` typed for the stack's `http://` endpoint: the TLS handshake fails; the line says what to use."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("AWS_REGION", "eu-west-3")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"https://127.0.0.1:{server.server_address[1]}")
        status, _, err = _run(["status", "mongodb-app"], capsys)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert status == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "the local stack speaks plain http://" in err


def test_the_table_covers_every_subcommand_with_at_least_twenty_inputs() -> None:
    commands = {argv[0] for argv, _ in BAD_INPUTS}
    assert {"local", "simulate", "rotate", "status", "doctor", "demo", "package-lambda"} <= commands
    assert len(BAD_INPUTS) >= 20


def test_a_bad_lambda_arn_in_the_environment_is_named(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SECRETSWITCH_ROTATION_LAMBDA_ARN", "arn:aws:lambda:us-east-1:1234:function:short-account")
    status, _, err = _run(["rotate", "mongodb-app", "--region", "us-east-1"], capsys)
    assert status == 2
    assert "$SECRETSWITCH_ROTATION_LAMBDA_ARN 'arn:aws:lambda:us-east-1:1234" in err


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("status", "Never shows a password"),
        ("doctor", "With --fix"),
        ("simulate", "fleet.png"),
        ("local", "rate(7 days)"),
    ],
)
def test_help_describes_each_command(command: str, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    assert words in " ".join(capsys.readouterr().out.split())


# -- AWS errors: one advice per cause -------------------------------------------------------------


ADVICE = [
    ("ThrottlingException", "Rate exceeded", "throttling"),
    ("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.",
     "scheduled for deletion"),
    ("InvalidRequestException", "You tried to perform the operation on a secret that's currently marked deleted.",
     "scheduled for deletion"),
    ("AccessDeniedException", "User: arn:aws:iam::1:user/x is not authorized", "missing permission"),
    ("UnrecognizedClientException", "The security token included in the request is invalid.",
     "refused the credentials"),
    ("ResourceNotFoundException", "Secrets Manager can't find the specified secret.", "check the secret id"),
    ("NoCredentialsError", "", "no AWS credentials found"),
    ("EndpointConnectionError", "", "Secrets Manager is unreachable"),
    ("SSLError", "SSL validation failed for https://127.0.0.1:4566/", "speaks plain http://"),
    ("NoRegionError", "You must specify a region.", "set AWS_REGION"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "message", "words"), ADVICE)
def test_each_aws_error_gets_its_own_advice(code: str, message: str, words: str) -> None:
    advice = aws_error_advice(code, message, operation="DescribeSecret", secret_id="mongodb-app")
    assert advice is not None
    assert words in advice
    others = {kind for c, m, kind in ADVICE if kind != words}
    assert not any(other in advice for other in others)


def test_an_unknown_error_code_gets_no_made_up_advice() -> None:
    assert aws_error_advice("InternalServiceError", "oops", operation="GetSecretValue", secret_id="s") is None


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> Iterator[Stubber]:
    client = boto3.client(
        "secretsmanager", region_name="eu-west-2", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    monkeypatch.setattr(secretswitch.rotate, "_client", lambda region: client)
    with Stubber(client) as stubber:
        yield stubber


@pytest.mark.parametrize(
    ("code", "message", "words"),
    [(code, message, words) for code, message, words in ADVICE[:5]],
)
def test_status_names_the_cause_of_an_aws_error(
    stubbed: Stubber, code: str, message: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stubbed.add_client_error("describe_secret", service_error_code=code, service_message=message)
    status, _, err = _run(["status", "mongodb-app"], capsys)
    assert status == 1
    assert len(err.strip().splitlines()) == 1
    assert words in err
    assert "mongodb-app" in err


def test_a_refused_rotation_says_how_to_resume_this_secret(
    stubbed: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = {"c" * 36: ["AWSCURRENT"], "p" * 36: ["AWSPENDING"]}
    stubbed.add_response(
        "describe_secret", {"ARN": ARN, "Name": "mongodb-app", "RotationEnabled": True, "VersionIdsToStages": versions}
    )
    status, _, err = _run(["rotate", "mongodb-app"], capsys)
    assert status == 1
    assert "`secretswitch rotate mongodb-app --resume`" in err
    assert "`secretswitch doctor mongodb-app`" in err


# -- simulate's progress, on a fake clock ----------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_quiet_for_a_short_run(tmp_path: Path) -> None:
    clock = _Clock()
    stream = (tmp_path / "err").open("w+")
    progress = Progress(100, stream=stream, clock=clock, after=3.0, every=2.0)
    for _ in range(100):
        clock.now += 0.02
        progress(1)
    progress.finish()
    assert progress.printed == 0


def test_progress_shows_percent_after_a_few_seconds_then_every_few_seconds(tmp_path: Path) -> None:
    clock = _Clock()
    with (tmp_path / "err").open("w+") as stream:
        progress = Progress(1000, stream=stream, clock=clock, after=3.0, every=2.0)
        progress.stage = "spread starts"
        for _ in range(1000):
            clock.now += 0.01  # 10 s in all
            progress(1)
        progress.finish()
        stream.seek(0)
        lines = stream.read().splitlines()
    # At 3 s, then every 2 s (5, 7, 9), then the closing line.
    assert len(lines) == 5
    assert lines[0].startswith("simulate: spread starts: 30% (3 s, about 7 s left)")
    assert lines[-1].startswith("simulate: spread starts: 100%")


# -- local: the closing line tells the truth -------------------------------------------------------


@pytest.fixture
def saved_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class _StackThatLeavesAProcess:
    """Interrupted while starting, and its stop leaves one process running."""

    def __init__(self, **kwargs: Any) -> None:
        self.stopped = False

    def start(self) -> None:
        raise KeyboardInterrupt

    def stop(self) -> None:
        self.stopped = True

    def leftovers(self) -> list[str]:
        return ["SecantusDB process 4242"]


class _StackThatStopsCleanly(_StackThatLeavesAProcess):
    def leftovers(self) -> list[str]:
        return []


@pytest.mark.usefixtures("saved_signals", "clean_env")
def test_local_says_every_process_ended_only_when_none_is_left(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from secretswitch.embedded_stack import stack as embedded_stack_module

    monkeypatch.setattr(embedded_stack_module, "EmbeddedStack", _StackThatLeavesAProcess)
    status, _, err = _run(["local"], capsys)
    assert status == 1
    assert "NOT everything stopped: SecantusDB process 4242" in err
    assert "every process started was ended" not in err

    monkeypatch.setattr(embedded_stack_module, "EmbeddedStack", _StackThatStopsCleanly)
    status, _, err = _run(["local"], capsys)
    assert status == 130, "interrupted before it was ready"
    assert "every process started was ended" in err
