"""One place builds the boto3 Secrets Manager clients: the region as the other AWS SDKs read it, a checked endpoint.

botocore reads ``AWS_DEFAULT_REGION`` and the profile, not ``AWS_REGION``; the
Lambda runtime, the AWS CLI v2 and the other SDKs read ``AWS_REGION`` first.
Every client the project builds from the environment (the rotating clients'
default, the rotation function, ``secretswitch rotate/status/doctor``) comes
from :func:`secretswitch.client.secretsmanager.secretsmanager_client`.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import NoRegionError

import secretswitch.rotate
from secretswitch import AsyncRotatingMongoClient, ConfigurationError, RotatingMongoClient, SecretsManagerError
from secretswitch.client.secretsmanager import (
    SecretSource,
    check_endpoint_url,
    default_secretsmanager_client,
    resolve_region,
    secretsmanager_client,
)
from secretswitch.rotation_lambda.lambda_function import function_secretsmanager_client as function_client


@pytest.fixture(autouse=True)
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fresh machine: no region, no endpoint, no profile."""
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "SECRETS_MANAGER_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


BUILDERS: list[tuple[str, Callable[[], Any]]] = [
    ("the rotating clients' default", default_secretsmanager_client),
    ("the rotation function's", function_client),
    ("secretswitch rotate/status/doctor", lambda: secretswitch.rotate._client(None)),
    ("the seam itself", secretsmanager_client),
]


@pytest.mark.parametrize("build", [b for _, b in BUILDERS], ids=[n for n, _ in BUILDERS])
def test_aws_region_alone_is_honoured(build: Callable[[], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert build().meta.region_name == "eu-west-3"


@pytest.mark.parametrize("build", [b for _, b in BUILDERS], ids=[n for n, _ in BUILDERS])
def test_aws_region_wins_over_aws_default_region_as_in_the_other_sdks(
    build: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert build().meta.region_name == "eu-west-3"


def test_aws_default_region_and_an_explicit_region_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert default_secretsmanager_client().meta.region_name == "us-west-2"
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert secretswitch.rotate._client("ap-south-1").meta.region_name == "ap-south-1"
    assert resolve_region(None, {"AWS_REGION": " "}) is None


@pytest.mark.parametrize("client_class", [RotatingMongoClient, AsyncRotatingMongoClient])
def test_a_client_without_a_region_raises_configuration_error_with_the_advice(client_class: type) -> None:
    """Not botocore's bare NoRegionError: the project's error, saying what to set."""
    with pytest.raises(ConfigurationError) as caught:
        client_class("mongodb-app")
    message = str(caught.value)
    assert "no AWS region is configured; set AWS_REGION" in message
    assert "region_name" in message  # the library's own way to pass one
    assert "secretswitch local" in message
    assert not isinstance(caught.value, NoRegionError)
    assert caught.value.__cause__ is None  # one clear error, not botocore's chained under it


@pytest.mark.parametrize(
    "url", ["htp://127.0.0.1:4566", "127.0.0.1:4566", "http//127.0.0.1:4566", "http://", "ftp://x", " "]
)
def test_an_endpoint_typo_is_a_configuration_error_naming_where_it_came_from(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    with pytest.raises(ConfigurationError, match=r"AWS_ENDPOINT_URL_SECRETS_MANAGER .* is not an http:// or https://"):
        check_endpoint_url(url, source="AWS_ENDPOINT_URL_SECRETS_MANAGER")
    if url.strip():
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
        with pytest.raises(ConfigurationError, match="AWS_ENDPOINT_URL_SECRETS_MANAGER"):
            RotatingMongoClient("mongodb-app")


def test_good_endpoints_pass_and_reach_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert check_endpoint_url("http://127.0.0.1:4566", source="x") == "http://127.0.0.1:4566"
    assert check_endpoint_url("https://vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com", source="x")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:4566")
    assert default_secretsmanager_client().meta.endpoint_url == "http://127.0.0.1:4566"
    assert function_client({"SECRETS_MANAGER_ENDPOINT": "http://127.0.0.1:9"}).meta.endpoint_url == (
        "http://127.0.0.1:9"
    )


class _PlainHTTP(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_https_to_a_plain_http_endpoint_says_so_in_the_clients_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local stack speaks http://; `https://` typed for it fails the handshake, and the error says what to use."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PlainHTTP)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("AWS_REGION", "eu-west-3")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"https://127.0.0.1:{server.server_address[1]}")
        source = SecretSource("mongodb-app")
        with pytest.raises(SecretsManagerError) as caught:
            source.get_version()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    message = str(caught.value)
    assert "SSLError" in message
    assert "the local stack speaks plain http://" in message
    assert "\n" not in message
