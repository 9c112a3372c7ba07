"""Rotation handlers that misbehave as real ones do: exit the process, leak a thread, hang, print to stdout.

Registered on the local stack by ``test_emulator.py``; each runs in a worker
process of its own, so none of this may reach the stack.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

__all__ = ["echo_handler", "exiting_handler", "flaky_handler", "hanging_handler"]

_failed_once: set[tuple[str, str]] = set()


def exiting_handler(event: dict[str, Any], context: Any) -> None:
    """Leaks a non-daemon thread (which would keep a normal interpreter alive), then ``sys.exit(3)``."""
    threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()
    print("about to exit")  # stdout: must not break the worker's protocol
    sys.exit(3)


def hanging_handler(event: dict[str, Any], context: Any) -> None:
    """Never answers: Lambda's timeout must stop it."""
    time.sleep(3600)


def echo_handler(event: dict[str, Any], context: Any) -> None:
    """Fails every step with what the function saw: its event, pid and environment (names and endpoint only)."""
    seen = {
        "event": event,
        "pid": os.getpid(),
        "function": context.function_name,
        "arn": context.invoked_function_arn,
        "endpoint": os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER"),
        "sm_endpoint": os.environ.get("SECRETS_MANAGER_ENDPOINT"),
        "greeting": os.environ.get("GREETING"),
        "profile": os.environ.get("AWS_PROFILE"),
    }
    print("echo", seen)
    raise RuntimeError(repr(seen))


def flaky_handler(event: dict[str, Any], context: Any) -> None:
    """The third-party function, but its first setSecret of each token fails (a network blip, say)."""
    from tests.integration.thirdparty_rotation import lambda_handler

    key = (event["ClientRequestToken"], event["Step"])
    if event["Step"] == "setSecret" and key not in _failed_once:
        _failed_once.add(key)
        raise ConnectionError("simulated network blip in setSecret")
    lambda_handler(event, context)
