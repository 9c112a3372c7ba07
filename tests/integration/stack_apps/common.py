"""What every stack application reads from its environment (set by the test that starts it)."""

from __future__ import annotations

import json
import os
from typing import Any

from secretswitch.client import RefreshPolicy

__all__ = ["DATABASE", "MONGO_OPTIONS", "error_body", "ok_body", "policy", "secret_id"]

DATABASE = "mydb"
# Connections idle for 100 ms are dropped at checkout: bursts after a rotation open new ones (new logins).
MONGO_OPTIONS: dict[str, Any] = {"maxIdleTimeMS": 100, "serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 2000}


def secret_id() -> str:
    return os.environ["SECRETSWITCH_SECRET_ID"]


def policy() -> RefreshPolicy:
    """A refresh interval of a few seconds, so that a planned rotation is picked up inside the test."""
    interval = float(os.environ.get("STACK_REFRESH_INTERVAL", "2.0"))
    return RefreshPolicy(
        refresh_interval=interval, jitter=0.5, backoff_base=0.2, backoff_cap=1.0, forced_refresh_gap=0.2
    )


def ok_body(user: str) -> str:
    return json.dumps({"user": user, "pid": os.getpid()})


def error_body(exc: BaseException) -> str:
    return json.dumps({"error": f"{type(exc).__name__}: {getattr(exc, 'code', None)}", "pid": os.getpid()})
