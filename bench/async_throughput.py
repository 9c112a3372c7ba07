"""Throughput of the asyncio client: ``python -m bench.async_throughput``.

On the embedded stack, 32 tasks on one event loop running ``find_one``
through ``AsyncRotatingMongoClient`` (``run()`` and ``database()``) against a
plain ``AsyncMongoClient`` built with exactly the same arguments (target for
``run``: >= 0.95x). Fair as in ``bench.throughput``: short rounds, the order
rotated every round, medians, a collection handle taken per operation on
every side.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench._common import print_table

__all__ = ["main"]

REGION = "eu-central-1"
TASKS = 32
ROUNDS = 6


async def _rate(op: Callable[[], Awaitable[object]], seconds: float) -> tuple[float, int]:
    """Operations per second of TASKS tasks running ``op`` for ``seconds``, and the failures."""
    stop = asyncio.Event()
    counts = [0] * TASKS
    failures = [0]

    async def worker(index: int) -> None:
        while not stop.is_set():
            try:
                await op()
            except Exception:
                failures[0] += 1
                continue
            counts[index] += 1

    start = time.perf_counter()
    tasks = [asyncio.create_task(worker(i)) for i in range(TASKS)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return sum(counts) / (time.perf_counter() - start), failures[0]


async def _main() -> int:
    from secretswitch.client import AsyncRotatingMongoClient
    from secretswitch.client.mongo import build_async_mongo_client
    from secretswitch.embedded_stack.stack import APP_DATABASE, EmbeddedStack

    with EmbeddedStack(region=REGION) as stack:
        sm = stack.secretsmanager_client()
        options: dict[str, Any] = {"maxPoolSize": 16}
        async with AsyncRotatingMongoClient(
            "mongodb-app", database=APP_DATABASE, secretsmanager_client=sm, mongo_options=options
        ) as rc:
            # The same arguments the rotating client gives its own AsyncMongoClient.
            plain = build_async_mongo_client(rc.credentials, options)
            plain_db = plain[APP_DATABASE]

            async def plain_op() -> object:
                return await plain_db["items"].find_one({"_id": "seed"})

            async def ours_database() -> object:
                return await rc.database()["items"].find_one({"_id": "seed"})

            async def ours_run() -> object:
                return await rc.run(lambda db: db["items"].find_one({"_id": "seed"}))

            ops = {"plain": plain_op, "database": ours_database, "run": ours_run}
            for op in ops.values():  # warm the pools
                await _rate(op, 0.3)
            rates: dict[str, list[float]] = {name: [] for name in ops}
            failed = 0
            names = list(ops)
            for round_number in range(ROUNDS):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    rate, failures = await _rate(ops[name], 0.6)
                    rates[name].append(rate)
                    failed += failures
            await plain.close()
    median = {name: statistics.median(values) for name, values in rates.items()}
    print_table(
        f"asyncio throughput, {TASKS} tasks on one loop, find_one on SecantusDB (same run; {ROUNDS} rounds, "
        "order rotated)",
        [
            ("plain AsyncMongoClient, same arguments", f"{median['plain']:,.0f} ops/s", "1.0x"),
            (
                "ours, `await rc.run(fn)`",
                f"{median['run']:,.0f} ops/s",
                f"{median['run'] / median['plain']:.2f}x (>= 0.95x)",
            ),
            (
                "ours, `await rc.database()[...]`",
                f"{median['database']:,.0f} ops/s",
                f"{median['database'] / median['plain']:.2f}x",
            ),
            ("failed operations", str(failed), "0"),
        ],
    )
    return 0


def main() -> int:
    import logging

    logging.getLogger("secretswitch.client").setLevel(logging.ERROR)
    return asyncio.run(_main())


if __name__ == "__main__":
    sys.exit(main())
