"""Throughput and latency through the client: ``python -m bench.throughput``.

On the embedded stack (SecantusDB on loopback), 8 threads running ``find_one``:

* operations per second through ``RotatingMongoClient`` (``database()`` and
  ``run()``) against a plain ``MongoClient`` on the same server (target >= 0.95x);
* p99 latency while the client switches users every 250 ms (alternating users:
  the passive user gets a new password, ``AWSCURRENT`` names it, the client
  refreshes) against steady state (target <= 2x);
* the cost of durability: ``insert_one`` per second on a SecantusDB started
  with ``--sync-on-commit`` (the embedded stack's default: a ``kill -9`` loses
  no acknowledged write) against one without, same machine, same run.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import percentile, print_table

__all__ = ["main"]

REGION = "us-east-2"
THREADS = 8


def _load(
    op: Callable[[], object],
    seconds: float,
    *,
    during: Callable[[], None] | None = None,
    threads: int = THREADS,
) -> tuple[float, list[float], int]:
    """Run ``op`` from ``threads`` threads for ``seconds``: (ops/s, latencies in ms, failures)."""
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        mine = latencies[index]
        barrier.wait()
        while not stop.is_set():
            start = time.perf_counter()
            try:
                op()
            except Exception:
                failures[index] += 1
                continue
            mine.append((time.perf_counter() - start) * 1000)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    if during is not None:
        during()
    remaining = seconds - (time.perf_counter() - start)
    if remaining > 0:
        time.sleep(remaining)
    stop.set()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - start
    flat = [value for chunk in latencies for value in chunk]
    return len(flat) / elapsed, flat, sum(failures)


def _durability_cost() -> list[tuple[str, str, str]]:
    """insert_one/s with and without --sync-on-commit, interleaved, best of two; rows for the table."""
    from pymongo import MongoClient

    from embedded_stack.stack import SecantusServer

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="secretswitch-bench-") as tmp:
        servers = {
            durable: SecantusServer(Path(tmp) / f"data-{durable}", Path(tmp) / f"log-{durable}", sync_on_commit=durable)
            for durable in (False, True)
        }
        clients: dict[bool, MongoClient[dict[str, Any]]] = {}
        try:
            for durable, server in servers.items():
                server.start(auth=False)
                clients[durable] = MongoClient(server.host, server.port, directConnection=True, maxPoolSize=16)
            for threads in (1, THREADS):
                best: dict[bool, float] = {False: 0.0, True: 0.0}
                for client in clients.values():  # warm the pools and the files
                    _load(lambda c=client: c["bench"]["writes"].insert_one({"x": 1}), 0.3, threads=threads)
                for _ in range(2):
                    for durable, client in clients.items():
                        rate = _load(lambda c=client: c["bench"]["writes"].insert_one({"x": 1}), 1.5, threads=threads)[
                            0
                        ]
                        best[durable] = max(best[durable], rate)
                rows.append((f"{threads} thread(s) `insert_one`, SecantusDB without --sync-on-commit",
                             f"{best[False]:,.0f} ops/s", "1.0x"))  # fmt: skip
                rows.append((f"{threads} thread(s) `insert_one`, with --sync-on-commit (the stack's default)",
                             f"{best[True]:,.0f} ops/s", f"{best[True] / best[False]:.2f}x"))  # fmt: skip
        finally:
            for client in clients.values():
                client.close()
            for server in servers.values():
                server.stop()
    return rows


def main() -> int:
    import logging

    from client import RotatingMongoClient
    from embedded_stack.stack import APP_DATABASE, EmbeddedStack

    logging.getLogger("demo_app").setLevel(logging.WARNING)
    with EmbeddedStack(region=REGION) as stack:
        sm = stack.secretsmanager_client()
        document = json.loads(sm.get_secret_value(SecretId="mongodb-app")["SecretString"])
        options: dict[str, Any] = {"maxPoolSize": 16}
        plain = stack.mongo_client(document["username"], document["password"], **options)
        rc = RotatingMongoClient("mongodb-app", secretsmanager_client=sm, mongo_options=options)
        with plain, rc:
            plain_items = plain[APP_DATABASE]["items"]

            def plain_op() -> object:
                return plain_items.find_one({"_id": "seed"})

            def ours_op() -> object:
                return rc.database()["items"].find_one({"_id": "seed"})

            def ours_run() -> object:
                return rc.run(lambda db: db["items"].find_one({"_id": "seed"}))

            for op in (plain_op, ours_op, ours_run):  # warm the pools
                _load(op, 0.3)
            rates: dict[str, list[float]] = {"plain": [], "ours": [], "run": []}
            for _ in range(2):  # interleaved, best of two
                rates["plain"].append(_load(plain_op, 1.5)[0])
                rates["ours"].append(_load(ours_op, 1.5)[0])
                rates["run"].append(_load(ours_run, 1.5)[0])
            plain_rate, ours_rate, run_rate = (max(rates[k]) for k in ("plain", "ours", "run"))

            _, steady, steady_failures = _load(ours_run, 3.0)
            switches = 0

            def switch_repeatedly() -> None:
                nonlocal switches
                deadline = time.perf_counter() + 2.8
                while time.perf_counter() < deadline:
                    current = json.loads(sm.get_secret_value(SecretId="mongodb-app")["SecretString"])
                    passive = "app_clone" if current["username"] == "app" else "app"
                    new = dict(current, username=passive, password=secrets.token_urlsafe(18))
                    with stack.admin_client() as admin:
                        admin.admin.command("updateUser", passive, pwd=new["password"])
                    sm.put_secret_value(SecretId="mongodb-app", SecretString=json.dumps(new))
                    if rc.refresh_now():
                        switches += 1
                    time.sleep(0.25)

            _, switching, switching_failures = _load(ours_run, 3.0, during=switch_repeatedly)
            steady_p99, switching_p99 = percentile(steady, 0.99), percentile(switching, 0.99)
            print_table(
                f"Throughput, {THREADS} threads, find_one on SecantusDB (same run)",
                [
                    ("plain MongoClient", f"{plain_rate:,.0f} ops/s", "1.0x"),
                    (
                        "ours, `rc.database()[...]`",
                        f"{ours_rate:,.0f} ops/s",
                        f"{ours_rate / plain_rate:.2f}x (>= 0.95x)",
                    ),
                    ("ours, `rc.run(fn)`", f"{run_rate:,.0f} ops/s", f"{run_rate / plain_rate:.2f}x"),
                    ("p50 steady, `run`", f"{percentile(steady, 0.5):.2f} ms", ""),
                    ("p99 steady, `run`", f"{steady_p99:.2f} ms", "1.0x"),
                    (
                        f"p99 during {switches} switches (every 250 ms)",
                        f"{switching_p99:.2f} ms",
                        f"{switching_p99 / steady_p99:.2f}x steady (<= 2x)",
                    ),
                    ("max during switches", f"{max(switching):.2f} ms", ""),
                    ("failed operations (steady / switching)", f"{steady_failures} / {switching_failures}", "0 / 0"),
                ],
            )
    print_table("Durability: acknowledged writes per second (same run)", _durability_cost())
    return 0


if __name__ == "__main__":
    sys.exit(main())
