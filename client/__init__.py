"""secretswitch client: MongoDB credentials from AWS Secrets Manager, rotated without an outage."""

from __future__ import annotations

from client.async_rotating import AsyncRecoveringCollection, AsyncRotatingMongoClient
from client.core import ScheduleCheck
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
from client.rotating import RecoveringCollection, RotatingMongoClient

__all__ = [
    "AsyncRecoveringCollection",
    "AsyncRotatingMongoClient",
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
