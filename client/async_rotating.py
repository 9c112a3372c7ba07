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
import datetime as dt
import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from pymongo.errors import PyMongoError

from .credentials import MongoCredentials
from .errors import DatabaseError, SecretSwitchError
from .events import ClientEvent
from .flows import Adopt, BuildClient, CheckLogin, CloseClient, Plan, ReadSecret, Request, drive_async, start_plan
from .hub import InFlight
from .mongo import (
    AsyncLoginCheck,
    AsyncMongoClientFactory,
    LoginWatch,
    adopt_login_async,
    build_async_mongo_client,
    check_login_async,
    classify_failure,
    discard_async_client,
    refused_at,
)
from .policy import RefreshPolicy, Retry, after_failure
from .shell import IMMEDIATE_READS, IMMEDIATE_WRITES, RotatingShell
from .state import Generation, ScheduleCheck

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from opentelemetry.metrics import MeterProvider
    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.database import AsyncDatabase

__all__ = ["AsyncRecoveringCollection", "AsyncRotatingMongoClient"]

# The same bounds as the threaded client's.
_CLOSE_WAIT = 30.0
# The background refresher looks again at least this often (real seconds; see the threaded client).
_REFRESHER_MAX_SLEEP = 30.0
_log = logging.getLogger(__name__)
AsyncLoginAdopter = Callable[["AsyncMongoClient[dict[str, Any]]", "AsyncMongoClient[dict[str, Any]]"], Awaitable[None]]

T = TypeVar("T")
R = TypeVar("R")
_Gen = Generation["AsyncMongoClient[dict[str, Any]]", "AsyncDatabase[dict[str, Any]]"]


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

    def __init__(
        self,
        secret_id: str,
        *,
        database: str | None = None,
        secretsmanager_client: SecretsManagerClient | Any | None = None,
        policy: RefreshPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        mongo_options: Mapping[str, Any] | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
        rng: random.Random | None = None,
        client_factory: AsyncMongoClientFactory = build_async_mongo_client,
        login_check: AsyncLoginCheck = check_login_async,
        close_grace: float = 2.0,
        background_refresh: bool = True,
        login_adopter: AsyncLoginAdopter = adopt_login_async,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._init_shell(
            secret_id,
            database=database,
            secretsmanager_client=secretsmanager_client,
            policy=policy,
            clock=clock,
            mongo_options=mongo_options,
            rng=rng,
            close_grace=close_grace,
            meter_provider=meter_provider,
        )
        self._client_factory = client_factory
        self._login_check = login_check
        self._login_adopter = login_adopter
        self._refresher_enabled = background_refresh
        self._stable: AsyncMongoClient[dict[str, Any]] | None = None
        self._candidate_watch: tuple[Any, LoginWatch] | None = None
        self._adopted_at = -math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._refresher_task: asyncio.Task[None] | None = None
        self._gen: _Gen = _not_started()
        self._started = False
        self._starting: asyncio.Task[Any] | None = None
        self._closed = False
        self._flight: asyncio.Task[Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping: asyncio.Event | None = None
        if on_event is not None:
            self.subscribe(on_event)

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
            _, late = await asyncio.wait(pending, timeout=_CLOSE_WAIT)
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
        self._core.events.emit("closed", to_user=gen.credentials.username, to_version=gen.credentials.version_id)
        self._deliver()

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

    def subscribe(self, callback: Callable[[ClientEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, in order, on the loop, outside the client's flows.

        The callback is a plain function (schedule a coroutine with
        ``asyncio.create_task`` if needed) and may call any method of the
        client. An exception in it is logged and never reaches the client.

        Returns:
            A function that unsubscribes ``callback``.
        """
        return self._core.events.subscribe(callback)

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

    async def check_rotation_schedule(
        self,
        *,
        derive_deadline: bool = False,
        margin: float = 3600.0,
        clock_per_wall_second: float = 1.0,
        wall_now: dt.datetime | None = None,
    ) -> ScheduleCheck:
        """``DescribeSecret`` (in a worker thread) and the same check as the threaded client's.

        Raises:
            SecretsManagerError: ``DescribeSecret`` failed (the client is unaffected).
        """
        self._ensure_started()
        schedule = await asyncio.to_thread(self._source.rotation_schedule)
        try:
            return self._core.schedule_check(
                schedule,
                derive_deadline=derive_deadline,
                margin=margin,
                clock_per_wall_second=clock_per_wall_second,
                wall_now=wall_now,
            )
        finally:
            self._deliver()

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
            failure = classify_failure(exc, gen.client, closed=gen.in_flight.closing)
            live = self._gen
            step = after_failure(
                failure,
                replaced=live.number != gen.number or live.refused,
                retry_connection_errors=retry_connection_errors,
            )
            if step is Retry.RAISE:
                raise
            if step is Retry.REPAIR:
                self._core.refuse(gen)
                retry_gen = await self._repair(gen, exc)
            else:
                retry_gen = await self._current()
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
        if isinstance(request, BuildClient):
            return self._build(request.credentials)
        if isinstance(request, CheckLogin):
            await self._login_check(request.client, request.credentials)
            return None
        if isinstance(request, Adopt):
            return await self._adopt(request.client)
        if isinstance(request, CloseClient):
            if request.client is not self._stable:
                await discard_async_client(request.client)
            return None
        # Retire: the client is the stable one; calls that read the old generation move on.
        if request.at_once:
            request.generation.in_flight.refuse()
        return None

    def _build(self, credentials: MongoCredentials) -> AsyncMongoClient[dict[str, Any]]:
        watch = LoginWatch(self._login_refused, self._pool_cleared)
        listeners = [*self._mongo_options.get("event_listeners", ()), watch]
        client = self._client_factory(credentials, {**self._mongo_options, "event_listeners": listeners})
        self._candidate_watch = (client, watch)
        return client

    async def _adopt(self, candidate: AsyncMongoClient[dict[str, Any]]) -> AsyncMongoClient[dict[str, Any]]:
        stable = self._stable
        if stable is None or candidate is stable:
            self._stable = candidate
            pending = self._candidate_watch
            if pending is not None and pending[0] is candidate:
                pending[1].arm()
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
        """pymongo's events task (or thread): a connection of the stable client was refused its login."""
        gen, loop = self._gen, self._loop
        if loop is None or self._closed or gen.refused or loop.is_closed():
            return
        if seen_at is not None and seen_at < self._adopted_at:
            return  # refused before the last login change: already repaired
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._start_heal, gen)

    def _pool_cleared(self) -> None:
        """pymongo cleared the stable client's pool: look why once the failing operation has let go."""
        loop = self._loop
        if loop is None or self._closed or self._gen.refused or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._check_refused)

    def _check_refused(self) -> None:
        stable = self._stable
        seen_at = refused_at(stable) if stable is not None else None
        if seen_at is not None:  # a refused login, not a network error
            self._login_refused(None if seen_at == -math.inf else seen_at)

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
            wait = self.policy.forced_refresh_gap if gen.refused else gen.check_at - self._clock()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(wait, _REFRESHER_MAX_SLEEP))
                if wake.is_set() or self._closed or (not gen.refused and self._clock() < gen.check_at):
                    continue
            try:
                if gen.refused:
                    await self._repair(gen)
                else:
                    self._maintain()
            except SecretSwitchError:
                pass  # counted and announced by the core; the schedule says when to look again
            except Exception:  # noqa: BLE001 - the refresher must outlive any one failure
                _log.exception("secret %s: background refresher step failed", self.secret_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 1.0)

    async def _wait_idle(self, in_flight: InFlight, timeout: float) -> bool:
        """Wait until no ``run`` call uses a client (at most ``timeout`` real seconds), then refuse new ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            idle = asyncio.Event()
            in_flight.notify_when_idle(idle.set)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle.wait(), max(0.0, deadline - loop.time()))
            if in_flight.close_if_idle():
                return True
            if loop.time() >= deadline:
                in_flight.refuse()
                return False


class AsyncRecoveringCollection:
    """An ``AsyncCollection`` proxy whose immediate operations recover from auth failures.

    Made by :meth:`AsyncRotatingMongoClient.collection`. ``await
    coll.find_one(...)``, ``await coll.insert_one(...)``, … go through the same
    recovery as ``run`` (writes retried only when the command never left);
    every other attribute (``find`` and its cursor, ``name``, …) is the live
    ``AsyncCollection``'s own.
    """

    __slots__ = ("_database", "_name", "_owner")

    def __init__(self, owner: AsyncRotatingMongoClient, name: str, database: str | None) -> None:
        self._owner = owner
        self._name = name
        self._database = database

    def __repr__(self) -> str:
        return (
            f"AsyncRecoveringCollection({self._name!r}, database={self._database!r}, secret={self._owner.secret_id!r})"
        )

    @property
    def name(self) -> str:
        return self._name

    def __getattr__(self, attribute: str) -> Any:
        owner, name, database = self._owner, self._name, self._database
        if attribute not in IMMEDIATE_READS and attribute not in IMMEDIATE_WRITES:
            return getattr(owner.database(database)[name], attribute)
        retry_connection_errors = attribute in IMMEDIATE_READS

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await owner._run(
                lambda db: getattr(db[name], attribute)(*args, **kwargs),
                database,
                retry_connection_errors=retry_connection_errors,
            )

        call.__name__ = attribute
        return call
