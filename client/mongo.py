"""The MongoDB seam: the only client module that builds or closes ``MongoClient`` objects.

A client is built from :meth:`MongoCredentials.client_kwargs` (the password is
a keyword argument, never spliced into a URI) plus the application's options
(timeouts, pool size). The options cannot override the login. Both of
pymongo's APIs are served: ``MongoClient`` for the threaded client and
``AsyncMongoClient`` for the asyncio one.

* :func:`check_login` / :func:`check_login_async` run one ``ping``, which
  opens and authenticates a socket, and translate pymongo's errors into the
  secretswitch error tree.
* what a pymongo error means (:func:`classify_failure`, :func:`translate_error`,
  :func:`tls_failure`) is in :mod:`client.mongo_errors`, re-exported here.
  Certificate and host-name verification stay on and a failed TLS
  connection is never retried in plaintext: pymongo does neither, and no
  option here turns either off.
* :func:`release_waiters` / :func:`discard_client` (and their async twins)
  close a client whose login was refused without making anyone wait on it.
  After a refused login pymongo marks the server unknown: operations waiting
  for server selection on that client re-check only every 0.5 s and give up
  after ``serverSelectionTimeoutMS``, and ``close()`` itself first waits for a
  server to send ``endSessions`` to. pymongo has no public call for "give up
  now", so :func:`release_waiters` closes the client's topology (no network)
  and wakes its waiters; they fail at once with ``InvalidOperation`` and the
  rotating client retries them on the new client. These private attributes
  exist from pymongo 4.0 to at least 4.20; without them the waiters give up
  as pymongo decides.

**One stable client per rotating client: the login changes in place.**
Applications and libraries keep handles for the life of the process (a
``Database`` an ODM was initialised with, a ``MongoClient`` a framework
caches, a cursor): they must follow the secret too. So a rotating client
builds its ``MongoClient`` once and never replaces it. A switch or a repair
builds a short-lived *candidate* client with the new credentials, checks its
login with a ``ping`` (:func:`check_login`), and then :func:`adopt_login`
moves the candidate's login onto the stable client:

* pymongo keeps a client's login in one ``MongoCredential`` value that its
  pools read each time they open and authenticate a connection (pymongo's
  ``PoolOptions`` object, shared by every server's pool). :func:`adopt_login` stores the candidate's value there.
* the pools are reset *without pausing* them: idle connections (logged in as
  the old user) close, connections in use finish their operation and close
  when they are checked in, new ones log in as the new user. This is the
  in-place form of "in-flight work finishes on the old client".
* a server that pymongo marked unknown because it refused the old login is
  given the candidate's fresh description of it (the candidate just logged
  in there), so operations waiting for server selection proceed at once, and
  its monitor (which may be parked in a streaming ``hello`` for up to
  ``heartbeatFrequencyMS``) is woken to check it itself.

The trade-off: this writes one private pymongo attribute
(``PoolOptions.__credentials``) and calls private methods
(each server's ``pool.reset_without_pause`` and ``_monitor.cancel_check``, the
topology's ``on_change``), present from pymongo 4.0 to 4.20 at
least and checked by :func:`login_slots_available` and a test per supported
version; a stable-handle proxy would have to mirror every pymongo type an ODM
touches (``Database``, ``Collection``, ``with_options``, cursors, sessions,
``AsyncDatabase``…) and still break on ``isinstance`` checks. The private
writes are confined to this module.

A refused login is *seen* through pymongo's public monitoring
(:class:`LoginWatch`, a ``ServerListener`` and ``ConnectionPoolListener``),
whatever code ran the operation: pymongo clears the pool at once in the
thread whose connection was refused (the watch then reads the topology
description to tell a refused login from a network error), and publishes a
server description change carrying the refusal on its events thread (up to
~1 s later, the backstop). No command listener is registered: the pool
listener's per-checkout events are no-op calls.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from pymongo import MongoClient, monitoring
from pymongo.errors import (
    PyMongoError,
)

from .credentials import MongoCredentials
from .errors import ConfigurationError, DatabaseError
from .mongo_errors import (
    classify_failure,
    client_trust,
    is_auth_failure,
    openssl_reason,
    tls_failure,
    translate_error,
)

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient

__all__ = [
    "LOGIN_OPTIONS",
    "AsyncLoginCheck",
    "LoginWatch",
    "adopt_login",
    "adopt_login_async",
    "login_slots_available",
    "refused_at",
    "AsyncMongoClientFactory",
    "LoginCheck",
    "MongoClientFactory",
    "build_async_mongo_client",
    "build_mongo_client",
    "open_mongo_client",
    "check_login",
    "check_login_async",
    "classify_failure",
    "discard_async_client",
    "discard_client",
    "is_auth_failure",
    "release_async_waiters",
    "release_waiters",
    "client_trust",
    "tls_failure",
    "translate_error",
]

MongoClientFactory = Callable[[MongoCredentials, Mapping[str, Any]], "MongoClient[dict[str, Any]]"]
"""Builds a client from credentials and extra options (tests pass a recording fake)."""
AsyncMongoClientFactory = Callable[[MongoCredentials, Mapping[str, Any]], "AsyncMongoClient[dict[str, Any]]"]
"""Builds an ``AsyncMongoClient`` from credentials and extra options."""
LoginCheck = Callable[["MongoClient[dict[str, Any]]", MongoCredentials], None]
"""Checks a new client's login; raises a secretswitch error."""
AsyncLoginCheck = Callable[["AsyncMongoClient[dict[str, Any]]", MongoCredentials], Awaitable[None]]
"""Checks a new ``AsyncMongoClient``'s login; raises a secretswitch error."""

# Options that belong to the secret, not to the application.
LOGIN_OPTIONS = frozenset({"host", "port", "username", "password", "authSource", "authMechanism"})

# A new client must not wait the default 30 s to learn that a server is down. (A TLS handshake that
# never ends, TLS to a plaintext server that waits, shows as "No servers found yet": tls_failure names it.)
_DEFAULT_OPTIONS: Mapping[str, Any] = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000}
# The files a secret (or the application's options) can name for TLS.
_TLS_FILE_OPTIONS = ("tlsCAFile", "tlsCertificateKeyFile", "tlsCRLFile")


def _client_kwargs(credentials: MongoCredentials, options: Mapping[str, Any]) -> dict[str, Any]:
    clash = LOGIN_OPTIONS.intersection(options)
    if clash:
        raise ConfigurationError(
            f"mongo_options must not set {sorted(clash)}: the login comes from the secret {credentials.secret_id!r}"
        )
    return {**_DEFAULT_OPTIONS, **credentials.client_kwargs(), **options}


def _build_error(credentials: MongoCredentials, exc: BaseException, kwargs: Mapping[str, Any]) -> DatabaseError:
    where = f"cannot build a MongoClient for user {credentials.username!r} at {credentials.endpoint!r}"
    if isinstance(exc, OSError):
        # A TLS file named by the secret (or the options) is missing, unreadable or not PEM.
        for option in _TLS_FILE_OPTIONS:
            path = kwargs.get(option)
            if isinstance(path, str) and not _readable_file(path):
                return DatabaseError(
                    f"{where}: {option} {path!r} is not a readable file on this host ({type(exc).__name__}); "
                    f"the secret's {option} is a path on the host that connects: put the file there or "
                    "override it (mongo_options; on Lambda the rotation function's TLS_CA_FILE)"
                )
        reason = openssl_reason(str(exc))
        if reason is not None:
            return DatabaseError(
                f"{where}: a TLS file could not be loaded (OpenSSL: {reason}); tlsCAFile must be a PEM bundle "
                "of CA certificates, tlsCertificateKeyFile a PEM certificate and key"
            )
    return DatabaseError(f"{where}: {type(exc).__name__}; check the secret's host and options")


def _readable_file(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def build_mongo_client(credentials: MongoCredentials, options: Mapping[str, Any]) -> MongoClient[dict[str, Any]]:
    """A new, not yet connected ``MongoClient`` logged in as ``credentials``.

    Args:
        credentials: the snapshot to log in with.
        options: extra ``MongoClient`` keyword arguments.

    Raises:
        ConfigurationError: ``options`` tries to set a login field.
        DatabaseError: pymongo refused the arguments.
    """
    kwargs = _client_kwargs(credentials, options)
    try:
        return MongoClient(**kwargs)
    except (PyMongoError, OSError, ValueError, TypeError) as exc:
        raise _build_error(credentials, exc, kwargs) from None


def open_mongo_client(*args: Any, **kwargs: Any) -> MongoClient[dict[str, Any]]:
    """A plain ``MongoClient(*args, **kwargs)``: the one place outside the rotating clients that constructs one.

    For the tools, the embedded stack and the demo (an admin URI, a probe, a
    reader that checks the demo's writes); the rotating clients and the
    rotation function use :func:`build_mongo_client`, which also checks the
    options against the secret's login.
    """
    return MongoClient(*args, **kwargs)


def build_async_mongo_client(
    credentials: MongoCredentials, options: Mapping[str, Any]
) -> AsyncMongoClient[dict[str, Any]]:
    """A new, not yet connected ``AsyncMongoClient`` logged in as ``credentials`` (same rules as the sync one)."""
    # Imported here: the rotation function's zip carries this module with whatever pymongo it pins.
    from pymongo import AsyncMongoClient

    kwargs = _client_kwargs(credentials, options)
    try:
        return AsyncMongoClient(**kwargs)
    except (PyMongoError, OSError, ValueError, TypeError) as exc:
        raise _build_error(credentials, exc, kwargs) from None


def check_login(client: MongoClient[dict[str, Any]], credentials: MongoCredentials) -> None:
    """Run ``ping`` on a new socket: proves the server is reachable and takes the login.

    Raises:
        AuthenticationError: the server refused the user name or password.
        DatabaseError: the server could not be reached or failed otherwise.
    """
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        raise translate_error(exc, credentials) from exc


async def check_login_async(client: AsyncMongoClient[dict[str, Any]], credentials: MongoCredentials) -> None:
    """:func:`check_login` for an ``AsyncMongoClient``."""
    try:
        await client.admin.command("ping")
    except PyMongoError as exc:
        raise translate_error(exc, credentials) from exc


def _topology_parts(client: Any) -> tuple[Any, Any, Any] | None:
    topology = getattr(client, "_topology", None)
    lock = getattr(topology, "_lock", None)
    condition = getattr(topology, "_condition", None)
    if topology is None or lock is None or condition is None or not callable(getattr(topology, "close", None)):
        return None
    return topology, lock, condition


def release_waiters(client: Any) -> bool:
    """Make operations waiting for server selection on ``client`` give up now (no network; see above).

    Returns:
        True when they were woken; False when this pymongo has no such hook.
    """
    parts = _topology_parts(client)
    if parts is None:
        return False
    topology, lock, condition = parts
    try:
        topology.close()
        with lock:
            condition.notify_all()
    except (PyMongoError, RuntimeError, AttributeError, TypeError):
        return False
    return True


def discard_client(client: Any) -> None:
    """Close a client that must not make anyone wait: its login was refused, or it never served."""
    release_waiters(client)
    with contextlib.suppress(PyMongoError):
        client.close()


async def release_async_waiters(client: Any) -> bool:
    """:func:`release_waiters` for an ``AsyncMongoClient``."""
    parts = _topology_parts(client)
    if parts is None:
        return False
    topology, lock, condition = parts
    try:
        await topology.close()
        async with lock:
            condition.notify_all()
    except (PyMongoError, RuntimeError, AttributeError, TypeError):
        return False
    return True


async def discard_async_client(client: Any) -> None:
    """:func:`discard_client` for an ``AsyncMongoClient``."""
    await release_async_waiters(client)
    with contextlib.suppress(PyMongoError):
        await client.close()


# -- one stable client: the login changes in place (see the module docstring) ---------------


class LoginWatch(monitoring.ServerListener, monitoring.ConnectionPoolListener):
    """Tells its owner when a server of the client it watches refused a login.

    Registered with ``event_listeners=`` on every client a rotating client
    builds; only the stable client's watch is armed (:meth:`arm`), so a
    candidate whose check fails does not count. Two signals, neither per
    command:

    * ``on_pool_cleared()`` at once, in the thread whose connection failed
      (pymongo clears the pool right after marking the server unknown, under
      its topology lock: the owner must only start a thread or a task there,
      which then asks :func:`refused_at`);
    * ``on_refused(seen_at)`` from the server description change that
      carries the refusal, on pymongo's events thread (up to ~1 s later): the
      backstop.

    The per-checkout pool events pymongo also publishes to a pool listener
    are ignored (one no-op call each).
    """

    __slots__ = ("_armed", "_on_pool_cleared", "_on_refused")

    def __init__(self, on_refused: Callable[[float | None], None], on_pool_cleared: Callable[[], None]) -> None:
        self._on_refused = on_refused
        self._on_pool_cleared = on_pool_cleared
        self._armed = False

    def arm(self) -> None:
        """Start reporting (the watched client became the stable one)."""
        self._armed = True

    def opened(self, event: monitoring.ServerOpeningEvent) -> None:
        """Nothing to do."""

    def closed(self, event: monitoring.ServerClosedEvent) -> None:
        """Nothing to do."""

    def description_changed(self, event: monitoring.ServerDescriptionChangedEvent) -> None:
        """A refused login marks the server unknown with the refusal as its error."""
        description = event.new_description
        error = description.error
        if self._armed and error is not None and is_auth_failure(error):
            self._on_refused(_seen_at(description))

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        """pymongo cleared a pool: after a refused login, or a network error (the owner tells them apart)."""
        if self._armed:
            self._on_pool_cleared()

    # The rest of the pool events: nothing to do.
    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        """Nothing to do."""

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        """Nothing to do."""

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        """Nothing to do."""

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        """Nothing to do."""

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        """Nothing to do."""

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        """Nothing to do."""

    def connection_check_out_started(self, event: monitoring.ConnectionCheckOutStartedEvent) -> None:
        """Nothing to do."""

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        """Nothing to do."""

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        """Nothing to do."""

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        """Nothing to do."""


def _seen_at(description: Any) -> float | None:
    # When pymongo saw it (time.monotonic): events arrive up to ~1 s late, so a
    # refusal of a login that was replaced meanwhile must not start another repair.
    seen_at = getattr(description, "_last_update_time", None)
    return seen_at if isinstance(seen_at, float) else None


def refused_at(client: Any) -> float | None:
    """When a server of ``client`` was last marked unknown for a refused login; ``None`` if none is now.

    Returns ``-inf`` for a refusal this pymongo does not date.
    """
    try:
        descriptions = client.topology_description.server_descriptions().values()
    except (AttributeError, PyMongoError):
        return None
    times = [
        seen if (seen := _seen_at(sd)) is not None else -math.inf
        for sd in descriptions
        if sd.error is not None and is_auth_failure(sd.error)
    ]
    return max(times) if times else None


def _credential_of(client: Any) -> Any:
    return client._options.pool_options._credentials


def login_slots_available(client: Any) -> bool:
    """True when this pymongo keeps the login where :func:`adopt_login` writes it."""
    options = getattr(client, "_options", None)
    pool_options = getattr(options, "pool_options", None)
    return hasattr(pool_options, "_PoolOptions__credentials") and hasattr(
        getattr(client, "_topology", None), "_servers"
    )


def _store_login(stable: Any, candidate: Any) -> list[Any]:
    """Write ``candidate``'s login into ``stable``; return ``stable``'s servers."""
    if not (login_slots_available(stable) and login_slots_available(candidate)):
        raise DatabaseError(
            "this pymongo keeps the login where secretswitch cannot change it in place; "
            "install a pymongo version secretswitch supports (pymongo>=4.13,<5)"
        )
    credential = _credential_of(candidate)
    stable._options.pool_options._PoolOptions__credentials = credential
    return list(stable._topology._servers.values())


def _refused_addresses(client: Any) -> set[Any]:
    try:
        descriptions = client.topology_description.server_descriptions()
    except (AttributeError, PyMongoError):
        return set()
    return {address for address, sd in descriptions.items() if sd.error is not None and is_auth_failure(sd.error)}


def _wake_monitor(server: Any) -> None:
    monitor = getattr(server, "_monitor", None)
    with contextlib.suppress(AttributeError, PyMongoError):
        if monitor is not None:
            monitor.cancel_check()  # a streaming hello would park it for heartbeatFrequencyMS
        server.request_check()


def adopt_login(stable: MongoClient[dict[str, Any]], candidate: MongoClient[dict[str, Any]]) -> None:
    """Make ``stable`` log in as ``candidate`` does from now on (``candidate`` is left open; close it).

    Raises:
        DatabaseError: this pymongo has no place to change the login in place.
    """
    refused = _refused_addresses(stable)
    for server in _store_login(stable, candidate):
        with contextlib.suppress(PyMongoError):
            server.pool.reset_without_pause()
        address = server.description.address
        if address in refused:
            known = _known_description(candidate, address)
            if known is not None:
                with contextlib.suppress(PyMongoError, AttributeError, TypeError):
                    stable._topology.on_change(known)  # selectable again now, not at the monitor's next check
            _wake_monitor(server)


def _known_description(candidate: Any, address: Any) -> Any:
    """The candidate's fresh description of ``address`` (it just logged in there), if the server type is known."""
    try:
        description = candidate.topology_description.server_descriptions().get(address)
    except (AttributeError, PyMongoError):
        return None
    return description if description is not None and description.is_server_type_known else None


async def adopt_login_async(
    stable: AsyncMongoClient[dict[str, Any]], candidate: AsyncMongoClient[dict[str, Any]]
) -> None:
    """:func:`adopt_login` for an ``AsyncMongoClient``."""
    refused = _refused_addresses(stable)
    for server in _store_login(stable, candidate):
        with contextlib.suppress(PyMongoError):
            await server.pool.reset_without_pause()
        address = server.description.address
        if address in refused:
            known = _known_description(candidate, address)
            if known is not None:
                with contextlib.suppress(PyMongoError, AttributeError, TypeError):
                    await stable._topology.on_change(known)
            _wake_monitor(server)
