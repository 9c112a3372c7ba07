"""The rotation function on the embedded stack: alternation, idempotence, crashes, refusals, no leaks.

The module has its own stack (region ca-central-1) because it changes users
and secrets. Every log record (root logger, INFO and up) and every error text
of these rotations is collected, and the last test greps them for every
password the module ever used.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from secretswitch.client.credentials import parse_secret
from secretswitch.client.errors import SecretFormatError, SecretSwitchError
from secretswitch.embedded_stack.stack import EmbeddedStack
from secretswitch.rotation_lambda.errors import RotationError
from secretswitch.rotation_lambda.lambda_function import make_handler
from secretswitch.rotation_lambda.rules import STEPS
from secretswitch.rotation_tools.doctor import diagnose
from secretswitch.rotation_tools.rotate import cancel_rotation, rotate_secret
from secretswitch.rotation_tools.status import secret_status
from tests.faults import interrupted_rotation

REGION = "ca-central-1"
TEXTS: list[str] = []  # every error text produced in this module
PASSWORDS: set[str] = set()  # every password this module saw


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        TEXTS.append(self.format(record))
        if record.exc_info and record.exc_info[1] is not None:
            TEXTS.append(str(record.exc_info[1]))


@pytest.fixture(scope="module")
def rstack() -> Iterator[EmbeddedStack]:
    handler = _Collect(level=logging.INFO)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with EmbeddedStack(region=REGION) as running:
            PASSWORDS.update(running.info.app_passwords.values())
            PASSWORDS.add(running.info.admin_password)
            yield running
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _record_passwords(stack: EmbeddedStack) -> None:
    sm = stack.secretsmanager_client()
    for secret_id in (stack.info.app_secret_id, stack.info.admin_secret_id):
        for version in sm.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=True)["Versions"]:
            try:
                value = sm.get_secret_value(SecretId=secret_id, VersionId=version["VersionId"])
            except sm.exceptions.ResourceNotFoundException:  # an empty pending version
                value = {"SecretString": "{}"}
            document = json.loads(value["SecretString"])
            if isinstance(document, dict) and isinstance(document.get("password"), str):
                PASSWORDS.add(document["password"])


def _stages(stack: EmbeddedStack) -> dict[str, list[str]]:
    sm = stack.secretsmanager_client()
    versions = sm.describe_secret(SecretId=stack.info.app_secret_id)["VersionIdsToStages"]
    return {v: sorted(s) for v, s in versions.items() if s}


def _creds(stack: EmbeddedStack, stage: str, version_id: str | None = None) -> dict[str, Any]:
    sm = stack.secretsmanager_client()
    kwargs: dict[str, Any] = {"SecretId": stack.info.app_secret_id, "VersionStage": stage}
    if version_id:
        kwargs["VersionId"] = version_id
    document: dict[str, Any] = json.loads(sm.get_secret_value(**kwargs)["SecretString"])
    PASSWORDS.add(document["password"])
    return document


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
    outcome = rotate_secret(
        stack.secretsmanager_client(),
        stack.info.app_secret_id,
        rotation_lambda_arn=stack.rotation_function_arn,
        **kwargs,
    )
    TEXTS.append(outcome.message)
    _record_passwords(stack)
    return outcome


def _handler(stack: EmbeddedStack) -> Any:
    return make_handler(secretsmanager_client_factory=stack.secretsmanager_client, sleep=lambda seconds: None)


def _assert_healthy(stack: EmbeddedStack) -> None:
    stages = _stages(stack)
    assert not any("AWSPENDING" in s for s in stages.values()), stages
    current, previous = _creds(stack, "AWSCURRENT"), _creds(stack, "AWSPREVIOUS")
    assert current["username"] != previous["username"]
    assert _logs_in(stack, current)
    assert _logs_in(stack, previous)


def test_five_rotations_alternate_users_and_leave_nothing_pending(rstack: EmbeddedStack) -> None:
    users = [_creds(rstack, "AWSCURRENT")["username"]]
    for _ in range(5):
        outcome = _rotate(rstack)
        assert outcome.completed, outcome.message
        assert outcome.failed_step is None
        users.append(_creds(rstack, "AWSCURRENT")["username"])
        _assert_healthy(rstack)
    assert users == ["app", "app_clone", "app", "app_clone", "app", "app_clone"]


def test_every_step_invoked_twice_gives_the_same_end_state(rstack: EmbeddedStack) -> None:
    sm = rstack.secretsmanager_client()
    before_user = _creds(rstack, "AWSCURRENT")["username"]
    outcome = interrupted_rotation(
        sm, rstack.info.app_secret_id, crash_after_step="start", function_arn=rstack.rotation_function_arn
    )
    token = outcome.token
    handler = _handler(rstack)
    for step in STEPS:
        event = {"Step": step, "SecretId": rstack.info.app_secret_id, "ClientRequestToken": token}
        handler(event, None)
        first = (_stages(rstack), _pending_or_current(rstack, token))
        handler(event, None)
        second = (_stages(rstack), _pending_or_current(rstack, token))
        assert first == second, step
    _record_passwords(rstack)
    assert _stages(rstack)[token] == ["AWSCURRENT"]
    assert _creds(rstack, "AWSCURRENT")["username"] != before_user
    _assert_healthy(rstack)


def _pending_or_current(stack: EmbeddedStack, token: str) -> str | None:
    sm = stack.secretsmanager_client()
    try:
        return sm.get_secret_value(SecretId=stack.info.app_secret_id, VersionId=token)["SecretString"]
    except Exception:
        return None


@pytest.mark.parametrize("crash_after_step", ["start", *STEPS])
def test_a_rotation_killed_after_a_step_resumes_and_current_always_logs_in(
    rstack: EmbeddedStack, crash_after_step: str
) -> None:
    sm = rstack.secretsmanager_client()
    before = _creds(rstack, "AWSCURRENT")
    outcome = interrupted_rotation(
        sm, rstack.info.app_secret_id, crash_after_step=crash_after_step, function_arn=rstack.rotation_function_arn
    )
    TEXTS.append(outcome.message)
    assert not outcome.completed
    assert _logs_in(rstack, _creds(rstack, "AWSCURRENT"))
    if crash_after_step != "finishSecret":
        with pytest.raises(RotationError, match="still in progress") as refused:
            _rotate(rstack)
        TEXTS.append(str(refused.value))
    resumed = _rotate(rstack, resume=True)
    assert resumed.completed, resumed.message
    assert _creds(rstack, "AWSCURRENT")["username"] != before["username"]
    # A GetSecretValue without a stage means AWSCURRENT, as on AWS (moto needs embedded_stack.moto_server's fix).
    assert sm.get_secret_value(SecretId=rstack.info.app_secret_id)["VersionId"] == resumed.token
    _assert_healthy(rstack)


def test_a_missing_partner_is_created_with_the_current_users_roles(rstack: EmbeddedStack) -> None:
    current = _creds(rstack, "AWSCURRENT")
    partner = "app" if current["username"] == "app_clone" else "app_clone"
    admin = rstack.admin_client()
    try:
        admin.admin.command("dropUser", partner)
        outcome = _rotate(rstack)
        assert outcome.completed, outcome.message
        assert _creds(rstack, "AWSCURRENT")["username"] == partner
        roles = {
            user["user"]: sorted((r["db"], r["role"]) for r in user["roles"])
            for user in admin.admin.command("usersInfo", [current["username"], partner])["users"]
        }
        assert roles[partner] == roles[current["username"]] == [("mydb", "readWrite")]
    finally:
        admin.close()
    _assert_healthy(rstack)


def test_a_wrong_master_password_fails_setsecret_and_keeps_the_app_working(rstack: EmbeddedStack) -> None:
    sm = rstack.secretsmanager_client()
    admin_id = rstack.info.admin_secret_id
    good = sm.get_secret_value(SecretId=admin_id)["SecretString"]
    bad = json.loads(good)
    bad["password"] = "wrong-" + uuid.uuid4().hex
    PASSWORDS.add(bad["password"])
    sm.put_secret_value(SecretId=admin_id, SecretString=json.dumps(bad))
    current_before = _creds(rstack, "AWSCURRENT")
    previous_before = _creds(rstack, "AWSPREVIOUS")
    try:
        outcome = _rotate(rstack)
        assert outcome.failed_step == "setSecret"
        assert "master" in outcome.message
        assert _creds(rstack, "AWSCURRENT") == current_before
        assert _logs_in(rstack, current_before)
        assert _logs_in(rstack, previous_before)  # the partner's password was not changed either
    finally:
        sm.put_secret_value(SecretId=admin_id, SecretString=good)
    resumed = _rotate(rstack, resume=True)
    assert resumed.completed, resumed.message
    _assert_healthy(rstack)


def _snapshot(stack: EmbeddedStack) -> tuple[Any, ...]:
    return (_stages(stack), _creds(stack, "AWSCURRENT"), _creds(stack, "AWSPREVIOUS"))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"SecretId": "mongodb-app", "ClientRequestToken": "x" * 36}, "no 'Step'"),
        ({"Step": "dropSecret", "SecretId": "mongodb-app", "ClientRequestToken": "x" * 36}, "unknown rotation step"),
        ({"Step": "createSecret", "SecretId": "mongodb-app"}, "no 'ClientRequestToken'"),
        ({"Step": "setSecret", "SecretId": "mongodb-app", "ClientRequestToken": 42}, "non-empty string"),
        ({"Step": "createSecret", "SecretId": "mongodb-app", "ClientRequestToken": "f" * 36}, "not a version"),
        ("createSecret", "JSON object"),
    ],
)
def test_bad_events_are_refused_and_change_nothing(rstack: EmbeddedStack, event: Any, message: str) -> None:
    _rotate(rstack, resume=True)  # make sure rotation is enabled and nothing is pending
    before = _snapshot(rstack)
    with pytest.raises(RotationError, match=message) as refused:
        _handler(rstack)(event, None)
    TEXTS.append(str(refused.value))
    assert _snapshot(rstack) == before


def test_a_step_for_a_version_that_is_not_pending_is_refused(rstack: EmbeddedStack) -> None:
    before = _snapshot(rstack)
    previous = next(v for v, s in before[0].items() if "AWSPREVIOUS" in s)
    with pytest.raises(RotationError, match="not staged AWSPENDING") as refused:
        _handler(rstack)({"Step": "setSecret", "SecretId": "mongodb-app", "ClientRequestToken": previous}, None)
    TEXTS.append(str(refused.value))
    assert _snapshot(rstack) == before


def test_a_pending_secret_naming_another_user_is_refused_before_any_login(rstack: EmbeddedStack) -> None:
    sm = rstack.secretsmanager_client()
    outcome = interrupted_rotation(
        sm, rstack.info.app_secret_id, crash_after_step="start", function_arn=rstack.rotation_function_arn
    )
    hijack = dict(_creds(rstack, "AWSCURRENT"), username="admin", password="taken-over-" + uuid.uuid4().hex)
    PASSWORDS.add(hijack["password"])
    sm.put_secret_value(
        SecretId=rstack.info.app_secret_id,
        ClientRequestToken=outcome.token,
        SecretString=json.dumps(hijack),
        VersionStages=["AWSPENDING"],
    )
    event = {"Step": "setSecret", "SecretId": rstack.info.app_secret_id, "ClientRequestToken": outcome.token}
    with pytest.raises(RotationError, match="not the partner") as refused:
        _handler(rstack)(event, None)
    TEXTS.append(str(refused.value))
    admin = rstack.admin_client()
    try:
        assert admin.admin.command("ping")["ok"] == 1  # the admin's password is untouched
    finally:
        admin.close()
    # The hijacked version never reached the database: `rotate --cancel` drops it.
    cancelled = cancel_rotation(sm, rstack.info.app_secret_id)
    TEXTS.append(cancelled.message)
    assert cancelled.cancelled
    assert "MongoDB refuses its password" in cancelled.message
    _assert_healthy(rstack)


def test_a_malformed_secret_fails_createsecret_with_the_field_named_and_changes_nothing(
    rstack: EmbeddedStack,
) -> None:
    sm = rstack.secretsmanager_client()
    name = "malformed-" + uuid.uuid4().hex[:8]
    document = _creds(rstack, "AWSCURRENT")
    del document["password"]
    sm.create_secret(Name=name, SecretString=json.dumps(document))
    outcome = rotate_secret(sm, name, rotation_lambda_arn=rstack.rotation_function_arn)
    TEXTS.append(outcome.message)
    assert outcome.failed_step == "createSecret"
    assert "'password'" in outcome.message
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.get_secret_value(SecretId=name, VersionId=outcome.token)  # createSecret stored nothing
    with pytest.raises(SecretFormatError):
        parse_secret(json.dumps(document), secret_id=name)


def test_status_lists_versions_and_users_without_passwords(rstack: EmbeddedStack) -> None:
    status = secret_status(rstack.secretsmanager_client(), rstack.info.app_secret_id)
    assert status.rotation_enabled
    assert status.rotation_days == 7
    assert status.in_progress is None
    users = {v.username for v in status.versions if "AWSCURRENT" in v.stages or "AWSPREVIOUS" in v.stages}
    assert users == {"app", "app_clone"}
    TEXTS.append(repr(status))


def test_doctor_finds_and_fixes_a_stuck_rotation_and_role_drift(rstack: EmbeddedStack) -> None:
    sm = rstack.secretsmanager_client()
    assert diagnose(sm, rstack.info.app_secret_id) == []
    interrupted_rotation(
        sm, rstack.info.app_secret_id, crash_after_step="setSecret", function_arn=rstack.rotation_function_arn
    )
    passive = _creds(rstack, "AWSPREVIOUS")["username"]
    admin = rstack.admin_client()
    try:
        admin.admin.command("grantRolesToUser", passive, roles=[{"role": "read", "db": "other"}])
        kinds = {f.kind for f in diagnose(sm, rstack.info.app_secret_id)}
        assert "stuck-rotation" in kinds
        fixed = diagnose(sm, rstack.info.app_secret_id, fix=True)
        TEXTS.extend(f.message for f in fixed)
        assert {f.kind for f in fixed} == {"stuck-rotation", "role-drift"}
        assert all(f.fixed for f in fixed), fixed
        assert diagnose(sm, rstack.info.app_secret_id) == []
    finally:
        admin.close()
    _record_passwords(rstack)
    _assert_healthy(rstack)


def _event(stack: EmbeddedStack, step: str, token: str) -> dict[str, Any]:
    return {"Step": step, "SecretId": stack.info.app_secret_id, "ClientRequestToken": token}


def test_finishsecret_refuses_a_version_whose_user_gained_a_role_after_setsecret(rstack: EmbeddedStack) -> None:
    sm = rstack.secretsmanager_client()
    outcome = interrupted_rotation(
        sm, rstack.info.app_secret_id, crash_after_step="setSecret", function_arn=rstack.rotation_function_arn
    )
    token = outcome.token
    _record_passwords(rstack)
    pending_user = _creds(rstack, "AWSPENDING", token)["username"]
    current_before = _creds(rstack, "AWSCURRENT")
    handler = _handler(rstack)
    root = [{"role": "root", "db": "admin"}]
    admin = rstack.admin_client()
    try:
        admin.admin.command("grantRolesToUser", pending_user, roles=root)
        with pytest.raises(RotationError, match="role drift") as tested:
            handler(_event(rstack, "testSecret", token), None)
        # A direct finishSecret (out of order, or retried by hand) must not promote the drifted user.
        with pytest.raises(RotationError, match="finishSecret: role drift") as finished:
            handler(_event(rstack, "finishSecret", token), None)
        TEXTS.extend([str(tested.value), str(finished.value)])
        assert _stages(rstack)[token] == ["AWSPENDING"]
        assert _creds(rstack, "AWSCURRENT") == current_before
    finally:
        admin.admin.command("revokeRolesFromUser", pending_user, roles=root)
        admin.close()
    resumed = _rotate(rstack, resume=True)
    assert resumed.completed, resumed.message
    # Once the token is AWSCURRENT finishSecret changes nothing but a leftover AWSPENDING label.
    sm.update_secret_version_stage(SecretId=rstack.info.app_secret_id, VersionStage="AWSPENDING", MoveToVersionId=token)
    handler(_event(rstack, "finishSecret", token), None)
    assert _stages(rstack)[token] == ["AWSCURRENT"]
    _assert_healthy(rstack)


def test_a_plain_rotation_keeps_the_schedule_the_secret_already_has(rstack: EmbeddedStack) -> None:
    sm = rstack.secretsmanager_client()

    def days() -> int:
        return int(sm.describe_secret(SecretId=rstack.info.app_secret_id)["RotationRules"]["AutomaticallyAfterDays"])

    try:
        assert _rotate(rstack, rotation_days=3).completed
        assert days() == 3
        assert _rotate(rstack).completed
        assert days() == 3
    finally:
        _rotate(rstack, rotation_days=7)
    assert days() == 7
    _assert_healthy(rstack)


def test_setsecret_refuses_a_pending_version_that_relaxes_tls(rstack: EmbeddedStack) -> None:
    sm = rstack.secretsmanager_client()
    outcome = interrupted_rotation(
        sm, rstack.info.app_secret_id, crash_after_step="start", function_arn=rstack.rotation_function_arn
    )
    current = _creds(rstack, "AWSCURRENT")
    partner = "app" if current["username"] == "app_clone" else "app_clone"
    relaxed = dict(current, username=partner, password="relaxed-" + uuid.uuid4().hex, tlsAllowInvalidCertificates=True)
    PASSWORDS.add(relaxed["password"])
    sm.put_secret_value(
        SecretId=rstack.info.app_secret_id,
        ClientRequestToken=outcome.token,
        SecretString=json.dumps(relaxed),
        VersionStages=["AWSPENDING"],
    )
    with pytest.raises(RotationError, match="TLS options") as refused:
        _handler(rstack)(_event(rstack, "setSecret", outcome.token), None)
    TEXTS.append(str(refused.value))
    assert _logs_in(rstack, _creds(rstack, "AWSPREVIOUS"))  # the partner's password was not changed
    sm.update_secret_version_stage(
        SecretId=rstack.info.app_secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=outcome.token
    )
    _assert_healthy(rstack)


def test_doctor_fix_leaves_alone_a_previous_version_naming_a_user_that_is_not_the_partner(
    rstack: EmbeddedStack,
) -> None:
    sm = rstack.secretsmanager_client()
    secret_id = rstack.info.app_secret_id
    previous = next(v for v, s in _stages(rstack).items() if "AWSPREVIOUS" in s)
    intruder = "intruder_" + uuid.uuid4().hex[:6]
    document = dict(_creds(rstack, "AWSCURRENT"), username=intruder, password="intruder-" + uuid.uuid4().hex)
    PASSWORDS.add(document["password"])
    admin = rstack.admin_client()
    try:
        admin.admin.command("createUser", intruder, pwd=document["password"], roles=[{"role": "read", "db": "other"}])
        crafted = sm.put_secret_value(
            SecretId=secret_id, SecretString=json.dumps(document), VersionStages=["AWSPREVIOUS"]
        )["VersionId"]
        findings = diagnose(sm, secret_id, fix=True)
        TEXTS.extend(f.message for f in findings)
        assert [f.kind for f in findings] == ["unexpected-user"], findings
        assert not findings[0].fixed
        roles = admin.admin.command("usersInfo", intruder)["users"][0]["roles"]
        assert [(r["db"], r["role"]) for r in roles] == [("other", "read")]
    finally:
        admin.admin.command("dropUser", intruder)
        admin.close()
        sm.update_secret_version_stage(
            SecretId=secret_id, VersionStage="AWSPREVIOUS", MoveToVersionId=previous, RemoveFromVersionId=crafted
        )
    assert diagnose(sm, secret_id) == []
    _assert_healthy(rstack)


def test_doctor_fix_writes_no_password_it_moves_awscurrent_back_to_a_previous_that_logs_in(
    rstack: EmbeddedStack,
) -> None:
    sm = rstack.secretsmanager_client()
    secret_id, admin_id = rstack.info.app_secret_id, rstack.info.admin_secret_id
    good_master = sm.get_secret_value(SecretId=admin_id)["SecretString"]
    master = json.loads(good_master)
    # The same server under another name: logging in as master works, the guard must still refuse it.
    master["host"] = "localhost" if master["host"] == "127.0.0.1" else "127.0.0.1"
    current, previous = _creds(rstack, "AWSCURRENT"), _creds(rstack, "AWSPREVIOUS")
    admin = rstack.admin_client()
    try:
        admin.admin.command("updateUser", current["username"], pwd="broken-" + uuid.uuid4().hex)
        sm.put_secret_value(SecretId=admin_id, SecretString=json.dumps(master))
        found = {f.kind: f for f in diagnose(sm, secret_id)}
        assert set(found) == {"master-unusable", "current-fails"}, found
        assert "endpoint" in found["master-unusable"].message
        findings = {f.kind: f for f in diagnose(sm, secret_id, fix=True)}
        TEXTS.extend(f.message for f in [*found.values(), *findings.values()])
        assert findings["current-fails"].fixed, findings
        assert "moved AWSCURRENT back" in findings["current-fails"].message
        assert not findings["master-unusable"].fixed
        # AWSCURRENT is the previous version again; the broken user's password was not written back.
        assert _creds(rstack, "AWSCURRENT") == previous
        assert not _logs_in(rstack, current)
    finally:
        sm.put_secret_value(SecretId=admin_id, SecretString=good_master)
        admin.close()
    # The next rotation gives the broken user a new password.
    assert _rotate(rstack).completed
    assert _creds(rstack, "AWSCURRENT")["username"] == current["username"]
    assert diagnose(sm, secret_id) == []
    _assert_healthy(rstack)


def test_zz_no_password_appears_in_any_log_line_or_error(rstack: EmbeddedStack) -> None:
    _record_passwords(rstack)
    assert len(PASSWORDS) >= 10
    assert TEXTS, "the collector saw nothing: the test would prove nothing"
    assert any('"step": "setSecret"' in text for text in TEXTS)
    leaks = [(p[:3] + "…", text[:80]) for p in PASSWORDS for text in TEXTS if p in text]
    assert not leaks, leaks


def test_errors_name_the_cause_without_values() -> None:
    # The error tree is what callers catch; make sure rotation errors belong to it.
    assert issubclass(RotationError, SecretSwitchError)
