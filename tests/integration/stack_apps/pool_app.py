"""A ``multiprocessing`` fork pool behind a small HTTP server: the parent made the client, the children use it.

``python -m tests.integration.stack_apps.pool_app PORT``: the rotating client
and a collection handle are made at import time in the parent; a fork pool
of 3 workers (``maxtasksperchild=10``: workers are forked again all along,
also while the parent's client refreshes) runs every request's operation.
SIGTERM stops the server, the pool and the client.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from secretswitch.client import RotatingMongoClient

from .common import DATABASE, MONGO_OPTIONS, error_body, ok_body, policy, secret_id

rc = RotatingMongoClient(secret_id(), database=DATABASE, policy=policy(), mongo_options=MONGO_OPTIONS)
items = rc.database()["stack_pool_items"]


def task() -> tuple[int, str]:
    """One request's work, in a pool worker (a forked child)."""
    try:
        inserted = items.insert_one({"pid": os.getpid()}).inserted_id
        if items.find_one({"_id": inserted}) is None:
            raise LookupError("the document just inserted is missing")
    except Exception as exc:
        return 500, error_body(exc)
    return 200, ok_body(rc.active_user)


class Handler(BaseHTTPRequestHandler):
    pool: multiprocessing.pool.Pool

    def do_GET(self) -> None:
        try:
            status, body = self.pool.apply_async(task).get(timeout=20)
        except multiprocessing.TimeoutError:
            status, body = 504, json.dumps({"error": "pool task timed out"})
        data = body.encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the test's client gave up
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test counts the answers."""


def main(port: int) -> None:
    with multiprocessing.get_context("fork").Pool(3, maxtasksperchild=10) as pool:
        Handler.pool = pool
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

        def stop(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        try:
            server.serve_forever(poll_interval=0.1)
        finally:
            server.server_close()
            pool.terminate()
    rc.close()


if __name__ == "__main__":
    main(int(sys.argv[1]))
