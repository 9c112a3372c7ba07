"""The secretswitch error tree.

Every error the project raises derives from :class:`SecretSwitchError`, so an
application can catch one type. Low-level errors (botocore, pymongo, OS) are
translated at the boundary that meets them, with ``raise ... from exc`` so the
cause stays on the traceback. No message ever contains a secret value: errors
name the secret id, the field, the user, the version and the stage.

::

    SecretSwitchError
    ├── ConfigurationError        an option or environment value is wrong
    ├── SecretFormatError         a secret string cannot be used (names the field)
    ├── SecretsManagerError       Secrets Manager failed or refused a call
    │   └── SecretNotFoundError   the secret id (or version) does not exist
    ├── DatabaseError             MongoDB failed or could not be reached
    │   ├── AuthenticationError   MongoDB refused the credentials (code 18/8000)
    │   └── TLSError              the TLS handshake failed: a setting to change (never a fallback)
    ├── RotationError             a rotation step refused or failed
    │                             (rotation_lambda.errors, shipped in the function's zip)
    ├── LocalStackError           an embedded server did not start or stop
    │                             (embedded_stack.errors)
    └── FunctionInvocationError   a rotation function on the local stack failed one
                                  invocation, as Lambda reports it (embedded_stack.errors)

The client defines the base and the errors an application meets; the two
others live next to the code that raises them, so the client never imports
the rotation function or the local stack.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "DatabaseError",
    "SecretFormatError",
    "SecretNotFoundError",
    "SecretSwitchError",
    "SecretsManagerError",
    "TLSError",
]


class SecretSwitchError(Exception):
    """Base class of every error raised by secretswitch."""


class ConfigurationError(SecretSwitchError, ValueError):
    """An option, argument or environment variable has a value that cannot work."""


class SecretFormatError(SecretSwitchError, ValueError):
    """A secret string is malformed or misses a field.

    Attributes:
        secret_id: the secret the string came from.
        field: the offending field, or ``None`` when the whole string is bad.
    """

    def __init__(self, message: str, *, secret_id: str, field: str | None = None) -> None:
        where = f"secret {secret_id!r}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")
        self.secret_id = secret_id
        self.field = field


class SecretsManagerError(SecretSwitchError):
    """A Secrets Manager call failed (unreachable, throttled, refused)."""


class SecretNotFoundError(SecretsManagerError, LookupError):
    """The secret id, version or stage does not exist."""


class DatabaseError(SecretSwitchError):
    """MongoDB failed or could not be reached."""


class AuthenticationError(DatabaseError):
    """MongoDB refused the user name and password (error 18, or Atlas 8000)."""


class TLSError(DatabaseError):
    """The TLS handshake with MongoDB failed (untrusted CA, host name, expiry, no TLS): fix a setting.

    Unlike an unreachable server it is never waited out: a rotating client
    fails to start with it, and nothing ever falls back to plaintext.
    """
