"""secretswitch client: MongoDB credentials from AWS Secrets Manager, rotated without an outage."""

from __future__ import annotations

from .async_rotating import AsyncRecoveringCollection, AsyncRotatingMongoClient
from .credentials import MongoCredentials, parse_secret
from .errors import (
    AuthenticationError,
    ConfigurationError,
    DatabaseError,
    SecretFormatError,
    SecretNotFoundError,
    SecretsManagerError,
    SecretSwitchError,
    TLSError,
)
from .events import ClientEvent, ClientMetrics
from .health import ClientHealth
from .policy import CacheState, RefreshPolicy
from .rotating import RecoveringCollection, RotatingMongoClient
from .state import ScheduleCheck

__all__ = [
    "AsyncRecoveringCollection",
    "AsyncRotatingMongoClient",
    "CacheState",
    "ClientEvent",
    "ClientHealth",
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
    "TLSError",
    "parse_secret",
]
