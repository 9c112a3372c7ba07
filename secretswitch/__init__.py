"""secretswitch: MongoDB credentials from AWS Secrets Manager, rotated without an outage.

The one installed import name. The client's public API is re-exported here
(``from secretswitch import RotatingMongoClient``); the parts live in
subpackages: ``secretswitch.client`` (the library applications embed),
``secretswitch.rotation_lambda`` (the rotation function),
``secretswitch.rotation_tools`` (rotate, status, doctor),
``secretswitch.embedded_stack`` (moto + SecantusDB on loopback, the ``local``
extra) and ``secretswitch.demo_app`` (the demo, the ``demo`` extra). The
command line lives in ``secretswitch.cli``.
"""

from __future__ import annotations

from .client import (
    AsyncRecoveringCollection,
    AsyncRotatingMongoClient,
    AuthenticationError,
    CacheState,
    ClientEvent,
    ClientHealth,
    ClientMetrics,
    ConfigurationError,
    DatabaseError,
    MongoCredentials,
    RecoveringCollection,
    RefreshPolicy,
    RotatingMongoClient,
    ScheduleCheck,
    SecretFormatError,
    SecretNotFoundError,
    SecretsManagerError,
    SecretSwitchError,
    TLSError,
    parse_secret,
)

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
