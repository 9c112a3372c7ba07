"""The rotation function's own error, next to the code that raises it.

It joins the project's tree (see :mod:`client.errors`) under
:class:`~client.errors.SecretSwitchError`, so an operator's script catches one
type for every failure.
"""

from __future__ import annotations

from secretswitch.client.errors import SecretSwitchError

__all__ = ["RotationError"]


class RotationError(SecretSwitchError):
    """A rotation step refused its input or could not complete; the message says what to fix."""
