"""deploy/template.yaml as SAM deploys it: packaged, transformed by aws-sam-translator, linted, then read.

`sam deploy` first uploads the local ``CodeUri`` (what ``sam package`` does) and
CloudFormation then runs the ``AWS::Serverless-2016-10-31`` transform. These
tests do both offline: :func:`package` replaces ``CodeUri`` as ``sam package``
does (and refuses what it would not upload), :func:`transform` runs the real
translator with a stubbed managed-policy loader (it would call IAM), cfn-lint
checks the transformed template, and :func:`resolve` evaluates the intrinsic
functions for a set of parameters, so the role, the permission, the environment
and the schedule are read as they would be deployed.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cfnlint.api import lint
from cfnlint.decode import decode_str
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from secretswitch.client import RefreshPolicy, RotatingMongoClient
from secretswitch.client.policy import DAY, DEFAULT_MIN_ROTATION_GAP, schedule_keeps_gap
from secretswitch.package import register
from secretswitch.rotation_lambda.lambda_function import function_secretsmanager_client
from secretswitch.rotation_lambda.rotation_guard import OVERRIDE_TAG, min_rotation_gap
from secretswitch.rotation_tools.status import schedule_of

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
APP_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:mongodb-app-AbCdEf"
MASTER_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:mongodb-admin-GhIjKl"
APP_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
MASTER_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/66666666-7777-8888-9999-000000000000"
ENDPOINT = f"https://vpce-0123456789abcdef0-abcdefgh.secretsmanager.{REGION}.vpce.amazonaws.com"
REQUIRED = {"AppSecretArn": APP_ARN, "MasterSecretArn": MASTER_ARN}
SECRET_ACTIONS = {
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:ListSecretVersionIds",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:UntagResource",
}
VPC_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}
NO_VALUE = object()


class StubManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader, which lists IAM's managed policies over the network."""

    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> dict[str, str]:
        self.loads += 1
        return {
            name: f"arn:aws:iam::aws:policy/service-role/{name}"
            for name in ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole")
        }


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template, errors = decode_str(path.read_text(encoding="utf-8"))
    assert not errors, errors
    assert template is not None
    return json.loads(json.dumps(template))  # plain dicts and strs, as the transform receives them


def package(template: dict[str, Any], *, template_dir: Path, bucket: str = "artifacts", key: str = "abc123") -> Path:
    """Do what ``sam package`` does to the function's ``CodeUri``; return the local file it uploads.

    ``sam package`` uploads a ``CodeUri`` that is a local path (relative to the
    template) and leaves anything else, such as ``!Ref``, as it is.
    """
    function = template["Resources"]["RotationFunction"]["Properties"]
    code_uri = function["CodeUri"]
    if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
        raise ValueError(f"sam package does not upload CodeUri {code_uri!r}: it must be a local path")
    function["CodeUri"] = f"s3://{bucket}/{key}"
    return (template_dir / code_uri).resolve()


def transform(template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    """The ``AWS::Serverless-2016-10-31`` transform, offline."""
    values = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, **REQUIRED, **parameters}
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=REGION))
    return translator.translate(
        copy.deepcopy(template), parameter_values=values, get_managed_policy_map=StubManagedPolicyLoader().load
    )


def resolve(transformed: dict[str, Any], **parameters: str) -> dict[str, Any]:
    """The resources as CloudFormation would create them for ``parameters`` (the intrinsics this template uses)."""
    values: dict[str, Any] = {
        name: spec.get("Default") for name, spec in transformed.get("Parameters", {}).items() if "Default" in spec
    }
    values.update(REQUIRED)
    values.update(parameters)
    for name, spec in transformed.get("Parameters", {}).items():
        if spec.get("Type") == "CommaDelimitedList" and isinstance(values.get(name), str):
            values[name] = values[name].split(",") if values[name] else [""]
        assert values.get(name) is not None, f"parameter {name} needs a value"
        pattern = spec.get("AllowedPattern")
        if pattern and isinstance(values[name], str):
            assert re.fullmatch(pattern, values[name]), f"{name}={values[name]!r} does not match {pattern}"
    values.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"})
    values.update({"AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "secretswitch-rotation"})

    def evaluate(node: Any) -> Any:
        if isinstance(node, list):
            return [item for item in (evaluate(i) for i in node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (function, argument), *_ = node.items()
            if function == "Ref":
                return NO_VALUE if argument == "AWS::NoValue" else values.get(argument, f"<{argument}>")
            if function == "Fn::GetAtt":
                return f"<{'.'.join(argument)}>"
            if function == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(values.get(m.group(1), f"<{m.group(1)}>")), argument)
            if function == "Fn::Join":
                return argument[0].join(evaluate(argument[1]))
            if function == "Fn::Equals":
                return evaluate(argument[0]) == evaluate(argument[1])
            if function == "Fn::Not":
                return not evaluate(argument[0])
            if function == "Fn::If":
                return evaluate(argument[1] if conditions[argument[0]] else argument[2])
            if function == "Condition":
                return conditions[argument]
        return {key: value for key, value in ((k, evaluate(v)) for k, v in node.items()) if value is not NO_VALUE}

    conditions: dict[str, bool] = {}
    for name, condition in transformed.get("Conditions", {}).items():
        conditions[name] = bool(evaluate(condition))
    return {
        name: evaluate(resource)
        for name, resource in transformed["Resources"].items()
        if conditions.get(resource.get("Condition", ""), True)  # a resource whose condition is false is not created
    }


def role_grants(resources: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (action, resource, condition) the rotation function's role allows, managed policies included."""
    roles = [r for r in resources.values() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == 1
    role = roles[0]["Properties"]
    assert not role.get("ManagedPolicyArns"), "managed policies would grant logs:* on '*'"
    grants = []
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            grants += [(a, t, statement.get("Condition", {})) for a in actions for t in targets]
    return grants


@pytest.fixture(scope="module")
def packaged() -> dict[str, Any]:
    template = load_template()
    package(template, template_dir=TEMPLATE.parent)
    return template


@pytest.fixture(scope="module")
def transformed(packaged: dict[str, Any]) -> dict[str, Any]:
    return transform(packaged)


def test_codeuri_is_the_zip_that_package_lambda_writes() -> None:
    """``sam package`` uploads the path in CodeUri: it is where ``secretswitch package-lambda`` writes by default."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    default_output = parser.parse_args(["package-lambda"]).output
    assert package(load_template(), template_dir=TEMPLATE.parent) == (ROOT / default_output).resolve()


def test_the_packaged_template_transforms_and_passes_cfn_lint(transformed: dict[str, Any]) -> None:
    """The SAM transform accepts the packaged template, and cfn-lint finds nothing in its output."""
    function = transformed["Resources"]["RotationFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    assert function["Properties"]["Code"] == {"S3Bucket": "artifacts", "S3Key": "abc123"}
    assert "Transform" not in transformed
    matches = lint(json.dumps(transformed), regions=[REGION])
    assert [str(m) for m in matches] == []


def test_todays_template_with_a_codeuri_parameter_does_not_transform() -> None:
    """The template before this change (``CodeUri: !Ref CodeUri``) passed cfn-lint but could not deploy."""
    old = load_template()
    old["Parameters"]["CodeUri"] = {"Type": "String", "Default": "../dist/rotation-lambda.zip"}
    old["Resources"]["RotationFunction"]["Properties"]["CodeUri"] = {"Ref": "CodeUri"}
    with pytest.raises(ValueError, match="does not upload"):
        package(copy.deepcopy(old), template_dir=TEMPLATE.parent)
    with pytest.raises(InvalidDocumentException, match="'CodeUri' requires Bucket and Key"):
        transform(old)


def test_an_unpackaged_local_codeuri_is_refused_by_the_transform() -> None:
    """The transform only takes S3 locations: the test's package step is what makes the template deployable."""
    with pytest.raises(InvalidDocumentException, match="CodeUri"):
        transform(load_template())


def test_the_role_grants_the_secrets_and_nothing_else_on_star(transformed: dict[str, Any]) -> None:
    """Default parameters: the app secret, the master secret's value, passwords, its own log group."""
    grants = role_grants(resolve(transformed))
    assert {(a, t) for a, t, _ in grants if t == APP_ARN} == {(a, APP_ARN) for a in SECRET_ACTIONS}
    assert {(a, t) for a, t, _ in grants if t == MASTER_ARN} == {("secretsmanager:GetSecretValue", MASTER_ARN)}
    assert {a for a, t, _ in grants if t == "*"} == {"secretsmanager:GetRandomPassword"}
    logs = {(a, t) for a, t, _ in grants if a.startswith("logs:")}
    assert logs == {("logs:CreateLogStream", "<RotationLogGroup.Arn>"), ("logs:PutLogEvents", "<RotationLogGroup.Arn>")}
    assert not [g for g in grants if g[0].startswith(("kms:", "ec2:"))]
    assert len(grants) == len(SECRET_ACTIONS) + 1 + 1 + 2
    function = resolve(transformed)["RotationFunction"]["Properties"]
    assert function["LoggingConfig"]["LogGroup"] == "<RotationLogGroup>"
    assert "VpcConfig" not in function


def test_subnets_add_the_network_interface_actions_and_nothing_else(transformed: dict[str, Any]) -> None:
    resources = resolve(transformed, SubnetIds="subnet-1,subnet-2", SecurityGroupIds="sg-1")
    grants = role_grants(resources)
    assert {a for a, t, _ in grants if t == "*"} == {"secretsmanager:GetRandomPassword"} | VPC_ACTIONS
    assert resources["RotationFunction"]["Properties"]["VpcConfig"] == {
        "SubnetIds": ["subnet-1", "subnet-2"],
        "SecurityGroupIds": ["sg-1"],
    }


def test_kms_keys_are_granted_on_that_key_through_secrets_manager_for_that_secret(
    transformed: dict[str, Any],
) -> None:
    grants = role_grants(resolve(transformed, KmsKeyArn=APP_KEY, MasterKmsKeyArn=MASTER_KEY))
    kms = {(a, t): c for a, t, c in grants if a.startswith("kms:")}
    via = {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}
    assert kms == {
        ("kms:Decrypt", APP_KEY): {"StringEquals": {**via, "kms:EncryptionContext:SecretARN": APP_ARN}},
        ("kms:GenerateDataKey", APP_KEY): {"StringEquals": {**via, "kms:EncryptionContext:SecretARN": APP_ARN}},
        ("kms:Decrypt", MASTER_KEY): {"StringEquals": {**via, "kms:EncryptionContext:SecretARN": MASTER_ARN}},
    }
    assert {a for a, t, _ in grants if t == "*"} == {"secretsmanager:GetRandomPassword"}


def test_a_kms_key_that_is_not_an_arn_is_refused(transformed: dict[str, Any]) -> None:
    with pytest.raises(AssertionError, match="KmsKeyArn"):
        resolve(transformed, KmsKeyArn="alias/my-key")


def test_only_secrets_manager_for_the_app_secret_in_this_account_may_invoke(transformed: dict[str, Any]) -> None:
    permission = resolve(transformed)["SecretsManagerInvokePermission"]["Properties"]
    assert permission == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": "<RotationFunction.Arn>",
        "Principal": "secretsmanager.amazonaws.com",
        "SourceAccount": ACCOUNT,
        "SourceArn": APP_ARN,
    }


def test_the_endpoint_parameter_reaches_the_function_client(
    transformed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SecretsManagerEndpoint becomes SECRETS_MANAGER_ENDPOINT, and the function's boto3 client uses it."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    default = resolve(transformed)["RotationFunction"]["Properties"]["Environment"]["Variables"]
    assert "SECRETS_MANAGER_ENDPOINT" not in default
    assert default["MASTER_SECRET_ARN"] == MASTER_ARN  # the function pins its master (docs/SECURITY.md)
    assert function_secretsmanager_client(default).meta.endpoint_url == f"https://secretsmanager.{REGION}.amazonaws.com"
    variables = resolve(transformed, SecretsManagerEndpoint=ENDPOINT)["RotationFunction"]["Properties"]["Environment"][
        "Variables"
    ]
    assert variables["SECRETS_MANAGER_ENDPOINT"] == ENDPOINT
    assert function_secretsmanager_client(variables).meta.endpoint_url == ENDPOINT


# -- the failed-rotation alarm -------------------------------------------------------------------------

TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:oncall"
ALARM_RESOURCES = {"RotationErrorsAlarm", "RotationFailedRule"}


def test_without_a_topic_there_is_no_alarm(transformed: dict[str, Any]) -> None:
    assert not ALARM_RESOURCES & set(resolve(transformed))
    assert set(transformed["Resources"]) >= ALARM_RESOURCES  # in the template, behind the condition


def test_a_topic_adds_an_alarm_on_function_errors_and_a_rule_on_rotation_failed(transformed: dict[str, Any]) -> None:
    resources = resolve(transformed, AlarmTopicArn=TOPIC_ARN)
    alarm = resources["RotationErrorsAlarm"]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    properties = alarm["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", "Errors")
    assert properties["Dimensions"] == [{"Name": "FunctionName", "Value": "<RotationFunction>"}]
    assert (properties["Statistic"], properties["Threshold"], properties["ComparisonOperator"]) == (
        "Sum",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert properties["TreatMissingData"] == "notBreaching"  # no invocation is not a failure
    assert properties["AlarmActions"] == [TOPIC_ARN]
    assert APP_ARN in properties["AlarmDescription"]
    rule = resources["RotationFailedRule"]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.secretsmanager"],
        "detail-type": ["AWS Service Event via CloudTrail"],
        "detail": {
            "eventSource": ["secretsmanager.amazonaws.com"],
            "eventName": ["RotationFailed"],
            "additionalEventData": {"SecretId": [APP_ARN]},
        },
    }
    assert rule["Targets"] == [{"Id": "alarm-topic", "Arn": TOPIC_ARN}]
    # The alarm adds nothing to what the function may do.
    assert role_grants(resources) == role_grants(resolve(transformed))


def test_the_template_with_a_topic_transforms_and_passes_cfn_lint(packaged: dict[str, Any]) -> None:
    transformed = transform(packaged, AlarmTopicArn=TOPIC_ARN)
    assert set(transformed["Resources"]) >= ALARM_RESOURCES
    assert [str(m) for m in lint(json.dumps(transformed), regions=[REGION])] == []


@pytest.mark.parametrize("topic", ["oncall", f"arn:aws:sqs:{REGION}:{ACCOUNT}:oncall", "arn:aws:sns:::oncall"])
def test_a_topic_that_is_not_an_sns_arn_is_refused(transformed: dict[str, Any], topic: str) -> None:
    with pytest.raises(AssertionError, match="AlarmTopicArn"):
        resolve(transformed, AlarmTopicArn=topic)


def _schedule_check(rotation_rules: dict[str, Any], refresh_days: float) -> str | None:
    """``check_rotation_schedule()`` of a client whose secret has ``rotation_rules`` (DescribeSecret stubbed)."""
    sm = boto3.client("secretsmanager", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    secret = {"username": "app", "password": "pw", "host": "db.example.com", "port": 27017, "dbname": "mydb"}
    with Stubber(sm) as stubber:
        stubber.add_response(
            "get_secret_value",
            {"ARN": APP_ARN, "Name": "mongodb-app", "VersionId": "v" * 32, "SecretString": json.dumps(secret)},
        )
        stubber.add_response(
            "describe_secret",
            {
                "ARN": APP_ARN,
                "Name": "mongodb-app",
                "RotationEnabled": True,
                "RotationRules": rotation_rules,
                "NextRotationDate": dt.datetime.now(dt.UTC) + dt.timedelta(days=3),
            },
        )
        client = RotatingMongoClient(
            "mongodb-app",
            secretsmanager_client=sm,
            policy=RefreshPolicy(refresh_interval=refresh_days * DAY),
            client_factory=lambda credentials, options: _NoDatabase(),
            login_check=lambda client, credentials: None,
        )
        try:
            return client.check_rotation_schedule().warning
        finally:
            client.close()


class _NoDatabase:
    """The MongoClient the schedule check never uses."""

    def __getitem__(self, name: str) -> object:
        return object()

    def close(self) -> None:
        pass


def test_the_rotation_window_makes_a_six_day_refresh_interval_safe(transformed: dict[str, Any]) -> None:
    """rate(7 days) with a 2h window: the shortest gap is 6 d 22 h, so a 6-day cache is safe (and 7 days is not)."""
    rules = resolve(transformed)["AppSecretRotationSchedule"]["Properties"]["RotationRules"]
    assert rules == {"ScheduleExpression": "rate(7 days)", "Duration": "2h"}
    assert _schedule_check(rules, refresh_days=6) is None
    assert _schedule_check(rules, refresh_days=7) is not None


def test_todays_schedule_without_a_window_is_unsafe_for_six_days() -> None:
    """The old rules (AutomaticallyAfterDays 7, Secrets Manager's 24-hour window): 6 days is refused."""
    warning = _schedule_check({"AutomaticallyAfterDays": 7}, refresh_days=6)
    assert warning is not None
    assert "24-hour window" in warning


def test_a_window_longer_than_a_day_is_refused(transformed: dict[str, Any]) -> None:
    with pytest.raises(AssertionError, match="RotationWindow"):
        resolve(transformed, RotationWindow="25h")


def test_the_rotation_guard_is_on_with_the_default_gap_and_the_schedule_keeps_it(transformed: dict[str, Any]) -> None:
    """MinRotationGap becomes MIN_ROTATION_GAP (5.5 days by default), and rate(7 days) with 2h passes the guard."""
    resources = resolve(transformed)
    variables = resources["RotationFunction"]["Properties"]["Environment"]["Variables"]
    assert min_rotation_gap({k: str(v) for k, v in variables.items()}) == DEFAULT_MIN_ROTATION_GAP == 5.5 * DAY
    rules = resources["AppSecretRotationSchedule"]["Properties"]["RotationRules"]
    interval, window = schedule_of(rules)
    assert interval == 7 * DAY
    assert window == 2 * 3600
    assert schedule_keeps_gap(DEFAULT_MIN_ROTATION_GAP, interval, rotation_window=window)
    off = resolve(transformed, MinRotationGap="0")["RotationFunction"]["Properties"]["Environment"]["Variables"]
    assert min_rotation_gap({k: str(v) for k, v in off.items()}) == 0


def test_the_function_may_remove_the_override_tag_and_no_other(transformed: dict[str, Any]) -> None:
    """The override works once (the rotation removes its tag); the role can neither set tags nor remove others."""
    grants = role_grants(resolve(transformed))
    untag = [(t, c) for a, t, c in grants if a == "secretsmanager:UntagResource"]
    assert untag == [(APP_ARN, {"ForAllValues:StringEquals": {"aws:TagKeys": [OVERRIDE_TAG]}})]
    assert not [a for a, _, _ in grants if a == "secretsmanager:TagResource"]


def test_the_tls_ca_file_parameter_sets_the_functions_ca_and_nothing_by_default(transformed: dict[str, Any]) -> None:
    """TlsCaFile becomes TLS_CA_FILE (a file in the zip or a layer); empty, the variable is not set at all."""
    default = resolve(transformed)["RotationFunction"]["Properties"]["Environment"]["Variables"]
    assert "TLS_CA_FILE" not in default
    for value in ("global-bundle.pem", "certs/rds-ca.pem", "/opt/certs/global-bundle.pem"):
        variables = resolve(transformed, TlsCaFile=value)["RotationFunction"]["Properties"]["Environment"]["Variables"]
        assert variables["TLS_CA_FILE"] == value


@pytest.mark.parametrize("value", ["../etc/ssl/ca.pem", "/etc/ssl/ca.pem", "certs/../../x.pem", "a b.pem"])
def test_a_tls_ca_file_outside_the_package_or_a_layer_is_refused(transformed: dict[str, Any], value: str) -> None:
    with pytest.raises(AssertionError, match="TlsCaFile"):
        resolve(transformed, TlsCaFile=value)
