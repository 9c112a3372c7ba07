"""The application stacks' scenario: a real server, concurrent HTTP load, a planned and a double rotation.

:func:`run_scenario` drives one application (started by :class:`AppServer`,
stopped by PID) through what the issue's table measured, every wait with a
deadline:

1. load from 3 local HTTP clients, 150 ms between requests (each request: one
   insert, one read; connections idle for 100 ms are dropped, so the load too
   keeps opening new connections);
2. a planned rotation (plain boto3 ``rotate_secret``); the load goes on until
   9 answers in a row report the new user (the application's client switched
   on its own schedule), then a burst of 12 concurrent requests;
3. an out-of-schedule double rotation: two ``rotate_secret`` calls back to
   back, which change the password of the user the application still holds;
   then two bursts of 12 concurrent requests (connections idle for 100 ms are
   dropped, so the bursts open new connections: new logins);
4. "after", once the apps' 2-s refresh window has passed: 21 more requests
   from 3 clients, 150 ms apart (each opens a new connection).

A request that gets no answer within 10 s counts as hung.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack, free_port

ROOT = Path(__file__).resolve().parents[2]
REQUEST_TIMEOUT = 10.0
SETTLE = 2.5  # seconds: the apps' refresh interval (STACK_REFRESH_INTERVAL, 2 s) and a margin
LOAD_PAUSE = 0.15  # longer than maxIdleTimeMS (100 ms): a connection the load left idle is replaced by a new login
LOAD_CLIENTS = 3
BURST = 12
AFTER_PER_CLIENT = 7
APP_ROLES = [{"role": "readWrite", "db": APP_DATABASE}]


@dataclass(frozen=True)
class Answer:
    ok: bool
    user: str | None
    error: str | None
    phase: str


@dataclass
class Figures:
    """What one stack did: the issue's columns, and what failed."""

    load_ok: int = 0
    load_failed: int = 0
    after_ok: int = 0
    after_failed: int = 0
    hung: int = 0
    planned_switch_seen: bool = False
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    users: set[str] = field(default_factory=set)

    def row(self) -> str:
        kinds = ", ".join(f"{kind} x{count}" for kind, count in self.errors.most_common(4)) or "-"
        return (
            f"load {self.load_ok}/{self.load_failed}  after {self.after_ok}/{self.after_failed}  hung {self.hung}  "
            f"planned switch seen: {self.planned_switch_seen}  errors: {kinds}"
        )


def provision(stack: EmbeddedStack) -> str:
    """A secret of the stack's layout with a user of its own (the first rotation creates its ``_clone``)."""
    user = f"st{uuid.uuid4().hex[:6]}"
    password = "St4ck-" + secrets.token_urlsafe(18)
    with stack.admin_client() as admin:
        admin.admin.command("createUser", user, pwd=password, roles=APP_ROLES)
    document = {
        "engine": "mongo",
        "host": stack.info.mongo_host,
        "port": stack.info.mongo_port,
        "dbname": APP_DATABASE,
        "authSource": "admin",
        "username": user,
        "password": password,
        "masterarn": stack.info.admin_secret_arn,
    }
    secret_id = f"stack-{uuid.uuid4().hex[:8]}"
    stack.secretsmanager_client().create_secret(Name=secret_id, SecretString=json.dumps(document))
    return secret_id


def rotate(stack: EmbeddedStack, secret_id: str) -> str:
    """One rotation with plain boto3, as the schedule or an operator starts it; returns the new AWSCURRENT user."""
    sm = stack.secretsmanager_client()
    sm.rotate_secret(
        SecretId=secret_id,
        RotationLambdaARN=stack.rotation_function_arn,
        RotationRules={"AutomaticallyAfterDays": 7},
    )
    return str(json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])["username"])


def request(url: str, phase: str) -> Answer:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as response:  # noqa: S310  # loopback http only
            body = json.loads(response.read())
        return Answer(True, body.get("user"), None, phase)
    except urllib.error.HTTPError as exc:
        try:
            error = str(json.loads(exc.read()).get("error"))
        except ValueError:
            error = f"HTTP {exc.code}"
        return Answer(False, None, error, phase)
    except TimeoutError:
        return Answer(False, None, "hung", phase)
    except (urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(False, None, "hung" if isinstance(reason, TimeoutError) else type(reason).__name__, phase)


class Load:
    """``LOAD_CLIENTS`` threads sending requests one after another until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.phase = "load"
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(LOAD_CLIENTS)]

    def _client(self) -> None:
        while not self._stop.is_set():
            answer = request(self.url, self.phase)
            with self._lock:
                self.answers.append(answer)
            self._stop.wait(LOAD_PAUSE)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait_until(self, condition: Callable[[list[Answer]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if condition(list(self.answers)):
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)


def concurrently(url: str, phase: str, *, clients: int, each: int = 1, pause: float = 0.0) -> list[Answer]:
    """``clients`` threads, released together, each sending ``each`` requests ``pause`` seconds apart."""
    barrier = threading.Barrier(clients)
    answers: list[Answer] = []
    lock = threading.Lock()

    def client() -> None:
        barrier.wait(timeout=10)
        for index in range(each):
            if index:
                time.sleep(pause)
            answer = request(url, phase)
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + each * (REQUEST_TIMEOUT + pause) + 10
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    answers.extend(Answer(False, None, "hung", phase) for thread in threads if thread.is_alive())
    return answers


def _streak_of(user: str, count: int) -> Callable[[list[Answer]], bool]:
    def reached(answers: list[Answer]) -> bool:
        tail = answers[-count:]
        return len(tail) == count and all(answer.ok and answer.user == user for answer in tail)

    return reached


def run_scenario(stack: EmbeddedStack, url: str, secret_id: str) -> Figures:
    """The issue's scenario, compressed to seconds (see the module docstring)."""
    answers: list[Answer] = []
    load = Load(url)
    load.start()
    try:
        load.wait_until(lambda seen: sum(answer.ok for answer in seen) >= 15, timeout=20)
        planned_user = rotate(stack, secret_id)
        switch_seen = load.wait_until(_streak_of(planned_user, 9), timeout=12)
        answers += concurrently(url, "burst", clients=BURST)
        rotate(stack, secret_id)
        rotate(stack, secret_id)  # out of schedule: the user the application holds gets a new password
        answers += concurrently(url, "burst", clients=BURST)
        answers += concurrently(url, "burst", clients=BURST)
    finally:
        load.stop()
    answers += load.answers
    # The application's client refreshes every <= 2 s: a repair that ran mid-rotation (it adopted the
    # partner, then AWSCURRENT moved on) is followed by one planned switch. "After" starts once that
    # window has passed; a handle that did not heal fails every request after it all the same.
    time.sleep(SETTLE)
    after = concurrently(url, "after", clients=LOAD_CLIENTS, each=AFTER_PER_CLIENT, pause=LOAD_PAUSE)
    figures = Figures(planned_switch_seen=switch_seen)
    for answer in [*answers, *after]:
        if answer.user:
            figures.users.add(answer.user)
        if answer.error == "hung":
            figures.hung += 1
        if not answer.ok:
            figures.errors[str(answer.error)] += 1
    figures.load_ok = sum(answer.ok for answer in answers)
    figures.load_failed = len(answers) - figures.load_ok
    figures.after_ok = sum(answer.ok for answer in after)
    figures.after_failed = len(after) - figures.after_ok
    return figures


class AppServer:
    """One application server process (and its children), started for a test and stopped by its PID."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], log: Path, port: int) -> None:
        self.argv = list(argv)
        self.env = env
        self.log = log
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/op"

    def start(self, timeout: float = 40.0) -> None:
        with self.log.open("wb") as out:
            # A session of its own: the server's workers can be stopped with it, by its PID.
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.argv[2]} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5):  # noqa: S310  # loopback http only
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise AssertionError(f"{self.argv[2]} did not answer within {timeout} s:\n{self.tail()}")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        # Workers left behind by a server that died first are in its process group (its PID).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def app_server(stack: EmbeddedStack, argv: Callable[[int], Sequence[str]], secret_id: str, log: Path) -> Iterator[Any]:
    port = free_port()
    env = {**os.environ, **stack.info.environment(), "SECRETSWITCH_SECRET_ID": secret_id}
    env.pop("SECRETSWITCH_ADMIN_MONGODB_URI", None)  # the applications log in with their secret only
    server = AppServer(argv(port), env=env, log=log, port=port)
    try:
        server.start()
        yield server
    finally:
        server.stop()
