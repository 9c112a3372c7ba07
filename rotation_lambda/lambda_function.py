"""AWS Lambda entry point: ``lambda_function.lambda_handler(event, context)``.

Secrets Manager invokes it four times per rotation (createSecret, setSecret,
testSecret, finishSecret) with ``{"Step", "SecretId", "ClientRequestToken"}``
and, when present, ``"RotationToken"``. :func:`make_handler` builds the same
handler with its outside systems injected, for the local stand-in and tests.

The Secrets Manager endpoint comes from boto3's own resolution
(``AWS_ENDPOINT_URL_SECRETS_MANAGER``, ``AWS_ENDPOINT_URL``) or from
``SECRETS_MANAGER_ENDPOINT``, the variable the AWS rotation templates set.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from secretswitch.client.errors import SecretSwitchError

from .core import parse_event
from .mongo import MongoClientFactory, MongoGateway, mongo_client_factory_for
from .secretsmanager import SecretsManagerGateway
from .steps import Rotator

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["Handler", "default_secretsmanager_client", "lambda_handler", "make_handler"]

Handler = Callable[[dict[str, Any], Any], None]
"""``(event, context) -> None``, as Lambda calls it."""

_log = logging.getLogger("secretswitch.rotation")


def default_secretsmanager_client(environ: Mapping[str, str] | None = None) -> SecretsManagerClient:
    """A boto3 client; ``SECRETS_MANAGER_ENDPOINT`` wins over boto3's own endpoint resolution."""
    import boto3

    env = os.environ if environ is None else environ
    endpoint = env.get("SECRETS_MANAGER_ENDPOINT") or None
    return boto3.client("secretsmanager", endpoint_url=endpoint)


def make_handler(
    *,
    secretsmanager_client_factory: Callable[[], SecretsManagerClient] | None = None,
    mongo_client_factory: MongoClientFactory | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
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

    Returns:
        ``handler(event, context)``; it raises on any failure (so Secrets
        Manager sees the step fail) with a message that names what to fix.
    """
    mongo = MongoGateway(mongo_client_factory or mongo_client_factory_for(environ), environ=environ)
    clients: list[SecretsManagerClient] = []  # built once, reused by warm invocations

    def handler(event: dict[str, Any], context: Any) -> None:
        env = os.environ if environ is None else environ
        try:
            rotation_event = parse_event(event)
            if not clients:
                clients.append(
                    secretsmanager_client_factory()
                    if secretsmanager_client_factory is not None
                    else default_secretsmanager_client(env)
                )
            client = clients[0]
            rotator = Rotator(SecretsManagerGateway(client), mongo, environ=env, sleep=sleep)
            rotator.run(rotation_event)
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
        _default_handler = make_handler()
    _default_handler(event, context)
