"""What TLS costs: ``python -m bench tls``.

Two embedded stacks in the same run, one plaintext and one TLS-only (its own
CA, certificate and host-name verification on), on the same machine:

* a ``MongoClient`` rebuild — what the rotating client does at every switch
  and recovery: build the client, TLS handshakes (the monitor's and the
  pool's), SCRAM login, one ``ping`` — over TLS against the same over
  plaintext (anchor). Median of interleaved runs.
* the p99 latency of 8 threads of ``rc.run(find_one)`` while the client
  switches users every 250 ms (a planned rotation: the passive user gets a new
  password, ``AWSCURRENT`` names it, the client refreshes) over TLS, against
  the steady p99 of the same TLS workload (target <= 2x); the plaintext steady
  p99 of the same run is shown for scale.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench._common import percentile, print_table

__all__ = ["main"]

THREADS = 8
REBUILDS = 25
LOAD_SECONDS = 3.0
SWITCH_EVERY_S = 0.25


def _rebuild_ms(credentials: Any) -> float:
    from secretswitch.client.mongo import build_mongo_client

    start = time.perf_counter()
    client = build_mongo_client(credentials, {})
    try:
        client.admin.command("ping")
    finally:
        client.close()
    return (time.perf_counter() - start) * 1000


def _load(
    op: Callable[[], object], seconds: float, during: Callable[[], None] | None = None
) -> tuple[list[float], int]:
    """``op`` from THREADS threads for ``seconds``: latencies (ms) and the number of failures."""
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(THREADS)]
    failures = [0] * THREADS
    barrier = threading.Barrier(THREADS + 1)

    def worker(index: int) -> None:
        barrier.wait()
        while not stop.is_set():
            start = time.perf_counter()
            try:
                op()
            except Exception:
                failures[index] += 1
                continue
            latencies[index].append((time.perf_counter() - start) * 1000)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    origin = time.perf_counter()
    if during is not None:
        during()
    remaining = seconds - (time.perf_counter() - origin)
    if remaining > 0:
        time.sleep(remaining)
    stop.set()
    for thread in threads:
        thread.join()
    return [value for chunk in latencies for value in chunk], sum(failures)


def _switcher(stack: Any, sm: Any, rc: Any, seconds: float) -> tuple[Callable[[], None], list[int]]:
    switches = [0]

    def switch_repeatedly() -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            current = json.loads(sm.get_secret_value(SecretId="mongodb-app")["SecretString"])
            passive = "app_clone" if current["username"] == "app" else "app"
            new = dict(current, username=passive, password=secrets.token_urlsafe(18))
            with stack.admin_client() as admin:
                admin.admin.command("updateUser", passive, pwd=new["password"])
            sm.put_secret_value(SecretId="mongodb-app", SecretString=json.dumps(new))
            if rc.refresh_now():
                switches[0] += 1
            time.sleep(SWITCH_EVERY_S)

    return switch_repeatedly, switches


def main() -> int:
    from secretswitch.client import RotatingMongoClient
    from secretswitch.client.credentials import parse_secret
    from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack

    logging.getLogger("secretswitch.client").setLevel(logging.ERROR)
    with EmbeddedStack(region="af-south-1") as plain_stack, EmbeddedStack(region="me-south-1", tls=True) as tls_stack:
        stacks = {"plaintext": plain_stack, "TLS": tls_stack}
        creds = {
            name: parse_secret(
                stack.secretsmanager_client().get_secret_value(SecretId="mongodb-app")["SecretString"],
                secret_id="mongodb-app",
            )
            for name, stack in stacks.items()
        }
        rebuilds: dict[str, list[float]] = {name: [] for name in stacks}
        for credentials in creds.values():  # warm-up: imports, first handshakes, server caches
            _rebuild_ms(credentials)
        rng = random.Random(7)
        for _ in range(REBUILDS):
            order = list(stacks)
            rng.shuffle(order)
            for name in order:
                rebuilds[name].append(_rebuild_ms(creds[name]))

        steady: dict[str, list[float]] = {}
        for name, stack in stacks.items():
            sm = stack.secretsmanager_client()
            with RotatingMongoClient("mongodb-app", secretsmanager_client=sm, mongo_options={"maxPoolSize": 16}) as rc:

                def op(rc: Any = rc) -> object:
                    return rc.run(lambda db: db[APP_DATABASE]["items"].find_one({"_id": "seed"}))

                _load(op, 0.5)  # warm the pool
                steady[name], steady_failed = _load(op, LOAD_SECONDS)
                if name == "TLS":
                    during, switches = _switcher(stack, sm, rc, LOAD_SECONDS - 0.2)
                    switching, switching_failed = _load(op, LOAD_SECONDS, during=during)

    plain_rebuild = statistics.median(rebuilds["plaintext"])
    tls_rebuild = statistics.median(rebuilds["TLS"])
    tls_steady_p99 = percentile(steady["TLS"], 0.99)
    switching_p99 = percentile(switching, 0.99)
    plain_steady_p99 = percentile(steady["plaintext"], 0.99)
    verdict = "meets" if switching_p99 <= 2 * tls_steady_p99 else "MISSES"
    print_table(
        f"MongoClient rebuild (build + TLS handshakes + SCRAM + ping), median of {REBUILDS} interleaved runs",
        [
            ("plaintext rebuild (anchor)", f"{plain_rebuild:.1f} ms", "1.0x"),
            ("TLS rebuild, certificate + host name verified", f"{tls_rebuild:.1f} ms",
             f"{tls_rebuild / plain_rebuild:.2f}x plaintext"),
        ],
    )  # fmt: skip
    print_table(
        f"Planned switches under load over TLS: {THREADS} threads of `rc.run(find_one)` (same run)",
        [
            ("p99 steady, plaintext (for scale)", f"{plain_steady_p99:.2f} ms", ""),
            ("p99 steady, TLS (anchor)", f"{tls_steady_p99:.2f} ms",
             f"1.0x ({tls_steady_p99 / plain_steady_p99:.2f}x plaintext)"),
            (f"p99 during {switches[0]} switches every {SWITCH_EVERY_S * 1000:.0f} ms, TLS", f"{switching_p99:.2f} ms",
             f"{switching_p99 / tls_steady_p99:.2f}x steady (<= 2x)"),
            ("max during switches, TLS", f"{max(switching):.2f} ms",
             f"{max(switching) / tls_steady_p99:.1f}x steady p99"),
            ("failed operations (steady / switching), TLS", f"{steady_failed} / {switching_failed}", "0 / 0"),
        ],
    )  # fmt: skip
    print(f"\nplanned-switch p99 over TLS {switching_p99 / tls_steady_p99:.2f}x steady: {verdict} the <= 2x goal")
    return 0 if steady_failed == switching_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
