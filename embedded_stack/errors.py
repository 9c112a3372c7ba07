"""The embedded stack's own error, next to the code that raises it (see :mod:`client.errors` for the tree)."""

from __future__ import annotations

from secretswitch.client.errors import SecretSwitchError

__all__ = ["FunctionInvocationError", "LocalStackError"]


class LocalStackError(SecretSwitchError, RuntimeError):
    """An embedded server (moto, SecantusDB) did not start, answer or stop."""


class FunctionInvocationError(SecretSwitchError):
    """A rotation function registered on the local stack failed one invocation, as Lambda reports it.

    Attributes:
        error_type: Lambda's ``errorType`` (the exception's class name, or
            ``Runtime.ExitError``, ``Sandbox.Timedout``, ``Runtime.ImportModuleError``).
        error_message: Lambda's ``errorMessage``.
    """

    def __init__(self, error_type: str, error_message: str) -> None:
        super().__init__(f"{error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message
