"""One rotation function's runtime: a process of its own that speaks JSON lines, as Lambda's runtime would.

Started by :mod:`embedded_stack.functions` as ``python worker.py module:function``
(run as a *file*, with the standard library only, so any interpreter can run
it: another virtual environment with its own pymongo, an older Python). It
imports the handler once, as Lambda does at init, and then answers one
invocation per line on stdin:

* in: ``{"event": {...}, "request_id": "...", "timeout_ms": 30000}``
* out (on the original stdout; the handler's own ``print`` goes to stderr):
  ``{"ready": true}`` once, then per invocation ``{"result": ...}``,
  ``{"error": {"errorType", "errorMessage", "stackTrace"}}`` or
  ``{"exit": status}`` when the handler ended the process (``sys.exit``).

An import that fails is answered as Lambda names it
(``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``) and the process
exits; a handler that exits leaves with ``os._exit`` so that threads it leaked
cannot hold the process. The parent enforces the timeout and kills the whole
process group.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import traceback
from typing import Any

__all__ = ["LambdaContext", "main"]


class LambdaContext:
    """The parts of Lambda's ``context`` object that rotation functions use."""

    def __init__(self, request_id: str, timeout_ms: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("SECRETSWITCH_FUNCTION_ARN", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = request_id
        self.log_group_name = "/aws/lambda/" + self.function_name
        self.log_stream_name = "local/" + str(os.getpid())
        self._deadline = time.monotonic() + timeout_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _error(error_type: str, message: str, exc: BaseException | None = None) -> dict[str, Any]:
    trace = traceback.format_exception(type(exc), exc, exc.__traceback__) if exc is not None else []
    return {"errorType": error_type, "errorMessage": message, "stackTrace": trace}


def _load(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - reported to the caller as Lambda does
        return _error("Runtime.ImportModuleError", f"Unable to import module {module_name!r}: {exc}", exc)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        return _error("Runtime.HandlerNotFound", f"Handler {attribute!r} missing on module {module_name!r}")
    return handler


def main(argv: list[str]) -> int:
    # The protocol keeps the original stdout; whatever the handler prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    # Run as a file, this folder would come first on sys.path and shadow the user's modules.
    # As Lambda's runtime: the root logger writes to the log stream (here stderr), WARNING unless the code says.
    logging.basicConfig(format="[%(levelname)s]\t%(asctime)s\t%(name)s\t%(message)s", stream=sys.stderr)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.path.insert(0, os.getcwd())

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message, default=str) + "\n")
        out.flush()

    handler = _load(argv[1])
    if isinstance(handler, dict):
        send({"error": handler})
        return 1
    send({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(str(request.get("request_id", "")), int(request.get("timeout_ms", 30000)))
        try:
            result = handler(request["event"], context)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            send({"exit": code})
            os._exit(code)
        except KeyboardInterrupt:
            send({"exit": 130})
            os._exit(130)
        except Exception as exc:  # noqa: BLE001 - the handler's failure is the answer
            send({"error": _error(type(exc).__name__, str(exc), exc)})
        else:
            send({"result": result})
    os._exit(0)  # stdin closed: the stack stops; leaked threads must not keep us


if __name__ == "__main__":
    sys.exit(main(sys.argv))
