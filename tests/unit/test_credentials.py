"""Parsing secret strings into MongoCredentials: the three formats, awkward passwords, safe errors."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from secretswitch.client.credentials import MongoCredentials, parse_secret
from secretswitch.client.errors import SecretFormatError

AWKWARD = "p:a/s?s#w[o]r@d%2B+ with space"


def parse(document: dict[str, Any]) -> MongoCredentials:
    return parse_secret(json.dumps(document), secret_id="mongodb-app", version_id="v1")


def test_aws_rotation_template_format() -> None:
    creds = parse(
        {
            "engine": "mongo",
            "host": "db.example.com",
            "port": 27018,
            "username": "app",
            "password": AWKWARD,
            "dbname": "mydb",
            "ssl": True,
            "replicaSet": "rs0",
            "authSource": "admin",
            "tlsAllowInvalidHostnames": "true",
            "masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:admin",
        }
    )
    assert creds.username == "app"
    assert creds.password == AWKWARD
    assert creds.hosts == ("db.example.com:27018",)
    assert creds.database == "mydb"
    assert creds.auth_source == "admin"
    assert creds.tls is True
    assert creds.replica_set == "rs0"
    assert creds.version_id == "v1"
    kwargs = creds.client_kwargs()
    assert kwargs["password"] == AWKWARD  # a keyword argument, never spliced into a URI
    assert kwargs["host"] == ["db.example.com:27018"]
    assert kwargs["replicaSet"] == "rs0"
    assert kwargs["tls"] is True
    assert kwargs["tlsAllowInvalidHostnames"] is True


def test_auth_source_defaults_to_dbname_as_in_the_aws_templates() -> None:
    creds = parse({"engine": "mongo", "host": "h", "username": "u", "password": "p", "dbname": "mydb"})
    assert creds.auth_source == "mydb"
    assert creds.hosts == ("h:27017",)


def test_article_format_with_ipaddress_on_the_default_port() -> None:
    creds = parse({"username": "app", "password": AWKWARD, "ipaddress": "10.0.0.5", "masterarn": "arn:x"})
    assert creds.hosts == ("10.0.0.5:27017",)
    assert creds.auth_source == "admin"
    assert creds.database is None
    assert creds.password == AWKWARD


def test_uri_format_without_credentials() -> None:
    creds = parse({"uri": "mongodb://h1:1,h2:2/?replicaSet=rs0", "username": "app", "password": AWKWARD})
    assert creds.uri == "mongodb://h1:1,h2:2/?replicaSet=rs0"
    assert creds.client_kwargs()["host"] == "mongodb://h1:1,h2:2/?replicaSet=rs0"
    assert creds.client_kwargs()["password"] == AWKWARD


def test_password_with_every_awkward_character_works_with_pymongo() -> None:
    from pymongo import MongoClient

    creds = parse({"host": "127.0.0.1", "port": 1, "username": "app", "password": AWKWARD})
    # pymongo accepts the keyword arguments as they are (connect=False: no I/O).
    client: MongoClient[dict[str, Any]] = MongoClient(**creds.client_kwargs(), connect=False)
    try:
        assert client.options.pool_options._credentials.password == AWKWARD  # type: ignore[union-attr]
    finally:
        client.close()


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"host": "h", "password": AWKWARD}, "username"),
        ({"host": "h", "username": "app"}, "password"),
        ({"host": "h", "username": "app", "password": ""}, "password"),
        ({"host": "h", "username": 5, "password": AWKWARD}, "username"),
        ({"username": "app", "password": AWKWARD}, "host"),
        ({"host": "h", "port": "abc", "username": "app", "password": AWKWARD}, "port"),
        ({"host": "h", "port": 70000, "username": "app", "password": AWKWARD}, "port"),
        ({"host": "h", "ssl": "maybe", "username": "app", "password": AWKWARD}, "ssl"),
        ({"engine": "mysql", "host": "h", "username": "app", "password": AWKWARD}, "engine"),
        ({"uri": "mongodb://u:pw@h/", "username": "app", "password": AWKWARD}, "uri"),
        ({"uri": "http://h/", "username": "app", "password": AWKWARD}, "uri"),
    ],
)
def test_errors_name_the_field_and_secret_never_the_value(document: dict[str, Any], field: str) -> None:
    with pytest.raises(SecretFormatError) as failure:
        parse(document)
    message = str(failure.value)
    assert failure.value.field == field
    assert f"'{field}'" in message
    assert "mongodb-app" in message
    assert AWKWARD not in message
    assert "pw@h" not in message


@pytest.mark.parametrize("text", ["", "   ", "not json", '{"password": "p:a/s?s#w', "[1, 2]", None])
def test_bad_strings_are_rejected_without_quoting_them(text: str | None) -> None:
    with pytest.raises(SecretFormatError) as failure:
        parse_secret(text, secret_id="mongodb-app")
    assert "mongodb-app" in str(failure.value)
    assert "p:a/s" not in str(failure.value)
    assert failure.value.__cause__ is None


def test_repr_hides_the_password() -> None:
    creds = parse({"host": "h", "username": "app", "password": AWKWARD, "tlsCertificateKeyFilePassword": "kfp"})
    assert AWKWARD not in repr(creds)
    assert "kfp" not in repr(creds)
    assert "***" in repr(creds)
    assert "app" in repr(creds)


def test_snapshots_compare_by_login_not_by_version() -> None:
    a = parse({"host": "h", "username": "app", "password": "x"})
    b = dataclasses.replace(a, version_id="v2")
    assert a == b
    assert a != parse({"host": "h", "username": "app", "password": "y"})


def test_credentials_are_frozen() -> None:
    creds = parse({"host": "h", "username": "app", "password": "x"})
    with pytest.raises(AttributeError):
        creds.password = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "tls"),
    [
        ({}, False),  # missing: no TLS, and never a plaintext fallback
        ({"ssl": True}, True),
        ({"ssl": False}, False),
        ({"ssl": "TRUE"}, True),
        ({"ssl": " False "}, False),
        ({"ssl": None}, False),
        ({"tls": "true"}, True),
        ({"tls": True, "ssl": "true"}, True),
    ],
)
def test_ssl_is_read_as_aws_reads_it(fields: dict[str, Any], tls: bool) -> None:
    assert parse({"host": "h", "username": "app", "password": "x", **fields}).tls is tls


@pytest.mark.parametrize(
    ("fields", "field", "detail"),
    [
        ({"ssl": "yes"}, "ssl", 'a JSON boolean, or the string "true" or "false" in any case'),
        ({"ssl": 1}, "ssl", "not a int"),
        ({"tls": "on"}, "tls", "true or false"),
        ({"tls": True, "ssl": False}, "ssl", "disagree"),
    ],
)
def test_other_ssl_values_are_refused_with_the_allowed_values_named(
    fields: dict[str, Any], field: str, detail: str
) -> None:
    with pytest.raises(SecretFormatError) as failure:
        parse({"host": "h", "username": "app", "password": AWKWARD, **fields})
    assert failure.value.field == field
    assert detail in str(failure.value)


@pytest.mark.parametrize(
    ("document", "auth_source", "database", "hosts"),
    [
        # AWS's format, users in admin: dbname is the login database.
        ({"engine": "mongo", "host": "h", "dbname": "admin"}, "admin", "admin", ("h:27017",)),
        # AWS's format without dbname: AWS's templates log in against admin.
        ({"engine": "mongo", "host": "h"}, "admin", None, ("h:27017",)),
        ({"engine": "mongo", "host": "h", "dbname": "mydb"}, "mydb", "mydb", ("h:27017",)),
        ({"host": "h", "dbname": "mydb", "authSource": "admin"}, "admin", "mydb", ("h:27017",)),
        # The article's format: ipaddress, port 27017 implied, or an explicit port.
        ({"ipaddress": "10.0.0.5", "masterarn": "arn:m"}, "admin", None, ("10.0.0.5:27017",)),
        ({"ipaddress": "10.0.0.5", "port": "27018"}, "admin", None, ("10.0.0.5:27018",)),
    ],
)
def test_the_login_database_of_every_layout(
    document: dict[str, Any], auth_source: str, database: str | None, hosts: tuple[str, ...]
) -> None:
    creds = parse({"username": "app", "password": "x", **document})
    assert (creds.auth_source, creds.database, creds.hosts) == (auth_source, database, hosts)


# -- Amazon DocumentDB ---------------------------------------------------------

DOCDB_HOST = "docdb-prod.cluster-c1a2b3c4d5e6.eu-west-1.docdb.amazonaws.com"
DOCDB_CONSOLE_SECRET = {
    # As DocumentDB's console writes a secret (no dbname: the users live in admin).
    "engine": "mongo",
    "host": DOCDB_HOST,
    "port": 27017,
    "ssl": True,
    "username": "app",
    "password": AWKWARD,
    "dbClusterIdentifier": "docdb-prod",
    "masterarn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:docdb-master",
}


def test_a_secret_as_documentdbs_console_writes_it_connects_with_tls_and_without_retryable_writes() -> None:
    creds = parse(DOCDB_CONSOLE_SECRET)
    assert creds.documentdb is True
    assert creds.hosts == (f"{DOCDB_HOST}:27017",)
    assert creds.auth_source == "admin"
    assert creds.tls is True
    kwargs = creds.client_kwargs()
    assert kwargs["tls"] is True
    assert kwargs["retryWrites"] is False


@pytest.mark.parametrize(
    ("fields", "documentdb"),
    [
        ({"host": "h.example.com", "dbClusterIdentifier": "c1"}, True),
        ({"host": DOCDB_HOST}, True),
        ({"host": DOCDB_HOST.upper() + ".", "port": 27017}, True),
        ({"host": "c.cluster-x.cn-north-1.docdb.amazonaws.com.cn"}, True),
        ({"host": "c-123.eu-west-1.docdb-elastic.amazonaws.com"}, True),
        ({"host": f"a.example.com,{DOCDB_HOST}:27018"}, True),
        ({"uri": f"mongodb://{DOCDB_HOST}:27017/?replicaSet=rs0"}, True),
        ({"host": "db.example.com"}, False),
        ({"host": "docdb.amazonaws.com.example.com"}, False),  # only a suffix counts
        ({"uri": "mongodb://db.example.com/?appname=docdb.amazonaws.com"}, False),
    ],
)
def test_how_a_documentdb_secret_is_recognised(fields: dict[str, Any], documentdb: bool) -> None:
    creds = parse({"username": "app", "password": "pw", **fields})
    assert creds.documentdb is documentdb
    assert creds.client_kwargs().get("retryWrites") is (False if documentdb else None)


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("true", True), (False, False), ("FALSE", False)])
def test_the_secrets_retrywrites_field_overrides_the_documentdb_default(value: object, expected: bool) -> None:
    """DocumentDB 8.0.2 and later accept retryable writes: "retryWrites": true turns them back on."""
    creds = parse({**DOCDB_CONSOLE_SECRET, "retryWrites": value})
    assert creds.client_kwargs()["retryWrites"] is expected


def test_a_uri_that_sets_retrywrites_itself_is_left_alone() -> None:
    creds = parse({"username": "app", "password": "pw", "uri": f"mongodb://{DOCDB_HOST}/?retryWrites=true"})
    assert creds.documentdb is True
    assert "retryWrites" not in creds.client_kwargs()


def test_a_retrywrites_that_is_not_a_boolean_is_refused_by_name() -> None:
    with pytest.raises(SecretFormatError, match="'retryWrites': must be true or false"):
        parse({**DOCDB_CONSOLE_SECRET, "retryWrites": "sometimes"})
