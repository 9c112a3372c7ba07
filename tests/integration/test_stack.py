"""The embedded stack starts, is provisioned as the seed article says, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pymongo.errors import OperationFailure

from secretswitch.client.credentials import parse_secret
from secretswitch.embedded_stack.errors import LocalStackError
from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack, SecantusServer, free_port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes: check /proc where it exists.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def fresh() -> EmbeddedStack:
    """A stack of this module's own (another region), untouched by other tests."""
    with EmbeddedStack(region="eu-west-1") as running:
        yield running


def test_app_secret_has_the_rotation_template_format(fresh: EmbeddedStack) -> None:
    sm = fresh.secretsmanager_client()
    app = json.loads(sm.get_secret_value(SecretId="mongodb-app")["SecretString"])
    admin = sm.describe_secret(SecretId="mongodb-admin")
    assert set(app) >= {"engine", "host", "port", "username", "password", "dbname", "ssl", "masterarn"}
    assert app["engine"] == "mongo"
    assert app["username"] == "app"
    assert app["ssl"] is False
    assert app["port"] == fresh.mongo.port
    assert app["masterarn"] == admin["ARN"]


def test_app_reads_and_writes_its_database(fresh: EmbeddedStack) -> None:
    sm = fresh.secretsmanager_client()
    creds = parse_secret(sm.get_secret_value(SecretId="mongodb-app")["SecretString"], secret_id="mongodb-app")
    with fresh.mongo_client(creds.username, creds.password) as client:
        assert client[APP_DATABASE]["items"].find_one({"_id": "seed"}) is not None
        client[APP_DATABASE]["items"].insert_one({"by": "app"})
        assert client[APP_DATABASE]["items"].count_documents({"by": "app"}) == 1


def test_app_cannot_change_its_own_password(fresh: EmbeddedStack) -> None:
    password = fresh.info.app_passwords["app"]
    with fresh.mongo_client("app", password) as client, pytest.raises(OperationFailure) as failure:
        client.admin.command("updateUser", "app", pwd="something-else")
    assert failure.value.code == 13


def test_app_cannot_touch_other_databases(fresh: EmbeddedStack) -> None:
    with fresh.mongo_client("app", fresh.info.app_passwords["app"]) as client:
        with pytest.raises(OperationFailure) as write:
            client["otherdb"]["things"].insert_one({"x": 1})
        with pytest.raises(OperationFailure) as read:
            client["otherdb"]["things"].find_one()
    assert write.value.code == 13
    assert read.value.code == 13


def test_admin_can_change_the_clone_password(fresh: EmbeddedStack) -> None:
    with fresh.admin_client() as admin:
        admin.admin.command("updateUser", "app_clone", pwd="a new one: /?#[]@%+")
    with fresh.mongo_client("app_clone", "a new one: /?#[]@%+") as client:
        assert client[APP_DATABASE]["items"].find_one({"_id": "seed"}) is not None


def test_wrong_password_fails_with_error_18(fresh: EmbeddedStack) -> None:
    with fresh.mongo_client("app", "not the password") as client, pytest.raises(OperationFailure) as failure:
        client[APP_DATABASE]["items"].find_one()
    assert failure.value.code == 18


def test_taken_port_gives_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = SecantusServer(tmp_path / "data", tmp_path / "log", port=port)
        with pytest.raises(LocalStackError, match=rf"SecantusDB: port {port} .* already in use"):
            server.start(auth=True)
    assert server.pid is None


def test_server_that_dies_on_start_shows_its_log(tmp_path: Path) -> None:
    # A file where the data directory should be makes SecantusDB exit at once.
    (tmp_path / "data").write_text("not a directory")
    server = SecantusServer(tmp_path / "data", tmp_path / "log", port=free_port())
    with pytest.raises(LocalStackError, match="SecantusDB: exited with code") as failure:
        server.start(auth=True, timeout=20)
    assert "last lines of" in str(failure.value)
    assert not server.running


def test_local_command_leaves_no_process_behind(tmp_path: Path) -> None:
    """`secretswitch local` as a user runs it: start, read the env, Ctrl-C, everything gone."""
    process = subprocess.Popen(
        [sys.executable, "-m", "secretswitch", "local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    try:
        _test_running_local(process, lines)
    finally:
        if process.poll() is None:  # a failed assertion must not leave the stack running
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


def _test_running_local(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C" in line:
            break
    output = "".join(lines)
    assert "export AWS_ENDPOINT_URL_SECRETS_MANAGER='http://127.0.0.1:" in output, output
    exports = dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))
    exports = {key: value.strip().strip("'") for key, value in exports.items()}
    assert exports["SECRETSWITCH_SECRET_ID"] == "mongodb-app"
    pid = int(output.split("SecantusDB pid ")[1].split()[0])
    mongo_port = int(output.split(" on 127.0.0.1:")[1].split(";")[0])
    sm_port = int(exports["AWS_ENDPOINT_URL_SECRETS_MANAGER"].rsplit(":", 1)[1])
    data_dir = Path(output.split("data in ")[1].split()[0])

    # The printed environment really points at a working stack.
    from pymongo import MongoClient

    assert "MONGODB_URI" not in exports, "the tool reads MONGODB_URI as an input: it must not export it"
    with MongoClient(exports["SECRETSWITCH_ADMIN_MONGODB_URI"], serverSelectionTimeoutMS=5000) as admin:
        assert admin.admin.command("usersInfo", "app")["users"][0]["user"] == "app"
    assert _pid_alive(pid)

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert not _pid_alive(pid), "SecantusDB outlived `secretswitch local`"
    assert not _listening(mongo_port)
    assert not _listening(sm_port)
    assert not data_dir.exists()


def test_stack_stops_every_process_when_the_body_fails() -> None:
    started: dict[str, int] = {}
    failing = EmbeddedStack(region="eu-central-1")
    work_dir = failing.work_dir
    assert not work_dir.exists(), "the folder is made by start(), not by the constructor"

    def body() -> None:
        with failing:
            assert work_dir.is_dir()
            assert failing.leftovers(), "a running stack has processes and a folder"
            assert failing.mongo.pid is not None
            started["pid"] = failing.mongo.pid
            started["port"] = failing.mongo.port
            started["sm_port"] = failing.secretsmanager.port
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        body()
    assert not _pid_alive(started["pid"])
    assert not _listening(started["port"])
    assert not _listening(started["sm_port"])
    assert not work_dir.exists()
    assert failing.leftovers() == []


def test_a_second_stack_in_the_same_region_is_refused(fresh: EmbeddedStack) -> None:
    """moto keeps one state per region and process: sharing one would mix two stacks' secrets."""
    second = EmbeddedStack(region=fresh.region)
    with pytest.raises(LocalStackError, match="already uses region 'eu-west-1'"):
        second.start()
    second.stop()  # harmless, and must not free the region the first stack holds
    third = EmbeddedStack(region=fresh.region)
    with pytest.raises(LocalStackError, match="already uses region"):
        third.start()
    assert not second.work_dir.exists(), "a refused start leaves no folder"
    assert not third.work_dir.exists(), "a refused start leaves no folder"


# The log lines `secretswitch -v local` writes as start-up goes, in order; each is a moment to press Ctrl-C.
START_UP_MOMENTS = [
    "embedded stack: folder",  # the folder exists, nothing runs yet
    "moto Secrets Manager listening",  # moto runs, SecantusDB not yet
    "auth=False",  # SecantusDB started without --auth: waiting for it, then provisioning the users
    "users created; restarting SecantusDB with --auth",  # stopping the unauthenticated server
    "SecantusDB stopped",  # between the unauthenticated server and the --auth one
    "auth=True",  # the --auth server starting
]


@pytest.mark.parametrize("moment", START_UP_MOMENTS)
def test_ctrl_c_at_any_moment_of_start_up_leaves_no_process_and_no_folder(moment: str, tmp_path: Path) -> None:
    """A person presses Ctrl-C while `secretswitch local` starts: nothing it started survives."""
    process = subprocess.Popen(
        [sys.executable, "-m", "secretswitch", "-v", "local", "--region", "us-east-2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert process.stdout is not None
    lines: list[str] = []
    interrupted_at = None
    watchdog = threading.Timer(120, process.kill)  # never hang the suite, whatever happens
    watchdog.start()
    try:
        for line in iter(process.stdout.readline, ""):
            lines.append(line)
            if interrupted_at is None and (moment in line or "Press Ctrl-C" in line):
                process.send_signal(signal.SIGINT)
                interrupted_at = line
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    output = "".join(lines)
    assert interrupted_at is not None, output
    assert moment in interrupted_at, f"start-up never reached {moment!r}:\n{output}"
    pids = [
        int(part.split("pid ")[1].split(",")[0]) for part in output.splitlines() if "SecantusDB starting: pid" in part
    ]
    assert process.returncode in (0, 130), output
    assert "Traceback" not in output, output
    for pid in pids:
        assert not _pid_alive(pid), f"SecantusDB pid {pid} survived a Ctrl-C at {moment!r}"
    assert not list(tmp_path.glob("secretswitch-stack-*")), f"a folder survived a Ctrl-C at {moment!r}"
    assert "every process started was ended" in output.splitlines()[-1], output
