"""Registering rotation functions on the local stack: the options, the config file and the worker's environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secretswitch.embedded_stack.errors import FunctionInvocationError, LocalStackError
from secretswitch.embedded_stack.functions import (
    DEFAULT_TIMEOUT,
    FunctionHost,
    RotationFunction,
    function_arn,
    load_function_config,
    parse_env_spec,
    parse_function_spec,
    rotation_functions_from_options,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mine=my_rotation:lambda_handler", ("mine", "my_rotation:lambda_handler")),
        ("aws-mongo=pkg.lambda_function:lambda_handler", ("aws-mongo", "pkg.lambda_function:lambda_handler")),
        (" spaced = mod:fn ", ("spaced", "mod:fn")),
    ],
)
def test_a_function_spec_is_name_equals_module_colon_function(text: str, expected: tuple[str, str]) -> None:
    assert parse_function_spec(text) == expected


@pytest.mark.parametrize(
    "text", ["mod:fn", "name=mod", "name=mod:", "na me=mod:fn", "name=mod:fn:x", "=mod:fn", "name=1mod:fn"]
)
def test_a_malformed_function_spec_says_the_form(text: str) -> None:
    with pytest.raises(LocalStackError, match="NAME=module:function"):
        parse_function_spec(text)


def test_an_env_spec_keeps_equals_signs_in_the_value() -> None:
    assert parse_env_spec("mine=EXCLUDE=a=b") == ("mine", "EXCLUDE", "a=b")
    assert parse_env_spec("mine=EMPTY=") == ("mine", "EMPTY", "")


def test_a_malformed_env_spec_never_repeats_the_value() -> None:
    with pytest.raises(LocalStackError) as refused:
        parse_env_spec("bad name=KEY=hunter2-secret")
    assert "hunter2-secret" not in str(refused.value)
    with pytest.raises(LocalStackError, match="NAME=KEY=VALUE"):
        parse_env_spec("mine=novalue")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "x" * 65}, "1 to 64"),
        ({"name": "has space"}, "1 to 64"),
        ({"handler": "no_colon"}, "module:function"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 901}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"environment": {"A=B": "c"}}, "environment variable names"),
    ],
)
def test_a_rotation_function_is_checked_when_made(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"name": "mine", "handler": "mod:fn", **kwargs}
    with pytest.raises(LocalStackError, match=message):
        RotationFunction(**arguments)  # type: ignore[arg-type]


def test_the_environment_is_hidden_from_repr() -> None:
    function = RotationFunction("mine", "mod:fn", environment={"TOKEN": "hunter2-secret"})
    assert "hunter2-secret" not in repr(function)


def test_a_toml_config_names_functions_with_their_environment_and_paths(tmp_path: Path) -> None:
    config = tmp_path / "functions.toml"
    config.write_text(
        "[functions.mine]\n"
        'handler = "my_rotation:lambda_handler"\n'
        "timeout = 5\n"
        'path = ["src"]\n'
        'environment = { EXCLUDE_CHARACTERS = "/@" }\n'
        "[functions.other]\n"
        'handler = "other:handler"\n'
    )
    mine, other = load_function_config(config)
    assert mine == RotationFunction(
        "mine", "my_rotation:lambda_handler", {"EXCLUDE_CHARACTERS": "/@"}, 5, None, (str(tmp_path / "src"),)
    )
    assert (other.name, other.timeout, other.environment) == ("other", DEFAULT_TIMEOUT, {})


def test_a_json_config_works_too(tmp_path: Path) -> None:
    config = tmp_path / "functions.json"
    config.write_text(json.dumps({"functions": {"mine": {"handler": "mod:fn", "environment": {"K": 1}}}}))
    (mine,) = load_function_config(config)
    assert mine.environment == {"K": "1"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "needs a 'functions' table"),
        ("[functions.mine]\ntimeout = 3\n", "needs handler"),
        ('[functions.mine]\nhandler = "m:f"\nmemory = 128\n', "unknown keys"),
        ("[functions.mine\n", "cannot read it"),
    ],
)
def test_a_bad_config_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "functions.toml"
    config.write_text(text)
    with pytest.raises(LocalStackError, match=message):
        load_function_config(config)


def test_options_merge_the_config_the_specs_the_env_and_the_timeout(tmp_path: Path) -> None:
    config = tmp_path / "functions.toml"
    config.write_text('[functions.mine]\nhandler = "old:handler"\nenvironment = { A = "1" }\ntimeout = 9\n')
    functions = rotation_functions_from_options(
        ["mine=new:handler", "second=mod:fn"], ["mine=B=2", "second=C=3"], config, timeout=2
    )
    by_name = {function.name: function for function in functions}
    assert by_name["mine"].handler == "new:handler"
    assert by_name["mine"].environment == {"A": "1", "B": "2"}
    assert by_name["mine"].timeout == 9, "the config's own timeout wins"
    assert (by_name["second"].environment, by_name["second"].timeout) == ({"C": "3"}, 2)


def test_an_env_for_an_unknown_function_is_refused() -> None:
    with pytest.raises(LocalStackError, match="no rotation function 'ghost'"):
        rotation_functions_from_options(["mine=mod:fn"], ["ghost=K=V"])


def test_the_worker_environment_points_at_the_stack_and_never_at_the_callers_aws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {"AWS_PROFILE": "production", "AWS_SECRET_ACCESS_KEY": "real", "PATH": "/bin"}.items():
        monkeypatch.setenv(name, value)
    host = FunctionHost(
        [],
        region="eu-west-1",
        account_id="123456789012",
        endpoint_url="http://127.0.0.1:4566",
        credentials={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    function = RotationFunction("mine", "mod:fn", environment={"AWS_REGION": "override-1", "K": "v"}, timeout=7)
    environment = host.environment(function)
    assert "AWS_PROFILE" not in environment
    assert environment["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert environment["PATH"] == "/bin"
    for name in ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL", "SECRETS_MANAGER_ENDPOINT"):
        assert environment[name] == "http://127.0.0.1:4566"
    assert environment["AWS_CONFIG_FILE"] == environment["AWS_SHARED_CREDENTIALS_FILE"]
    assert (environment["AWS_REGION"], environment["K"]) == ("override-1", "v"), "the function's own win"
    assert environment["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "7"
    assert environment["SECRETSWITCH_FUNCTION_ARN"] == function_arn("eu-west-1", "123456789012", "mine")
    assert function_arn("eu-west-1", "123456789012", "mine") == "arn:aws:lambda:eu-west-1:123456789012:function:mine"


def test_an_interpreter_that_does_not_exist_is_reported_as_lambda_reports_a_bad_entrypoint() -> None:
    host = FunctionHost(
        [RotationFunction("mine", "mod:fn", python="/no/such/python")],
        region="eu-west-1",
        account_id="123456789012",
        endpoint_url="http://127.0.0.1:9",
        credentials={},
    )
    with pytest.raises(FunctionInvocationError, match="cannot start '/no/such/python' for function mine") as failed:
        host.invoke("mine", {"Step": "createSecret"})
    assert failed.value.error_type == "Runtime.InvalidEntrypoint"
    assert host.started_pids == []
