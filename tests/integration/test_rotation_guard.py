"""The rotation guard on the embedded stack: too soon is refused with nothing changed; the override works once.

The module has its own stack (region sa-east-1) with the guard on (a one-hour
gap) and an injected wall clock: "after the gap" is a clock that is moved
forward, never a sleep. Secrets Manager keeps stamping its records with the
real time, so each test starts with the clock back at the real time.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from secretswitch.cli import main
from secretswitch.client.credentials import parse_secret
from secretswitch.embedded_stack.stack import EmbeddedStack
from secretswitch.rotation_lambda.errors import RotationError
from secretswitch.rotation_lambda.rotation_guard import OVERRIDE_TAG, format_override
from secretswitch.rotation_tools.rotate import rotate_secret

REGION = "sa-east-1"
GAP = 3600.0


class WallClock:
    """The real wall clock, moved forward by the tests (epoch seconds)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


CLOCK = WallClock()


@pytest.fixture(scope="module")
def gstack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(region=REGION, min_rotation_gap=GAP, rotation_clock=CLOCK) as running:
        yield running


@pytest.fixture(autouse=True)
def _real_time() -> None:
    CLOCK.offset = 0.0


def _sm(stack: EmbeddedStack) -> Any:
    return stack.secretsmanager_client()


def _snapshot(stack: EmbeddedStack) -> dict[str, Any]:
    """Versions, stages and both users' passwords (as the secret holds them and as MongoDB takes them)."""
    sm = _sm(stack)
    secret_id = stack.info.app_secret_id
    versions = sm.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=True)["Versions"]
    stages = sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    documents = {}
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        try:
            documents[stage] = json.loads(sm.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])
        except sm.exceptions.ResourceNotFoundException:
            continue
    return {
        "versions": sorted(v["VersionId"] for v in versions),
        "stages": {v: sorted(s) for v, s in stages.items() if s},
        "documents": documents,
        "logins": {stage: _logs_in(stack, document) for stage, document in documents.items()},
    }


def _logs_in(stack: EmbeddedStack, document: dict[str, Any]) -> bool:
    credentials = parse_secret(json.dumps(document), secret_id="test")
    client = stack.mongo_client(credentials.username, credentials.password, serverSelectionTimeoutMS=3000)
    try:
        client["mydb"].list_collection_names()
    except Exception:
        return False
    finally:
        client.close()
    return True


def _rotate(stack: EmbeddedStack, **kwargs: Any) -> Any:
    return rotate_secret(
        _sm(stack), stack.info.app_secret_id, rotation_lambda_arn=stack.rotation_function_arn, **kwargs
    )


def _raw_rotate_error(stack: EmbeddedStack) -> str:
    """``RotateSecret`` straight to Secrets Manager (no pre-check): the function's createSecret decides."""
    with pytest.raises(ClientError) as refused:
        _sm(stack).rotate_secret(SecretId=stack.info.app_secret_id)
    return str(refused.value)


def test_the_first_rotation_of_a_new_secret_runs(gstack: EmbeddedStack) -> None:
    sm = _sm(gstack)
    assert len(sm.list_secret_version_ids(SecretId=gstack.info.app_secret_id)["Versions"]) == 1
    outcome = _rotate(gstack, min_rotation_gap=GAP, clock=CLOCK)
    assert outcome.completed, outcome.message


def test_a_second_rotation_inside_the_gap_is_refused_and_nothing_changes(gstack: EmbeddedStack) -> None:
    before = _snapshot(gstack)
    assert before["logins"] == {"AWSCURRENT": True, "AWSPREVIOUS": True}
    # The function's own check (RotateSecret from anyone): one line, with the time the next one is safe.
    error = _raw_rotate_error(gstack)
    assert "refused by the rotation guard" in error
    assert "the next rotation is safe from" in error
    assert "--emergency" in error
    after = _snapshot(gstack)
    assert after["stages"] == before["stages"], "a refused rotation leaves nothing in progress"
    assert after["documents"] == before["documents"]
    assert after["logins"] == before["logins"], "both users keep their passwords"
    # The command line's pre-check refuses before RotateSecret: not even an empty version is made.
    with pytest.raises(RotationError, match="the next rotation is safe from") as refused:
        _rotate(gstack, min_rotation_gap=GAP, clock=CLOCK)
    assert "\n" not in str(refused.value)
    assert _snapshot(gstack) == after


def test_a_rotation_after_the_gap_runs(gstack: EmbeddedStack) -> None:
    CLOCK.advance(GAP + 1)
    before = _snapshot(gstack)["documents"]["AWSCURRENT"]["username"]
    outcome = _rotate(gstack, min_rotation_gap=GAP, clock=CLOCK)
    assert outcome.completed, outcome.message
    assert _snapshot(gstack)["documents"]["AWSCURRENT"]["username"] != before


def _tags(stack: EmbeddedStack) -> dict[str, str]:
    described = _sm(stack).describe_secret(SecretId=stack.info.app_secret_id)
    return {tag["Key"]: tag["Value"] for tag in described.get("Tags") or []}


def _override(stack: EmbeddedStack, until: float) -> None:
    _sm(stack).tag_resource(
        SecretId=stack.info.app_secret_id, Tags=[{"Key": OVERRIDE_TAG, "Value": format_override(until)}]
    )


def test_the_override_works_once_and_expires(gstack: EmbeddedStack) -> None:
    assert "refused by the rotation guard" in _raw_rotate_error(gstack)  # just rotated: inside the gap
    _override(gstack, CLOCK() + 600)
    outcome = _rotate(gstack)
    assert outcome.completed, outcome.message
    assert OVERRIDE_TAG not in _tags(gstack), "the override is removed by the rotation it let through"
    # Used once: the next rotation is refused again.
    assert "refused by the rotation guard" in _raw_rotate_error(gstack)
    # Expired: refused, and it says so.
    _override(gstack, CLOCK() + 600)
    CLOCK.advance(601)
    error = _raw_rotate_error(gstack)
    assert "override expired" in error
    # Set far ahead (left on by accident): ignored.
    _override(gstack, CLOCK() + 30 * 86400)
    assert "is ignored" in _raw_rotate_error(gstack)
    _sm(gstack).untag_resource(SecretId=gstack.info.app_secret_id, TagKeys=[OVERRIDE_TAG])


def test_a_tampered_secret_value_cannot_switch_the_guard_off(gstack: EmbeddedStack) -> None:
    sm = _sm(gstack)
    secret_id = gstack.info.app_secret_id
    current = json.loads(sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"])
    # A writer of the value puts a new AWSCURRENT claiming the guard is off (and an override): none of
    # its fields is read, and the new version counts as a switch (a stricter guard, never a looser one).
    tampered = {
        **current,
        "MIN_ROTATION_GAP": "0",
        "minRotationGap": 0,
        "rotationGuard": "off",
        OVERRIDE_TAG: format_override(CLOCK() + 600),
    }
    sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(tampered))
    before = _snapshot(gstack)
    assert "refused by the rotation guard" in _raw_rotate_error(gstack)
    with pytest.raises(RotationError, match="rotation guard"):
        _rotate(gstack, min_rotation_gap=GAP, clock=CLOCK)
    after = _snapshot(gstack)
    assert (after["stages"], after["logins"]) == (before["stages"], before["logins"])


def test_status_shows_the_earliest_safe_rotation(
    gstack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in gstack.info.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SECRETS_MANAGER_ENDPOINT", gstack.info.secretsmanager_url)
    sm = _sm(gstack)
    secret_id = gstack.info.app_secret_id
    value = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
    sm.put_secret_value(SecretId=secret_id, SecretString=value)  # a switch now, whatever ran before
    current = next(
        v for v in sm.list_secret_version_ids(SecretId=secret_id)["Versions"] if "AWSCURRENT" in v["VersionStages"]
    )
    safe = current["CreatedDate"].timestamp() + GAP
    capsys.readouterr()
    assert main(["status", secret_id]) == 0
    out = capsys.readouterr().out
    assert f"safe from {dt.datetime.fromtimestamp(safe, dt.UTC).isoformat(timespec='seconds')}" in out
    assert "rotation guard" in out
    assert "the schedule keeps the gap" in out  # rate(7 days) against a one-hour gap


def test_an_emergency_rotation_takes_a_leaked_current_password_out_of_service_and_says_who_fails(
    gstack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in gstack.info.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SECRETS_MANAGER_ENDPOINT", gstack.info.secretsmanager_url)
    sm = _sm(gstack)
    secret_id = gstack.info.app_secret_id
    sm.put_secret_value(  # a switch now: inside the gap, whatever ran before
        SecretId=secret_id,
        SecretString=sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"],
    )
    leaked = _snapshot(gstack)["documents"]["AWSCURRENT"]
    assert "refused by the rotation guard" in _raw_rotate_error(gstack)
    capsys.readouterr()
    assert main(["rotate", secret_id, "--emergency", "--leaked-user", leaked["username"]]) == 0
    out = capsys.readouterr().out
    assert "see authentication failures" in out
    assert "TWO emergency rotations" in out
    assert out.count("override tag") == 2, out
    assert out.count(" is now AWSCURRENT (version ") == 2, out
    assert leaked["password"] not in out
    after = _snapshot(gstack)
    assert after["documents"]["AWSCURRENT"]["username"] == leaked["username"]
    assert not _logs_in(gstack, leaked), "the leaked password is out of service"
    assert after["logins"] == {"AWSCURRENT": True, "AWSPREVIOUS": True}
    assert OVERRIDE_TAG not in _tags(gstack)
    assert "refused by the rotation guard" in _raw_rotate_error(gstack), "the guard is on again"
