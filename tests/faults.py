"""Faults injected into the embedded stack (tests only): a rotation killed between two of its steps.

The embedded Secrets Manager runs the rotation function in-process (see
:mod:`secretswitch.embedded_stack.moto_server`), so a crash is simulated by swapping the
function's route for a wrapper that raises after a given step; the versions are
then left exactly as a Lambda that died there would leave them. Resume with
``rotate_secret(..., resume=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from secretswitch.client.errors import SecretSwitchError
from secretswitch.embedded_stack.moto_server import register_rotation_function
from secretswitch.rotation_lambda.rules import STEPS
from secretswitch.rotation_tools.rotate import RotationOutcome, rotate_secret

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from secretswitch.rotation_lambda.lambda_function import Handler

__all__ = ["RotationInterrupted", "crash_after", "interrupted_rotation"]


class RotationInterrupted(SecretSwitchError):
    """Raised by :func:`crash_after` to simulate a rotation killed between two steps."""


def crash_after(step: str, handler: Handler) -> Callable[[dict[str, Any]], None]:
    """Wrap ``handler`` so the rotation dies right after ``step`` completes.

    ``step`` may also be ``"start"``: killed after ``RotateSecret`` made the
    empty pending version, before createSecret ran.
    """
    if step != "start" and step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected 'start' or one of {', '.join(STEPS)}")
    crash_index = -1 if step == "start" else STEPS.index(step)

    def invoker(event: dict[str, Any]) -> None:
        index = STEPS.index(event["Step"]) if event.get("Step") in STEPS else len(STEPS)
        if index > crash_index:
            raise RotationInterrupted(f"simulated crash after {step}")
        handler(event, None)
        if index == crash_index:
            raise RotationInterrupted(f"simulated crash after {step}")

    return invoker


@contextmanager
def _routed(function_arn: str, invoker: Callable[[dict[str, Any]], None], restore: Handler) -> Iterator[None]:
    register_rotation_function(function_arn, invoker)
    try:
        yield
    finally:
        register_rotation_function(function_arn, lambda event: restore(event, None))


def interrupted_rotation(
    sm_client: SecretsManagerClient,
    secret_id: str,
    *,
    crash_after_step: str,
    function_arn: str,
    handler: Handler | None = None,
    rotation_days: int | None = None,
) -> RotationOutcome:
    """Start a rotation on the embedded stack that is killed after ``crash_after_step``.

    The in-process route for ``function_arn`` (see
    :func:`embedded_stack.moto_server.register_rotation_function`) is swapped for a
    crashing wrapper during the call, then set back to ``handler`` unwrapped.
    Resume with ``rotate_secret(..., resume=True)``.
    """
    if handler is None:
        from secretswitch.rotation_lambda.lambda_function import make_handler

        handler = make_handler(secretsmanager_client_factory=lambda: sm_client)
    with _routed(function_arn, crash_after(crash_after_step, handler), handler):
        return rotate_secret(sm_client, secret_id, rotation_lambda_arn=function_arn, rotation_days=rotation_days)
