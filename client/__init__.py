"""secretswitch client: MongoDB credentials from AWS Secrets Manager, rotated without an outage."""

from __future__ import annotations

from client.credentials import MongoCredentials, parse_secret
from client.errors import (
    AuthenticationError,
    ConfigurationError,
    DatabaseError,
    LocalStackError,
    RotationError,
    SecretFormatError,
    SecretNotFoundError,
    SecretsManagerError,
    SecretSwitchError,
)

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "DatabaseError",
    "LocalStackError",
    "MongoCredentials",
    "RotationError",
    "SecretFormatError",
    "SecretNotFoundError",
    "SecretSwitchError",
    "SecretsManagerError",
    "parse_secret",
]
