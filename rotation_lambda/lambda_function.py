"""AWS Lambda entry point: ``lambda_function.lambda_handler(event, context)``.

Secrets Manager invokes it four times per rotation (createSecret, setSecret,
testSecret, finishSecret) with ``{"Step", "SecretId", "ClientRequestToken"}``
and, when present, ``"RotationToken"``. :func:`make_handler` builds the same
handler with its outside systems injected, for the local stand-in and tests.

The Secrets Manager endpoint comes from boto3's own resolution
(``AWS_ENDPOINT_URL_SECRETS_MANAGER``, ``AWS_ENDPOINT_URL``) or from
``SECRETS_MANAGER_ENDPOINT``, the variable the AWS rotation templates set.

On AWS each invocation also writes one CloudWatch Embedded Metric Format
record to stdout (step, outcome, duration, by secret name; see
:mod:`rotation_lambda.metrics`); the in-process stand-ins write none.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from secretswitch.client.errors import SecretSwitchError

from .metrics import step_record, write_stdout
from .mongo import LoginClientFactory, MongoGateway, mongo_client_factory_for
from .rules import parse_event
from .secretsmanager import SecretsManagerGateway
from .steps import Rotator

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["Handler", "function_secretsmanager_client", "lambda_handler", "make_handler"]

Handler = Callable[[dict[str, Any], Any], None]
"""``(event, context) -> None``, as Lambda calls it."""

_log = logging.getLogger("secretswitch.rotation")


def function_secretsmanager_client(
    environ: Mapping[str, str] | None = None, *, region: str | None = None, region_how: str = ""
) -> SecretsManagerClient:
    """A boto3 client from the client's seam; ``SECRETS_MANAGER_ENDPOINT`` wins over boto3's own endpoint.

    Raises:
        ConfigurationError: no region, or an endpoint URL that cannot work (says what to set).
    """
    from secretswitch.client.secretsmanager import secretsmanager_client

    env = os.environ if environ is None else environ
    return secretsmanager_client(
        region=region,
        endpoint_url=env.get("SECRETS_MANAGER_ENDPOINT") or None,
        endpoint_source="SECRETS_MANAGER_ENDPOINT",
        region_how=region_how,
    )


def make_handler(
    *,
    secretsmanager_client_factory: Callable[[], SecretsManagerClient] | None = None,
    mongo_client_factory: LoginClientFactory | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    emit_metrics: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    wall_clock: Callable[[], float] = time.time,
) -> Handler:
    """Build a rotation handler with its outside systems injected.

    Args:
        secretsmanager_client_factory: returns a boto3 ``secretsmanager``
            client; called on the first invocation and the client reused (a
            new boto3 client costs ~50 ms). Default: from the environment.
        mongo_client_factory: builds a ``MongoClient`` from credentials
            (default: the secret's settings, short timeouts and ``TLS_CA_FILE``).
        environ: the environment to read the policy and ``TLS_CA_FILE`` from
            (default ``os.environ``, read at each invocation).
        sleep: waits between testSecret attempts.
        emit_metrics: receives one EMF record (a line of JSON) per invocation,
            success or failure; ``None``: no record. ``lambda_handler`` writes
            them to stdout.
        clock: times each step (seconds).
        wall_clock: the wall clock in epoch seconds: the record's timestamp and
            the rotation guard's "now".

    Returns:
        ``handler(event, context)``; it raises on any failure (so Secrets
        Manager sees the step fail) with a message that names what to fix.
    """
    mongo = MongoGateway(mongo_client_factory or mongo_client_factory_for(environ), environ=environ)
    clients: list[SecretsManagerClient] = []  # built once, reused by warm invocations

    def handler(event: dict[str, Any], context: Any) -> None:
        if emit_metrics is None:
            run(event)
            return
        started = clock()
        outcome, error_type = "failed", None
        try:
            outcome = run(event)
        except BaseException as exc:
            error_type = type(exc).__name__
            raise
        finally:
            fields = event if isinstance(event, dict) else {}
            try:
                emit_metrics(
                    step_record(
                        secret_id=fields.get("SecretId"),
                        step=fields.get("Step"),
                        outcome=outcome,
                        duration=clock() - started,
                        timestamp=wall_clock(),
                        error_type=error_type,
                    )
                )
            except Exception:  # noqa: BLE001 - a metric must never fail a rotation step
                _log.exception("could not write the step's metrics record")

    def run(event: dict[str, Any]) -> str:
        env = os.environ if environ is None else environ
        try:
            rotation_event = parse_event(event)
            if not clients:
                clients.append(
                    secretsmanager_client_factory()
                    if secretsmanager_client_factory is not None
                    else function_secretsmanager_client(env)
                )
            client = clients[0]
            rotator = Rotator(SecretsManagerGateway(client), mongo, environ=env, sleep=sleep, clock=wall_clock)
            return rotator.run(rotation_event).outcome
        except SecretSwitchError as exc:
            step = event.get("Step") if isinstance(event, dict) else None
            _log.error(
                "rotation step failed: secret_id=%s step=%s token=%s error=%s: %s",
                event.get("SecretId") if isinstance(event, dict) else None,
                step,
                event.get("ClientRequestToken") if isinstance(event, dict) else None,
                type(exc).__name__,
                exc,
            )
            raise

    return handler


_default_handler: Handler | None = None


def lambda_handler(event: dict[str, Any], context: Any) -> None:
    """The AWS entry point (handler ``lambda_function.lambda_handler``)."""
    global _default_handler  # noqa: PLW0603 - one handler per Lambda container, built on first use
    if _default_handler is None:
        # The Lambda runtime leaves the root logger at WARNING: the step lines are INFO.
        _log.setLevel(logging.INFO)
        _default_handler = make_handler(emit_metrics=write_stdout)
    _default_handler(event, context)
