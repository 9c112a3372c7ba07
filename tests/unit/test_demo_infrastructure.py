"""The demo's external mode checks Secrets Manager first and says in one line what is wrong (no stack started)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from secretswitch.client import secretsmanager as seam
from secretswitch.client.errors import ConfigurationError
from secretswitch.demo_app.config import DemoConfig
from secretswitch.demo_app.infrastructure import external_infrastructure


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    client = boto3.client(
        "secretsmanager", region_name="eu-west-3", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stubber = Stubber(client)
    stubber.activate()

    def built(**_: Any) -> Any:
        return client

    monkeypatch.setattr(seam, "secretsmanager_client", built)
    return stubber


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ResourceNotFoundException", "secret 'mongodb-app' does not exist in Secrets Manager"),
        ("AccessDeniedException", "refused DescribeSecret/GetSecretValue on 'mongodb-app': AccessDeniedException"),
    ],
)
def test_external_mode_names_a_missing_or_refused_secret(stubbed: Stubber, code: str, expected: str) -> None:
    stubbed.add_client_error("describe_secret", service_error_code=code)
    with pytest.raises(ConfigurationError, match=expected):
        external_infrastructure(DemoConfig(external=True, secret_id="mongodb-app", region="eu-west-3"))
