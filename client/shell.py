"""Everything the threaded and the asyncio rotating clients share around :class:`~client.core.ClientCore`.

The two shells differ only in how they do I/O (threads and locks, or tasks
and awaits). Everything else is here, once:

* the settings (:class:`ShellOptions`, one constructor), the core, the live
  generation and the hot path: a cache hit in :meth:`RotatingShell.database`
  / :attr:`RotatingShell.client` is one clock call, one comparison and one
  attribute read (no I/O, no lock, no copy); past ``check_at`` each shell's
  ``_maintain`` decides, without I/O on the calling path, what to use;
* the answers to the core's requests that need no I/O (build a candidate,
  retire a generation, adopt the first client);
* what ``run`` does with an error (:meth:`RotatingShell._after_error`), the
  refresher's schedule and its error handling, and the one way events leave
  (:meth:`RotatingShell._deliver`);
* the recovering collection proxy (:class:`CollectionProxy`), whose only
  per-shell part is whether its calls are awaited.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

from pymongo.errors import PyMongoError

from .core import ClientCore
from .credentials import MongoCredentials
from .errors import ConfigurationError, SecretSwitchError
from .events import ClientEvent, ClientMetrics
from .flows import BuildClient, Request, Retire
from .health import ClientHealth, RefreshHistory
from .mongo import LoginWatch, classify_failure, refused_at
from .policy import RefreshPolicy, Retry, after_failure
from .secretsmanager import RotationSchedule, SecretSource
from .state import Generation, ScheduleCheck

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from opentelemetry.metrics import MeterProvider

__all__ = [
    "CLOSE_WAIT",
    "IMMEDIATE_READS",
    "IMMEDIATE_WRITES",
    "REFRESHER_MAX_SLEEP",
    "ClientOptions",
    "CollectionProxy",
    "RotatingShell",
    "ScheduleQuery",
    "ShellOptions",
    "check_arguments",
    "no_database_error",
]

# How long close() waits for the client's own threads or tasks, all together.
CLOSE_WAIT = 30.0
# The background refresher looks again at least this often (real seconds): the
# clock may be a compressed or injected one whose seconds are not real ones.
REFRESHER_MAX_SLEEP = 30.0

_log = logging.getLogger(__name__)

C = TypeVar("C")
D = TypeVar("D")

# Collection methods that send their command when called, split by whether a
# retry after a connection error is harmless. After a refused login every one
# of them is retried: the command was never sent.
IMMEDIATE_READS = frozenset(
    {"find_one", "count_documents", "estimated_document_count", "distinct", "list_indexes", "index_information"}
)
IMMEDIATE_WRITES = frozenset(
    {
        "insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one", "delete_many",
        "find_one_and_update", "find_one_and_replace", "find_one_and_delete", "bulk_write", "aggregate",
        "create_index", "create_indexes", "drop_index", "drop_indexes",
    }
)  # fmt: skip


def check_arguments(secret_id: object, database: object, close_grace: float) -> None:
    """The constructor checks both rotating clients share.

    Raises:
        ConfigurationError: an argument is wrong.
    """
    if not isinstance(secret_id, str) or not secret_id:
        raise ConfigurationError("secret_id must be a non-empty secret name or ARN")
    if close_grace < 0:
        raise ConfigurationError(f"close_grace must not be negative, got {close_grace!r}")
    if database is not None and (not isinstance(database, str) or not database.strip()):
        raise ConfigurationError(f"database must be a non-empty database name, got {database!r}")


def no_database_error(secret_id: str, client_class: str) -> ConfigurationError:
    """The error for an application database nobody named."""
    return ConfigurationError(
        f"no application database for secret {secret_id!r}: it has no 'dbname'; pass "
        f"{client_class}(..., database='mydb') or a name to database()/run()/collection()"
    )


class ShellOptions(TypedDict, total=False):
    """The settings both rotating clients take (each is described on :class:`~client.rotating.RotatingMongoClient`)."""

    database: str | None
    secretsmanager_client: SecretsManagerClient | Any | None
    policy: RefreshPolicy | None
    clock: Callable[[], float]
    mongo_options: Mapping[str, Any] | None
    on_event: Callable[[ClientEvent], None] | None
    rng: random.Random | None
    close_grace: float
    background_refresh: bool
    meter_provider: MeterProvider | None


class ScheduleQuery(TypedDict, total=False):
    """The arguments of ``check_rotation_schedule()`` (described on the threaded client's)."""

    derive_deadline: bool
    margin: float
    clock_per_wall_second: float
    wall_now: dt.datetime | None


F = TypeVar("F")  # how a shell builds a client
K = TypeVar("K")  # how it checks a login
A = TypeVar("A")  # how it moves a login onto the stable client


class ClientOptions(ShellOptions, Generic[F, K, A], total=False):
    """One rotating client's settings: the shared ones, and the hooks its shell does I/O with."""

    client_factory: F
    login_check: K
    login_adopter: A


class RotatingShell(Generic[C, D]):
    """The part of a rotating client that does not depend on threads or asyncio.

    Subclasses pass their I/O-specific defaults to ``__init__`` and implement
    :meth:`_maintain`, :meth:`_login_refused` and the I/O.
    """

    _gen: Generation[C, D]

    def __init__(
        self,
        secret_id: str,
        *,
        client_factory: Callable[[MongoCredentials, Mapping[str, Any]], C],
        database: str | None = None,
        secretsmanager_client: SecretsManagerClient | Any | None = None,
        policy: RefreshPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        mongo_options: Mapping[str, Any] | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
        rng: random.Random | None = None,
        close_grace: float = 2.0,
        background_refresh: bool = True,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        check_arguments(secret_id, database, close_grace)
        self.secret_id = secret_id
        self.default_database_name = database
        self.policy = policy if policy is not None else RefreshPolicy()
        self._clock = clock
        self._mongo_options: Mapping[str, Any] = dict(mongo_options or {})
        self._close_grace = close_grace
        self._client_factory = client_factory
        self._refresher_enabled = background_refresh
        self._closed = False
        self._stable: C | None = None  # the one client, once the first login check passed
        self._candidate_watch: tuple[Any, LoginWatch] | None = None
        self._adopted_at = -math.inf  # when the stable client last changed its login (pymongo's clock)
        self._source = SecretSource(secret_id, secretsmanager_client)
        self._core: ClientCore[C, D] = ClientCore(
            secret_id,
            database=database,
            policy=self.policy,
            clock=clock,
            rng=rng if rng is not None else random.Random(),
            on_publish=self._set_generation,
        )
        # Subscribed before the first read, so they see every event; neither touches the hot path.
        self._history = RefreshHistory()
        self._core.events.subscribe(self._history.on_event)
        if meter_provider is not None:
            from .telemetry import ClientTelemetry  # imports opentelemetry: only when asked for

            telemetry = ClientTelemetry(
                meter_provider,
                secret_id=secret_id,
                health=self.health,
                auth_failures=lambda: self.metrics.auth_failures,
            )
            self._core.events.subscribe(telemetry.on_event)
            self._source.observe(telemetry.on_call)
        if on_event is not None:
            self.subscribe(on_event)

    def subscribe(self, callback: Callable[[ClientEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, in order, once the client released its locks.

        The callback is a plain function; on the threaded client it runs in
        the thread that caused the event (or in one delivering events at that
        moment), on the asyncio client on the loop (schedule a coroutine with
        ``asyncio.create_task`` if needed). It may call any method of the
        client, ``close()`` included. An exception in a callback is logged
        and never reaches the client.

        Returns:
            A function that unsubscribes ``callback``.
        """
        return self._core.events.subscribe(callback)

    def _set_generation(self, gen: Generation[C, D]) -> None:
        # One attribute store: readers see the old or the new snapshot, never a mix.
        self._gen = gen

    def _maintain(self) -> Generation[C, D]:
        """Past ``check_at``: the generation to use now (each shell's slow path)."""
        raise NotImplementedError

    def _deliver(self) -> None:
        """Hand the core's queued events to the subscribers: the one way out, called with no lock held."""
        self._core.events.deliver()

    # -- answers to the core's requests that need no I/O ------------------------

    def _answer_locally(self, request: Request) -> Any:
        """``BuildClient`` and ``Retire``: the same for both shells."""
        if isinstance(request, BuildClient):
            return self._build(request.credentials)
        if isinstance(request, Retire):
            # The client is the stable one; calls that read the old generation move on.
            if request.at_once:
                request.generation.in_flight.refuse()
            return None
        raise TypeError(f"not a request answered without I/O: {type(request).__name__}")

    def _build(self, credentials: MongoCredentials) -> C:
        watch = LoginWatch(self._login_refused, self._pool_cleared)
        listeners = [*self._mongo_options.get("event_listeners", ()), watch]
        client = self._client_factory(credentials, {**self._mongo_options, "event_listeners": listeners})
        self._candidate_watch = (client, watch)
        return client

    def _adopt_first(self, candidate: C) -> bool:
        """The first checked client becomes the stable one (True); later ones hand it their login (False)."""
        if self._stable is not None and candidate is not self._stable:
            return False
        self._stable = candidate
        pending = self._candidate_watch
        if pending is not None and pending[0] is candidate:
            pending[1].arm()
        return True

    # -- healing handles the client does not see -------------------------------

    def _login_refused(self, seen_at: float | None) -> None:
        """A connection of the stable client was refused its login (pymongo's events thread or task)."""
        raise NotImplementedError

    def _pool_cleared(self) -> None:
        """pymongo cleared the stable client's pool (under its topology lock): look why, later."""
        raise NotImplementedError

    def _check_refused(self) -> None:
        stable = self._stable
        seen_at = refused_at(stable) if stable is not None else None
        if seen_at is not None:  # a refused login, not a network error
            self._login_refused(None if seen_at == -math.inf else seen_at)

    def _refused_before_adoption(self, seen_at: float | None) -> bool:
        """Refused before the last login change: already repaired."""
        return seen_at is not None and seen_at < self._adopted_at

    # -- what run does with an error, and the refresher's schedule ---------------

    def _after_error(self, gen: Generation[C, D], exc: PyMongoError, *, retry_connection_errors: bool) -> Retry:
        """What ``run`` does after ``fn`` failed on ``gen``; a refused login is taken off the hot path here."""
        failure = classify_failure(exc, gen.client, closed=gen.in_flight.closing)
        live = self._gen
        step = after_failure(
            failure,
            replaced=live.number != gen.number or live.refused,
            retry_connection_errors=retry_connection_errors,
        )
        if step is Retry.REPAIR:
            self._core.refuse(gen)
        return step

    def _refresher_wait(self, gen: Generation[C, D]) -> float:
        """How long the refresher sleeps before it looks at ``gen`` (a failed repair: the forced-refresh gap)."""
        wait = self.policy.forced_refresh_gap if gen.refused else gen.check_at - self._clock()
        return min(wait, REFRESHER_MAX_SLEEP) if wait > 0 else 0.0

    def _refresher_idle(self, gen: Generation[C, D], woken: bool) -> bool:
        """After the sleep: True when there is nothing to do yet (woken by a new generation, or not due)."""
        return woken or self._closed or (not gen.refused and self._clock() < gen.check_at)

    @contextlib.contextmanager
    def _refresher_step(self) -> Iterator[None]:
        """One refresher step: no failure stops the refresher."""
        try:
            yield
        except SecretSwitchError:
            pass  # counted and announced by the core; the schedule says when to look again
        except Exception:  # noqa: BLE001 - the refresher must outlive any one failure
            _log.exception("secret %s: background refresher step failed", self.secret_id)

    def _check_schedule(
        self, schedule: RotationSchedule, held: contextlib.AbstractContextManager[Any], query: ScheduleQuery
    ) -> ScheduleCheck:
        """``check_rotation_schedule`` once ``DescribeSecret`` answered: decide under ``held``, then deliver."""
        try:
            with held:
                return self._core.schedule_check(schedule, **query)
        finally:
            self._deliver()

    def _announce_closed(self, gen: Generation[C, D]) -> None:
        self._core.events.emit("closed", to_user=gen.credentials.username, to_version=gen.credentials.version_id)
        self._deliver()

    # -- the hot path ----------------------------------------------------------

    def database(self, name: str | None = None) -> D:
        """The live pymongo database (default: the ``database=`` argument, else the secret's ``dbname``).

        On a cache hit this does no I/O, takes no lock, copies nothing and
        never awaits. Take it per unit of work: an old client is closed a
        grace period after a switch.

        Raises:
            ConfigurationError: no name given, no ``database=`` and the secret has no ``dbname``.
            AuthenticationError: the database refused the credentials and no
                version of the secret logs in (for ``forced_refresh_gap``); the
                asyncio client also raises it while its repair runs (``run``
                and ``collection`` wait for the repair instead).
            DatabaseError: the asyncio client is closed or not started.
        """
        gen = self._gen
        if name is None:
            if self._clock() < gen.check_at and gen.default_database is not None:
                return gen.default_database
        else:
            db = gen.databases.get(name)
            if db is not None and self._clock() < gen.check_at:
                return db
        return self._database_of(self._maintain(), name)

    @property
    def client(self) -> C:
        """The live pymongo client (same rules as :meth:`database`)."""
        gen = self._gen
        if self._clock() < gen.check_at:
            return gen.client
        return self._maintain().client

    def _database_of(self, gen: Generation[C, D], name: str | None) -> D:
        if name is not None:
            return gen.database(name)
        if gen.default_database is None:
            raise no_database_error(self.secret_id, type(self).__name__)
        return gen.default_database

    # -- the read-only surface -------------------------------------------------

    @property
    def credentials(self) -> MongoCredentials:
        """The credentials the live client uses (a frozen ``MongoCredentials`` snapshot)."""
        return self._gen.credentials

    @property
    def active_user(self) -> str:
        """The MongoDB user the live client is logged in as."""
        return self._gen.credentials.username

    @property
    def metrics(self) -> ClientMetrics:
        """A snapshot of the counters."""
        return self._core.metrics(self._source.api_calls)

    def health(self) -> ClientHealth:
        """A frozen snapshot for readiness and liveness probes (no I/O, no lock; rule in :mod:`client.health`)."""
        return self._history.snapshot(self.secret_id, self._gen, closed=self._core.closed, now=self._clock())

    def __repr__(self) -> str:
        gen = self._gen
        return (
            f"{type(self).__name__}(secret_id={self.secret_id!r}, user={gen.credentials.username!r}, "
            f"version={gen.credentials.version_id!r}, endpoint={gen.credentials.endpoint!r}, "
            f"generation={gen.number})"
        )


class CollectionProxy:
    """A collection proxy whose immediate operations recover from auth failures (both shells' base).

    It holds no client: every call resolves the live one. Subclasses say how
    a call runs (:meth:`_call`: a plain call, or a coroutine to await).
    """

    __slots__ = ("_database", "_name", "_owner")

    def __init__(self, owner: Any, name: str, database: str | None) -> None:
        self._owner = owner
        self._name = name
        self._database = database

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, database={self._database!r}, secret={self._owner.secret_id!r})"

    @property
    def name(self) -> str:
        return self._name

    def __getattr__(self, attribute: str) -> Any:
        if attribute not in IMMEDIATE_READS and attribute not in IMMEDIATE_WRITES:
            return getattr(self._owner.database(self._database)[self._name], attribute)
        call = self._call(attribute, retry_connection_errors=attribute in IMMEDIATE_READS)
        call.__name__ = attribute
        return call

    def _call(self, attribute: str, *, retry_connection_errors: bool) -> Callable[..., Any]:
        raise NotImplementedError
