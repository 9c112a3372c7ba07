"""The embedded local stack: moto's Secrets Manager and SecantusDB on loopback ports.

It serves ``secretswitch local``, the tests, the soak, the benchmarks and the
demo, so it belongs to none of them. Imports run one way: the demo and the
command line use the stack; the stack uses the rotation function and the
operator's rotation tools; nothing below imports it.

Modules: ``stack`` (the stack's lifecycle: start, stop, its clients, what is
left over), ``processes`` (SecantusDB started and stopped by PID, ports),
``provisioning`` (the MongoDB users and the secrets' documents), ``moto_server``
(moto's HTTP server with AWS's ``RotateSecret`` contract), ``contract`` (that
contract's pure rules), ``functions`` (any rotation function, run by
``worker`` in a process of its own; docs/emulator.md), ``pymongo4_shim`` (AWS's
MongoDB templates under PyMongo 4), ``signals`` (Ctrl-C never cuts a start or a
stop in two), ``tls`` (a TLS stack's CA and certificate), ``errors``. The faults
the tests inject (a rotation killed between steps) are ``tests/faults.py``.
"""

from __future__ import annotations

from .errors import FunctionInvocationError, LocalStackError
from .functions import RotationFunction
from .stack import (
    ADMIN_URI_ENV,
    APP_DATABASE,
    APP_USERS,
    DEFAULT_SCHEDULE,
    DUMMY_AWS_ENV,
    SECRET_LAYOUTS,
    TLS_CA_FILE_ENV,
    EmbeddedStack,
    SecantusServer,
    StackInfo,
    free_port,
)

__all__ = [
    "ADMIN_URI_ENV",
    "APP_DATABASE",
    "APP_USERS",
    "DEFAULT_SCHEDULE",
    "DUMMY_AWS_ENV",
    "SECRET_LAYOUTS",
    "TLS_CA_FILE_ENV",
    "EmbeddedStack",
    "FunctionInvocationError",
    "LocalStackError",
    "RotationFunction",
    "SecantusServer",
    "StackInfo",
    "free_port",
]
