"""Hot path and API-call benchmarks: ``python -m bench.hot_path``.

Anchors measured in the same run:

* the floor: a monotonic deadline check plus an attribute read;
* ``RotatingMongoClient.database()`` on a cache hit, the same with
  OpenTelemetry metrics on (``meter_provider=``, an SDK provider with a
  reader), and ``AsyncRotatingMongoClient.database()`` (sync, no await) on a hit;
* ``cachetools.TTLCache`` lookup, Powertools ``parameters.get_secret(max_age=...)``
  and ``SecretCache.get_secret_string`` on a warm cache;
* 8 threads against 1 thread on our hot path (total calls per second);
* Secrets Manager API calls per refresh: ours against ``SecretCache``'s.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench._common import ns_per_call, print_table

__all__ = ["main"]

REGION = "us-west-1"


class _Holder:
    def __init__(self, value: object) -> None:
        self.value = value
        self.deadline = time.monotonic() + 1e9


def _threads_ratio(fn: Any, *, threads: int = 8, seconds: float = 1.0) -> float:
    """Calls per second with ``threads`` threads divided by calls per second with one."""

    def rate(count: int) -> float:
        stop = threading.Event()
        totals = [0] * count

        def worker(index: int) -> None:
            n = 0
            while not stop.is_set():
                for _ in range(1000):
                    fn()
                n += 1000
            totals[index] = n

        workers = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
        start = time.perf_counter()
        for thread in workers:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in workers:
            thread.join()
        return sum(totals) / (time.perf_counter() - start)

    return rate(threads) / rate(1)


def _count_calls(sm: Any) -> dict[str, int]:
    counts: dict[str, int] = {}

    def count(event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        counts[operation] = counts.get(operation, 0) + 1

    sm.meta.events.register("before-call.secrets-manager", count)
    return counts


def main() -> int:
    import logging

    from aws_lambda_powertools.utilities import parameters
    from aws_secretsmanager_caching import SecretCache, SecretCacheConfig
    from cachetools import TTLCache
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from secretswitch.client import AsyncRotatingMongoClient, RotatingMongoClient
    from secretswitch.embedded_stack.stack import EmbeddedStack

    logging.getLogger("secretswitch.demo_app").setLevel(logging.WARNING)
    with EmbeddedStack(region=REGION) as stack:
        sm = stack.secretsmanager_client()
        with RotatingMongoClient("mongodb-app", secretsmanager_client=sm) as rc:
            holder = _Holder(rc.database())
            monotonic = time.monotonic

            def floor() -> object:
                if monotonic() < holder.deadline:
                    return holder.value
                return None

            ttl: TTLCache[str, object] = TTLCache(maxsize=16, ttl=3600)
            ttl["mongodb-app"] = holder.value
            cache = SecretCache(config=SecretCacheConfig(), client=sm)
            cache.get_secret_string("mongodb-app")
            # get_secret() is SecretsProvider.get() on a default provider; this one uses our endpoint.
            provider = parameters.SecretsProvider(boto3_client=sm)
            provider.get("mongodb-app", max_age=3600)

            meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
            metered = RotatingMongoClient("mongodb-app", secretsmanager_client=sm, meter_provider=meter_provider)

            loop = asyncio.new_event_loop()
            arc = loop.run_until_complete(AsyncRotatingMongoClient("mongodb-app", secretsmanager_client=sm).start())
            floor_ns = ns_per_call(floor)
            ours_ns = ns_per_call(rc.database)
            metered_ns = ns_per_call(metered.database)
            metered.close()
            meter_provider.shutdown()
            async_ns = ns_per_call(arc.database)  # a hit does no I/O: no loop needed to call it
            loop.run_until_complete(arc.close())
            loop.close()
            ttl_ns = ns_per_call(lambda: ttl["mongodb-app"])
            powertools_ns = ns_per_call(lambda: provider.get("mongodb-app", max_age=3600), number=5_000)
            secretcache_ns = ns_per_call(lambda: cache.get_secret_string("mongodb-app"), number=2_000)
            threads_ratio = _threads_ratio(rc.database)
            floor_threads_ratio = _threads_ratio(floor)

            rows = [
                ("floor (monotonic deadline check + attribute read)", f"{floor_ns:.0f} ns", "1.0x"),
                ("ours: `rc.database()` on a hit", f"{ours_ns:.0f} ns", f"{ours_ns / floor_ns:.2f}x floor (<= 2x)"),
                (
                    "ours with OpenTelemetry metrics on (`meter_provider=`)",
                    f"{metered_ns:.0f} ns",
                    f"{metered_ns / floor_ns:.2f}x floor; {metered_ns / ours_ns:.2f}x metrics off (<= 1.3x)",
                ),
                (
                    "ours, asyncio: `AsyncRotatingMongoClient.database()` on a hit",
                    f"{async_ns:.0f} ns",
                    f"{async_ns / floor_ns:.2f}x floor (<= 2x); {async_ns / ours_ns:.2f}x the threaded client",
                ),
                ("cachetools `TTLCache` lookup", f"{ttl_ns:.0f} ns", f"{ttl_ns / floor_ns:.1f}x floor"),
                (
                    "Powertools `get_secret(max_age=...)` warm",
                    f"{powertools_ns:.0f} ns",
                    f"{powertools_ns / floor_ns:.0f}x floor; ours {powertools_ns / ours_ns:.0f}x faster",
                ),
                (
                    "`SecretCache.get_secret_string` warm",
                    f"{secretcache_ns:.0f} ns",
                    f"{secretcache_ns / floor_ns:.0f}x floor; ours {secretcache_ns / ours_ns:.0f}x faster (>= 300x)",
                ),
                ("ours, 8 threads vs 1 (total calls/s)", f"{threads_ratio:.2f}x", "(>= 0.8x)"),
                ("floor, 8 threads vs 1 (total calls/s)", f"{floor_threads_ratio:.2f}x", "reference"),
            ]
            print_table("Hot path (same run)", rows)

            # API calls per refresh when the secret changed.
            counts = _count_calls(sm)
            document = json.loads(sm.get_secret_value(SecretId="mongodb-app")["SecretString"])
            counts.clear()
            sm.put_secret_value(SecretId="mongodb-app", SecretString=json.dumps(document))  # same login, new version
            counts.clear()
            before = rc.metrics.api_calls
            rc.refresh_now()
            ours_changed = rc.metrics.api_calls - before
            before = rc.metrics.api_calls
            rc.refresh_now()
            ours_unchanged = rc.metrics.api_calls - before

            item = cache._get_cached_secret("mongodb-app")
            sm.put_secret_value(SecretId="mongodb-app", SecretString=json.dumps(document))
            counts.clear()
            item._next_refresh_time = datetime(1970, 1, 1, tzinfo=UTC)  # force its refresh without sleeping
            cache.get_secret_string("mongodb-app")
            theirs_changed = sum(counts.values())
            counts.clear()
            item._next_refresh_time = datetime(1970, 1, 1, tzinfo=UTC)
            cache.get_secret_string("mongodb-app")
            theirs_unchanged = sum(counts.values())
            print_table(
                "Secrets Manager API calls per refresh",
                [
                    ("ours, secret changed", str(ours_changed), "GetSecretValue(AWSCURRENT)"),
                    ("ours, secret unchanged", str(ours_unchanged), "GetSecretValue(AWSCURRENT)"),
                    ("SecretCache, secret changed", str(theirs_changed), "DescribeSecret + GetSecretValue(VersionId)"),
                    ("SecretCache, secret unchanged", str(theirs_unchanged), "DescribeSecret"),
                ],
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
