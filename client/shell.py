"""What the threaded and the asyncio rotating clients share around :class:`~client.core.ClientCore`.

The settings, the core, the live generation, and the hot path: a cache hit in
:meth:`RotatingShell.database` / :attr:`RotatingShell.client` is one clock
call, one comparison and one attribute read (no I/O, no lock, no copy). Past
``check_at`` each shell's ``_maintain`` decides, without I/O on the calling
path, what to use.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .core import ClientCore
from .credentials import MongoCredentials
from .errors import ConfigurationError
from .events import ClientMetrics
from .health import ClientHealth, RefreshHistory
from .policy import RefreshPolicy
from .secretsmanager import SecretSource
from .state import Generation

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from opentelemetry.metrics import MeterProvider

__all__ = ["IMMEDIATE_READS", "IMMEDIATE_WRITES", "RotatingShell", "check_arguments", "no_database_error"]

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


class RotatingShell(Generic[C, D]):
    """The part of a rotating client that does not depend on threads or asyncio.

    Subclasses call :meth:`_init_shell` first and implement :meth:`_maintain`.
    """

    _gen: Generation[C, D]

    def _init_shell(
        self,
        secret_id: str,
        *,
        database: str | None,
        secretsmanager_client: SecretsManagerClient | Any | None,
        policy: RefreshPolicy | None,
        clock: Callable[[], float],
        mongo_options: Mapping[str, Any] | None,
        rng: random.Random | None,
        close_grace: float,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        check_arguments(secret_id, database, close_grace)
        self.secret_id = secret_id
        self.default_database_name = database
        self.policy = policy if policy is not None else RefreshPolicy()
        self._clock = clock
        self._mongo_options: Mapping[str, Any] = dict(mongo_options or {})
        self._close_grace = close_grace
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

    def _set_generation(self, gen: Generation[C, D]) -> None:
        # One attribute store: readers see the old or the new snapshot, never a mix.
        self._gen = gen

    def _maintain(self) -> Generation[C, D]:
        """Past ``check_at``: the generation to use now (each shell's slow path)."""
        raise NotImplementedError

    def _deliver(self) -> None:
        """Hand the core's queued events to the subscribers: the one way out, called with no lock held."""
        self._core.events.deliver()

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
