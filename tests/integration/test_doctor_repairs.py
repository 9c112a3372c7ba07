"""``doctor`` reports every finding and ``--fix`` repairs what its own messages send people to it for.

The module has its own stack (region af-south-1). The first test replays the
case of issue 23 as a new user met it: a malformed ``put-secret-value`` became
AWSCURRENT, a ``rotate-secret`` was refused at createSecret and left an empty
AWSPENDING, and doctor reported only the first problem and fixed nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from secretswitch.cli import main
from secretswitch.embedded_stack.stack import EmbeddedStack
from secretswitch.rotation_tools.doctor import diagnose
from secretswitch.rotation_tools.rotate import rotate_secret

REGION = "af-south-1"


@pytest.fixture(scope="module")
def dstack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(region=REGION) as running:
        yield running


def _logs_in(stack: EmbeddedStack, username: str, password: str) -> bool:
    client = stack.mongo_client(username, password, serverSelectionTimeoutMS=3000)
    try:
        client["mydb"].list_collection_names()
    except Exception:
        return False
    finally:
        client.close()
    return True


def _stages(sm: Any, secret_id: str) -> dict[str, list[str]]:
    versions = sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    return {v: sorted(s) for v, s in versions.items() if s}


def _cli(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    for key, value in stack.info.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SECRETS_MANAGER_ENDPOINT", stack.info.secretsmanager_url)
    return main(list(argv))


def test_a_malformed_current_and_an_empty_pending_end_healthy_with_no_password_changed(
    dstack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = dstack.secretsmanager_client()
    secret_id = dstack.info.app_secret_id
    passwords = dict(dstack.info.app_passwords)
    original = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["VersionId"]
    # 1. put-secret-value with malformed JSON: it becomes AWSCURRENT.
    sm.put_secret_value(SecretId=secret_id, SecretString='{"username": "app", "password": ')
    # 2. rotate-secret: refused at createSecret, an empty AWSPENDING is left.
    with pytest.raises(ClientError, match="createSecret"):
        sm.rotate_secret(SecretId=secret_id)
    pending = [v for v, s in _stages(sm, secret_id).items() if s == ["AWSPENDING"]]
    assert len(pending) == 1
    # 3. doctor reports every finding, not only the first.
    capsys.readouterr()
    assert _cli(dstack, monkeypatch, "doctor", secret_id) == 1
    report = capsys.readouterr().out
    assert "current-unreadable" in report
    assert "stuck-rotation" in report
    # 4. --fix: the empty pending version is dropped, AWSCURRENT moves back to the version that logs in.
    assert _cli(dstack, monkeypatch, "doctor", secret_id, "--fix") == 0, capsys.readouterr()
    fixed = capsys.readouterr().out
    assert "NOT FIXED" not in fixed
    assert fixed.count("FIXED") == 2, fixed
    assert diagnose(sm, secret_id) == []
    stages = _stages(sm, secret_id)
    assert stages[original] == ["AWSCURRENT"]
    assert not [v for v, s in stages.items() if "AWSPENDING" in s]
    # Both users keep the passwords they had: doctor wrote none and resumed nothing.
    assert all(_logs_in(dstack, user, password) for user, password in passwords.items())
    for secret in (report, fixed):
        assert not [p for p in passwords.values() if p in secret]


def test_every_finding_is_reported_and_rotation_turned_off_is_one(
    dstack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = dstack.secretsmanager_client()
    secret_id = dstack.info.app_secret_id
    assert diagnose(sm, secret_id) == []
    sm.cancel_rotate_secret(SecretId=secret_id)
    findings = diagnose(sm, secret_id, fix=True)
    assert [f.kind for f in findings] == ["rotation-disabled"]
    assert not findings[0].fixed, "doctor does not turn rotation on: that rotates at once"
    assert f"secretswitch rotate {secret_id}" in findings[0].message
    capsys.readouterr()
    assert _cli(dstack, monkeypatch, "doctor", secret_id) == 1
    assert "rotation-disabled" in capsys.readouterr().out
    # RotateSecret turns it on again (and rotates): healthy.
    outcome = rotate_secret(sm, secret_id, rotation_lambda_arn=dstack.rotation_function_arn)
    assert outcome.completed, outcome.message
    assert diagnose(sm, secret_id) == []
