"""The rotating MongoDB client for asyncio: an ``AsyncMongoClient`` that follows its secret.

::

    async with AsyncRotatingMongoClient("mongodb-app", database="mydb") as rc:
        db = rc.database()                                        # sync: the hot path, no I/O on a hit
        await rc.run(lambda db: db.items.insert_one({"x": 1}))    # + auth-failure recovery, one retry
        await rc.collection("items").find_one({})                 # the same recovery, per operation

The same guarantees as :class:`~client.rotating.RotatingMongoClient`, from
the same code: every decision (refresh schedule, backoff, what a refused
login tries, what ``run`` retries, events, metrics) is :mod:`client.core`'s.
This module is the core's shell for one event loop:

* **Single flight** is one task at a time (``_flight``): a refresh, a repair
  or a forced read runs as a task that callers await through
  ``asyncio.shield``, so a caller that is cancelled never cancels the flow
  (and never leaves a half-built client behind). 1,000 tasks on an expired
  cache start one refresh, in the background, and keep serving.
* **Secrets Manager** is boto3, called in a worker thread
  (``asyncio.to_thread``): it never blocks the loop. An async AWS client
  (aioboto3) would add a dependency for one call every few days.
* **MongoDB** is pymongo's own ``AsyncMongoClient`` (Motor is deprecated in
  its favour), built and closed by :mod:`client.mongo`.
* **One stable AsyncMongoClient**, whose login changes in place
  (:func:`client.mongo.adopt_login_async`), exactly as the threaded client's:
  every handle an application or an ODM keeps (Beanie's database, a
  collection held by a FastAPI dependency) follows every switch.
* **A refused login**, wherever the operation ran, is seen through pymongo's
  monitoring (:class:`~client.mongo.LoginWatch`) and repaired at once by a
  task on the client's loop; ``run`` and ``collection`` await the repair,
  ``database()`` starts it and hands out the stable database, whose
  operations wait for server selection until the login is repaired (it
  raises ``AuthenticationError`` only for ``forced_refresh_gap`` after a
  failed repair).
* **Background refresher**: one task per client (``background_refresh=True``,
  the default) starts each refresh when it is due, so a client whose handles
  an ODM holds still follows the schedule; ``close()`` stops it.

Start it with ``async with`` or ``await rc.start()`` (the first read of the
secret and the first login are I/O, so the constructor does none).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack, cast

from pymongo.errors import PyMongoError

from .credentials import MongoCredentials
from .errors import DatabaseError, SecretSwitchError
from .flows import Adopt, CheckLogin, CloseClient, Plan, ReadSecret, Request, drive_async, start_plan
from .hub import InFlight
from .mongo import (
    AsyncLoginCheck,
    AsyncMongoClientFactory,
    adopt_login_async,
    build_async_mongo_client,
    check_login_async,
    discard_async_client,
)
from .policy import Retry
from .shell import CLOSE_WAIT, ClientOptions, CollectionProxy, RotatingShell, ScheduleQuery, ShellOptions
from .state import Generation, ScheduleCheck

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.database import AsyncDatabase

__all__ = ["AsyncRecoveringCollection", "AsyncRotatingMongoClient"]

_log = logging.getLogger(__name__)
AsyncLoginAdopter = Callable[["AsyncMongoClient[dict[str, Any]]", "AsyncMongoClient[dict[str, Any]]"], Awaitable[None]]

T = TypeVar("T")
R = TypeVar("R")
_Gen = Generation["AsyncMongoClient[dict[str, Any]]", "AsyncDatabase[dict[str, Any]]"]
_Options = ClientOptions[AsyncMongoClientFactory, AsyncLoginCheck, AsyncLoginAdopter]


def _not_started() -> _Gen:
    """A placeholder before ``start()``: its ``check_at`` sends every call to the slow path, which refuses."""
    return Generation(
        number=0,
        credentials=MongoCredentials(username="-", password=""),
        client=cast("AsyncMongoClient[dict[str, Any]]", None),
        default_database=None,
        fetched_at=-math.inf,
        refresh_at=-math.inf,
        expires_at=-math.inf,
        retry_at=None,
        check_at=-math.inf,
    )


class AsyncRotatingMongoClient(RotatingShell["AsyncMongoClient[dict[str, Any]]", "AsyncDatabase[dict[str, Any]]"]):
    """A MongoDB client for asyncio that reads its credentials from Secrets Manager and follows rotations.

    Args:
        secret_id: the secret's name or ARN.
        database: the application's database (default: the secret's ``dbname``).
        secretsmanager_client: a boto3 ``secretsmanager`` client (called in a
            worker thread); default: ``boto3.client("secretsmanager")``.
        policy: refresh interval, jitter, backoff and forced-refresh gap.
        clock: monotonic seconds; every schedule uses it.
        mongo_options: extra ``AsyncMongoClient`` keyword arguments; they cannot set the login.
        on_event: a subscriber, same as :meth:`subscribe`.
        rng: the source of jitter.
        client_factory: builds an ``AsyncMongoClient`` from credentials and options.
        login_check: checks a new client's login (default: ``await ping``).
        close_grace: real seconds ``close()`` waits for ``run`` calls still in progress.
        background_refresh: run the background refresher task (default).
        login_adopter: moves a checked candidate's login onto the stable client
            (default :func:`client.mongo.adopt_login_async`; tests pass a fake's).
        meter_provider: an OpenTelemetry ``MeterProvider`` to report metrics through; ``None``: none.

    Raises:
        ConfigurationError: an argument is wrong.
    """

    def __init__(self, secret_id: str, **options: Unpack[_Options]) -> None:
        self._gen: _Gen = _not_started()  # start() makes the first one
        self._login_check = options.pop("login_check", check_login_async)
        self._login_adopter = options.pop("login_adopter", adopt_login_async)
        factory = options.pop("client_factory", build_async_mongo_client)
        super().__init__(secret_id, client_factory=factory, **cast("ShellOptions", options))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._refresher_task: asyncio.Task[None] | None = None
        self._started = False
        self._starting: asyncio.Task[Any] | None = None
        self._flight: asyncio.Task[Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping: asyncio.Event | None = None

    # -- starting and stopping -----------------------------------------------------

    async def start(self) -> Self:
        """Read the secret and log in (once; ``async with`` calls it).

        Raises:
            SecretsManagerError: the first read of the secret failed.
            SecretFormatError: the secret cannot be parsed.
            AuthenticationError: the database refused every version of the secret.
        """
        self._core.ensure_open()
        if self._starting is None:
            self._stopping = asyncio.Event()
            self._wake = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._starting = asyncio.get_running_loop().create_task(
                drive_async(self._core.start(), self._perform), name=f"secretswitch-start-{self.secret_id}"
            )
        try:
            await asyncio.shield(self._starting)
        except BaseException:
            if self._stable is not None and self._starting.done():
                await discard_async_client(self._stable)
                self._stable = None
            raise
        finally:
            self._deliver()
        if not self._started:
            self._started = True
            if self._refresher_enabled:
                # Not one of the short-lived tasks: it lives until close(), which waits for it.
                self._refresher_task = asyncio.get_running_loop().create_task(
                    self._refresher(), name=f"secretswitch-refresher-{self.secret_id}"
                )
        return self

    async def close(self) -> None:
        """Stop the background work and close every client (idempotent; leaves no task or socket behind)."""
        if self._closed:
            return
        self._closed = True
        if self._starting is None:
            self._core.close()
            return
        with contextlib.suppress(Exception):
            await asyncio.shield(self._starting)  # a start in progress finishes, then is closed
        if not self._starting.done() or self._starting.cancelled() or self._starting.exception() is not None:
            self._core.close()
            return
        self._core.close()  # every later call takes the slow path, which refuses
        if self._stopping is not None:
            self._stopping.set()
        if self._wake is not None:
            self._wake.set()
        flows = (self._flight, self._refresher_task, *self._tasks)
        pending = {task for task in flows if task is not None and not task.done()}
        if pending:
            _, late = await asyncio.wait(pending, timeout=CLOSE_WAIT)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        gen = self._gen
        await self._wait_idle(gen.in_flight, self._close_grace)
        if gen.refused:
            await discard_async_client(gen.client)
        else:
            with contextlib.suppress(PyMongoError):
                await gen.client.close()
        self._announce_closed(gen)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the slow path of the hot path (client.shell.RotatingShell.database) -------

    def _maintain(self) -> _Gen:
        """The slow path without awaiting: start a refresh, or a repair; never wait."""
        self._ensure_started()
        gen = self._gen
        if gen.refused:
            self._core.raise_if_refused(gen)
            if self._idle():
                self._launch(self._core.recover(gen))
            # The stable client: its operations wait for server selection until the login is repaired.
            return gen
        if self._idle() and self._core.due(gen, self._clock()):
            self._launch(self._core.refresh(reason="refresh-ahead"))
        return self._gen

    async def _current(self) -> _Gen:
        gen = self._gen
        if self._clock() < gen.check_at:
            return gen
        self._ensure_started()
        if gen.refused:
            return await self._repair(gen)
        if self._idle() and self._core.due(gen, self._clock()):
            self._launch(self._core.refresh(reason="refresh-ahead"))
        gen = self._gen
        return await self._repair(gen) if gen.refused else gen

    def _ensure_started(self) -> None:
        self._core.ensure_open()
        if not self._started:
            raise DatabaseError(
                f"the AsyncRotatingMongoClient for secret {self.secret_id!r} has not started: "
                "use `async with AsyncRotatingMongoClient(...) as rc:` or `await rc.start()`"
            )

    # -- the public surface ----------------------------------------------------------

    async def run(
        self, fn: Callable[[AsyncDatabase[dict[str, Any]]], Awaitable[T]], *, database: str | None = None
    ) -> T:
        """Await ``fn(database)`` and repair the client if the database refuses the login.

        Same rules as :meth:`RotatingMongoClient.run <client.rotating.RotatingMongoClient.run>`:
        one retry after a refused login (the command never reached the
        database), after an error proving the command never left a replaced
        client, or after a connection error from one.

        Raises:
            AuthenticationError: the login was refused and no version of the secret logs in.
            Exception: anything else ``fn`` raises, unchanged.
        """
        return await self._run(fn, database, retry_connection_errors=True)

    def collection(self, name: str, *, database: str | None = None) -> AsyncRecoveringCollection:
        """A collection whose immediate operations (``await find_one``, ``insert_one``, …) recover by themselves."""
        return AsyncRecoveringCollection(self, name, database)

    async def refresh_now(self) -> bool:
        """Read the secret now; calls that overlap share one read.

        Returns:
            True when the client switched to other credentials meanwhile.
        """
        self._ensure_started()
        before = self._gen.number
        ticket = self._core.read_ticket()
        try:
            while not self._core.read_done(ticket):
                self._core.ensure_open()
                flight = self._flight
                if flight is not None and not flight.done():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(flight)
                    continue
                await asyncio.shield(self._launch(self._core.refresh(reason="forced")))
        finally:
            self._deliver()
        return self._gen.number != before

    async def check_rotation_schedule(self, **query: Unpack[ScheduleQuery]) -> ScheduleCheck:
        """``DescribeSecret`` (in a worker thread) and the same check as the threaded client's.

        Raises:
            SecretsManagerError: ``DescribeSecret`` failed (the client is unaffected).
        """
        self._ensure_started()
        schedule = await asyncio.to_thread(self._source.rotation_schedule)
        return self._check_schedule(schedule, contextlib.nullcontext(), query)

    # -- single flight -------------------------------------------------------------

    def _idle(self) -> bool:
        return self._flight is None or self._flight.done()

    def _launch(self, plan: Plan[R]) -> asyncio.Future[R]:
        """Start ``plan`` as the flight (the caller checked none runs); a flow without I/O finishes here."""
        request, result = start_plan(plan)
        loop = asyncio.get_running_loop()
        if request is None:
            done: asyncio.Future[R] = loop.create_future()
            done.set_result(cast("R", result))
            self._deliver()
            return done
        task = loop.create_task(drive_async(plan, self._perform, first=request), name=f"secretswitch-{self.secret_id}")
        self._flight = task
        task.add_done_callback(self._flight_done)
        return task

    def _flight_done(self, task: asyncio.Task[Any]) -> None:
        if self._flight is task:
            self._flight = None
        if not task.cancelled():
            task.exception()  # retrieved: a background refresh nobody awaited must not warn
        self._deliver()

    async def _serialized(self, make_plan: Callable[[], Plan[R]]) -> R:
        """Run a flow once the one in flight (if any) is done; the caller's cancellation never cancels it."""
        while (flight := self._flight) is not None and not flight.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(flight)
        try:
            return await asyncio.shield(self._launch(make_plan()))
        finally:
            self._deliver()

    async def _repair(self, gen: _Gen, cause: BaseException | None = None) -> _Gen:
        for _ in range(3):  # a repaired client refused at once again gets one more try, never a loop
            self._core.raise_if_refused(gen, cause)
            gen = await self._serialized(functools.partial(self._core.recover, gen, cause))
            if not gen.refused:
                break
        return gen

    # -- running operations ----------------------------------------------------------

    async def _run(
        self,
        fn: Callable[[AsyncDatabase[dict[str, Any]]], Awaitable[T]],
        database: str | None,
        *,
        retry_connection_errors: bool,
    ) -> T:
        gen = await self._current()
        try:
            return await self._run_on(gen, fn, database)
        except PyMongoError as exc:
            step = self._after_error(gen, exc, retry_connection_errors=retry_connection_errors)
            if step is Retry.RAISE:
                raise
            retry_gen = await (self._repair(gen, exc) if step is Retry.REPAIR else self._current())
        self._core.count("retries")
        return await self._run_on(retry_gen, fn, database)

    async def _run_on(
        self, gen: _Gen, fn: Callable[[AsyncDatabase[dict[str, Any]]], Awaitable[T]], database: str | None
    ) -> T:
        while not gen.in_flight.enter():
            gen = await self._current()  # retired between our read and now: use the live one
        try:
            return await fn(self._database_of(gen, database))
        finally:
            gen.in_flight.leave()

    # -- I/O for the core --------------------------------------------------------------

    async def _perform(self, request: Request) -> Any:
        if isinstance(request, ReadSecret):
            # boto3 is synchronous: a worker thread keeps the loop free.
            return await asyncio.to_thread(self._source.get_version, request.stage)
        if isinstance(request, CheckLogin):
            return await self._login_check(request.client, request.credentials)
        if isinstance(request, Adopt):
            return await self._adopt(request.client)
        if isinstance(request, CloseClient):
            if request.client is not self._stable:
                await discard_async_client(request.client)
            return None
        return self._answer_locally(request)

    async def _adopt(self, candidate: AsyncMongoClient[dict[str, Any]]) -> AsyncMongoClient[dict[str, Any]]:
        stable = self._stable
        if self._adopt_first(candidate) or stable is None:
            return candidate
        try:
            await self._login_adopter(stable, candidate)
            self._adopted_at = time.monotonic()  # pymongo's clock for server descriptions
        finally:
            # Closing a client waits for its monitor: never on the repair's path.
            self._spawn(discard_async_client(candidate), name=f"secretswitch-close-{self.secret_id}")
        return stable

    # -- healing handles the client does not see -------------------------------------

    def _login_refused(self, seen_at: float | None) -> None:
        gen = self._gen
        if not gen.refused and not self._refused_before_adoption(seen_at):
            self._on_loop(self._start_heal, gen)

    def _pool_cleared(self) -> None:
        # Looked at once the failing operation has let go.
        if not self._gen.refused:
            self._on_loop(self._check_refused)

    def _on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` on the client's loop (pymongo may call from its own thread), unless closed."""
        loop = self._loop
        if loop is None or self._closed or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(callback, *args)

    def _start_heal(self, gen: _Gen) -> None:
        if not self._closed and self._gen.number == gen.number and not gen.refused:
            self._spawn(self._heal(gen), name=f"secretswitch-heal-{self.secret_id}")

    async def _heal(self, gen: _Gen) -> None:
        if self._gen.number != gen.number or self._closed:
            return
        self._core.refuse(gen)
        try:
            await self._repair(gen)
        except SecretSwitchError:
            pass  # auth_recovery_failed is out; the refresher tries again after the gap
        finally:
            if self._wake is not None:
                self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _set_generation(self, gen: _Gen) -> None:
        self._gen = gen
        if self._wake is not None:
            self._wake.set()

    async def _refresher(self) -> None:
        """Start each refresh when it is due, and retry a failed repair after the gap, until close()."""
        wake = self._wake
        if wake is None:  # start() sets it before starting this task
            return
        while not self._closed:
            wake.clear()
            gen = self._gen
            wait = self._refresher_wait(gen)
            if wait and self._refresher_idle(gen, await _woken(wake, wait)):
                continue
            with self._refresher_step():
                if gen.refused:
                    await self._repair(gen)
                else:
                    self._maintain()
            await _woken(wake, 1.0)

    @staticmethod
    async def _wait_idle(in_flight: InFlight, timeout: float) -> None:
        """Wait until no ``run`` call uses a client (at most ``timeout`` real seconds); refuse new ones."""
        closed = asyncio.Event()
        in_flight.close_when_idle(closed.set)
        if not await _woken(closed, timeout):
            in_flight.refuse()


async def _woken(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` at most ``timeout`` real seconds; True if it was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    return event.is_set()


class AsyncRecoveringCollection(CollectionProxy):
    """An ``AsyncCollection`` proxy whose immediate operations recover from auth failures.

    Made by :meth:`AsyncRotatingMongoClient.collection`. ``await
    coll.find_one(...)``, ``await coll.insert_one(...)``, … go through the same
    recovery as ``run`` (writes retried only when the command never left);
    every other attribute (``find`` and its cursor, ``name``, …) is the live
    ``AsyncCollection``'s own.
    """

    __slots__ = ()
    _owner: AsyncRotatingMongoClient

    def _call(self, attribute: str, *, retry_connection_errors: bool) -> Callable[..., Any]:
        owner, name, database = self._owner, self._name, self._database

        async def call(*args: Any, **kwargs: Any) -> Any:
            async def operation(db: AsyncDatabase[dict[str, Any]]) -> Any:
                return await getattr(db[name], attribute)(*args, **kwargs)

            return await owner._run(operation, database, retry_connection_errors=retry_connection_errors)

        return call
