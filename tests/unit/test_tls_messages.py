"""TLS failures named from pymongo's text: the cause and the setting to change (pure; no server).

The texts are the ones pymongo 4 raised against the embedded stack (see
tests/integration/test_tls.py, which checks the same messages end to end).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from secretswitch.client.credentials import MongoCredentials
from secretswitch.client.errors import ConfigurationError, DatabaseError, TLSError
from secretswitch.client.mongo import build_mongo_client, client_trust, tls_failure, translate_error
from secretswitch.rotation_lambda.mongo import (
    TLS_CA_FILE_ENV,
    function_ca_file,
    function_client_options,
    function_trust,
)

TIMEOUTS = "(configured timeouts: socketTimeoutMS: 20000.0ms, connectTimeoutMS: 3000.0ms), Timeout: 2.0s"
SECRET = "pa:ss/w@rd?#"
TLS = MongoCredentials("app", SECRET, hosts=("127.0.0.1:27017",), tls=True, version_id="v1")
TLS_WITH_CA = MongoCredentials(
    "app", SECRET, hosts=("127.0.0.1:27017",), tls=True, tls_options=(("tlsCAFile", "/etc/app/ca.pem"),)
)
PLAIN = MongoCredentials("app", SECRET, hosts=("127.0.0.1:27017",), tls=False)


def selection_timeout(detail: str) -> ServerSelectionTimeoutError:
    return ServerSelectionTimeoutError(f"127.0.0.1:27017: {detail} {TIMEOUTS}, Topology Description: <...>")


CASES = [
    (
        "wrong CA",
        TLS_WITH_CA,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate "
        "(_ssl.c:1006)",
        ["not signed by a CA this side trusts", "tlsCAFile ('/etc/app/ca.pem')"],
    ),
    (
        "certificate for another host name",
        TLS,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, certificate is not "
        "valid for '127.0.0.1'. (_ssl.c:1006)",
        ["not valid for the host the secret names ('127.0.0.1:27017')", "set the secret's host"],
    ),
    (
        "expired certificate",
        TLS,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)",
        ["certificate has expired", "renew the certificate"],
    ),
    (
        "certificate not valid yet",
        TLS,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate is not yet valid (_ssl.c:1006)",
        ["is not valid yet", "clock"],
    ),
    (
        "a server that speaks no TLS (answers in plaintext)",
        TLS,
        "SSL handshake failed: 127.0.0.1:27017: [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",
        ["does not speak TLS on that port", "never falls back to plaintext", '"ssl" to false only if'],
    ),
    (
        "ssl true against a plaintext server (the handshake times out)",
        TLS,
        "SSL handshake failed: 127.0.0.1:27017: _ssl.c:989: The handshake operation timed out",
        ["does not speak TLS on that port", "(no answer to the handshake)"],
    ),
    (
        "ssl true against a plaintext server (it hangs up)",
        TLS,
        "SSL handshake failed: 127.0.0.1:27017: [SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation "
        "of protocol (_ssl.c:1006)",
        ["does not speak TLS on that port", "EOF occurred in violation of protocol"],
    ),
    (
        "plaintext client at a TLS-only server",
        PLAIN,
        "[Errno 104] Connection reset by peer",
        ['set "ssl": true (and tlsCAFile) in the secret'],
    ),
]


@pytest.mark.parametrize(("case", "credentials", "detail", "expected"), CASES, ids=[case[0] for case in CASES])
def test_each_tls_failure_names_its_cause_and_the_setting_to_change(
    case: str, credentials: MongoCredentials, detail: str, expected: list[str]
) -> None:
    message = tls_failure(selection_timeout(detail), credentials)
    assert message is not None, case
    for part in expected:
        assert part in message, (case, message)
    assert "\n" not in message
    assert SECRET not in message


def test_no_server_answering_a_tls_handshake_in_time_is_still_named() -> None:
    exc = ServerSelectionTimeoutError("No servers found yet, Timeout: 5.0s, Topology Description: <...>")
    message = tls_failure(exc, TLS)
    assert message is not None
    assert "did not complete a TLS handshake" in message


@pytest.mark.parametrize(
    ("credentials", "exc"),
    [
        (TLS, selection_timeout("[Errno 111] Connection refused")),  # nothing listens: not a TLS matter
        (PLAIN, selection_timeout("[Errno 111] Connection refused")),
        (PLAIN, AutoReconnect("SSL handshake failed: [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1)")),
    ],
)
def test_other_failures_are_not_called_tls_failures(credentials: MongoCredentials, exc: Exception) -> None:
    assert tls_failure(exc, credentials) is None


def test_the_clients_error_carries_the_tls_message() -> None:
    error = translate_error(
        selection_timeout(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)"
        ),
        TLS,
    )
    assert type(error) is TLSError  # a setting to fix: the client does not start with it
    assert str(error).startswith("MongoDB unreachable for user 'app' (version v1) at '127.0.0.1:27017': TLS:")


def test_the_clients_trust_names_the_secrets_ca_file_or_the_system_store() -> None:
    assert "tlsCAFile ('/etc/app/ca.pem')" in client_trust(TLS_WITH_CA)
    assert "system's CA store" in client_trust(TLS)


def test_a_ca_file_that_is_not_on_this_host_is_named_when_the_client_is_built(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    credentials = MongoCredentials(
        "app", SECRET, hosts=("127.0.0.1:1",), tls=True, tls_options=(("tlsCAFile", str(missing)),)
    )
    with pytest.raises(
        DatabaseError, match=r"tlsCAFile '.*nowhere/ca.pem' is not a readable file on this host"
    ) as info:
        build_mongo_client(credentials, {})
    assert SECRET not in str(info.value)


def test_a_ca_file_that_is_not_pem_is_named_when_the_client_is_built(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    credentials = MongoCredentials(
        "app", SECRET, hosts=("127.0.0.1:1",), tls=True, tls_options=(("tlsCAFile", str(garbage)),)
    )
    with pytest.raises(DatabaseError, match=r"a TLS file could not be loaded \(OpenSSL: no certificate or crl found"):
        build_mongo_client(credentials, {})


# -- the rotation function's own CA (TLS_CA_FILE) ---------------------------------------


def test_the_functions_ca_is_resolved_from_the_package_root_and_replaces_the_secrets(tmp_path: Path) -> None:
    (tmp_path / "global-bundle.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    environ = {TLS_CA_FILE_ENV: "global-bundle.pem", "LAMBDA_TASK_ROOT": str(tmp_path)}
    assert function_ca_file(environ) == tmp_path / "global-bundle.pem"
    options = function_client_options(TLS_WITH_CA, environ)
    assert options["tlsCAFile"] == str(tmp_path / "global-bundle.pem")
    # build_mongo_client lets the options win over the secret's tlsCAFile (a path on the application's host).
    assert "tlsCAFile" not in function_client_options(PLAIN, environ)  # never turns TLS on by itself
    assert "TLS_CA_FILE ('global-bundle.pem')" in function_trust(TLS_WITH_CA, environ)


def test_without_tls_ca_file_the_function_uses_the_secrets_ca_and_says_where_to_set_its_own() -> None:
    assert "tlsCAFile" not in function_client_options(TLS_WITH_CA, {})
    assert function_ca_file({}) is None
    trust = function_trust(TLS_WITH_CA, {})
    assert "the secret's tlsCAFile ('/etc/app/ca.pem', a path on the application's host)" in trust
    assert "set TLS_CA_FILE to the CA bundle" in trust
    assert "system's CA store" in function_trust(TLS, {})


def test_a_tls_ca_file_that_is_not_in_the_package_is_a_configuration_error(tmp_path: Path) -> None:
    environ = {TLS_CA_FILE_ENV: "global-bundle.pem", "LAMBDA_TASK_ROOT": str(tmp_path)}
    with pytest.raises(ConfigurationError, match=r"TLS_CA_FILE='global-bundle.pem': .* cannot be read .*--ca-bundle"):
        function_client_options(TLS, environ)


# -- --tls on the command line ------------------------------------------------------------


def _demo_config(argv: list[str], environ: dict[str, str] | None = None) -> Any:
    import argparse

    from secretswitch.demo_app.config import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv), environ or {})


def test_demo_tls_is_for_the_embedded_stack_only() -> None:
    assert _demo_config(["--tls"]).tls is True
    assert _demo_config([]).tls is False
    with pytest.raises(ConfigurationError, match="--tls makes a CA for the embedded stack"):
        _demo_config(["--tls", "--secret-id", "prod/mongodb-app"])
    with pytest.raises(ConfigurationError, match="--tls makes a CA for the embedded stack"):
        _demo_config(["--tls"], {"MONGODB_URI": "mongodb://admin:pw@db.example.com/"})
