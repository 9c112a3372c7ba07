"""The rotating MongoDB client: a ``MongoClient`` that follows its secret.

An application holds a :class:`RotatingMongoClient` built from a secret id and
asks it for the live pymongo objects whenever it needs them::

    with RotatingMongoClient("mongodb-app") as rc:
        rc.database()["items"].find_one()                 # the hot path
        rc.run(lambda db: db["items"].insert_one(doc))    # + auth-failure recovery

How it works:

* **Generations.** Each ``MongoClient`` lives in an immutable generation
  snapshot together with its credentials, its prebuilt default ``Database``
  and the next time anything needs checking (``check_at``). The hot path
  (:meth:`~RotatingMongoClient.database` on a cache hit) is one clock call,
  one comparison and one attribute read: no I/O, no lock, no copy.
* **Refresh ahead** (:mod:`client.policy`). Once ``check_at`` passes, one
  caller takes the refresh lock without blocking and starts a short-lived
  thread that reads ``AWSCURRENT`` (one ``GetSecretValue``); everyone else
  keeps the current client. Past the upper bound (``EXPIRED``) too: the
  cached user stays valid until the rotation after the one that replaced
  it, and an authentication failure repairs the client at once, so nobody
  waits on the network while a client exists.
* **Switch.** Different credentials get a new ``MongoClient``, checked with a
  ``ping`` as the new user, then swapped in atomically. The old client is
  closed once the operations ``run`` counts on it have finished and a grace
  period (real seconds, for handles taken with ``database()``) has passed.
  A malformed secret or a failed check keeps the old client, sends an event
  and backs off.
* **Authentication failure** (error 18/8000) in :meth:`~RotatingMongoClient.run`:
  pymongo clears the whole pool and marks the server unknown after such a
  failure, so the client is replaced at once, never retried: one thread (the
  others wait on the same lock, then see the new generation) re-reads
  ``AWSCURRENT``, and if it has not changed, tries ``AWSPENDING`` then
  ``AWSPREVIOUS``; the operation is retried once on the new client.

What is retried: ``run`` retries its function once after an authentication
failure (the operation never reached the database: the login is refused
before any command) and once after a connection error raised by a client
that has since been replaced (its pool was paused by the failed login).
Nothing else is retried, and operations on handles from ``database()`` /
``client`` are never retried: their errors reach the application, but the
next refresh or ``run`` repairs the client.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError

from client.credentials import MongoCredentials, parse_secret
from client.errors import (
    AuthenticationError,
    ConfigurationError,
    DatabaseError,
    SecretFormatError,
    SecretNotFoundError,
    SecretsManagerError,
    SecretSwitchError,
)
from client.events import ClientEvent, ClientMetrics, EventKind
from client.mongo import MongoClientFactory, build_mongo_client, check_login, is_auth_failure
from client.policy import (
    AWSCURRENT,
    AWSPENDING,
    AWSPREVIOUS,
    DAY,
    CacheState,
    RefreshPolicy,
    cache_state,
    deadline_before_rotation,
    recovery_stages,
    rotation_schedule_warning,
)
from client.secretsmanager import SecretSource, SecretVersion

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from pymongo import MongoClient
    from pymongo.database import Database

__all__ = ["RecoveringCollection", "RotatingMongoClient", "ScheduleCheck"]

# How long a retired client waits for the operations still running on it.
_RETIRE_WAIT = 60.0
# How long close() waits for the client's own threads, all together.
_CLOSE_WAIT = 30.0

_log = logging.getLogger(__name__)

T = TypeVar("T")
LoginCheck = Callable[["MongoClient[dict[str, Any]]", MongoCredentials], None]


class _InFlight:
    """Counts the ``run`` calls on one MongoClient, so it is closed only when idle.

    Once :meth:`close_when_idle` has returned, :meth:`enter` refuses: a caller
    that read the generation just before it was retired moves to the live one
    instead of running on a client about to be closed.
    """

    def __init__(self) -> None:
        self._count = 0
        self._closing = False
        self._idle = threading.Condition()

    def enter(self) -> bool:
        with self._idle:
            if self._closing:
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    def close_when_idle(self, timeout: float) -> bool:
        """Wait until no call runs (at most ``timeout``), then refuse new ones; True if it was idle."""
        with self._idle:
            idle = self._idle.wait_for(lambda: self._count == 0, timeout=timeout)
            self._closing = True
            return idle


@dataclass(frozen=True, eq=False, slots=True)
class _Generation:
    """One MongoClient with its credentials and schedule: replaced, never changed."""

    number: int
    credentials: MongoCredentials
    client: MongoClient[dict[str, Any]]
    default_database: Database[dict[str, Any]] | None
    fetched_at: float
    refresh_at: float
    expires_at: float
    retry_at: float | None
    # The hot path's single comparison: the next time anything must be looked at.
    check_at: float
    in_flight: _InFlight = field(default_factory=_InFlight)
    databases: dict[str, Database[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScheduleCheck:
    """The result of :meth:`RotatingMongoClient.check_rotation_schedule`.

    Attributes:
        rotation_enabled: whether the secret rotates automatically.
        rotation_interval: the rotation interval in seconds, if readable.
        next_rotation: the next rotation date (UTC), if Secrets Manager gave one.
        warning: why the refresh interval is unsafe, or ``None``.
        deadline: the refresh deadline (client clock) now in force, if derived.
    """

    rotation_enabled: bool
    rotation_interval: float | None
    next_rotation: dt.datetime | None
    warning: str | None
    deadline: float | None


class RotatingMongoClient:
    """A MongoDB client that reads its credentials from Secrets Manager and follows rotations.

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
        policy: refresh interval, jitter and backoff.
        clock: monotonic seconds; every schedule uses it (tests pass a fake,
            the demo a compressed one).
        sleep: how to wait (unused by the hot path; kept for symmetry with ``clock``).
        mongo_options: extra ``MongoClient`` keyword arguments (timeouts,
            pool size); they cannot set the login.
        on_event: a subscriber, same as :meth:`subscribe`.
        rng: the source of jitter (seed it for reproducible schedules).
        client_factory: builds a MongoClient from credentials and options
            (tests pass a recording fake).
        login_check: checks a new client's login (default: ``ping``).
        close_grace: real seconds an old client stays open after a switch, for
            operations on handles taken with ``database()`` / ``client``.

    Raises:
        SecretsManagerError: the first read of the secret failed.
        SecretFormatError: the secret cannot be parsed.
        AuthenticationError: the database refused the first credentials.
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
        sleep: Callable[[float], None] = time.sleep,
        mongo_options: Mapping[str, Any] | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
        rng: random.Random | None = None,
        client_factory: MongoClientFactory = build_mongo_client,
        login_check: LoginCheck = check_login,
        close_grace: float = 2.0,
    ) -> None:
        if not isinstance(secret_id, str) or not secret_id:
            raise ConfigurationError("secret_id must be a non-empty secret name or ARN")
        if close_grace < 0:
            raise ConfigurationError(f"close_grace must not be negative, got {close_grace!r}")
        if database is not None and (not isinstance(database, str) or not database.strip()):
            raise ConfigurationError(f"database must be a non-empty database name, got {database!r}")
        self.secret_id = secret_id
        self.default_database_name = database
        self.policy = policy if policy is not None else RefreshPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._mongo_options: Mapping[str, Any] = dict(mongo_options or {})
        self._client_factory = client_factory
        self._login_check = login_check
        self._close_grace = close_grace
        self._source = SecretSource(secret_id, secretsmanager_client)

        self._refresh_lock = threading.Lock()  # single flight: reads of the secret and swaps
        self._state_lock = threading.Lock()  # counters, subscribers, threads
        self._stopping = threading.Event()
        self._closed = False
        self._threads: set[threading.Thread] = set()
        self._retired: list[_Generation] = []
        self._subscribers: tuple[Callable[[ClientEvent], None], ...] = ()
        self._counters: dict[str, int] = dict.fromkeys(ClientMetrics.__dataclass_fields__, 0)
        self._failures = 0  # failed refreshes in the current streak
        self._generations_built = 0
        self._deadline_cap: float | None = None
        self._failed_recovery: tuple[int, float] | None = None  # (generation, when)
        if on_event is not None:
            self.subscribe(on_event)
        self._gen = self._first_generation()

    # -- the hot path ----------------------------------------------------------

    def database(self, name: str | None = None) -> Database[dict[str, Any]]:
        """The live pymongo ``Database`` (default: the ``database=`` argument, else the secret's ``dbname``).

        On a cache hit this does no I/O, takes no lock and copies nothing.
        Take it per unit of work: an old client is closed a grace period
        after a switch.

        Raises:
            ConfigurationError: no name given, no ``database=`` and the secret has no ``dbname``.
        """
        gen = self._gen
        if name is None:
            if self._clock() < gen.check_at and gen.default_database is not None:
                return gen.default_database
        else:
            db = gen.databases.get(name)
            if db is not None and self._clock() < gen.check_at:
                return db
        return self._database_slow(name)

    @property
    def client(self) -> MongoClient[dict[str, Any]]:
        """The live pymongo ``MongoClient`` (same rules as :meth:`database`)."""
        gen = self._gen
        if self._clock() < gen.check_at:
            return gen.client
        return self._maintain().client

    def _database_slow(self, name: str | None) -> Database[dict[str, Any]]:
        gen = self._maintain()
        return self._database_of(gen, name)

    def _database_of(self, gen: _Generation, name: str | None) -> Database[dict[str, Any]]:
        if name is None:
            if gen.default_database is None:
                raise ConfigurationError(
                    f"no application database for secret {self.secret_id!r}: it has no 'dbname'; pass "
                    "RotatingMongoClient(..., database='mydb') or a name to database()/run()/collection()"
                )
            return gen.default_database
        db = gen.databases.get(name)
        if db is None:
            # A racing thread may build the same Database: both are equivalent.
            db = gen.databases.setdefault(name, gen.client[name])
        return db

    # -- the public surface ----------------------------------------------------

    @property
    def credentials(self) -> MongoCredentials:
        """The credentials the live client uses (a frozen snapshot)."""
        return self._gen.credentials

    @property
    def active_user(self) -> str:
        """The MongoDB user the live client is logged in as."""
        return self._gen.credentials.username

    @property
    def metrics(self) -> ClientMetrics:
        """A snapshot of the counters."""
        with self._state_lock:
            counters = dict(self._counters)
        counters["api_calls"] = self._source.api_calls
        counters["generation"] = self._generations_built
        return ClientMetrics(**counters)

    def subscribe(self, callback: Callable[[ClientEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, synchronously, in the thread that caused it.

        An exception in a callback is logged and never reaches the client.

        Returns:
            A function that unsubscribes ``callback``.
        """
        with self._state_lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._state_lock:
                self._subscribers = tuple(cb for cb in self._subscribers if cb is not callback)

        return unsubscribe

    def run(self, fn: Callable[[Database[dict[str, Any]]], T], *, database: str | None = None) -> T:
        """Run ``fn(database)`` and repair the client if the database refuses the login.

        On an authentication failure the client is replaced (one thread reads
        the secret; ``AWSPENDING`` and ``AWSPREVIOUS`` are tried when
        ``AWSCURRENT`` has not changed) and ``fn`` is run once more on the new
        client. A connection error from a client that has since been replaced
        is retried once too. ``fn`` must therefore be safe to run twice in
        those cases (it was not executed when the login failed).

        Returns:
            What ``fn`` returns.

        Raises:
            AuthenticationError: the login was refused and no version of the
                secret logs in (chained from pymongo's error).
            Exception: anything else ``fn`` raises, unchanged.
        """
        return self._run(fn, database, retry_replaced=True)

    def collection(self, name: str, *, database: str | None = None) -> RecoveringCollection:
        """A collection whose operations recover from authentication failures by themselves.

        Each call of an operation that runs at once (``find_one``,
        ``insert_one``, ``update_many``, ``aggregate``, ``count_documents``, …)
        goes through the same recovery as :meth:`run`, on the live client of
        that moment. This retry is always safe: a refused login means the
        command never reached the database. Reads are also retried after a
        connection error from a client that has since been replaced; writes
        only when no server was selected (the command was never sent), not
        after an error mid-operation (they may have been applied). Anything else, ``find`` and its
        lazy cursor included, is the live pymongo collection's own attribute:
        iterate a cursor inside :meth:`run` to have it recovered.
        """
        return RecoveringCollection(self, name, database)

    def refresh_now(self) -> bool:
        """Read the secret now (waits for a refresh already running, then reads again).

        Returns:
            True when the client switched to new credentials.
        """
        self._ensure_open()
        with self._refresh_lock:
            return self._refresh_locked(reason="forced")

    def check_rotation_schedule(
        self,
        *,
        derive_deadline: bool = False,
        margin: float = 3600.0,
        clock_per_wall_second: float = 1.0,
        wall_now: dt.datetime | None = None,
    ) -> ScheduleCheck:
        """Compare the refresh policy with the secret's rotation schedule (``DescribeSecret``).

        Logs a warning and sends a ``schedule_warning`` event when the refresh
        interval is not shorter than the rotation interval.

        Args:
            derive_deadline: also schedule the next refresh no later than
                ``margin`` after the secret's next rotation date.
            margin: clock seconds after the next rotation (negative: before).
            clock_per_wall_second: how many clock seconds pass per real second
                (the demo's compressed clock); converts the rotation dates.
            wall_now: the current wall time (default: now, UTC).

        Raises:
            SecretsManagerError: ``DescribeSecret`` failed (the client is unaffected).
        """
        schedule = self._source.rotation_schedule()
        # In the clock's own days: a demo that compresses time compresses both.
        interval = schedule.interval_days * DAY if schedule.interval_days else None
        window = schedule.window_hours * 3600.0 if schedule.window_hours else DAY
        warning = rotation_schedule_warning(self.policy, interval, rotation_window=window) if schedule.enabled else None
        if warning is not None:
            _log.warning("secret %s: %s", self.secret_id, warning)
            self._emit("schedule_warning", message=warning)
        deadline: float | None = None
        if derive_deadline and schedule.enabled and schedule.next_rotation is not None:
            now_wall = wall_now if wall_now is not None else dt.datetime.now(dt.UTC)
            seconds = (schedule.next_rotation - now_wall).total_seconds() * clock_per_wall_second
            deadline = deadline_before_rotation(self._clock(), seconds, margin=margin)
            with self._refresh_lock:
                self._deadline_cap = deadline
                gen = self._gen
                if deadline < gen.refresh_at:
                    self._publish(replace(gen, refresh_at=deadline, check_at=min(gen.check_at, deadline)))
        return ScheduleCheck(
            rotation_enabled=schedule.enabled,
            rotation_interval=interval,
            next_rotation=schedule.next_rotation,
            warning=warning,
            deadline=deadline,
        )

    def close(self) -> None:
        """Stop the refresh thread and close every MongoClient (idempotent)."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        # A refresh that finishes meanwhile may start a retire thread: look again
        # until none is left (real time, whatever the injected clock says).
        deadline = time.monotonic() + _CLOSE_WAIT
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
            # Every later call takes the slow path, which refuses.
            self._gen = replace(gen, check_at=-math.inf)
            retired, self._retired = self._retired, []
        for old in retired:
            with contextlib.suppress(PyMongoError):
                old.client.close()
        gen.in_flight.close_when_idle(timeout=self._close_grace)
        with contextlib.suppress(PyMongoError):
            gen.client.close()
        self._emit("closed", to_user=gen.credentials.username, to_version=gen.credentials.version_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        gen = self._gen
        return (
            f"RotatingMongoClient(secret_id={self.secret_id!r}, user={gen.credentials.username!r}, "
            f"version={gen.credentials.version_id!r}, endpoint={gen.credentials.endpoint!r}, "
            f"generation={gen.number})"
        )

    # -- maintenance (slow path) ----------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise DatabaseError(f"the RotatingMongoClient for secret {self.secret_id!r} is closed")

    def _current(self) -> _Generation:
        gen = self._gen
        if self._clock() < gen.check_at:
            return gen
        return self._maintain()

    def _maintain(self) -> _Generation:
        """Past ``check_at``: start or run a refresh as the policy says; return the generation to use."""
        self._ensure_open()
        gen = self._gen
        now = self._clock()
        state = cache_state(
            now, has_value=True, refresh_at=gen.refresh_at, expires_at=gen.expires_at, retry_at=gen.retry_at
        )
        if not self._refresh_lock.acquire(blocking=False):
            return gen  # someone is refreshing: keep serving
        if self._gen is not gen:  # a refresh finished between our check and the lock
            self._refresh_lock.release()
            return self._gen
        if state in (CacheState.FRESH, CacheState.BACKING_OFF):
            # Nothing to do before the next deadline (e.g. a forced refresh
            # failed and its retry time passed): move check_at there, so the
            # hot path stops coming here.
            next_check = gen.retry_at if state is CacheState.BACKING_OFF and gen.retry_at else gen.refresh_at
            self._publish(replace(gen, check_at=next_check))
            self._refresh_lock.release()
            return self._gen
        # Due, or even past the upper bound: refresh in the background either
        # way. The cached user stays valid until the rotation after the one
        # that replaced it, and an authentication failure repairs the client
        # at once, so no caller waits on the network while a client exists.
        try:
            self._start_thread(self._background_refresh, name=f"secretswitch-refresh-{self.secret_id}")
        except BaseException:
            self._refresh_lock.release()
            raise
        return gen

    def _background_refresh(self) -> None:
        # Runs with the refresh lock already held by the caller that started it.
        try:
            if not self._stopping.is_set():
                self._refresh_locked(reason="refresh-ahead")
        finally:
            self._refresh_lock.release()

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

    def _first_generation(self) -> _Generation:
        now = self._clock()
        version = self._source.get_version(AWSCURRENT)
        credentials = parse_secret(version.secret_string, secret_id=self.secret_id, version_id=version.version_id)
        stage = AWSCURRENT
        try:
            client = self._build_checked(credentials, allow_unreachable=True)
        except AuthenticationError as refused:
            # Started in the middle of a rotation (or after one was rolled
            # back): the database may already expect another version.
            credentials, client, stage = self._first_fallback(credentials, refused)
        self._count("refreshes")
        gen = self._new_generation(credentials, client, now)
        self._emit("refreshed", to_user=credentials.username, to_version=credentials.version_id, stage=stage)
        return gen

    def _first_fallback(
        self, current: MongoCredentials, refused: AuthenticationError
    ) -> tuple[MongoCredentials, MongoClient[dict[str, Any]], str]:
        errors = [f"{AWSCURRENT}: {refused}"]
        for stage in recovery_stages(current.version_id, current.version_id):
            try:
                credentials = self._parse(self._source.get_version(stage))
                if credentials == current:
                    errors.append(f"{stage}: same credentials")
                    continue
                return credentials, self._build_checked(credentials), stage
            except SecretSwitchError as exc:
                errors.append(f"{stage}: {exc}")
        raise AuthenticationError("; ".join(errors)) from refused

    def _new_generation(
        self, credentials: MongoCredentials, client: MongoClient[dict[str, Any]], now: float
    ) -> _Generation:
        self._generations_built += 1
        refresh_at, expires_at = self._schedule(now)
        default_name = self.default_database_name or credentials.database
        default_database = client[default_name] if default_name else None
        return _Generation(
            number=self._generations_built,
            credentials=credentials,
            client=client,
            default_database=default_database,
            fetched_at=now,
            refresh_at=refresh_at,
            expires_at=expires_at,
            retry_at=None,
            check_at=refresh_at,
        )

    def _schedule(self, now: float) -> tuple[float, float]:
        refresh_at = self.policy.next_refresh_at(now, self._rng)
        if self._deadline_cap is not None:
            if now < self._deadline_cap:
                refresh_at = min(refresh_at, self._deadline_cap)
            else:
                self._deadline_cap = None
        return refresh_at, self.policy.expires_at(now)

    def _publish(self, gen: _Generation) -> None:
        # One attribute store: readers see the old or the new snapshot, never a mix.
        self._gen = gen

    def _refresh_locked(self, *, reason: str) -> bool:
        """Read AWSCURRENT and switch if it changed. Caller holds the refresh lock.

        Whatever goes wrong, the current client stays and the next attempt
        waits for the backoff: an unexpected error must never leave
        ``check_at`` in the past (every caller would start a refresh).
        """
        gen = self._gen
        try:
            return self._refresh_or_back_off(gen, reason=reason)
        except Exception as exc:  # noqa: BLE001 - backstop, see above
            # Only the type: a third-party message could quote the secret.
            _log.error("secret %s: %s refresh failed unexpectedly (%s)", self.secret_id, reason, type(exc).__name__)
            self._count("refresh_failures")
            self._back_off(self._gen, self._clock(), "refresh_failed", f"unexpected {type(exc).__name__}")
            return False

    def _refresh_or_back_off(self, gen: _Generation, *, reason: str) -> bool:
        now = self._clock()
        try:
            version = self._source.get_version(AWSCURRENT)
        except SecretsManagerError as exc:
            self._count("refresh_failures")
            self._back_off(gen, now, "refresh_failed", str(exc))
            return False
        try:
            credentials = self._parse(version)
        except SecretFormatError as exc:
            self._count("malformed_secrets")
            self._back_off(gen, now, "malformed_secret", str(exc), version=version)
            return False
        self._count("refreshes")
        self._emit("refreshed", to_user=credentials.username, to_version=version.version_id, stage=AWSCURRENT)
        if credentials == gen.credentials:
            self._end_failure_streak()
            refresh_at, expires_at = self._schedule(now)
            self._publish(
                replace(
                    gen,
                    credentials=credentials,
                    fetched_at=now,
                    refresh_at=refresh_at,
                    expires_at=expires_at,
                    retry_at=None,
                    check_at=refresh_at,
                )
            )
            _log.debug("secret %s: %s refresh, unchanged (version %s)", self.secret_id, reason, version.version_id)
            return False
        try:
            client = self._build_checked(credentials)
        except SecretSwitchError as exc:
            self._count("check_failures")
            self._back_off(gen, now, "check_failed", str(exc), version=version, user=credentials.username)
            return False
        self._end_failure_streak()
        self._swap(gen, credentials, client, now, kind="switched", stage=AWSCURRENT, reason=reason)
        return True

    def _parse(self, version: SecretVersion) -> MongoCredentials:
        return parse_secret(version.secret_string, secret_id=self.secret_id, version_id=version.version_id)

    def _build_checked(
        self, credentials: MongoCredentials, *, allow_unreachable: bool = False
    ) -> MongoClient[dict[str, Any]]:
        client = self._client_factory(credentials, self._mongo_options)
        try:
            self._login_check(client, credentials)
        except SecretSwitchError as exc:
            if allow_unreachable and not isinstance(exc, AuthenticationError):
                # At start-up a database that is down is the application's
                # problem, not ours: pymongo reconnects by itself.
                _log.warning("secret %s: first login check failed: %s", self.secret_id, exc)
                return client
            with contextlib.suppress(PyMongoError):
                client.close()
            raise
        return client

    def _swap(
        self,
        old: _Generation,
        credentials: MongoCredentials,
        client: MongoClient[dict[str, Any]],
        now: float,
        *,
        kind: EventKind,
        stage: str,
        reason: str,
    ) -> _Generation:
        new = self._new_generation(credentials, client, now)
        self._publish(new)
        self._count("switches")
        if kind == "auth_recovered":
            self._count("auth_recoveries")
        _log.info(
            "secret %s: switched MongoDB user %s (version %s) -> %s (version %s, %s) after %s",
            self.secret_id,
            old.credentials.username,
            old.credentials.version_id,
            credentials.username,
            credentials.version_id,
            stage,
            reason,
        )
        self._retire(old)
        # The demo and dashboards count switches: a recovery is announced as one too.
        for event_kind in (kind, "switched") if kind == "auth_recovered" else (kind,):
            self._emit(
                event_kind,
                from_user=old.credentials.username,
                to_user=credentials.username,
                from_version=old.credentials.version_id,
                to_version=credentials.version_id,
                stage=stage,
                message=reason,
            )
        return new

    def _retire(self, old: _Generation) -> None:
        """Close ``old``'s client once its ``run`` calls are done and the grace period passed."""
        with self._state_lock:
            self._retired.append(old)

        def close_when_idle() -> None:
            self._stopping.wait(self._close_grace)
            if not old.in_flight.close_when_idle(timeout=_RETIRE_WAIT):
                _log.warning(
                    "secret %s: closing the client of version %s with operations still running after %.0f s",
                    self.secret_id,
                    old.credentials.version_id,
                    _RETIRE_WAIT,
                )
            with self._state_lock:
                if old not in self._retired:
                    return  # close() took care of it
                self._retired.remove(old)
            with contextlib.suppress(PyMongoError):
                old.client.close()

        self._start_thread(close_when_idle, name=f"secretswitch-close-{old.number}")

    def _back_off(
        self,
        gen: _Generation,
        now: float,
        kind: EventKind,
        message: str,
        *,
        version: SecretVersion | None = None,
        user: str | None = None,
    ) -> None:
        self._failures += 1
        retry_at = now + self.policy.backoff_delay(self._failures, self._rng)
        self._publish(replace(gen, retry_at=retry_at, check_at=retry_at))
        if self._failures == 1:
            _log.warning(
                "secret %s: %s; keeping user %s (version %s), retrying with backoff",
                self.secret_id,
                message,
                gen.credentials.username,
                gen.credentials.version_id,
            )
        else:
            _log.debug("secret %s: still failing (%d in a row): %s", self.secret_id, self._failures, message)
        self._emit(
            kind,
            from_user=gen.credentials.username,
            from_version=gen.credentials.version_id,
            to_user=user,
            to_version=version.version_id if version is not None else None,
            stage=AWSCURRENT,
            message=message,
            failures=self._failures,
        )

    def _end_failure_streak(self) -> None:
        if self._failures:
            _log.info("secret %s: recovered after %d failed refreshes", self.secret_id, self._failures)
        self._failures = 0

    # -- authentication failure ------------------------------------------------

    def _recover(self, failed: _Generation, error: PyMongoError) -> _Generation:
        """Replace ``failed``'s client after the database refused its login (single flight)."""
        with self._refresh_lock:
            if self._gen.number != failed.number:
                return self._gen  # another thread already replaced it
            self._ensure_open()
            now = self._clock()
            if self._failed_recovery is not None:
                number, when = self._failed_recovery
                if number == failed.number and now - when < self.policy.forced_refresh_gap:
                    raise self._auth_error(failed, "no version of the secret logs in (retry later)") from error
            try:
                new = self._recover_locked(failed, now)
            except SecretSwitchError as exc:
                self._failed_recovery = (failed.number, now)
                self._emit(
                    "auth_recovery_failed",
                    from_user=failed.credentials.username,
                    from_version=failed.credentials.version_id,
                    message=str(exc),
                )
                raise self._auth_error(failed, str(exc)) from error
            self._failed_recovery = None
            return new

    def _auth_error(self, failed: _Generation, why: str) -> AuthenticationError:
        return AuthenticationError(
            f"MongoDB refused user {failed.credentials.username!r} (version {failed.credentials.version_id}) "
            f"of secret {self.secret_id!r} and recovery failed: {why}"
        )

    def _recover_locked(self, failed: _Generation, now: float) -> _Generation:
        current_version = self._source.get_version(AWSCURRENT)
        current = self._parse(current_version)
        self._count("refreshes")
        stages = recovery_stages(failed.credentials.version_id, current.version_id)
        if current == failed.credentials:
            # AWSCURRENT is what the database just refused (whatever its version id says).
            stages = (AWSPENDING, AWSPREVIOUS)
        candidates = [(stage, current if stage == AWSCURRENT else None) for stage in stages]
        errors: list[str] = []
        for stage, known in candidates:
            try:
                credentials = known if known is not None else self._parse(self._source.get_version(stage))
            except SecretNotFoundError:
                errors.append(f"{stage}: no such version")
                continue
            except SecretSwitchError as exc:
                errors.append(f"{stage}: {exc}")
                continue
            if credentials == failed.credentials:
                errors.append(f"{stage}: same credentials")
                continue
            try:
                client = self._build_checked(credentials)
            except SecretSwitchError as exc:
                errors.append(f"{stage}: {exc}")
                continue
            self._end_failure_streak()
            return self._swap(
                failed, credentials, client, now, kind="auth_recovered", stage=stage, reason="authentication failure"
            )
        raise AuthenticationError("; ".join(errors) or "no candidate version")

    # -- plumbing --------------------------------------------------------------

    def _run(self, fn: Callable[[Database[dict[str, Any]]], T], database: str | None, *, retry_replaced: bool) -> T:
        gen = self._current()
        try:
            return self._run_on(gen, fn, database)
        except PyMongoError as exc:
            if is_auth_failure(exc):
                self._count("auth_failures")
                retry_gen = self._recover(gen, exc)
            elif self._gen.number != gen.number and (
                # No server was selected on the replaced client: the command was never sent.
                isinstance(exc, ServerSelectionTimeoutError) or (retry_replaced and isinstance(exc, ConnectionFailure))
            ):
                retry_gen = self._gen
            else:
                raise
        self._count("retries")
        return self._run_on(retry_gen, fn, database)

    def _run_on(self, gen: _Generation, fn: Callable[[Database[dict[str, Any]]], T], database: str | None) -> T:
        while not gen.in_flight.enter():
            # Retired between our read and now: the live generation is never
            # retired while it is live, so this ends at once.
            self._ensure_open()
            gen = self._gen
        try:
            return fn(self._database_of(gen, database))
        finally:
            gen.in_flight.leave()

    def _count(self, name: str) -> None:
        with self._state_lock:
            self._counters[name] += 1

    def _emit(self, kind: EventKind, **fields: Any) -> None:
        event = ClientEvent(kind=kind, at=self._clock(), **fields)
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a subscriber must never break the client
                _log.exception("secret %s: event subscriber %r failed on %s", self.secret_id, callback, kind)


# Collection methods that send their command when called, split by whether a
# retry after a connection error is harmless. After a refused login every one
# of them is retried: the command was never sent.
_IMMEDIATE_READS = frozenset(
    {"find_one", "count_documents", "estimated_document_count", "distinct", "list_indexes", "index_information"}
)
_IMMEDIATE_WRITES = frozenset(
    {
        "insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one", "delete_many",
        "find_one_and_update", "find_one_and_replace", "find_one_and_delete", "bulk_write", "aggregate",
        "create_index", "create_indexes", "drop_index", "drop_indexes",
    }
)  # fmt: skip


class RecoveringCollection:
    """A pymongo collection proxy whose immediate operations recover from auth failures.

    Made by :meth:`RotatingMongoClient.collection`; see there for what is
    retried. It holds no client: every call resolves the live one.
    """

    __slots__ = ("_database", "_name", "_owner")

    def __init__(self, owner: RotatingMongoClient, name: str, database: str | None) -> None:
        self._owner = owner
        self._name = name
        self._database = database

    def __repr__(self) -> str:
        return f"RecoveringCollection({self._name!r}, database={self._database!r}, secret={self._owner.secret_id!r})"

    @property
    def name(self) -> str:
        return self._name

    def __getattr__(self, attribute: str) -> Any:
        owner, name, database = self._owner, self._name, self._database
        if attribute not in _IMMEDIATE_READS and attribute not in _IMMEDIATE_WRITES:
            return getattr(owner.database(database)[name], attribute)
        retry_replaced = attribute in _IMMEDIATE_READS

        def call(*args: Any, **kwargs: Any) -> Any:
            return owner._run(
                lambda db: getattr(db[name], attribute)(*args, **kwargs), database, retry_replaced=retry_replaced
            )

        call.__name__ = attribute
        return call
