"""moto's Secrets Manager as a local HTTP server, with rotation routed to our handler.

Everything that touches moto's internals lives in this one module, so a moto
upgrade breaks one file. What we rely on, and why:

* ``moto.server.DomainDispatcherApplication`` + ``create_backend_app`` is the
  WSGI app behind ``moto_server``; we serve it with werkzeug ourselves
  (as ``ThreadedMotoServer`` does) so that a port already in use raises here,
  in the caller's thread, instead of hanging a ready-event forever.
* ``RotateSecret`` in moto creates the token's version staged ``AWSPENDING``
  *without a value* (as AWS does) and then invokes the rotation Lambda once per
  step through ``moto.awslambda.utils.get_backend(...)``, which it imports at
  call time. moto cannot run Lambda code without Docker, so we replace that
  lookup with a tiny backend that routes the invocation of a registered
  function ARN to a Python callable, in this process. moto's own loop then
  invokes createSecret, setSecret, testSecret and finishSecret in order, with
  the event Secrets Manager sends.
* A step that raises is turned into an ``InvalidRequestException`` (HTTP 400,
  which botocore does not retry); moto stops its loop there and leaves the
  versions as they are, like a failed rotation on AWS.
* moto's ``UpdateSecretVersionStage`` moves the ``AWSCURRENT`` label but not
  the secret's internal default version, which answers a ``GetSecretValue``
  without a stage and ``DescribeSecret``; only moto's own ``RotateSecret``
  moves it. On AWS the default *is* ``AWSCURRENT``, so we keep the two in step
  (a resumed rotation moves ``AWSCURRENT`` through that call alone).
* The backends are module-level state in moto, shared by every server in the
  process and keyed by account and region: a server resets only the region it
  is started for, so two stacks in one process stay apart by region.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from embedded_stack.errors import LocalStackError

__all__ = ["MotoSecretsManagerServer", "RotationInvoker", "register_rotation_function", "unregister_rotation_function"]

_log = logging.getLogger(__name__)

RotationInvoker = Callable[[dict[str, Any]], object]
"""A rotation function: takes the event dict Secrets Manager sends."""

_functions: dict[str, RotationInvoker] = {}
_functions_lock = threading.Lock()


def register_rotation_function(function_arn: str, invoker: RotationInvoker) -> None:
    """Route moto's invocations of ``function_arn`` to ``invoker``."""
    _install_lambda_router()
    with _functions_lock:
        _functions[function_arn] = invoker


def unregister_rotation_function(function_arn: str) -> None:
    """Forget a function registered with :func:`register_rotation_function`."""
    with _functions_lock:
        _functions.pop(function_arn, None)


class _LocalLambdaBackend:
    """The two methods of moto's LambdaBackend that ``rotate_secret`` calls."""

    def get_function(self, function_name_or_arn: str, qualifier: str | None = None) -> object:
        from moto.secretsmanager.exceptions import ResourceNotFoundException

        with _functions_lock:
            if function_name_or_arn in _functions:
                return _functions[function_name_or_arn]
        raise ResourceNotFoundException(f"Resource not found for ARN '{function_name_or_arn}'.")

    def invoke(
        self, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        from moto.secretsmanager.exceptions import InvalidRequestException

        invoker = self.get_function(function_name)
        event = json.loads(body)
        try:
            invoker(event)  # type: ignore[operator]
        except Exception as exc:
            # The handler's messages never carry a secret value (see rotation_lambda).
            raise InvalidRequestException(
                f"Rotation step {event.get('Step')} failed for token {event.get('ClientRequestToken')}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return b"null"


_local_lambda = _LocalLambdaBackend()


def _local_lambda_backend(account_id: str, region: str) -> _LocalLambdaBackend:
    return _local_lambda


def _install_lambda_router() -> None:
    import moto.awslambda.utils as lambda_utils
    from moto.secretsmanager.models import SecretsManagerBackend

    lambda_utils.get_backend = _local_lambda_backend
    original = SecretsManagerBackend.update_secret_version_stage
    if getattr(original, "_secretswitch_patched", False):
        return

    def update_secret_version_stage(
        backend: Any, secret_id: str, version_stage: str, remove_from_version_id: str, move_to_version_id: str
    ) -> Any:
        result = original(backend, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            backend.secrets[secret_id].set_default_version_id(move_to_version_id)
        return result

    update_secret_version_stage._secretswitch_patched = True  # type: ignore[attr-defined]
    SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage


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
        _install_lambda_router()
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
