"""secretswitch client: MongoDB credentials from AWS Secrets Manager, rotated without an outage."""

from __future__ import annotations

from client.credentials import MongoCredentials, parse_secret
from client.errors import (
    AuthenticationError,
    ConfigurationError,
    DatabaseError,
    SecretFormatError,
    SecretNotFoundError,
    SecretsManagerError,
    SecretSwitchError,
)
from client.events import ClientEvent, ClientMetrics
from client.policy import CacheState, RefreshPolicy
from client.rotating import RecoveringCollection, RotatingMongoClient, ScheduleCheck

__all__ = [
    "CacheState",
    "ClientEvent",
    "ClientMetrics",
    "RecoveringCollection",
    "RefreshPolicy",
    "RotatingMongoClient",
    "ScheduleCheck",
    "AuthenticationError",
    "ConfigurationError",
    "DatabaseError",
    "MongoCredentials",
    "SecretFormatError",
    "SecretNotFoundError",
    "SecretSwitchError",
    "SecretsManagerError",
    "parse_secret",
]
