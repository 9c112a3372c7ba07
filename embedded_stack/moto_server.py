"""moto's Secrets Manager as a local HTTP server that keeps AWS's ``RotateSecret`` contract for any client.

Everything that touches moto's internals lives in this one module, so a moto
upgrade breaks one file. What we rely on, and why:

* ``moto.server.DomainDispatcherApplication`` + ``create_backend_app`` is the
  WSGI app behind ``moto_server``; we serve it with werkzeug ourselves
  (as ``ThreadedMotoServer`` does) so that a port already in use raises here,
  in the caller's thread, instead of hanging a ready-event forever.
* **``RotateSecret`` is ours.** moto's own version breaks the documented
  contract for the plainest call: without ``RotationLambdaARN`` it clears the
  configured function and promotes an *empty* version to ``AWSCURRENT``; it
  drops a ``ScheduleExpression`` (so rotation stays disabled and the first
  step refuses); it calls ``AWSPENDING`` on the ``AWSCURRENT`` version "in
  progress" (AWS: finished) and lets a second rotation start over a real one in
  progress; and it stores a wrong function ARN and the pending version before
  it finds out the function does not exist. ``SecretsManagerBackend.rotate_secret``
  is therefore replaced by :func:`_rotate_secret`, which decides every request
  with the pure rules of :mod:`embedded_stack.contract` *before* it changes
  anything, reuses the secret's function and schedule when the call names
  none, and then invokes the registered rotation function in this process,
  one step at a time, with the event Secrets Manager sends (``Step``, the
  secret's ARN as ``SecretId``, ``ClientRequestToken``, ``RotationToken``).
  moto cannot run Lambda code without Docker; the function ARN is routed to a
  Python callable registered with :func:`register_rotation_function`: the
  stack's own function in this process, or any user's function in a worker
  process (:mod:`embedded_stack.functions`) — one code path for both.
* Unlike AWS, the steps run *during* the call (AWS runs them asynchronously
  after it returns), so a failing step is reported to the caller as an
  ``InvalidRequestException`` naming the step and Lambda's ``errorType``
  (HTTP 400, which botocore does not retry); the versions stay as a Lambda
  that failed there leaves them. AWS retries a failed rotation "multiple
  times"; here ``retries`` (0 by default) runs it again from createSecret with
  the same token, so that a call stays as short as one attempt.
* Seven smaller differences of moto's API from AWS's documentation
  (``ListSecretVersionIds``, ``DescribeSecret``, ``CancelRotateSecret``,
  ``GetSecretValue``) are fixed in :func:`_install_api_fixes`, listed there.
* moto's ``UpdateSecretVersionStage`` moves the ``AWSCURRENT`` label but not
  the secret's internal default version, which answers a ``GetSecretValue``
  without a stage and ``DescribeSecret``; on AWS the default *is*
  ``AWSCURRENT``, so we keep the two in step.
* ``ListSecretVersionIds`` reports each version's own ``CreatedDate`` (moto
  reports the time of the call for every version); the rotation guard reads it.
* ``DescribeSecret`` reports ``RotationRules`` as they were set
  (``ScheduleExpression``, ``Duration``, and ``AutomaticallyAfterDays`` derived
  from a ``rate()`` in days), as AWS does; moto only knows days.
* The backends are module-level state in moto, shared by every server in the
  process and keyed by account and region: a server resets only the region it
  is started for, so two stacks in one process stay apart by region.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from secretswitch.client.names import STEPS
from secretswitch.client.secretsmanager import RotationSchedule

from .contract import (
    AWSCURRENT,
    AWSPENDING,
    RequestKind,
    classify_request,
    next_rotation,
    parse_rotation_rules,
    parse_schedule_expression,
)
from .errors import LocalStackError

__all__ = [
    "MotoSecretsManagerServer",
    "RotationInvoker",
    "configure_rotation",
    "register_rotation_function",
    "unregister_rotation_function",
]

_log = logging.getLogger(__name__)

RotationInvoker = Callable[[dict[str, Any]], object]
"""A rotation function: takes the event dict Secrets Manager sends."""

_functions: dict[str, RotationInvoker] = {}
_retries: dict[str, int] = {}
_functions_lock = threading.Lock()
# Held from a request's checks until its pending version exists: two RotateSecret
# calls can never both see "nothing in progress" and both start a rotation.
_rotation_lock = threading.Lock()
_SCHEDULE_ATTRIBUTE = "_secretswitch_schedule"


def register_rotation_function(function_arn: str, invoker: RotationInvoker, *, retries: int | None = None) -> None:
    """Route Secrets Manager's invocations of ``function_arn`` to ``invoker``.

    Args:
        retries: how many times a failed rotation is run again from createSecret
            (same token), as AWS retries one; ``None`` keeps the current setting (0 at first).
    """
    _install_patches()
    with _functions_lock:
        _functions[function_arn] = invoker
        if retries is not None:
            _retries[function_arn] = retries


def unregister_rotation_function(function_arn: str) -> None:
    """Forget a function registered with :func:`register_rotation_function`."""
    with _functions_lock:
        _functions.pop(function_arn, None)
        _retries.pop(function_arn, None)


def _invoker(function_arn: str) -> RotationInvoker | None:
    with _functions_lock:
        return _functions.get(function_arn)


def configure_rotation(
    account_id: str, region: str, secret_id: str, *, function_arn: str, schedule_expression: str
) -> None:
    """Turn rotation on for a secret without rotating it, as a deployed ``RotationSchedule`` leaves it.

    Raises:
        LocalStackError: the secret does not exist or the expression is not valid.
    """
    from moto.backends import get_backend

    _install_patches()
    try:
        schedule = parse_schedule_expression(schedule_expression)
        secret = get_backend("secretsmanager")[account_id][region].secrets[secret_id]
    except (ValueError, KeyError) as exc:
        raise LocalStackError(f"moto Secrets Manager: cannot configure rotation of {secret_id!r}: {exc}") from exc
    with _rotation_lock:
        secret.rotation_requested = True
        secret.rotation_enabled = True
        secret.rotation_lambda_arn = function_arn
        _set_schedule(secret, schedule, dt.datetime.now(dt.UTC))


def _set_schedule(secret: Any, schedule: RotationSchedule, now: dt.datetime) -> None:
    setattr(secret, _SCHEDULE_ATTRIBUTE, schedule)
    secret.auto_rotate_after_days = schedule.rotation_days or 0
    upcoming = next_rotation(schedule, now)
    secret.next_rotation_date = int(upcoming.timestamp()) if upcoming is not None else None


def _rotate_secret(
    backend: Any,
    *,
    secret_id: str,
    client_request_token: str | None = None,
    rotation_lambda_arn: str | None = None,
    rotation_rules: dict[str, Any] | None = None,
    rotate_immediately: bool = True,
) -> str:
    """``RotateSecret`` as AWS documents it (replaces moto's; see the module docstring)."""
    from moto.secretsmanager.exceptions import (
        InvalidParameterException,
        InvalidRequestException,
        OperationNotPermittedOnReplica,
        SecretNotFoundException,
    )
    from moto.secretsmanager.models import ReplicaSecret

    # 1. Every check first: a refused call changes nothing.
    if not backend._is_valid_identifier(secret_id):
        raise SecretNotFoundException()
    secret = backend.secrets[secret_id]
    if isinstance(secret, ReplicaSecret):
        raise OperationNotPermittedOnReplica
    if secret.is_deleted():
        raise InvalidRequestException(
            "You can't perform this operation on the secret because it was marked for deletion."
        )
    schedule: RotationSchedule | None = None
    if rotation_rules:
        try:
            schedule = parse_rotation_rules(rotation_rules)
        except ValueError as exc:
            raise InvalidParameterException(str(exc)) from exc
    function_arn = rotation_lambda_arn or secret.rotation_lambda_arn
    if not function_arn:
        raise InvalidRequestException(
            f"No rotation function is configured for secret {secret.name!r}; send RotationLambdaARN "
            "(the local stack's is $SECRETSWITCH_ROTATION_LAMBDA_ARN, printed by `secretswitch local`)"
        )
    invoker = _invoker(function_arn)
    if invoker is None:
        with _functions_lock:
            known = ", ".join(sorted(_functions)) or "none"
        raise InvalidParameterException(
            f"Secrets Manager cannot invoke the rotation function {function_arn!r}: no such function here "
            f"(functions: {known}); the secret's configuration was not changed"
        )
    if client_request_token is not None:
        backend._client_request_token_validator(client_request_token)

    with _rotation_lock:
        versions = {version_id: tuple(v["version_stages"]) for version_id, v in secret.versions.items()}
        request = classify_request(secret.name, versions, client_request_token, str(uuid.uuid4()))
        if request.kind is RequestKind.REFUSED:
            raise InvalidRequestException(request.reason)
        # 2. Accepted: store the configuration (the call's, or the secret's own), then the pending version.
        secret.rotation_requested = True
        secret.rotation_enabled = True
        secret.rotation_lambda_arn = function_arn
        if schedule is not None:
            _set_schedule(secret, schedule, dt.datetime.now(dt.UTC))
        token = request.token or ""
        if request.kind is RequestKind.ALREADY_DONE:
            return str(secret.to_short_dict(version_id=token))
        # Without RotateImmediately AWS only tests the configuration: testSecret on a
        # pending copy of AWSCURRENT, removed afterwards.
        test_only = request.kind is RequestKind.NEW and not rotate_immediately
        if request.kind is RequestKind.NEW:
            # A staging label sits on one version at a time: it leaves a finished AWSCURRENT version too.
            secret.remove_version_stages_from_old_versions([AWSPENDING])
            version: dict[str, Any] = {"createdate": int(time.time()), "version_id": token}
            if test_only:
                current = secret.versions.get(secret.default_version_id) or {}
                version.update({k: current[k] for k in ("secret_string", "secret_binary") if k in current})
            version["version_stages"] = [AWSPENDING]
            secret.versions[token] = version
    steps = ("testSecret",) if test_only else STEPS
    _log.info("RotateSecret %s: secret %s token %s, steps %s", request.kind.value, secret.name, token, ",".join(steps))

    # 3. The steps, one at a time, outside the lock (the function calls this server back).
    rotation_token = str(uuid.uuid4())
    with _functions_lock:
        attempts = 1 + _retries.get(function_arn, 0)
    try:
        for attempt in range(1, attempts + 1):
            try:
                _run_steps(invoker, steps, secret, token, rotation_token)
                break
            except InvalidRequestException:
                if attempt == attempts:
                    raise
                # AWS: "If any rotation step fails, Secrets Manager retries the entire rotation process".
                _log.warning(
                    "RotateSecret: secret %s token %s: retrying the rotation (attempt %d of %d)",
                    secret.name,
                    token,
                    attempt + 1,
                    attempts,
                )
    finally:
        if test_only:
            secret.versions.pop(token, None)
    if not test_only:
        now = dt.datetime.now(dt.UTC)
        secret.last_rotation_date = int(now.timestamp())
        current_schedule = getattr(secret, _SCHEDULE_ATTRIBUTE, None)
        if current_schedule is not None:
            _set_schedule(secret, current_schedule, now)
    return str(secret.to_short_dict(version_id=token))


def _run_steps(invoker: RotationInvoker, steps: tuple[str, ...], secret: Any, token: str, rotation_token: str) -> None:
    """Invoke the steps in order; the first failure is raised as AWS's error, naming the step."""
    from moto.secretsmanager.exceptions import InvalidRequestException

    for step in steps:
        event = {"Step": step, "SecretId": secret.arn, "ClientRequestToken": token, "RotationToken": rotation_token}
        try:
            invoker(event)
        except Exception as exc:
            # Our handler's messages never carry a secret value (see rotation_lambda); a worker's
            # failure comes as Lambda reports it (errorType: errorMessage).
            error_type = getattr(exc, "error_type", None) or type(exc).__name__
            message = getattr(exc, "error_message", None) or str(exc)
            _log.warning("RotateSecret: secret %s token %s: %s failed (%s)", secret.name, token, step, error_type)
            raise InvalidRequestException(
                f"Rotation step {step} failed for token {token}: {error_type}: {message}"
            ) from exc


def _install_patches() -> None:
    from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

    if getattr(SecretsManagerBackend.rotate_secret, "_secretswitch_patched", False):
        return
    original_stage = SecretsManagerBackend.update_secret_version_stage
    original_to_dict = FakeSecret.to_dict

    def update_secret_version_stage(
        backend: Any, secret_id: str, version_stage: str, remove_from_version_id: str, move_to_version_id: str
    ) -> Any:
        result = original_stage(backend, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == AWSCURRENT and move_to_version_id:
            backend.secrets[secret_id].set_default_version_id(move_to_version_id)
        return result

    def to_dict(secret: Any) -> dict[str, Any]:
        document: dict[str, Any] = original_to_dict(secret)
        if "RotationRules" in document:
            schedule = getattr(secret, _SCHEDULE_ATTRIBUTE, None)
            rules = schedule.rules() if schedule is not None else {}
            if rules:
                document["RotationRules"] = rules
            else:
                del document["RotationRules"]  # rotated without a schedule: AWS reports none
        return document

    original_list_versions = SecretsManagerBackend.list_secret_version_ids

    def list_secret_version_ids(backend: Any, secret_id: str) -> str:
        document = json.loads(original_list_versions(backend, secret_id))
        versions = backend.secrets[secret_id].versions
        for entry in document.get("Versions", []):
            created = versions.get(entry["VersionId"], {}).get("createdate")
            if created is not None:
                entry["CreatedDate"] = created
        return json.dumps(document)

    _rotate_secret._secretswitch_patched = True  # type: ignore[attr-defined]
    SecretsManagerBackend.list_secret_version_ids = list_secret_version_ids
    SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage
    SecretsManagerBackend.rotate_secret = _rotate_secret
    FakeSecret.to_dict = to_dict
    _install_api_fixes()


# -- the API as AWS documents it, where moto differs -------------------------------------------
#
# One place for every difference found by running AWS's own templates and the AWS CLI against
# moto (issue 24; docs/emulator.md has the table):
#  1. ListSecretVersionIds hides versions without staging labels unless IncludeDeprecated;
#  2. it lists only versions that hold a value;
#  3. CreatedDate is the version's creation, LastAccessedDate the day of its last GetSecretValue
#     (omitted if never read), not the time of the call;
#  4. DescribeSecret's VersionIdsToStages lists only versions that have a label;
#  5. ListSecretVersionIds' ARN is the secret's ARN, NextToken appears only when there is more;
#  6. CancelRotateSecret's VersionId is the version the rotation in progress created;
#  7. GetSecretValue of a valueless version names what was asked (VersionId or staging label).

_ACCESSED = "_secretswitch_last_accessed"


def _has_value(version: dict[str, Any]) -> bool:
    return "secret_string" in version or "secret_binary" in version


def _day(now: float) -> int:
    """AWS reports LastAccessedDate at the resolution of a day (UTC midnight)."""
    return int(now // 86400 * 86400)


def _install_api_fixes() -> None:
    from moto.secretsmanager.exceptions import (
        InvalidParameterException,
        ResourceNotFoundException,
        SecretHasNoValueException,
        SecretNotFoundException,
    )
    from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend
    from moto.secretsmanager.responses import SecretsManagerResponse

    original_get = SecretsManagerBackend.get_secret_value
    original_cancel = SecretsManagerBackend.cancel_rotate_secret
    patched_to_dict = FakeSecret.to_dict

    def get_secret_value(
        backend: Any, secret_id: str, version_id: str | None, version_stage: str | None
    ) -> dict[str, Any]:
        try:
            response: dict[str, Any] = original_get(backend, secret_id, version_id, version_stage)
        except SecretHasNoValueException as exc:  # item 7
            what = f"staging label: {version_stage}" if version_stage else f"VersionId: {version_id or AWSCURRENT}"
            message = f"Secrets Manager can't find the specified secret value for {what}"
            raise ResourceNotFoundException(message) from exc
        now = time.time()
        secret = backend.secrets[secret_id]
        version = secret.versions.get(response["VersionId"])
        if version is not None:  # item 3
            version[_ACCESSED] = _day(now)
            setattr(secret, _ACCESSED, _day(now))
        return response

    def cancel_rotate_secret(backend: Any, secret_id: str) -> str:
        original_cancel(backend, secret_id)  # its checks, and rotation off
        secret = backend.secrets[secret_id]
        document: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
        in_progress = [  # item 6
            version_id
            for version_id, version in secret.versions.items()
            if AWSPENDING in version["version_stages"] and AWSCURRENT not in version["version_stages"]
        ]
        if in_progress:
            document["VersionId"] = in_progress[0]
        return json.dumps(document)

    def to_dict(secret: Any) -> dict[str, Any]:
        document: dict[str, Any] = patched_to_dict(secret)
        for key in ("VersionIdsToStages", "SecretVersionsToStages"):  # item 4
            if key in document:
                document[key] = {v: stages for v, stages in document[key].items() if stages}
        accessed = getattr(secret, _ACCESSED, None)
        if accessed is not None:
            document["LastAccessedDate"] = accessed
        elif document.get("LastAccessedDate") is None:
            document.pop("LastAccessedDate", None)
        return document

    def list_secret_version_ids(response: Any) -> str:  # items 1, 2, 3, 5
        secret_id = response._get_param("SecretId", if_none="")
        include_deprecated = bool(response._get_bool_param("IncludeDeprecated", False))
        max_results = response._get_int_param("MaxResults")
        next_token = response._get_param("NextToken")
        backend = response.backend
        if not backend._is_valid_identifier(secret_id):
            raise SecretNotFoundException()
        secret = backend.secrets[secret_id]
        entries = []
        for version_id, version in secret.versions.items():
            if not _has_value(version) or not (version["version_stages"] or include_deprecated):
                continue
            entry: dict[str, Any] = {
                "VersionId": version_id,
                "VersionStages": list(version["version_stages"]),
                "CreatedDate": version["createdate"],
            }
            if version.get(_ACCESSED) is not None:
                entry["LastAccessedDate"] = version[_ACCESSED]
            entries.append(entry)
        start = 0
        if next_token:
            if not str(next_token).isdigit() or int(next_token) > len(entries):
                raise InvalidParameterException("The NextToken value is not valid; use one from a previous response")
            start = int(next_token)
        if max_results is not None and not 1 <= max_results <= 100:
            raise InvalidParameterException("MaxResults must be from 1 to 100")
        end = len(entries) if max_results is None else min(len(entries), start + max_results)
        document: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name, "Versions": entries[start:end]}
        if end < len(entries):
            document["NextToken"] = str(end)
        return json.dumps(document)

    SecretsManagerBackend.get_secret_value = get_secret_value
    SecretsManagerBackend.cancel_rotate_secret = cancel_rotate_secret
    FakeSecret.to_dict = to_dict
    SecretsManagerResponse.list_secret_version_ids = list_secret_version_ids


class MotoSecretsManagerServer:
    """moto's HTTP server on a loopback port, in a thread of this process.

    Args:
        host: the address to bind (loopback by default).
        port: the port; ``0`` picks a free one.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint URL for boto3's ``endpoint_url``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, reset_region: str | None = None) -> None:
        """Bind and serve. ``reset_region`` clears moto's secrets in that region first.

        Raises:
            LocalStackError: moto is not installed or the port cannot be bound.
        """
        if self.running:
            return
        try:
            from moto.backends import get_backend
            from moto.server import DomainDispatcherApplication, create_backend_app
            from werkzeug.serving import WSGIRequestHandler, make_server
        except ImportError as exc:
            raise LocalStackError(
                "moto Secrets Manager: moto[server] is not installed; run `pip install 'secretswitch[local]'`"
            ) from exc
        _install_patches()
        if reset_region is not None:
            for account_backends in get_backend("secretsmanager").values():
                if reset_region in account_backends:
                    account_backends[reset_region].reset()
        app = DomainDispatcherApplication(create_backend_app)

        class _QuietHandler(WSGIRequestHandler):
            # One access-log line per API call would drown the demo's output.
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                pass

        try:
            self._server = make_server(self.host, self.port, app, threaded=True, request_handler=_QuietHandler)
        except OSError as exc:
            raise LocalStackError(
                f"moto Secrets Manager: cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                "choose another port or leave it out to pick a free one"
            ) from exc
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"moto-secretsmanager-{self.port}",
            daemon=True,
        )
        self._thread.start()
        _log.info("moto Secrets Manager listening on %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port (the in-memory secrets are kept)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def restart(self) -> None:
        """Stop, then start again on the same port, keeping the secrets."""
        self.stop()
        self.start()
