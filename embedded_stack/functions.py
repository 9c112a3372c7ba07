"""Any rotation function on the local stack: Python handlers under Lambda ARNs, each run in a worker process.

``secretswitch local --rotation-function NAME=module:function`` (or
``EmbeddedStack(rotation_functions=[RotationFunction(...)])``) registers the
handler under ``arn:aws:lambda:<region>:<account>:function:NAME``; a
``RotateSecret`` naming that ARN then runs it step by step through the same
contract code as the stack's own function (:mod:`embedded_stack.moto_server`).

How a handler runs, and why:

* **A process of its own** (:mod:`embedded_stack.worker`, a standard-library
  script speaking JSON lines over pipes): a handler that calls ``sys.exit``,
  leaks threads, changes ``os.environ`` or imports another pymongo cannot
  touch the stack. The worker is kept warm between invocations, as a Lambda
  execution environment is; one that exits, times out or breaks the protocol
  is killed (its whole process group) and the next invocation starts a new
  one. Concurrent invocations get a worker each.
* **Lambda's environment, not the caller's**: a small allow-list of the parent's
  variables (``PATH``, ``HOME``, locale), the ``AWS_LAMBDA_*`` variables, the
  region, dummy credentials, and the stack's endpoint as
  ``AWS_ENDPOINT_URL_SECRETS_MANAGER``, ``AWS_ENDPOINT_URL`` and
  ``SECRETS_MANAGER_ENDPOINT`` (AWS's templates read the last one), then the
  function's own ``environment``. ``AWS_CONFIG_FILE`` and
  ``AWS_SHARED_CREDENTIALS_FILE`` point at ``/dev/null``: a profile of the
  caller's can never send a local rotation to real AWS.
* **Lambda's timeout**: a step that has not answered after ``timeout``
  seconds is stopped and reported as ``Sandbox.Timedout``; an exit as
  ``Runtime.ExitError``; an import failure as ``Runtime.ImportModuleError``.

Nothing here decides what a rotation may do; that is the contract's job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import FunctionInvocationError, LocalStackError
from .signals import signals_deferred

__all__ = [
    "DEFAULT_TIMEOUT",
    "FunctionHost",
    "RotationFunction",
    "function_arn",
    "load_function_config",
    "parse_env_spec",
    "parse_function_spec",
    "rotation_functions_from_options",
]

_log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
"""Seconds a step may run (AWS's rotation templates deploy with 30 s)."""
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HANDLER = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")
_WORKER = Path(__file__).with_name("worker.py")


@dataclass(frozen=True)
class RotationFunction:
    """A rotation function to register on the local stack.

    Attributes:
        name: the Lambda function name (``[A-Za-z0-9_-]``, up to 64).
        handler: ``module:function``, importable from the current directory or ``path``.
        environment: the function's own variables (hidden from ``repr``: they may hold secrets).
        timeout: seconds a step may run before it is stopped.
        python: the interpreter that runs it (default: this one); another virtual
            environment runs the function with its own packages.
        path: folders put first on the worker's ``PYTHONPATH``.
    """

    name: str
    handler: str
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    python: str | None = None
    path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise LocalStackError(
                f"rotation function name {self.name!r}: use 1 to 64 letters, digits, '-' or '_' (a Lambda name)"
            )
        if not isinstance(self.handler, str) or not _HANDLER.fullmatch(self.handler):
            raise LocalStackError(
                f"rotation function {self.name}: handler {self.handler!r} must be module:function, "
                "e.g. my_rotation.lambda_function:lambda_handler"
            )
        timeout = self.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 900:
            raise LocalStackError(
                f"rotation function {self.name}: timeout {timeout!r} must be seconds from >0 to 900 (Lambda's limit)"
            )
        bad = [key for key in self.environment if not isinstance(key, str) or not key or "=" in key]
        if bad:
            raise LocalStackError(f"rotation function {self.name}: environment variable names {bad!r} are not valid")


def function_arn(region: str, account_id: str, name: str) -> str:
    """The Lambda ARN a function is registered under."""
    return f"arn:aws:lambda:{region}:{account_id}:function:{name}"


def parse_function_spec(text: str) -> tuple[str, str]:
    """``NAME=module:function`` -> ``(name, handler)``.

    Raises:
        LocalStackError: the text is not of that form.
    """
    name, sep, handler = text.partition("=")
    if not sep or not _NAME.fullmatch(name.strip()) or not _HANDLER.fullmatch(handler.strip()):
        raise LocalStackError(
            f"--rotation-function {text!r}: give NAME=module:function, e.g. myrotation=my_rotation:lambda_handler"
        )
    return name.strip(), handler.strip()


def parse_env_spec(text: str) -> tuple[str, str, str]:
    """``NAME=KEY=VALUE`` -> ``(name, key, value)`` (the value may contain ``=``).

    Raises:
        LocalStackError: the text is not of that form (the message never repeats the value).
    """
    name, sep, rest = text.partition("=")
    key, sep2, value = rest.partition("=")
    if not sep or not sep2 or not _NAME.fullmatch(name.strip()) or not key.strip():
        shown = f"{name}={key}=..." if sep2 else text.split("=", 1)[0] + "=..."
        raise LocalStackError(f"--rotation-env {shown!r}: give NAME=KEY=VALUE, e.g. myrotation=EXCLUDE_CHARACTERS=/@")
    return name.strip(), key.strip(), value


def load_function_config(path: Path) -> list[RotationFunction]:
    """Read rotation functions from a TOML or JSON file.

    The file holds one table per function::

        [functions.myrotation]
        handler = "my_rotation.lambda_function:lambda_handler"
        timeout = 30
        path = ["./src"]
        environment = { EXCLUDE_CHARACTERS = "/@\\"'\\\\" }

    (JSON: ``{"functions": {"myrotation": {"handler": ...}}}``.) Relative paths
    are taken from the file's folder.

    Raises:
        LocalStackError: the file cannot be read or a function is not valid.
    """
    try:
        text = path.read_text()
        document = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise LocalStackError(f"rotation function config {path}: cannot read it ({exc})") from exc
    functions = document.get("functions") if isinstance(document, dict) else None
    if not isinstance(functions, dict) or not functions:
        raise LocalStackError(f"rotation function config {path}: needs a 'functions' table with one entry per function")
    loaded = []
    for name, entry in functions.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("handler"), str):
            raise LocalStackError(f"rotation function config {path}: functions.{name} needs handler = 'module:fn'")
        unknown = set(entry) - {"handler", "environment", "timeout", "python", "path"}
        if unknown:
            raise LocalStackError(f"rotation function config {path}: functions.{name}: unknown keys {sorted(unknown)}")
        environment = entry.get("environment", {})
        if not isinstance(environment, dict):
            raise LocalStackError(f"rotation function config {path}: functions.{name}.environment must be a table")
        paths = entry.get("path", [])
        if isinstance(paths, str):
            paths = [paths]
        loaded.append(
            RotationFunction(
                name=str(name),
                handler=entry["handler"],
                environment={str(k): str(v) for k, v in environment.items()},
                timeout=entry.get("timeout", DEFAULT_TIMEOUT),
                python=entry.get("python"),
                path=tuple(str((path.parent / p).resolve()) for p in paths),
            )
        )
    return loaded


def rotation_functions_from_options(
    specs: Sequence[str] = (),
    envs: Sequence[str] = (),
    config: Path | None = None,
    timeout: float | None = None,
) -> list[RotationFunction]:
    """The functions the command line names: ``--rotation-config``, ``--rotation-function``, ``--rotation-env``.

    A ``--rotation-function`` with a name from the config file replaces its
    handler; ``--rotation-env`` adds to (or overrides) a function's environment;
    ``--rotation-timeout`` applies to every function that the config gives none.

    Raises:
        LocalStackError: an option is malformed or names an unknown function.
    """
    by_name: dict[str, RotationFunction] = {}
    configured_timeouts: set[str] = set()
    if config is not None:
        for function in load_function_config(config):
            by_name[function.name] = function
            configured_timeouts.add(function.name)
    for spec in specs:
        name, handler = parse_function_spec(spec)
        existing = by_name.get(name)
        by_name[name] = replace(existing, handler=handler) if existing else RotationFunction(name, handler)
    for env in envs:
        name, key, value = parse_env_spec(env)
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise LocalStackError(f"--rotation-env {name}=...: no rotation function {name!r} (functions: {known})")
        by_name[name] = replace(by_name[name], environment={**by_name[name].environment, key: value})
    if timeout is not None:
        for name, function in list(by_name.items()):
            if name not in configured_timeouts or function.timeout == DEFAULT_TIMEOUT:
                by_name[name] = replace(function, timeout=timeout)
    return list(by_name.values())


class _Worker:
    """One worker process (one Lambda execution environment)."""

    def __init__(self, function: RotationFunction, environment: Mapping[str, str]) -> None:
        self.function = function
        command = [function.python or sys.executable, str(_WORKER), function.handler]
        with signals_deferred():
            # A session of its own: Ctrl-C reaches the stack, which stops the workers in order;
            # and the whole group (whatever the handler started) can be killed by its id.
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=dict(environment),
                start_new_session=True,
            )
        self._buffer = bytearray()
        self.ready = False
        """Whether it has imported the handler (said "ready")."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, message: Mapping[str, Any]) -> None:
        if self.process.stdin is None:
            raise OSError("the worker has no stdin")
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def receive(self, deadline: float, clock: Callable[[], float]) -> dict[str, Any] | None:
        """The next message, or ``None`` at the deadline; ``EOFError`` if the process closed its end."""
        if self.process.stdout is None:
            raise OSError("the worker has no stdout")
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - clock()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError("the worker sent something other than a JSON object")
        return message

    def kill(self) -> None:
        with signals_deferred():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


class FunctionHost:
    """Runs the registered functions' invocations in worker processes.

    Args:
        functions: what to run.
        region: the stack's region (``AWS_REGION``).
        account_id: for the functions' ARNs.
        endpoint_url: the stack's Secrets Manager endpoint.
        credentials: the dummy credentials the stack accepts.
        clock: for the timeouts.
    """

    def __init__(
        self,
        functions: Iterable[RotationFunction],
        *,
        region: str,
        account_id: str,
        endpoint_url: str,
        credentials: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.functions = {function.name: function for function in functions}
        self.region = region
        self.account_id = account_id
        self.endpoint_url = endpoint_url
        self.credentials = dict(credentials)
        self.clock = clock
        self.started_pids: list[int] = []
        """Every worker process started, in order (for leak checks)."""
        self._idle: dict[str, list[_Worker]] = {}
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def arn(self, name: str) -> str:
        return function_arn(self.region, self.account_id, name)

    def environment(self, function: RotationFunction) -> dict[str, str]:
        """The worker's environment (see the module docstring)."""
        inherited = {key: os.environ[key] for key in _INHERITED if key in os.environ}
        python_path = [*function.path, os.getcwd()]
        return {
            **inherited,
            "PYTHONPATH": os.pathsep.join(python_path),
            "PYTHONUNBUFFERED": "1",
            "TZ": "UTC",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **self.credentials,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.endpoint_url,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "SECRETS_MANAGER_ENDPOINT": self.endpoint_url,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(function.timeout)),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "LAMBDA_TASK_ROOT": os.getcwd(),
            "SECRETSWITCH_FUNCTION_ARN": self.arn(function.name),
            **function.environment,
        }

    def invoker(self, name: str) -> Callable[[dict[str, Any]], object]:
        """What :func:`embedded_stack.moto_server.register_rotation_function` routes the ARN to."""
        return lambda event: self.invoke(name, event)

    def invoke(self, name: str, event: Mapping[str, Any]) -> object:
        """Run one invocation and return the handler's result.

        Raises:
            FunctionInvocationError: the handler raised, exited, timed out or could not be imported.
        """
        function = self.functions[name]
        request_id = str(uuid.uuid4())
        worker = self._take(function)
        try:
            deadline = self.clock() + function.timeout
            if not worker.ready:
                # Init (the handler's import) counts against the first invocation's timeout, as on Lambda.
                message = worker.receive(deadline, self.clock)
                if message is None:
                    raise self._fail(worker, "Sandbox.Timedout", f"Init timed out after {function.timeout:.2f} seconds")
                if "error" in message:
                    self._discard(worker)
                    raise _error_from(message["error"], request_id)
                worker.ready = True
            worker.send({"event": dict(event), "request_id": request_id, "timeout_ms": int(function.timeout * 1000)})
            answer = worker.receive(deadline, self.clock)
        except EOFError:
            raise self._exited(worker, request_id) from None
        except (OSError, ValueError) as exc:
            raise self._fail(worker, "Runtime.Unknown", f"the worker broke the protocol: {exc}") from exc
        if answer is None:
            timed_out = f"RequestId: {request_id} Error: Task timed out after {function.timeout:.2f} seconds"
            raise self._fail(worker, "Sandbox.Timedout", timed_out)
        if "exit" in answer:
            self._discard(worker)
            raise FunctionInvocationError("Runtime.ExitError", _exit_message(request_id, answer["exit"]))
        self._release(worker)
        if "error" in answer:
            raise _error_from(answer["error"], request_id)
        return answer.get("result")

    def live_pids(self) -> list[int]:
        """Worker processes still running."""
        with self._lock:
            return [worker.pid for worker in self._live if worker.alive()]

    def stop(self) -> None:
        """Kill every worker (by its process group); later invocations fail."""
        with self._lock:
            self._stopped = True
            workers, self._live, self._idle = list(self._live), set(), {}
        for worker in workers:
            worker.kill()

    # -- the pool --------------------------------------------------------------

    def _take(self, function: RotationFunction) -> _Worker:
        with self._lock:
            if self._stopped:
                raise FunctionInvocationError("Runtime.Unavailable", "the local stack is stopping")
            idle = self._idle.setdefault(function.name, [])
            while idle:
                worker = idle.pop()
                if worker.alive():
                    return worker
                self._live.discard(worker)
            try:
                worker = _Worker(function, self.environment(function))
            except OSError as exc:
                raise FunctionInvocationError(
                    "Runtime.InvalidEntrypoint",
                    f"cannot start {function.python or sys.executable!r} for function {function.name}: {exc.strerror}",
                ) from exc
            self._live.add(worker)
            self.started_pids.append(worker.pid)
        _log.info("rotation function %s: worker pid %s started", function.name, worker.pid)
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if self._stopped or worker not in self._live:
                worker.kill()
                return
            self._idle.setdefault(worker.function.name, []).append(worker)

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._live.discard(worker)
        worker.kill()

    def _fail(self, worker: _Worker, error_type: str, message: str) -> FunctionInvocationError:
        _log.warning("rotation function %s: %s (worker pid %s stopped)", worker.function.name, error_type, worker.pid)
        self._discard(worker)
        return FunctionInvocationError(error_type, message)

    def _exited(self, worker: _Worker, request_id: str) -> FunctionInvocationError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=5)
        status = worker.process.returncode
        return self._fail(worker, "Runtime.ExitError", _exit_message(request_id, status))


def _error_from(error: Any, request_id: str) -> FunctionInvocationError:
    if not isinstance(error, dict):
        return FunctionInvocationError("Runtime.Unknown", f"RequestId: {request_id} the worker's error is unreadable")
    return FunctionInvocationError(str(error.get("errorType", "Error")), str(error.get("errorMessage", "")))


def _exit_message(request_id: str, status: object) -> str:
    return f"RequestId: {request_id} Error: Runtime exited with error: exit status {status}"
