"""TLS end to end on a TLS-only embedded stack: rotation under load, DocumentDB's secret format, clear failures.

* The stack's own secret (``"ssl": true`` + ``tlsCAFile``) is rotated 4 times
  with plain boto3 ``rotate_secret`` while 8 threads insert and read through a
  ``RotatingMongoClient``: 0 failed operations, every acknowledged write there.
* A secret as DocumentDB's console writes it (no ``tlsCAFile``,
  ``dbClusterIdentifier``) rotates the same way: the function takes its CA from
  its own ``TLS_CA_FILE``, the application from its ``mongo_options``; the
  client runs with ``retryWrites=false``.
* Five TLS failures (a wrong CA, a certificate for another host name, an
  expired one, a server that speaks no TLS, ``"ssl": true`` against a plaintext
  MongoDB) each give one error naming the cause and the setting, for the
  client, the rotation function and ``secretswitch doctor`` — and a plaintext
  client at the TLS-only server is told to turn TLS on. The bad certificates
  are made here, with cryptography.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
import socket
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from secretswitch.cli import main as cli_main
from secretswitch.client import RefreshPolicy, RotatingMongoClient
from secretswitch.client.credentials import MongoCredentials, parse_secret
from secretswitch.client.errors import TLSError
from secretswitch.client.mongo import build_mongo_client
from secretswitch.embedded_stack.moto_server import register_rotation_function, unregister_rotation_function
from secretswitch.embedded_stack.stack import APP_DATABASE, TLS_CA_FILE_ENV, EmbeddedStack, SecantusServer
from secretswitch.embedded_stack.tls import CertificateAuthority, TlsFiles, new_certificate_authority, write_tls_files
from secretswitch.rotation_lambda.lambda_function import make_handler
from secretswitch.rotation_lambda.mongo import function_client_options
from secretswitch.rotation_tools.rotate import rotate_secret
from tests.conftest import FakeClock
from tests.helpers import settle

REGION = "me-central-1"
ACCOUNT = "123456789012"
ROTATIONS = 4
WORKERS = 8
POLICY = RefreshPolicy(refresh_interval=600.0, jitter=0.1, backoff_base=1.0, backoff_cap=10.0)
APP_ROLES = [{"role": "readWrite", "db": APP_DATABASE}]
# The failure cases wait for pymongo's server selection: keep it short (the messages do not depend on it).
QUICK = {"serverSelectionTimeoutMS": 2000, "connectTimeoutMS": 1000}


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(region=REGION, tls=True) as running:
        yield running


def _ca_file(stack: EmbeddedStack) -> str:
    assert stack.info.tls_ca_file is not None
    return stack.info.tls_ca_file


def _function(stack: EmbeddedStack, name: str, environ: dict[str, str], **options: Any) -> str:
    """Register a rotation function with its own configuration (``environ``) on the stack; returns its ARN."""
    arn = f"arn:aws:lambda:{stack.region}:{ACCOUNT}:function:{name}"

    def factory(credentials: MongoCredentials) -> MongoClient[dict[str, Any]]:
        # The function's own options (its TLS_CA_FILE included), with shorter timeouts where asked.
        return build_mongo_client(credentials, {**function_client_options(credentials, environ), **options})

    handler = make_handler(
        secretsmanager_client_factory=stack.secretsmanager_client, mongo_client_factory=factory, environ=environ
    )
    register_rotation_function(arn, lambda event: handler(event, None))
    return arn


# -- the stack itself --------------------------------------------------------------


def test_a_tls_stack_says_ssl_names_its_ca_keeps_its_key_private_and_removes_it_on_exit() -> None:
    stack = EmbeddedStack(region="il-central-1", tls=True)
    with stack:
        info = stack.info
        assert info.tls_ca_file is not None
        sm = stack.secretsmanager_client()
        for secret_id in (info.app_secret_id, info.admin_secret_id):
            document = json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])
            assert document["ssl"] is True
            assert document["tlsCAFile"] == info.tls_ca_file
        environment = info.environment()
        assert environment[TLS_CA_FILE_ENV] == info.tls_ca_file
        assert "tls=true&tlsCAFile=" in environment["SECRETSWITCH_ADMIN_MONGODB_URI"]
        assert stack.tls is not None
        assert stat.S_IMODE(stack.tls.key_file.stat().st_mode) == 0o600
        certificate = x509.load_pem_x509_certificate(stack.tls.cert_file.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]
        with stack.admin_client() as admin:  # verifies the certificate and the host name
            assert admin.admin.command("ping")["ok"] == 1
        # The server speaks TLS only: a plaintext client gets no answer at all.
        plain: MongoClient[dict[str, Any]] = MongoClient(
            info.mongo_host, info.mongo_port, serverSelectionTimeoutMS=1000
        )
        with plain, pytest.raises(PyMongoError):
            plain.admin.command("ping")
        folder = stack.tls.folder
    assert not folder.exists()
    assert stack.leftovers() == []


def test_local_tls_refuses_an_external_mongodb_before_anything_starts(tmp_path: Path) -> None:
    from secretswitch.embedded_stack.errors import LocalStackError

    with pytest.raises(LocalStackError, match="put tls=true and tlsCAFile"):
        EmbeddedStack(tls=True, mongodb_uri="mongodb://admin:pw@127.0.0.1:1/?authSource=admin", work_dir=tmp_path / "w")
    assert not (tmp_path / "w").exists()


# -- rotation under load -------------------------------------------------------------


@dataclass
class Load:
    """Worker threads inserting and reading through the rotating client."""

    rc: RotatingMongoClient
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    stop: threading.Event = field(default_factory=threading.Event)
    acknowledged: list[tuple[int, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for worker in range(WORKERS):
            thread = threading.Thread(target=self._work, args=(worker,), name=f"tls-worker-{worker}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _work(self, worker: int) -> None:
        seq = 0
        while not self.stop.is_set():
            seq += 1
            document = {"_id": uuid.uuid4().hex, "run": self.run_id, "worker": worker, "seq": seq}
            try:
                self.rc.run(lambda db, document=document: db["tls_writes"].insert_one(document))
                with self.lock:
                    self.acknowledged.append((worker, seq))
                self.rc.run(lambda db: db["tls_writes"].find_one({"run": self.run_id}, projection={"_id": 1}))
            except Exception as exc:
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
            self.stop.wait(0.005)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _rotate_under_load(
    stack: EmbeddedStack, secret_id: str, *, rotation_arn: str, mongo_options: dict[str, Any]
) -> dict[str, Any]:
    sm = stack.secretsmanager_client()
    clock = FakeClock()
    rc = RotatingMongoClient(
        secret_id,
        database=APP_DATABASE,
        secretsmanager_client=sm,
        policy=POLICY,
        clock=clock,
        mongo_options={"serverSelectionTimeoutMS": 3000, **mongo_options},
        close_grace=0.1,  # operations go through run(): no handle outlives a switch
    )
    load = Load(rc)
    users = [rc.active_user]
    retry_writes = rc.client.options.retry_writes
    try:
        load.start()
        for rotation in range(1, ROTATIONS + 1):
            sm.rotate_secret(
                SecretId=secret_id, RotationLambdaARN=rotation_arn, RotationRules={"AutomaticallyAfterDays": 7}
            )
            stages = sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
            assert not any("AWSPENDING" in labels for labels in stages.values()), (rotation, stages)
            current = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
            clock.advance(POLICY.refresh_interval + 1)  # the client's next refresh is due: it switches
            rc.run(lambda db: db.command("ping"))
            settle(rc)
            assert rc.credentials.version_id == current["VersionId"], rotation
            users.append(rc.active_user)
    finally:
        load.finish()
    current = parse_secret(sm.get_secret_value(SecretId=secret_id)["SecretString"], secret_id=secret_id)
    with build_mongo_client(current, mongo_options) as reader:  # TLS, verified, as the application connects
        found = [
            (doc["worker"], doc["seq"])
            for doc in reader[APP_DATABASE]["tls_writes"].find({"run": load.run_id}, projection={"_id": 0})
        ]
    rc.close()
    assert load.failures == [], load.failures[:5]
    assert sorted(found) == sorted(load.acknowledged), "an acknowledged write is missing or duplicated"
    assert len(load.acknowledged) > 0
    return {"users": users, "writes": len(load.acknowledged), "retry_writes": retry_writes}


def test_the_tls_stack_rotates_four_times_under_an_eight_thread_load_without_a_failed_operation(
    tls_stack: EmbeddedStack,
) -> None:
    result = _rotate_under_load(
        tls_stack, tls_stack.info.app_secret_id, rotation_arn=tls_stack.rotation_function_arn, mongo_options={}
    )
    first = result["users"][0]
    partner = "app_clone" if first == "app" else "app"
    assert result["users"] == [first, partner] * (ROTATIONS // 2) + [first]


def _documentdb_secret(stack: EmbeddedStack, username: str, password: str) -> dict[str, Any]:
    """The fields DocumentDB's console writes (no tlsCAFile, no dbname: the users live in admin)."""
    return {
        "engine": "mongo",
        "host": stack.info.mongo_host,
        "port": stack.info.mongo_port,
        "ssl": True,
        "username": username,
        "password": password,
        "dbClusterIdentifier": "docdb-local",
    }


def test_a_secret_as_documentdbs_console_writes_it_rotates_on_the_tls_stack(tls_stack: EmbeddedStack) -> None:
    sm = tls_stack.secretsmanager_client()
    ca = _ca_file(tls_stack)
    master = _documentdb_secret(tls_stack, tls_stack.info.admin_username, tls_stack.info.admin_password)
    master_arn = sm.create_secret(Name=f"docdb-master-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(master))["ARN"]
    user, password = f"d{uuid.uuid4().hex[:6]}", "Docdb-" + secrets.token_urlsafe(18)
    tls_stack.create_user(user, password, roles=APP_ROLES)
    document = {**_documentdb_secret(tls_stack, user, password), "masterarn": master_arn}
    secret_id = f"docdb-app-{uuid.uuid4().hex[:6]}"
    sm.create_secret(Name=secret_id, SecretString=json.dumps(document))
    # The function's CA is its own setting (a file in its zip on Lambda), not a field of the secret.
    arn = _function(tls_stack, "docdb-rotation", {"TLS_CA_FILE": ca, "MASTER_SECRET_ARN": master_arn})
    try:
        # The application names the CA on its own host.
        result = _rotate_under_load(tls_stack, secret_id, rotation_arn=arn, mongo_options={"tlsCAFile": ca})
    finally:
        unregister_rotation_function(arn)
    assert result["retry_writes"] is False  # DocumentDB (before 8.0.2) refuses retryable writes
    assert result["users"] == [user, f"{user}_clone"] * (ROTATIONS // 2) + [user]
    current = json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])
    assert {k: v for k, v in current.items() if k not in ("username", "password")} == {
        k: v for k, v in document.items() if k not in ("username", "password")
    }


# -- failures: each one named, never a plaintext fallback --------------------------------


@contextlib.contextmanager
def _no_tls_server() -> Iterator[tuple[str, int]]:
    """A loopback server that answers anything in plaintext (as a web server on the wrong port would)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                try:
                    connection.settimeout(2)
                    connection.recv(1024)
                    connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, name="no-tls-server", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Case:
    """One TLS failure: where the secret points, the CA it names, and what every message must say."""

    name: str
    host: str
    port: int
    ca_file: str | None
    expected: tuple[str, ...]
    ssl: bool = True


@pytest.fixture(scope="module")
def cases(tls_stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Case]]:
    folder = tmp_path_factory.mktemp("bad-tls")
    trusted = new_certificate_authority("test CA the clients trust")
    stranger = new_certificate_authority("a CA nobody here trusts")
    now = dt.datetime.now(dt.UTC)

    def files(name: str, ca: CertificateAuthority, **issue: Any) -> TlsFiles:
        return write_tls_files(folder / name, ca, ca.issue_server_certificate(**issue))

    other_host = files("other-host", trusted, hosts=["db.example.com"])
    expired = files("expired", trusted, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))
    wrong_ca = files("wrong-ca", stranger)
    servers = {
        "other-host": SecantusServer(folder / "d1", folder / "l1", tls=other_host),
        "expired": SecantusServer(folder / "d2", folder / "l2", tls=expired),
        "plaintext": SecantusServer(folder / "d3", folder / "l3"),
    }
    with contextlib.ExitStack() as cleanup:
        for server in servers.values():
            cleanup.callback(server.stop)
            server.start(auth=False)
        no_tls_host, no_tls_port = cleanup.enter_context(_no_tls_server())
        stack_host, stack_port = tls_stack.info.mongo_host, tls_stack.info.mongo_port
        ca_file = str(other_host.ca_file)  # the CA that signed the bad servers' certificates
        yield {
            case.name: case
            for case in (
                Case("wrong CA", stack_host, stack_port, str(wrong_ca.ca_file),
                     ("not signed by a CA this side trusts", "unable to get local issuer certificate")),
                Case("certificate for another host name", "127.0.0.1", servers["other-host"].port, ca_file,
                     ("not valid for the host the secret names", "IP address mismatch", "set the secret's host")),
                Case("expired certificate", "127.0.0.1", servers["expired"].port, ca_file,
                     ("certificate has expired", "renew the certificate")),
                Case("a server that speaks no TLS", no_tls_host, no_tls_port, ca_file,
                     ("does not speak TLS on that port", "wrong version number", "never falls back to plaintext")),
                Case("ssl true against a plaintext server", "127.0.0.1", servers["plaintext"].port, ca_file,
                     ("does not speak TLS on that port", '"ssl" to false only if')),
                Case("plaintext client at the TLS-only server", stack_host, stack_port, None,
                     ('if it requires TLS, set "ssl": true',), ssl=False),
            )
        }  # fmt: skip


FAILURES = [
    "wrong CA",
    "certificate for another host name",
    "expired certificate",
    "a server that speaks no TLS",
    "ssl true against a plaintext server",
]


def _secret_for(stack: EmbeddedStack, case: Case) -> str:
    document: dict[str, Any] = {
        "engine": "mongo",
        "host": case.host,
        "port": case.port,
        "ssl": case.ssl,
        "username": "app",
        "password": "Never-" + secrets.token_urlsafe(12),
        "dbname": APP_DATABASE,
        "authSource": "admin",
        "masterarn": stack.info.admin_secret_arn,
    }
    if case.ca_file is not None:
        document["tlsCAFile"] = case.ca_file
    secret_id = f"tls-case-{uuid.uuid4().hex[:8]}"
    stack.secretsmanager_client().create_secret(Name=secret_id, SecretString=json.dumps(document))
    return secret_id


def _assert_named(message: str, case: Case, password: str) -> None:
    for part in case.expected:
        assert part in message, (case.name, message)
    assert "\n" not in message
    assert password not in message


def _password(stack: EmbeddedStack, secret_id: str) -> str:
    return str(
        json.loads(stack.secretsmanager_client().get_secret_value(SecretId=secret_id)["SecretString"])["password"]
    )


@pytest.mark.parametrize("name", [*FAILURES, "plaintext client at the TLS-only server"])
def test_the_client_names_each_tls_failure_and_never_falls_back_to_plaintext(
    tls_stack: EmbeddedStack, cases: dict[str, Case], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With TLS on, the client refuses to start with a TLSError naming the cause and the setting; with it off
    (a plaintext client at the TLS-only server) the first login check is logged and operations fail. Either
    way nothing falls back to plaintext: the plaintext servers here take no login, so one that did would work."""
    case = cases[name]
    secret_id = _secret_for(tls_stack, case)
    caplog.set_level(logging.WARNING, logger="secretswitch.client")
    if case.ssl:
        with pytest.raises(TLSError) as refused:
            RotatingMongoClient(secret_id, secretsmanager_client=tls_stack.secretsmanager_client(), mongo_options=QUICK)
        message = str(refused.value)
        assert "MongoDB unreachable for user 'app'" in message
        assert ": TLS: " in message
        _assert_named(message, case, _password(tls_stack, secret_id))
        return
    rc = RotatingMongoClient(secret_id, secretsmanager_client=tls_stack.secretsmanager_client(), mongo_options=QUICK)
    try:
        messages = [r.getMessage() for r in caplog.records if "first login check failed" in r.getMessage()]
        assert len(messages) == 1, messages
        assert "MongoDB unreachable for user 'app'" in messages[0]
        _assert_named(messages[0], case, _password(tls_stack, secret_id))
        with pytest.raises(PyMongoError):
            rc.run(lambda db: db.command("ping"))
    finally:
        rc.close()


@pytest.mark.parametrize("name", FAILURES)
def test_the_rotation_function_fails_setsecret_with_the_tls_cause_and_its_own_ca_setting(
    tls_stack: EmbeddedStack, cases: dict[str, Case], name: str
) -> None:
    case = cases[name]
    secret_id = _secret_for(tls_stack, case)
    arn = _function(tls_stack, f"tls-case-{uuid.uuid4().hex[:6]}", {}, **QUICK)
    try:
        outcome = rotate_secret(tls_stack.secretsmanager_client(), secret_id, rotation_lambda_arn=arn)
    finally:
        unregister_rotation_function(arn)
    assert outcome.failed_step == "setSecret", outcome.message
    _assert_named(outcome.message, case, _password(tls_stack, secret_id))
    if name == "wrong CA":  # the function says which CA it used and where its own setting is
        assert "the secret's tlsCAFile" in outcome.message
        assert "set TLS_CA_FILE" in outcome.message


@pytest.mark.parametrize("name", FAILURES)
def test_doctor_says_the_tls_cause_in_one_line_and_exits_non_zero(
    tls_stack: EmbeddedStack,
    cases: dict[str, Case],
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = cases[name]
    secret_id = _secret_for(tls_stack, case)
    for key, value in tls_stack.info.environment().items():
        monkeypatch.setenv(key, value)
    code = cli_main(["doctor", secret_id, "--region", tls_stack.region])
    out, err = capsys.readouterr()
    assert code != 0
    lines = [line for line in (out + err).splitlines() if line.strip()]
    # doctor reports every finding: this test secret has no rotation configured, and the TLS cause is one line.
    unreachable = [line for line in lines if "database-unreachable" in line]
    assert len(unreachable) == 1, lines
    assert {line.split()[1] for line in lines} <= {"database-unreachable:", "rotation-disabled:"}, lines
    _assert_named(unreachable[0], case, _password(tls_stack, secret_id))


def test_without_its_own_ca_the_function_cannot_reach_a_documentdb_secret_and_says_to_set_tls_ca_file(
    tls_stack: EmbeddedStack,
) -> None:
    """DocumentDB's secret names no CA: with no TLS_CA_FILE the function trusts only the system store."""
    sm = tls_stack.secretsmanager_client()
    document = {
        **_documentdb_secret(tls_stack, "app", "Never-" + secrets.token_urlsafe(12)),
        "masterarn": tls_stack.info.admin_secret_arn,
    }
    secret_id = f"docdb-no-ca-{uuid.uuid4().hex[:6]}"
    sm.create_secret(Name=secret_id, SecretString=json.dumps(document))
    arn = _function(tls_stack, f"docdb-no-ca-{uuid.uuid4().hex[:6]}", {}, **QUICK)
    try:
        outcome = rotate_secret(sm, secret_id, rotation_lambda_arn=arn)
    finally:
        unregister_rotation_function(arn)
    assert outcome.failed_step == "setSecret"
    assert "not signed by a CA this side trusts" in outcome.message
    assert "system's CA store only" in outcome.message
    assert "set TLS_CA_FILE" in outcome.message


def test_local_tls_exports_its_ca_and_status_and_doctor_work_through_it() -> None:
    """`secretswitch local --tls` as a user runs it; the printed exports reach the TLS-only stack; Ctrl-C removes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "secretswitch", "local", "--tls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C" in line:
                break
        output = "".join(lines)
        exports = {
            key: value.strip().strip("'")
            for key, value in (
                line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export ")
            )
        }
        ca_file = Path(exports[TLS_CA_FILE_ENV])
        assert ca_file.is_file(), output
        assert f"signed by the stack's own CA {ca_file}" in output
        with MongoClient(exports["SECRETSWITCH_ADMIN_MONGODB_URI"], serverSelectionTimeoutMS=5000) as admin:
            assert admin.admin.command("usersInfo", "app")["users"][0]["user"] == "app"
        env = {**os.environ, **exports}
        for command in (["status", "mongodb-app"], ["doctor", "mongodb-app"]):
            result = subprocess.run(
                [sys.executable, "-m", "secretswitch", *command], env=env, capture_output=True, text=True, timeout=60,
                check=False,
            )  # fmt: skip
            assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert "healthy" in result.stdout
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert not ca_file.exists()
        assert not ca_file.parent.parent.exists()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


def test_demo_tls_passes_with_every_write_checked_over_tls(tmp_path: Path) -> None:
    """`secretswitch demo --tls`: rotations under load on a TLS-only stack, the final check of every write over TLS."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("SECRETSWITCH_SECRET_ID", "MONGODB_URI")}
    env.pop("AWS_ENDPOINT_URL_SECRETS_MANAGER", None)
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "secretswitch", "demo", "--tls", "--rotations", "4", "--day-seconds", "0.2",
         "--rate", "120", "--seed", "7", "--plain", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tls"] is True
    assert summary["ops_failed"] == 0
    assert summary["writes_lost"] == 0
    assert summary["writes_duplicated"] == 0
    assert summary["writes_acknowledged"] > 0
    assert summary["rotations"] == summary["switches"] == 4
    assert "TLS only" in result.stdout
