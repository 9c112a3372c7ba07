"""The demo's asyncio application: the same workload as :mod:`demo_app.workload`, on one event loop.

Three parts:

* :class:`OrderService` and :func:`run_example`: a minimal asyncio service
  (what a FastAPI or aiohttp app does with the client: one shared
  :class:`~client.AsyncRotatingMongoClient`, handlers that await operations
  through it). The README's FastAPI example is this, with routes.
* :class:`AsyncWorkload`: ``secretswitch demo --async``'s application:
  ``workers`` tasks doing the threaded workload's mix of inserts and reads
  (same documents, same random arrivals, same :class:`~demo_app.workload.OpLog`),
  through ``AsyncRotatingMongoClient.run``.
* :class:`AsyncClientHost`: runs the event loop in a thread of its own, so
  the demo's threaded driver (rotations, live view, final check) can hold
  the async client like the threaded one: ``active_user``, ``credentials``,
  ``metrics``, ``run``, ``close``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from secretswitch.client import AsyncRotatingMongoClient

from .workload import COLLECTION, OpLog, WorkloadBase, WorkloadShape, user_of

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from secretswitch.client import ClientMetrics, MongoCredentials

__all__ = ["AsyncClientHost", "AsyncWorkload", "ExampleReport", "OrderService", "run_example"]

T = TypeVar("T")


# -- the example service ---------------------------------------------------------------


class OrderService:
    """An asyncio service's data layer: handlers share one rotating client and never see a password."""

    def __init__(self, rc: AsyncRotatingMongoClient, *, collection: str = "orders") -> None:
        self.orders = rc.collection(collection)

    async def create_order(self, sku: str, quantity: int) -> Any:
        """``POST /orders``: returns the new order's id."""
        result = await self.orders.insert_one({"sku": sku, "quantity": quantity})
        return result.inserted_id

    async def get_order(self, order_id: Any) -> dict[str, Any] | None:
        """``GET /orders/{id}``."""
        document: dict[str, Any] | None = await self.orders.find_one({"_id": order_id})
        return document


@dataclass
class ExampleReport:
    """What :func:`run_example` saw: requests served, failed, and the users that served them."""

    served: int = 0
    failed: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)


async def run_example(
    rc: AsyncRotatingMongoClient,
    *,
    requests: int,
    concurrency: int = 20,
    between: Callable[[int], Awaitable[None]] | None = None,
) -> ExampleReport:
    """Serve ``requests`` create-then-get requests, ``concurrency`` at a time, through :class:`OrderService`.

    Args:
        rc: a started client.
        requests: how many requests to serve.
        concurrency: requests in flight at once.
        between: awaited after each batch with the number served so far
            (tests rotate the secret there).
    """
    service = OrderService(rc)
    report = ExampleReport()

    async def request(n: int) -> None:
        try:
            order_id = await service.create_order(f"sku-{n}", n)
            order = await service.get_order(order_id)
            if order is None or order["quantity"] != n:
                report.failed.append(f"request {n}: order not found")
                return
        except Exception as exc:  # noqa: BLE001 - a failed request is counted, as a server would
            report.failed.append(f"request {n}: {type(exc).__name__}")
            return
        report.served += 1
        if not report.users or report.users[-1] != rc.active_user:
            report.users.append(rc.active_user)

    for start in range(0, requests, concurrency):
        await asyncio.gather(*(request(n) for n in range(start, min(requests, start + concurrency))))
        if between is not None:
            await between(min(requests, start + concurrency))
    return report


# -- the demo's workload -----------------------------------------------------------------


class AsyncWorkload(WorkloadBase):
    """``workers`` tasks running inserts and reads through ``host``'s client until stopped.

    The same arguments, documents and arrival model as
    :class:`~demo_app.workload.Workload`; only the runner differs.
    """

    def __init__(self, host: AsyncClientHost, log: OpLog, **shape: Unpack[WorkloadShape]) -> None:
        super().__init__(log, **shape)
        self.host = host
        self._stop: asyncio.Event | None = None
        self._done: concurrent.futures.Future[None] | None = None

    def start(self) -> None:
        self._done = self.host.submit(self._main())

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the workers and wait for the operations in flight."""
        stop, done = self._stop, self._done
        if stop is not None:
            self.host.loop.call_soon_threadsafe(stop.set)
        if done is not None:
            try:
                done.result(timeout)
            except concurrent.futures.TimeoutError:
                done.cancel()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        workers = []
        for worker in range(self.workers):
            rng = random.Random(None if self.seed is None else self.seed * 1000 + worker)
            workers.append(asyncio.create_task(self._work(worker, rng, self._stop), name=f"demo-{self.side}-{worker}"))
        await asyncio.gather(*workers)

    async def _work(self, worker: int, rng: random.Random, stop: asyncio.Event) -> None:
        seq = 0
        last_acknowledged = 0
        next_at = self._monotonic() + rng.random() * self.mean_gap
        while not stop.is_set():
            delay = next_at - self._monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            next_at = max(next_at, self._monotonic() - 1.0) + rng.expovariate(1.0 / self.mean_gap)
            if rng.random() < self.write_ratio or last_acknowledged == 0:
                seq += 1
                document = {"run": self.run_id, "side": self.side, "worker": worker, "seq": seq}

                async def insert(db: AsyncDatabase[dict[str, Any]], document: dict[str, Any] = document) -> str:
                    # A new dict per attempt: a retried insert gets a new _id, so a double write is visible.
                    await db[COLLECTION].insert_one(dict(document))
                    return user_of(db)

                if await self._attempt(insert, write=(worker, seq)):
                    last_acknowledged = seq
            else:
                wanted = rng.randint(1, last_acknowledged)

                async def read(db: AsyncDatabase[dict[str, Any]], wanted: int = wanted) -> str:
                    await db[COLLECTION].find_one(
                        {"run": self.run_id, "side": self.side, "worker": worker, "seq": wanted}
                    )
                    return user_of(db)

                await self._attempt(read)

    async def _attempt(
        self,
        operation: Callable[[AsyncDatabase[dict[str, Any]]], Awaitable[str]],
        *,
        write: tuple[int, int] | None = None,
    ) -> bool:
        try:
            user = await self.host.rc.run(operation)
        except Exception as exc:  # noqa: BLE001 - every failure of an operation is counted, never fatal
            self.log.record(self._monotonic() - self.started, "-", False, error=type(exc).__name__)
            return False
        self.log.record(self._monotonic() - self.started, str(user), True, write=write)
        return True


# -- the loop's thread -------------------------------------------------------------------


class AsyncClientHost:
    """An ``AsyncRotatingMongoClient`` on an event loop in its own thread, held from threaded code.

    Args:
        secret_id: the application's secret.
        options: :class:`~client.AsyncRotatingMongoClient` keyword arguments.

    Raises:
        Whatever ``AsyncRotatingMongoClient.start()`` raises (the thread is stopped first).
    """

    def __init__(self, secret_id: str, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="secretswitch-demo-loop", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self.rc: AsyncRotatingMongoClient = self.call(AsyncRotatingMongoClient(secret_id, **options).start())
        except BaseException:
            self._stop_loop()
            raise

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        return self.submit(coroutine).result(timeout)

    @property
    def active_user(self) -> str:
        return self.rc.active_user

    @property
    def credentials(self) -> MongoCredentials:
        return self.rc.credentials

    @property
    def metrics(self) -> ClientMetrics:
        return self.rc.metrics

    def run(self, fn: Callable[[AsyncDatabase[dict[str, Any]]], Awaitable[T]]) -> T:
        """``await rc.run(fn)`` on the loop, from a thread."""
        return self.call(self.rc.run(fn))

    def close(self) -> None:
        """Close the client on its loop, then stop the loop and its thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.call(self.rc.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        async def cancel_the_rest() -> None:
            tasks: Sequence[asyncio.Task[Any]] = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(cancel_the_rest(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()
