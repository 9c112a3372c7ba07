"""The Guard's order of checks, with recording fakes: nothing logs in as master before every refusal has run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secretswitch.client.credentials import MongoCredentials, parse_secret_dict
from secretswitch.client.errors import AuthenticationError, SecretFormatError
from secretswitch.rotation_lambda.errors import RotationError
from secretswitch.rotation_lambda.guards import Guard, master_arn_of

CURRENT = {"engine": "mongo", "host": "db", "username": "app", "password": "pw-app", "masterarn": "master"}
MASTER = {"engine": "mongo", "host": "db", "username": "admin", "password": "pw-admin", "dbname": "admin"}
READ_WRITE = [{"role": "readWrite", "db": "mydb"}]


class FakeSecrets:
    def secret_string(self, secret_id: str, *, stage: str, version_id: str | None = None) -> str:
        assert (secret_id, stage) == ("master", "AWSCURRENT")
        return json.dumps(MASTER)


class RecordingMongo:
    """Records every call; ``refused`` users fail to log in; ``roles`` answers usersInfo."""

    def __init__(self, roles: dict[str, list[dict[str, str]] | None], refused: tuple[str, ...] = ()) -> None:
        self.roles = roles
        self.refused = refused
        self.calls: list[tuple[str, str]] = []

    def check_login(self, credentials: MongoCredentials) -> None:
        self.calls.append(("login", credentials.username))
        if credentials.username in self.refused:
            raise AuthenticationError(f"refused {credentials.username}")

    def user_roles(self, master: MongoCredentials, username: str, auth_source: str) -> list[dict[str, str]] | None:
        self.calls.append(("roles", username))
        return self.roles.get(username)


def _authorize(mongo: RecordingMongo, target: str, environ: dict[str, str] | None = None) -> Any:
    guard = Guard(FakeSecrets(), mongo, environ or {})  # type: ignore[arg-type]
    current = parse_secret_dict(CURRENT, secret_id="s")
    return guard.authorize("setSecret", "s", CURRENT, current, target)


def test_a_normal_change_proves_the_current_login_before_logging_in_as_master() -> None:
    mongo = RecordingMongo({"app": READ_WRITE, "app_clone": READ_WRITE})
    authority = _authorize(mongo, "app_clone")
    assert mongo.calls == [("login", "app"), ("login", "admin"), ("roles", "app"), ("roles", "app_clone")]
    assert authority.current_roles == tuple(READ_WRITE)


def test_a_partner_that_is_the_master_is_refused_before_any_login() -> None:
    mongo = RecordingMongo({})
    with pytest.raises(RotationError, match="is the master user"):
        _authorize(mongo, "admin", {"ROTATION_USERS": "app,admin"})
    assert mongo.calls == []


def test_a_current_user_that_does_not_log_in_stops_before_the_master() -> None:
    mongo = RecordingMongo({}, refused=("app",))
    with pytest.raises(RotationError, match="do not log in"):
        _authorize(mongo, "app_clone")
    assert mongo.calls == [("login", "app")]


def test_a_target_outside_the_pair_is_refused_before_any_login() -> None:
    mongo = RecordingMongo({})
    with pytest.raises(RotationError, match="not the partner"):
        _authorize(mongo, "dba")
    assert mongo.calls == []


def test_a_richer_partner_is_refused_after_reading_roles_and_nothing_else() -> None:
    mongo = RecordingMongo({"app": READ_WRITE, "app_clone": [*READ_WRITE, {"role": "root", "db": "admin"}]})
    with pytest.raises(RotationError, match="lacks: root@admin"):
        _authorize(mongo, "app_clone")
    assert [kind for kind, _ in mongo.calls] == ["login", "login", "roles", "roles"]


def test_master_arn_of_follows_the_pin_and_refuses_any_other_master() -> None:
    pinned = {"MASTER_SECRET_ARN": "arn:master"}
    assert master_arn_of({"masterarn": " arn:master "}, "app", pinned) == "arn:master"
    assert master_arn_of({"masterarn": "arn:other"}, "app", {}) == "arn:other"  # no pin: the secret's field
    with pytest.raises(RotationError, match="MASTER_SECRET_ARN='arn:master'") as refused:
        master_arn_of({"masterarn": "arn:other"}, "app", pinned)
    assert "'arn:other'" in str(refused.value)
    with pytest.raises(SecretFormatError, match="masterarn"):
        master_arn_of({}, "app", pinned)


TLS_CURRENT = {
    **CURRENT,
    "ssl": True,
    "tlsCAFile": "/etc/app/ca.pem",
    "dbClusterIdentifier": "docdb-prod",
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"ssl": False}, "ssl"),
        ({"ssl": "false"}, "ssl"),
        ({"tls": True}, "tls"),  # even one that restates ssl
        ({"tlsCAFile": "/srv/attacker-ca.pem"}, "tlsCAFile"),
        ({"tlsAllowInvalidCertificates": True}, "tlsAllowInvalidCertificates"),
        ({"tlsAllowInvalidHostnames": True}, "tlsAllowInvalidHostnames"),
        ({"tlsInsecure": True}, "tlsInsecure"),
        ({"tlsCertificateKeyFile": "/srv/client.pem"}, "tlsCertificateKeyFile"),
        ({"tlsCRLFile": "/srv/empty.crl"}, "tlsCRLFile"),
        ({"retryWrites": True}, "retryWrites"),
        ({"dbClusterIdentifier": "another-cluster"}, "dbClusterIdentifier"),
    ],
)
def test_a_pending_version_that_changes_any_tls_field_is_refused_in_one_line(
    change: dict[str, Any], named: str
) -> None:
    """createSecret copies AWSCURRENT whole: a pending version that touches TLS was written by someone else."""
    guard = Guard(FakeSecrets(), RecordingMongo({}), {})  # type: ignore[arg-type]
    pending_document = {**TLS_CURRENT, **change, "username": "app_clone", "password": "pw-new"}
    with pytest.raises(RotationError) as refused:
        guard.check_pending(
            "setSecret",
            "s",
            current_document=TLS_CURRENT,
            current=parse_secret_dict(TLS_CURRENT, secret_id="s"),
            pending_document=pending_document,
            pending=parse_secret_dict(pending_document, secret_id="s", version_id="p"),
        )
    message = str(refused.value)
    assert message.startswith("setSecret refused: the pending version differs from AWSCURRENT in ")
    assert named in message
    assert "\n" not in message
    assert "pw-new" not in message  # names, never values
    assert "attacker-ca" not in message
