"""Attacks from a writer of the application secret: each one is refused, and nobody's password or roles change.

The threat model is docs/SECURITY.md. Whoever can write ``mongodb-app``
(PutSecretValue, UpdateSecretVersionStage) must not make the rotation function
or ``doctor --fix`` — both hold the master password — do anything beyond
"give the current user's partner a fresh random password, with exactly the
current user's roles". Each test mounts one attack on a stack of its own and
then checks that the master, a privileged bystander (``dba``, ``root``), the
attacker's own user (``mallory``) and the application's two users keep exactly
their passwords and roles, and that a normal rotation still works afterwards.

The last tests cover ``rotate`` of a master secret (refused in one line,
nothing changed) and ``rotate --cancel``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from secretswitch.cli import main
from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack
from secretswitch.rotation_lambda.errors import RotationError
from secretswitch.rotation_lambda.lambda_function import make_handler
from secretswitch.rotation_tools.doctor import diagnose
from secretswitch.rotation_tools.rotate import cancel_rotation, rotate_secret
from tests.faults import interrupted_rotation

REGION = "ap-northeast-2"
DBA, MALLORY = "dba", "mallory"
PASSWORDS = {DBA: "Dba-" + uuid.uuid4().hex, MALLORY: "Mallory-" + uuid.uuid4().hex}
ROLES = {DBA: [{"role": "root", "db": "admin"}], MALLORY: [{"role": "read", "db": "other"}]}


@pytest.fixture(scope="module")
def astack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(region=REGION) as running:
        for user, password in PASSWORDS.items():
            running.create_user(user, password, ROLES[user])
        assert _rotate(running).completed  # both users exist and AWSPREVIOUS is there to attack
        yield running


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The in-process rotation function reads its configuration from os.environ at each step.
    for name in ("ROTATION_USERS", "ROTATION_STRATEGY"):
        monkeypatch.delenv(name, raising=False)


# -- what must not change ------------------------------------------------------------------


def _document(stack: EmbeddedStack, **kwargs: Any) -> dict[str, Any]:
    sm = stack.secretsmanager_client()
    return dict(json.loads(sm.get_secret_value(SecretId=stack.info.app_secret_id, **kwargs)["SecretString"]))


def _labels(stack: EmbeddedStack) -> dict[str, list[str]]:
    sm = stack.secretsmanager_client()
    versions = sm.describe_secret(SecretId=stack.info.app_secret_id)["VersionIdsToStages"]
    return {version: sorted(stages) for version, stages in versions.items() if stages}


def _logs_in(stack: EmbeddedStack, user: str, password: str) -> bool:
    client = stack.mongo_client(user, password, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except Exception:
        return False
    finally:
        client.close()
    return True


def _roles(admin: MongoClient[dict[str, Any]], user: str) -> list[tuple[str, str]]:
    users = admin.admin.command("usersInfo", user)["users"]
    return sorted((r["db"], r["role"]) for r in users[0]["roles"]) if users else []


def _people(stack: EmbeddedStack) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Every user an attack may aim at, with the password it has now and its roles."""
    current = _document(stack, VersionStage="AWSCURRENT")
    previous = _document(stack, VersionStage="AWSPREVIOUS")
    known = {
        stack.info.admin_username: stack.info.admin_password,
        **PASSWORDS,
        current["username"]: current["password"],
        previous["username"]: previous["password"],
    }
    with stack.admin_client() as admin:
        return {user: (password, _roles(admin, user)) for user, password in known.items()}


def _assert_unchanged(stack: EmbeddedStack, before: dict[str, tuple[str, list[tuple[str, str]]]]) -> None:
    with stack.admin_client() as admin:
        for user, (password, roles) in before.items():
            assert _logs_in(stack, user, password), f"the password of {user!r} changed"
            assert _roles(admin, user) == roles, f"the roles of {user!r} changed"


def _restore(stack: EmbeddedStack, labels: dict[str, list[str]]) -> None:
    """Put AWSCURRENT / AWSPREVIOUS back where they were and drop every AWSPENDING label."""
    sm = stack.secretsmanager_client()
    secret_id = stack.info.app_secret_id
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        target = next(v for v, s in labels.items() if stage in s)
        holder = next((v for v, s in _labels(stack).items() if stage in s), None)
        if holder != target:
            kwargs = {"RemoveFromVersionId": holder} if holder else {}
            sm.update_secret_version_stage(SecretId=secret_id, VersionStage=stage, MoveToVersionId=target, **kwargs)
    for version, stages in _labels(stack).items():
        if "AWSPENDING" in stages:
            sm.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=version)


def _rotate(stack: EmbeddedStack) -> Any:
    return rotate_secret(
        stack.secretsmanager_client(), stack.info.app_secret_id, rotation_lambda_arn=stack.rotation_function_arn
    )


def _assert_a_normal_rotation_works(stack: EmbeddedStack) -> None:
    before = _document(stack, VersionStage="AWSCURRENT")["username"]
    outcome = _rotate(stack)
    assert outcome.completed, outcome.message
    after = _document(stack, VersionStage="AWSCURRENT")
    assert after["username"] != before
    assert _logs_in(stack, after["username"], after["password"])
    assert diagnose(stack.secretsmanager_client(), stack.info.app_secret_id) == []


@contextlib.contextmanager
def _attack(stack: EmbeddedStack) -> Iterator[dict[str, tuple[str, list[tuple[str, str]]]]]:
    """Snapshot everyone, run the attack, check nobody changed, restore the secret, rotate normally."""
    labels = _labels(stack)
    before = _people(stack)
    try:
        yield before
        _assert_unchanged(stack, before)
    finally:
        _restore(stack, labels)
    _assert_a_normal_rotation_works(stack)


def _tamper_current(stack: EmbeddedStack, **changes: Any) -> dict[str, Any]:
    document = {**_document(stack, VersionStage="AWSCURRENT"), **changes}
    stack.secretsmanager_client().put_secret_value(
        SecretId=stack.info.app_secret_id, SecretString=json.dumps(document), VersionStages=["AWSCURRENT"]
    )
    return document


def _pending_token(stack: EmbeddedStack) -> str:
    """An empty AWSPENDING version, as RotateSecret leaves it before createSecret."""
    outcome = interrupted_rotation(
        stack.secretsmanager_client(),
        stack.info.app_secret_id,
        crash_after_step="start",
        function_arn=stack.rotation_function_arn,
    )
    return outcome.token


def _write_pending(stack: EmbeddedStack, token: str, document: dict[str, Any]) -> None:
    stack.secretsmanager_client().put_secret_value(
        SecretId=stack.info.app_secret_id,
        ClientRequestToken=token,
        SecretString=json.dumps(document),
        VersionStages=["AWSPENDING"],
    )


def _step(stack: EmbeddedStack, step: str, token: str) -> None:
    handler = make_handler(secretsmanager_client_factory=stack.secretsmanager_client, sleep=lambda seconds: None)
    handler({"Step": step, "SecretId": stack.info.app_secret_id, "ClientRequestToken": token}, None)


def _partner(document: dict[str, Any]) -> str:
    return "app" if document["username"] == "app_clone" else "app_clone"


# -- the attacks ---------------------------------------------------------------------------


def test_1_rotation_users_naming_the_master_cannot_take_it_over(astack: EmbeddedStack) -> None:
    with _attack(astack):
        current = _document(astack, VersionStage="AWSCURRENT")
        _tamper_current(astack, rotationUsers=[current["username"], astack.info.admin_username])
        outcome = _rotate(astack)
        assert outcome.failed_step == "createSecret"
        assert "cannot choose which users are changed" in outcome.message
        # No new master password was written anywhere the attacker can read.
        sm = astack.secretsmanager_client()
        with pytest.raises(sm.exceptions.ResourceNotFoundException):
            sm.get_secret_value(SecretId=astack.info.app_secret_id, VersionId=outcome.token)


def test_1b_rotation_users_configured_to_include_the_master_is_refused_at_setsecret(
    astack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _attack(astack):
        current = _document(astack, VersionStage="AWSCURRENT")
        # A misconfigured function: the environment itself names the master as the partner.
        monkeypatch.setenv("ROTATION_USERS", f"{current['username']},{astack.info.admin_username}")
        outcome = _rotate(astack)
        assert outcome.failed_step == "setSecret", outcome.message
        assert "is the master user" in outcome.message
        monkeypatch.delenv("ROTATION_USERS")


def test_2_single_strategy_with_a_tampered_current_resets_nobody(
    astack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _attack(astack):
        monkeypatch.setenv("ROTATION_STRATEGY", "single")
        _tamper_current(astack, username=DBA, password="Guessed-" + uuid.uuid4().hex)
        outcome = _rotate(astack)
        assert outcome.failed_step == "setSecret", outcome.message
        assert "do not log in" in outcome.message
        monkeypatch.delenv("ROTATION_STRATEGY")


def test_3_doctor_fix_is_no_confused_deputy(astack: EmbeddedStack) -> None:
    with _attack(astack) as before:
        # AWSCURRENT names the privileged dba with a password of the attacker's choice, and a "pair"
        # that makes the attacker's own user its partner; AWSPREVIOUS is the attacker's user.
        previous = _document(astack, VersionStage="AWSPREVIOUS")
        _tamper_current(astack, username=DBA, password="Chosen-" + uuid.uuid4().hex, rotationUsers=[DBA, MALLORY])
        sm = astack.secretsmanager_client()
        mallory = {**previous, "username": MALLORY, "password": PASSWORDS[MALLORY]}
        sm.put_secret_value(
            SecretId=astack.info.app_secret_id, SecretString=json.dumps(mallory), VersionStages=["AWSPREVIOUS"]
        )
        findings = diagnose(sm, astack.info.app_secret_id, fix=True)
        kinds = {f.kind: f for f in findings}
        assert set(kinds) == {"unexpected-user", "current-fails"}, findings
        assert not any(f.fixed for f in findings), findings
        assert "cannot choose which users are changed" in kinds["unexpected-user"].message
        assert _logs_in(astack, DBA, before[DBA][0])  # _attack checks every user again on the way out


def test_4_test_and_finish_refuse_a_pending_version_setsecret_refused(astack: EmbeddedStack) -> None:
    with _attack(astack):
        token = _pending_token(astack)
        # The partner's real password (readable in AWSPREVIOUS) at another host: it logs in there.
        previous = _document(astack, VersionStage="AWSPREVIOUS")
        elsewhere = "localhost" if previous["host"] == "127.0.0.1" else "127.0.0.1"
        _write_pending(astack, token, {**previous, "host": elsewhere})
        for step in ("setSecret", "testSecret", "finishSecret"):
            with pytest.raises(RotationError, match=f"{step} refused: .*differs from AWSCURRENT in host"):
                _step(astack, step, token)
        assert "AWSPENDING" in _labels(astack)[token]
        assert _document(astack, VersionStage="AWSCURRENT")["host"] == previous["host"]


def test_5_a_partner_with_more_roles_is_refused_before_any_password_changes(astack: EmbeddedStack) -> None:
    partner = _partner(_document(astack, VersionStage="AWSCURRENT"))
    root = [{"role": "root", "db": "admin"}]
    with astack.admin_client() as admin, _attack(astack):
        admin.admin.command("grantRolesToUser", partner, roles=root)
        try:
            before = _people(astack)
            outcome = _rotate(astack)
            assert outcome.failed_step == "setSecret", outcome.message
            assert f"the partner user {partner!r} has roles the current user" in outcome.message
            assert "root@admin" in outcome.message
            _assert_unchanged(astack, before)  # the partner kept its password (and its roles)
        finally:
            admin.admin.command("revokeRolesFromUser", partner, roles=root)


def test_6_a_pending_version_with_another_masterarn_is_refused(astack: EmbeddedStack) -> None:
    with _attack(astack):
        sm = astack.secretsmanager_client()
        # The attacker's own "master": mallory's credentials.
        fake_master = sm.create_secret(
            Name=f"fake-master-{uuid.uuid4().hex[:6]}",
            SecretString=json.dumps(
                {**_document(astack, VersionStage="AWSCURRENT"), "username": MALLORY, "password": PASSWORDS[MALLORY]}
            ),
        )["ARN"]
        token = _pending_token(astack)
        current = _document(astack, VersionStage="AWSCURRENT")
        pending = {**current, "username": _partner(current), "password": "New-" + uuid.uuid4().hex}
        _write_pending(astack, token, {**pending, "masterarn": fake_master})
        for step in ("setSecret", "testSecret", "finishSecret"):
            with pytest.raises(RotationError, match="differs from AWSCURRENT in masterarn"):
                _step(astack, step, token)


def test_6b_a_current_version_naming_another_master_is_refused_when_the_function_pins_its_master(
    astack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer points AWSCURRENT's masterarn at a master of their choosing; MASTER_SECRET_ARN refuses it."""
    monkeypatch.setenv("MASTER_SECRET_ARN", astack.info.admin_secret_arn)
    with _attack(astack):
        sm = astack.secretsmanager_client()
        other_master = sm.create_secret(
            Name=f"other-master-{uuid.uuid4().hex[:6]}",
            SecretString=json.dumps(
                {**_document(astack, VersionStage="AWSCURRENT"), "username": DBA, "password": PASSWORDS[DBA]}
            ),
        )["ARN"]
        _tamper_current(astack, masterarn=other_master)
        outcome = _rotate(astack)
        assert outcome.failed_step == "createSecret", outcome.message
        assert "MASTER_SECRET_ARN" in outcome.message


def test_7_a_pending_version_naming_a_user_outside_the_pair_is_refused(astack: EmbeddedStack) -> None:
    with _attack(astack):
        token = _pending_token(astack)
        current = _document(astack, VersionStage="AWSCURRENT")
        _write_pending(astack, token, {**current, "username": DBA, "password": "Taken-" + uuid.uuid4().hex})
        for step in ("setSecret", "testSecret", "finishSecret"):
            with pytest.raises(RotationError, match=f"pending user '{DBA}' is not the partner"):
                _step(astack, step, token)


def test_8_doctor_with_a_tampered_pair_changes_no_role(astack: EmbeddedStack) -> None:
    with _attack(astack):
        # AWSCURRENT is genuine (it logs in) but claims dba as its partner, and AWSPREVIOUS names dba:
        # the old doctor "aligned" dba's roles with the application's (dba lost root).
        current = _tamper_current(astack, rotationUsers=[_document(astack, VersionStage="AWSCURRENT")["username"], DBA])
        sm = astack.secretsmanager_client()
        sm.put_secret_value(
            SecretId=astack.info.app_secret_id,
            SecretString=json.dumps({**current, "username": DBA, "password": PASSWORDS[DBA]}),
            VersionStages=["AWSPREVIOUS"],
        )
        findings = diagnose(sm, astack.info.app_secret_id, fix=True)
        assert [(f.kind, f.fixed) for f in findings] == [("unexpected-user", False)], findings


def test_9_a_tampered_current_naming_another_user_gets_no_rotation(astack: EmbeddedStack) -> None:
    """Alternating strategy: AWSCURRENT names mallory's partner-to-be with a wrong password; nothing is created."""
    with _attack(astack), astack.admin_client() as admin:
        _tamper_current(astack, username=MALLORY, password="Wrong-" + uuid.uuid4().hex)
        outcome = _rotate(astack)
        assert outcome.failed_step == "setSecret", outcome.message
        assert "do not log in" in outcome.message
        assert admin.admin.command("usersInfo", f"{MALLORY}_clone")["users"] == []


def test_doctor_fix_revokes_extra_roles_and_never_grants_missing_ones(astack: EmbeddedStack) -> None:
    sm = astack.secretsmanager_client()
    secret_id = astack.info.app_secret_id
    passive = _document(astack, VersionStage="AWSPREVIOUS")["username"]
    extra = [{"role": "read", "db": "other"}]
    missing = [{"role": "readWrite", "db": APP_DATABASE}]
    with astack.admin_client() as admin:
        admin.admin.command("grantRolesToUser", passive, roles=extra)
        admin.admin.command("revokeRolesFromUser", passive, roles=missing)
        try:
            findings = diagnose(sm, secret_id, fix=True)
            assert [(f.kind, f.fixed) for f in findings] == [("role-drift", False)], findings
            assert "revoked [read@other]" in findings[0].message
            assert "lacks [readWrite@mydb]" in findings[0].message
            assert _roles(admin, passive) == []  # the extra role is gone; the missing one was not granted
        finally:
            admin.admin.command("grantRolesToUser", passive, roles=missing)
    assert diagnose(sm, secret_id) == []
    _assert_a_normal_rotation_works(astack)


# -- rotate of a master secret; rotate --cancel (issue 15) --------------------------------


def _cli(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    for key, value in stack.info.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SECRETS_MANAGER_ENDPOINT", stack.info.secretsmanager_url)
    return main(list(argv))


def test_rotating_the_master_secret_is_refused_in_one_line_and_nothing_changes(
    astack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sm = astack.secretsmanager_client()
    admin_id = astack.info.admin_secret_id
    before = sm.describe_secret(SecretId=admin_id)
    code = _cli(astack, monkeypatch, "rotate", admin_id)
    err = capsys.readouterr().err
    assert code == 1  # refused: the operation fails before anything changed (exit 2 is for bad syntax)
    assert len(err.strip().splitlines()) == 1, err
    assert "'masterarn': is missing" in err
    after = sm.describe_secret(SecretId=admin_id)
    assert after["VersionIdsToStages"] == before["VersionIdsToStages"]
    assert "RotationRules" not in after  # no schedule was switched on
    assert _logs_in(astack, astack.info.admin_username, astack.info.admin_password)
    with astack.admin_client() as admin:
        assert admin.admin.command("usersInfo", "admin_clone")["users"] == []


def test_a_master_with_a_masterarn_of_its_own_is_refused_as_the_app_secrets_master(astack: EmbeddedStack) -> None:
    sm = astack.secretsmanager_client()
    admin_id = astack.info.admin_secret_id
    original = sm.get_secret_value(SecretId=admin_id)["SecretString"]
    labels = sm.describe_secret(SecretId=admin_id)["VersionIdsToStages"]
    # A chain of masters: the admin secret names a root secret; only the app secret's masterarn gives it away.
    sm.put_secret_value(SecretId=admin_id, SecretString=json.dumps({**json.loads(original), "masterarn": "root"}))
    try:
        with pytest.raises(RotationError, match=f"is the master secret of '{astack.info.app_secret_id}'"):
            rotate_secret(sm, admin_id, rotation_lambda_arn=astack.rotation_function_arn)
    finally:
        sm.put_secret_value(SecretId=admin_id, SecretString=original)
    assert not any("AWSPENDING" in s for s in sm.describe_secret(SecretId=admin_id)["VersionIdsToStages"].values())
    assert len(labels) >= 1


@pytest.mark.parametrize("crash_after_step", ["start", "createSecret"])
def test_cancel_drops_a_pending_version_that_never_reached_the_database(
    astack: EmbeddedStack, crash_after_step: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _people(astack)
    labels = _labels(astack)
    token = interrupted_rotation(
        astack.secretsmanager_client(),
        astack.info.app_secret_id,
        crash_after_step=crash_after_step,
        function_arn=astack.rotation_function_arn,
    ).token
    assert _cli(astack, monkeypatch, "rotate", astack.info.app_secret_id, "--cancel") == 0
    out = capsys.readouterr().out
    assert "cancelled" in out
    assert token not in _labels(astack)
    assert _labels(astack) == labels
    _assert_unchanged(astack, before)
    _assert_a_normal_rotation_works(astack)


def test_cancel_refuses_a_pending_version_whose_password_is_in_the_database(astack: EmbeddedStack) -> None:
    sm = astack.secretsmanager_client()
    token = interrupted_rotation(
        sm, astack.info.app_secret_id, crash_after_step="setSecret", function_arn=astack.rotation_function_arn
    ).token
    with pytest.raises(RotationError, match="already reached MongoDB"):
        cancel_rotation(sm, astack.info.app_secret_id)
    assert "AWSPENDING" in _labels(astack)[token]
    resumed = rotate_secret(sm, astack.info.app_secret_id, resume=True)
    assert resumed.completed, resumed.message
    assert cancel_rotation(sm, astack.info.app_secret_id).completed  # nothing left to cancel
