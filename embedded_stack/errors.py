"""The embedded stack's own error, next to the code that raises it (see :mod:`client.errors` for the tree)."""

from __future__ import annotations

from secretswitch.client.errors import SecretSwitchError

__all__ = ["LocalStackError"]


class LocalStackError(SecretSwitchError, RuntimeError):
    """An embedded server (moto, SecantusDB) did not start, answer or stop."""
