"""The rotating MongoDB client for threads: a ``MongoClient`` that follows its secret.

An application holds a :class:`RotatingMongoClient` built from a secret id and
asks it for the live pymongo objects whenever it needs them::

    with RotatingMongoClient("mongodb-app") as rc:
        rc.database()["items"].find_one()                 # the hot path
        rc.run(lambda db: db["items"].insert_one(doc))    # + auth-failure recovery

Every decision lives in :mod:`client.core` (shared with the asyncio client);
this module is its shell for threads: a refresh lock, short-lived threads,
blocking calls to the two seams (:mod:`client.secretsmanager`,
:mod:`client.mongo`). How it works:

* **Generations.** Each ``MongoClient`` lives in an immutable generation
  snapshot with its credentials, its prebuilt default ``Database`` and the
  next time anything needs checking (``check_at``). The hot path
  (:meth:`~RotatingMongoClient.database` on a cache hit) is one clock call,
  one comparison and one attribute read: no I/O, no lock, no copy.
* **Refresh ahead.** Once ``check_at`` passes, one caller takes the refresh
  lock without blocking and starts a short-lived thread that reads
  ``AWSCURRENT`` (one ``GetSecretValue``); everyone else keeps the current
  client, past the upper bound too: nobody waits on the network while a
  working client exists.
* **One stable MongoClient.** The client is built once and never replaced:
  :attr:`~RotatingMongoClient.client`, every ``database()`` and every handle
  an application or a library keeps (a ``Database`` given to an ODM, a
  cursor) stay valid for the life of the rotating client. A switch changes
  its login in place (:func:`client.mongo.adopt_login`): a short-lived
  candidate client is checked with a ``ping`` as the new user, then the
  stable client's pools log in as that user from then on; connections in use
  finish their operation first. A malformed secret or a failed check keeps
  the current login, sends an event and backs off.
* **Refused login** (error 18/8000, also inside a
  ``ServerSelectionTimeoutError``), wherever the operation ran: pymongo
  clears the pool and marks the server unknown, and publishes a server
  description change that :class:`~client.mongo.LoginWatch` sees (no
  per-command cost). The client takes the generation off the hot path and
  one thread re-reads ``AWSCURRENT`` at once (then ``AWSPENDING``,
  ``AWSPREVIOUS``, and the same credentials again) and adopts the first
  that logs in; operations waiting for server selection meanwhile proceed
  as soon as it is done. A failed repair raises ``AuthenticationError`` from
  ``run`` and every call fails fast for ``forced_refresh_gap``; the
  background refresher tries again after it.
* **Background refresher** (``background_refresh=True``, the default): one
  daemon thread per client sleeps until the next refresh is due and starts
  it, so a client whose handles are held by a library that never calls it
  again still follows the schedule. ``close()`` stops it.
* **Fork safety.** In a child process (``os.fork``, gunicorn ``--preload``,
  a ``multiprocessing`` fork pool) every client gets fresh locks, forgets the
  parent's threads, drops the parent's boto3 connections, re-seeds its
  jitter, re-reads the secret before it serves anything (one
  ``GetSecretValue`` in the fork hook) and restarts its refresher.
  pymongo resets the stable client's pools itself after a fork.
* **Events** are delivered after the client released its locks: a
  subscriber may call any method, ``close()`` included. Nothing needs to
  react to ``switched`` or ``auth_recovered``: handles follow by themselves.

What is retried: ``run`` retries its function once after a refused login
(the command never reached the database), once after an error that proves
the command never left a client that has since been replaced (no server
selected, client closed), and once after a connection error from such a
client. Nothing else is retried. Operations on handles from ``database()``
/ ``client`` (or kept by a library) are never retried: the one whose login
was refused fails with pymongo's error; the ones after it run on the
repaired login.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack, cast

from pymongo.errors import PyMongoError

from .errors import SecretSwitchError
from .flows import Adopt, CheckLogin, CloseClient, ReadSecret, Request, drive
from .hub import InFlight
from .mongo import (
    LoginCheck,
    MongoClientFactory,
    adopt_login,
    build_mongo_client,
    check_login,
    discard_client,
)
from .policy import Retry
from .shell import CLOSE_WAIT, ClientOptions, CollectionProxy, RotatingShell, ScheduleQuery, ShellOptions
from .state import Generation, ScheduleCheck

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database


__all__ = ["RecoveringCollection", "RotatingMongoClient", "ScheduleCheck"]

_log = logging.getLogger(__name__)
LoginAdopter = Callable[["MongoClient[dict[str, Any]]", "MongoClient[dict[str, Any]]"], None]
# Every open client, for the fork hook (weak: the hook never keeps one alive).
_LIVE: weakref.WeakSet[RotatingMongoClient] = weakref.WeakSet()

T = TypeVar("T")
_Gen = Generation["MongoClient[dict[str, Any]]", "Database[dict[str, Any]]"]
_Options = ClientOptions[MongoClientFactory, LoginCheck, LoginAdopter]


class RotatingMongoClient(RotatingShell["MongoClient[dict[str, Any]]", "Database[dict[str, Any]]"]):
    """A MongoDB client that reads its credentials from Secrets Manager and follows rotations.

    All arguments but ``secret_id`` are keyword only; the shared ones are typed
    in :class:`client.shell.ShellOptions`, with their defaults in
    :class:`client.shell.RotatingShell`.

    Args:
        secret_id: the secret's name or ARN.
        database: the application's database, what :meth:`database`,
            :meth:`run` and :meth:`collection` use by default; ``None`` uses
            the secret's ``dbname``. It is not the login database (``authSource``,
            else ``dbname``, else ``admin``): with AWS's format and users in
            ``admin``, ``dbname`` is ``admin`` and the application's data is
            elsewhere, so pass it here.
        secretsmanager_client: a boto3 ``secretsmanager`` client; default:
            ``boto3.client("secretsmanager")`` (usual environment resolution,
            short timeouts).
        policy: refresh interval, jitter, backoff and forced-refresh gap.
        clock: monotonic seconds (default ``time.monotonic``); every schedule uses it (tests pass a fake,
            the demo a compressed one). The client never sleeps: backoff and
            refresh are deadlines on this clock.
        mongo_options: extra ``MongoClient`` keyword arguments (timeouts,
            pool size); they cannot set the login.
        on_event: a subscriber, same as :meth:`subscribe`.
        rng: the source of jitter (seed it for reproducible schedules).
        client_factory: builds a MongoClient from credentials and options
            (default :func:`client.mongo.build_mongo_client`; tests pass a recording fake).
        login_check: checks a new client's login (default: ``ping``).
        close_grace: real seconds ``close()`` waits for ``run`` calls still
            in progress before it closes the MongoClient (default 2).
        background_refresh: run the background refresher thread (default);
            without it the client refreshes only when it is called.
        login_adopter: moves a checked candidate's login onto the stable
            client (default :func:`client.mongo.adopt_login`; tests pass a fake's).
        meter_provider: an OpenTelemetry ``MeterProvider`` to report metrics
            through (the ``otel`` extra; docs/observability.md); ``None``: none.

    Raises:
        SecretsManagerError: the first read of the secret failed.
        SecretFormatError: the secret cannot be parsed.
        AuthenticationError: the database refused every version of the secret.
        ConfigurationError: an argument is wrong.
    """

    def __init__(self, secret_id: str, **options: Unpack[_Options]) -> None:
        self._login_check = options.pop("login_check", check_login)
        self._login_adopter = options.pop("login_adopter", adopt_login)
        factory = options.pop("client_factory", build_mongo_client)
        super().__init__(secret_id, client_factory=factory, **cast("ShellOptions", options))
        self._refresh_lock = threading.Lock()  # single flight: reads of the secret and logins
        self._state_lock = threading.Lock()  # threads, closing
        self._stopping = threading.Event()
        self._wake = threading.Event()  # a new generation was published: the refresher looks again
        self._threads: set[threading.Thread] = set()
        self._refresher_thread: threading.Thread | None = None
        try:
            drive(self._core.start(), self._perform)
        except BaseException:
            if self._stable is not None:
                discard_client(self._stable)
            raise
        finally:
            self._deliver()
        _LIVE.add(self)
        self._start_refresher()

    # -- the public surface ----------------------------------------------------

    def run(self, fn: Callable[[Database[dict[str, Any]]], T], *, database: str | None = None) -> T:
        """Run ``fn(database)`` and repair the client if the database refuses the login.

        On a refused login the client is replaced (one thread reads the
        secret; ``AWSPENDING`` and ``AWSPREVIOUS`` are tried when
        ``AWSCURRENT`` has not changed) and ``fn`` is run once more on the new
        client. An error that proves the command never left a client that
        has since been replaced (no server selected, client closed), and a
        connection error from such a client, are retried once too. ``fn``
        must therefore be safe to run twice in those cases.

        Returns:
            What ``fn`` returns.

        Raises:
            AuthenticationError: the login was refused and no version of the
                secret logs in (chained from pymongo's error).
            Exception: anything else ``fn`` raises, unchanged.
        """
        return self._run(fn, database, retry_connection_errors=True)

    def collection(self, name: str, *, database: str | None = None) -> RecoveringCollection:
        """A collection whose operations recover from authentication failures by themselves.

        Each call of an operation that runs at once (``find_one``,
        ``insert_one``, ``update_many``, ``aggregate``, ``count_documents``, …)
        goes through the same recovery as :meth:`run`, on the live client of
        that moment. This retry is always safe: a refused login means the
        command never reached the database. Reads are also retried after a
        connection error from a client that has since been replaced; writes
        only when the command never left (no server selected, client closed),
        not after an error mid-operation (they may have been applied).
        Anything else, ``find`` and its lazy cursor included, is the live
        pymongo collection's own attribute: iterate a cursor inside
        :meth:`run` to have it recovered.
        """
        return RecoveringCollection(self, name, database)

    def refresh_now(self) -> bool:
        """Read the secret now; calls that overlap share one read.

        A read that starts after this call is what counts: if one is already
        running, this waits for it and for at most one more, which every
        caller waiting meanwhile shares.

        Returns:
            True when the client switched to other credentials meanwhile.
        """
        self._core.ensure_open()
        before = self._gen.number
        ticket = self._core.read_ticket()
        try:
            with self._refresh_lock:
                if not self._core.read_done(ticket):
                    self._core.ensure_open()
                    drive(self._core.refresh(reason="forced"), self._perform)
        finally:
            self._deliver()
        return self._gen.number != before

    def check_rotation_schedule(self, **query: Unpack[ScheduleQuery]) -> ScheduleCheck:
        """Compare the refresh policy with the secret's rotation schedule (``DescribeSecret``).

        Logs a warning and sends a ``schedule_warning`` event when the refresh
        interval is not shorter than the rotation interval.

        Args:
            derive_deadline: also schedule the next refresh no later than
                ``margin`` after the secret's next rotation date (default ``False``).
            margin: clock seconds after the next rotation (negative: before; default 3600).
            clock_per_wall_second: how many clock seconds pass per real second
                (the demo's compressed clock); converts the rotation dates (default 1).
            wall_now: the current wall time (default: now, UTC).

        Raises:
            SecretsManagerError: ``DescribeSecret`` failed (the client is unaffected).
        """
        schedule = self._source.rotation_schedule()
        return self._check_schedule(schedule, self._refresh_lock, query)

    def close(self) -> None:
        """Stop the refresh thread and close every MongoClient (idempotent; safe from a subscriber)."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        self._core.close()  # every later call takes the slow path, which refuses
        _LIVE.discard(self)
        self._stopping.set()
        self._wake.set()
        # A refresh that finishes meanwhile may start a thread: look again
        # until none is left (real time, whatever the injected clock says).
        deadline = time.monotonic() + CLOSE_WAIT
        refresher = self._refresher_thread
        if refresher is not None and refresher is not threading.current_thread():
            refresher.join(timeout=CLOSE_WAIT)
        while True:
            with self._state_lock:
                threads = [thread for thread in self._threads if thread is not threading.current_thread()]
            remaining = deadline - time.monotonic()
            if not threads or remaining <= 0:
                break
            for thread in threads:
                thread.join(timeout=max(0.0, remaining))
        with self._refresh_lock:
            gen = self._gen
        self._wait_idle(gen.in_flight, self._close_grace)
        if gen.refused:
            discard_client(gen.client)
        else:
            with contextlib.suppress(PyMongoError):
                gen.client.close()
        self._announce_closed(gen)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the slow path ------------------------------------------------------------

    def _current(self) -> _Gen:
        gen = self._gen
        if self._clock() < gen.check_at:
            return gen
        return self._maintain()

    def _maintain(self) -> _Gen:
        """Past ``check_at``: repair, start a refresh or move ``check_at``; return the generation to use."""
        self._core.ensure_open()
        gen = self._gen
        if not gen.refused and self._refresh_lock.acquire(blocking=False):
            started = False
            try:
                if self._gen is gen and self._core.due(gen, self._clock()):
                    self._start_thread(self._background_refresh, name=f"secretswitch-refresh-{self.secret_id}")
                    started = True  # the thread releases the lock
            finally:
                if not started:
                    self._refresh_lock.release()
        gen = self._gen
        return self._repair(gen) if gen.refused else gen

    def _background_refresh(self) -> None:
        # Runs with the refresh lock already held by the caller that started it.
        try:
            if not self._stopping.is_set():
                drive(self._core.refresh(reason="refresh-ahead"), self._perform)
        finally:
            self._refresh_lock.release()
            self._deliver()

    def _repair(self, gen: _Gen, cause: BaseException | None = None) -> _Gen:
        """Replace a refused generation (single flight; callers wait on the lock, not on pymongo)."""
        try:
            for _ in range(3):  # a repaired client refused at once again gets one more try, never a loop
                self._core.raise_if_refused(gen, cause)
                with self._refresh_lock:
                    gen = drive(self._core.recover(gen, cause), self._perform)
                if not gen.refused:
                    break
            return gen
        finally:
            self._deliver()

    # -- running operations --------------------------------------------------------

    def _run(
        self, fn: Callable[[Database[dict[str, Any]]], T], database: str | None, *, retry_connection_errors: bool
    ) -> T:
        gen = self._current()
        try:
            return self._run_on(gen, fn, database)
        except PyMongoError as exc:
            step = self._after_error(gen, exc, retry_connection_errors=retry_connection_errors)
            if step is Retry.RAISE:
                raise
            retry_gen = self._repair(gen, exc) if step is Retry.REPAIR else self._current()
        self._core.count("retries")
        return self._run_on(retry_gen, fn, database)

    def _run_on(self, gen: _Gen, fn: Callable[[Database[dict[str, Any]]], T], database: str | None) -> T:
        while not gen.in_flight.enter():
            # Retired between our read and now: the live generation is never
            # retired while it is live, so this ends at once.
            gen = self._current()
        try:
            return fn(self._database_of(gen, database))
        finally:
            gen.in_flight.leave()

    # -- I/O for the core ------------------------------------------------------------

    def _perform(self, request: Request) -> Any:
        if isinstance(request, ReadSecret):
            return self._source.get_version(request.stage)
        if isinstance(request, CheckLogin):
            return self._login_check(request.client, request.credentials)
        if isinstance(request, Adopt):
            return self._adopt(request.client)
        if isinstance(request, CloseClient):
            if request.client is not self._stable:
                discard_client(request.client)
            return None
        return self._answer_locally(request)

    def _adopt(self, candidate: MongoClient[dict[str, Any]]) -> MongoClient[dict[str, Any]]:
        """The first checked client becomes the stable one; later ones hand it their login."""
        stable = self._stable
        if self._adopt_first(candidate) or stable is None:
            return candidate
        try:
            self._login_adopter(stable, candidate)
            self._adopted_at = time.monotonic()  # pymongo's clock for server descriptions
        finally:
            # Closing a client joins its monitor (up to ~0.5 s): never on the repair's path.
            self._start_thread(lambda: discard_client(candidate), name=f"secretswitch-close-{self.secret_id}")
        return stable

    # -- healing handles the client does not see -----------------------------------

    def _login_refused(self, seen_at: float | None) -> None:
        gen = self._gen  # read now: a later generation is not the one refused
        if not (self._stopping.is_set() or gen.refused or self._refused_before_adoption(seen_at)):
            self._start_thread(lambda: self._heal(gen), name=f"secretswitch-heal-{self.secret_id}")

    def _pool_cleared(self) -> None:
        if not self._stopping.is_set() and not self._gen.refused:
            self._start_thread(self._check_refused, name=f"secretswitch-watch-{self.secret_id}")

    def _heal(self, gen: _Gen) -> None:
        if self._gen.number != gen.number or self._stopping.is_set():
            return
        self._core.refuse(gen)
        try:
            self._repair(gen)
        except SecretSwitchError as exc:
            # The auth_recovery_failed event is out; the refresher tries again after the gap.
            _log.warning("secret %s: repair after a refused login failed: %s", self.secret_id, type(exc).__name__)
        finally:
            self._wake.set()

    def _set_generation(self, gen: _Gen) -> None:
        self._gen = gen
        self._wake.set()

    def _start_refresher(self) -> None:
        # Not one of the short-lived threads in _threads: it lives until close(), which joins it.
        if self._refresher_enabled and not self._stopping.is_set():
            thread = threading.Thread(
                target=self._refresher, name=f"secretswitch-refresher-{self.secret_id}", daemon=True
            )
            self._refresher_thread = thread
            thread.start()

    def _refresher(self) -> None:
        """Start each refresh when it is due, and retry a failed repair after the gap, until close()."""
        while not self._stopping.is_set():
            self._wake.clear()
            gen = self._gen
            wait = self._refresher_wait(gen)
            if wait and self._refresher_idle(gen, self._wake.wait(wait) or self._stopping.is_set()):
                continue
            with self._refresher_step():
                if gen.refused:
                    self._repair(gen)
                else:
                    self._maintain()
            # A refresh runs in its own thread: wait for its new generation (or a moment).
            self._wake.wait(1.0)

    def _after_fork_in_child(self) -> None:
        """Runs in a forked child before anything else: nothing of the parent's threads survives there."""
        self._refresh_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._threads = set()
        self._wake = threading.Event()
        closed = self._stopping.is_set()
        self._stopping = threading.Event()
        if closed:
            self._stopping.set()
        self._source.after_fork_in_child()
        self._core.after_fork_in_child()
        if not closed:
            # Re-read before the child serves anything: the parent may hold credentials an
            # out-of-schedule rotation changed (a gunicorn master serves no request, so it
            # never sees the refused login), and the child's first request must not pay for it.
            try:
                with self._refresh_lock:
                    drive(self._core.refresh(reason="after fork"), self._perform)
            finally:
                self._deliver()
        self._start_refresher()

    @staticmethod
    def _wait_idle(in_flight: InFlight, timeout: float) -> None:
        """Wait until no ``run`` call uses a client (at most ``timeout`` real seconds); refuse new ones."""
        closed = threading.Event()
        in_flight.close_when_idle(closed.set)
        if not closed.wait(timeout):
            in_flight.refuse()

    def _start_thread(self, target: Callable[[], None], *, name: str) -> None:
        def body() -> None:
            try:
                target()
            finally:
                with self._state_lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=body, name=name, daemon=True)
        with self._state_lock:
            self._threads.add(thread)
        thread.start()


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        try:
            client._after_fork_in_child()
        except Exception:  # noqa: BLE001 - a fork hook must not break the child
            _log.exception("secret %s: re-initialising after fork failed", client.secret_id)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RecoveringCollection(CollectionProxy):
    """A pymongo collection proxy whose immediate operations recover from auth failures.

    Made by :meth:`RotatingMongoClient.collection`; see there for what is
    retried. It holds no client: every call resolves the live one.
    """

    __slots__ = ()
    _owner: RotatingMongoClient

    def _call(self, attribute: str, *, retry_connection_errors: bool) -> Callable[..., Any]:
        owner, name, database = self._owner, self._name, self._database

        def call(*args: Any, **kwargs: Any) -> Any:
            run = owner._run
            return run(
                lambda db: getattr(db[name], attribute)(*args, **kwargs),
                database,
                retry_connection_errors=retry_connection_errors,
            )

        return call
