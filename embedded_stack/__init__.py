"""The embedded local stack: moto's Secrets Manager and SecantusDB on loopback ports.

It serves ``secretswitch local``, the tests, the soak, the benchmarks and the
demo, so it belongs to none of them. Imports run one way: the demo and the
command line use the stack; the stack uses the rotation function and the
operator's rotation tools; nothing below imports it.
"""

from __future__ import annotations

from embedded_stack.errors import LocalStackError
from embedded_stack.stack import (
    APP_DATABASE,
    APP_USERS,
    DUMMY_AWS_ENV,
    SECRET_LAYOUTS,
    EmbeddedStack,
    SecantusServer,
    StackInfo,
    free_port,
)

__all__ = [
    "APP_DATABASE",
    "APP_USERS",
    "DUMMY_AWS_ENV",
    "SECRET_LAYOUTS",
    "EmbeddedStack",
    "LocalStackError",
    "SecantusServer",
    "StackInfo",
    "free_port",
]
