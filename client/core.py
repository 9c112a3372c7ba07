"""Read this file for what happens on a refresh and on a refused login: every decision, once, without I/O.

:class:`~client.rotating.RotatingMongoClient` (threads) and
:class:`~client.async_rotating.AsyncRotatingMongoClient` (asyncio) are thin
shells (:mod:`client.shell`) around one :class:`ClientCore`. The core holds
the state (the live :class:`~client.state.Generation`, the counters, the
failure streak, the failed-recovery gap, the events waiting for delivery) and
makes every decision; the shells own the locks, the threads or tasks, and
the I/O. The class reads top to bottom as the two walks:

**One refresh.** The hot path compares the clock with the generation's
``check_at``; past it, one caller asks :meth:`ClientCore.due` (fresh or
backing off: move ``check_at`` and serve; due: refresh in the background,
everyone keeps the current client). :meth:`ClientCore.refresh` reads
``AWSCURRENT``; unchanged: a new schedule, nothing else. Changed:
:meth:`~ClientCore._open` builds a candidate, checks its login and adopts it
(the stable client takes over its login); :meth:`~ClientCore._swap` publishes
the new generation, retires the old one and announces ``switched``. Any
failure (Secrets Manager, a malformed secret, a failed check) keeps the
current login and backs off (:meth:`~ClientCore._back_off`).

**One recovery.** pymongo reports a refused login (``run``'s error, or the
stable client's monitoring); the shell calls :meth:`ClientCore.refuse`, which
takes the generation off the hot path, and runs :meth:`ClientCore.recover`:
re-read ``AWSCURRENT``, then ``AWSPENDING`` and ``AWSPREVIOUS``, last the same
credentials again; the first that logs in is swapped in (``auth_recovered``)
and ``run`` retries once. Nothing logs in: ``AuthenticationError``, and
:meth:`ClientCore.raise_if_refused` fails fast for ``forced_refresh_gap``.

The flows are generators that never touch the network ("sans I/O", see
:mod:`client.flows`): they yield requests (read a staging label, build a
client, check its login, adopt, close or retire one) and receive the
answers, or have the error thrown in. The threaded shell answers with
blocking calls, the asyncio shell with awaits: which stages are tried, the
backoff, what is counted and which event goes out are the same code for
both. :meth:`ClientCore.start` (the first generation) and the bookkeeping
(publishing, schedule, counters, fork) come after the two walks.

Events are queued while the shells hold their locks and delivered by
:meth:`client.hub.EventHub.deliver` (through each shell's ``_deliver``) once
they released them: a subscriber may call any public method, ``close()`` included.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Generic, TypeVar

from .credentials import MongoCredentials, parse_secret
from .errors import (
    AuthenticationError,
    DatabaseError,
    SecretFormatError,
    SecretNotFoundError,
    SecretsManagerError,
    SecretSwitchError,
    TLSError,
)
from .events import ClientMetrics, EventKind
from .flows import Adopt, BuildClient, CheckLogin, CloseClient, Plan, ReadSecret, Retire
from .hub import EventHub, InFlight
from .policy import (
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
from .secretsmanager import RotationSchedule, SecretVersion
from .state import Generation, ScheduleCheck

__all__ = ["ClientCore"]

_log = logging.getLogger(__name__)

C = TypeVar("C")  # the client type: MongoClient or AsyncMongoClient
D = TypeVar("D")  # its database type: Database or AsyncDatabase


class ClientCore(Generic[C, D]):
    """The state and decisions of one rotating client (see the module docstring).

    Not a public class: the shells serialize the flows (one at a time) and
    call the rest from any thread; the generation is published with one
    attribute store, and ``on_publish`` mirrors it into the shell's hot path.

    Args:
        secret_id: the secret's name or ARN.
        database: the application's default database, or ``None`` for the secret's ``dbname``.
        policy: refresh interval, jitter, backoff and forced-refresh gap.
        clock: monotonic seconds.
        rng: the source of jitter.
        on_publish: called with every generation made live (under the core's publish lock).
    """

    def __init__(
        self,
        secret_id: str,
        *,
        database: str | None,
        policy: RefreshPolicy,
        clock: Callable[[], float],
        rng: random.Random,
        on_publish: Callable[[Generation[C, D]], None],
    ) -> None:
        self.secret_id = secret_id
        self.database_name = database
        self.policy = policy
        self.clock = clock
        self.events = EventHub(secret_id, clock)
        self._rng = rng
        self._on_publish = on_publish
        self._publish_lock = threading.Lock()
        self._counters_lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(ClientMetrics.__dataclass_fields__, 0)
        self._gen: Generation[C, D] | None = None
        self._closed = False
        self._failures = 0  # failed refreshes in the current streak
        self._logins = 0  # generations made live: the first login and one per switch
        self._deadline_cap: float | None = None
        self._failed_recovery: tuple[int, float] | None = None  # (generation number, when)
        self._reads_started = 0
        self._reads_done = 0

    # -- one refresh: due? read AWSCURRENT, open a candidate, swap; or back off ------------------------------

    def due(self, gen: Generation[C, D], now: float) -> bool:
        """Past ``check_at`` (the caller holds the single-flight slot): True when a refresh must start.

        Due or past the upper bound, the refresh runs in the background and
        the current client keeps serving: the cached user stays valid until
        the rotation after the one that replaced it, and a refused login
        repairs the client at once. Otherwise (a forced refresh failed and its
        retry time passed, or a deadline moved) ``check_at`` moves to the next
        deadline so the hot path stops coming here.
        """
        state = cache_state(
            now, has_value=True, refresh_at=gen.refresh_at, expires_at=gen.expires_at, retry_at=gen.retry_at
        )
        if state in (CacheState.FRESH, CacheState.BACKING_OFF):
            next_check = gen.retry_at if state is CacheState.BACKING_OFF and gen.retry_at else gen.refresh_at
            if gen is self._gen:
                self._update(check_at=next_check)
            return False
        return True

    def refresh(self, *, reason: str) -> Plan[bool]:
        """Read ``AWSCURRENT`` and switch if it changed; True if it switched.

        Whatever goes wrong, the current client stays and the next attempt
        waits for the backoff: an unexpected error must never leave
        ``check_at`` in the past (every caller would start a refresh).
        """
        self._reads_started += 1
        try:
            return (yield from self._refresh(reason))
        except Exception as exc:  # noqa: BLE001 - backstop, see above
            # Only the type: a third-party message could quote the secret.
            _log.error("secret %s: %s refresh failed unexpectedly (%s)", self.secret_id, reason, type(exc).__name__)
            self.count("refresh_failures")
            self._back_off(self.gen, self.clock(), "refresh_failed", f"unexpected {type(exc).__name__}")
            return False
        finally:
            self._reads_done += 1

    def _refresh(self, reason: str) -> Plan[bool]:
        gen = self.gen
        now = self.clock()
        try:
            version: SecretVersion = yield ReadSecret(AWSCURRENT)
        except SecretsManagerError as exc:
            self.count("refresh_failures")
            self._back_off(gen, now, "refresh_failed", str(exc))
            return False
        try:
            credentials = self._parse(version)
        except SecretFormatError as exc:
            self.count("malformed_secrets")
            self._back_off(gen, now, "malformed_secret", str(exc), version=version)
            return False
        self.count("refreshes")
        self.events.emit("refreshed", to_user=credentials.username, to_version=version.version_id, stage=AWSCURRENT)
        if credentials == gen.credentials:
            self._end_failure_streak()
            refresh_at, expires_at = self._schedule(now)
            self._update(
                credentials=credentials,
                fetched_at=now,
                refresh_at=refresh_at,
                expires_at=expires_at,
                retry_at=None,
                check_at=refresh_at,
            )
            _log.debug("secret %s: %s refresh, unchanged (version %s)", self.secret_id, reason, version.version_id)
            return False
        try:
            client = yield from self._open(credentials)
        except SecretSwitchError as exc:
            self.count("check_failures")
            self._back_off(gen, now, "check_failed", str(exc), version=version, user=credentials.username)
            return False
        self._end_failure_streak()
        yield from self._swap(self.gen, credentials, client, now, kind="switched", stage=AWSCURRENT, reason=reason)
        return True

    def _open(self, credentials: MongoCredentials, *, allow_unreachable: bool = False) -> Plan[C]:
        """Build a candidate, check its login, and adopt it; a candidate that fails is closed, never leaked."""
        client: C = yield BuildClient(credentials)
        try:
            yield CheckLogin(client, credentials)
        except SecretSwitchError as exc:
            if allow_unreachable and not isinstance(exc, AuthenticationError | TLSError):
                # At start-up a database that is down is the application's
                # problem, not ours: pymongo reconnects by itself. A TLS
                # failure is a setting to fix: it never heals by waiting.
                _log.warning("secret %s: first login check failed: %s", self.secret_id, exc)
                return (yield Adopt(client))  # type: ignore[no-any-return]
            yield CloseClient(client)
            raise
        return (yield Adopt(client))  # type: ignore[no-any-return]

    def _swap(
        self,
        old: Generation[C, D],
        credentials: MongoCredentials,
        client: C,
        now: float,
        *,
        kind: EventKind,
        stage: str,
        reason: str,
    ) -> Plan[Generation[C, D]]:
        new = self._new_generation(credentials, client, now)
        self._install(new)
        self.count("switches")
        if kind == "auth_recovered":
            self.count("auth_recoveries")
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
        yield Retire(old, at_once=kind == "auth_recovered")
        # The demo and dashboards count switches: a recovery is announced as one too.
        for event_kind in (kind, "switched") if kind == "auth_recovered" else (kind,):
            self.events.emit(
                event_kind,
                from_user=old.credentials.username,
                to_user=credentials.username,
                from_version=old.credentials.version_id,
                to_version=credentials.version_id,
                stage=stage,
                message=reason,
            )
        return new

    def _back_off(
        self,
        gen: Generation[C, D],
        now: float,
        kind: EventKind,
        message: str,
        *,
        version: SecretVersion | None = None,
        user: str | None = None,
    ) -> None:
        self._failures += 1
        retry_at = now + self.policy.backoff_delay(self._failures, self._rng)
        if self.gen.number == gen.number:
            self._update(retry_at=retry_at, check_at=retry_at)
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
        self.events.emit(
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

    # -- one recovery: a refused login, the other stages, or fail fast ---------------------------------------

    def refuse(self, gen: Generation[C, D]) -> None:
        """The database refused ``gen``'s login: take it off the hot path until it is repaired."""
        self.count("auth_failures")
        with self._publish_lock:
            live = self._gen
            if live is None or live.number != gen.number or live.refused:
                return
            live = replace(live, refused=True, check_at=-math.inf)
            self._gen = live
            self._on_publish(live)

    def raise_if_refused(self, gen: Generation[C, D], cause: BaseException | None = None) -> None:
        """Fail fast when ``gen``'s recovery failed less than ``forced_refresh_gap`` ago.

        Raises:
            AuthenticationError: nothing logs in yet; retry after the gap.
        """
        failed = self._failed_recovery
        if failed is not None and failed[0] == gen.number and self.clock() - failed[1] < self.policy.forced_refresh_gap:
            raise self._auth_error(gen, "no version of the secret logs in (retry later)") from cause

    def recover(self, failed: Generation[C, D], cause: BaseException | None = None) -> Plan[Generation[C, D]]:
        """Replace ``failed``'s client after the database refused its login.

        Re-reads ``AWSCURRENT``; if it has not changed, tries ``AWSPENDING``
        then ``AWSPREVIOUS``, and last the same credentials on a fresh client
        (pymongo cleared the refused client's pool; the database may accept
        them again). Never a loop: a failure is not retried within
        ``forced_refresh_gap``.

        Raises (into the shell):
            AuthenticationError: nothing logs in (chained from ``cause``).
            DatabaseError: the client was closed.
        """
        live = self.gen
        if live.number != failed.number:
            return live  # another caller already replaced it
        self.ensure_open()
        self.raise_if_refused(live, cause)
        now = self.clock()
        try:
            new = yield from self._recover(live, now)
        except SecretSwitchError as exc:
            self._failed_recovery = (live.number, now)
            self.events.emit(
                "auth_recovery_failed",
                from_user=live.credentials.username,
                from_version=live.credentials.version_id,
                message=str(exc),
            )
            raise self._auth_error(live, str(exc)) from cause if cause is not None else exc
        self._failed_recovery = None
        return new

    def _recover(self, failed: Generation[C, D], now: float) -> Plan[Generation[C, D]]:
        current_version: SecretVersion = yield ReadSecret(AWSCURRENT)
        current = self._parse(current_version)
        self.count("refreshes")
        stages = recovery_stages(failed.credentials.version_id, current.version_id)
        if current == failed.credentials:
            # AWSCURRENT is what the database just refused (whatever its version id says).
            stages = (AWSPENDING, AWSPREVIOUS)
        errors: list[str] = []
        for stage in stages:
            try:
                credentials = current if stage == AWSCURRENT else self._parse((yield ReadSecret(stage)))
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
                client = yield from self._open(credentials)
            except SecretSwitchError as exc:
                errors.append(f"{stage}: {exc}")
                continue
            return (yield from self._recovered(failed, credentials, client, now, stage))
        if current == failed.credentials:
            try:
                client = yield from self._open(current)
            except SecretSwitchError as exc:
                errors.append(f"{AWSCURRENT} on a new client: {exc}")
            else:
                return (yield from self._recovered(failed, current, client, now, AWSCURRENT))
        raise AuthenticationError("; ".join(errors) or "no candidate version")

    def _recovered(
        self, failed: Generation[C, D], credentials: MongoCredentials, client: C, now: float, stage: str
    ) -> Plan[Generation[C, D]]:
        self._end_failure_streak()
        return (
            yield from self._swap(
                failed, credentials, client, now, kind="auth_recovered", stage=stage, reason="authentication failure"
            )
        )

    def _auth_error(self, failed: Generation[C, D], why: str) -> AuthenticationError:
        return AuthenticationError(
            f"MongoDB refused user {failed.credentials.username!r} (version {failed.credentials.version_id}) "
            f"of secret {self.secret_id!r} and recovery failed: {why}"
        )

    # -- the first generation --------------------------------------------------------------------------------

    def start(self) -> Plan[Generation[C, D]]:
        """The first generation: ``AWSCURRENT``, or (started mid-rotation) ``AWSPENDING``/``AWSPREVIOUS``.

        Raises (into the shell):
            SecretsManagerError, SecretFormatError: the first read failed.
            AuthenticationError: no version of the secret logs in.
        """
        now = self.clock()
        credentials = self._parse((yield ReadSecret(AWSCURRENT)))
        stage = AWSCURRENT
        try:
            client = yield from self._open(credentials, allow_unreachable=True)
        except AuthenticationError as refused:
            # Started in the middle of a rotation (or after one was rolled
            # back): the database may already expect another version.
            errors = [f"{AWSCURRENT}: {refused}"]
            for stage in recovery_stages(credentials.version_id, credentials.version_id):
                try:
                    candidate = self._parse((yield ReadSecret(stage)))
                    if candidate == credentials:
                        errors.append(f"{stage}: same credentials")
                        continue
                    client = yield from self._open(candidate)
                except SecretSwitchError as exc:
                    errors.append(f"{stage}: {exc}")
                    continue
                credentials = candidate
                break
            else:
                raise AuthenticationError("; ".join(errors)) from refused
        self.count("refreshes")
        gen = self._new_generation(credentials, client, now)
        self._install(gen)
        self.events.emit("refreshed", to_user=credentials.username, to_version=credentials.version_id, stage=stage)
        return gen

    # -- bookkeeping: the live generation, counters, schedule, publishing ------------------------------------

    @property
    def gen(self) -> Generation[C, D]:
        if self._gen is None:
            raise DatabaseError(f"the client for secret {self.secret_id!r} has not started")
        return self._gen

    @property
    def closed(self) -> bool:
        return self._closed

    def metrics(self, api_calls: int) -> ClientMetrics:
        with self._counters_lock:
            counters = dict(self._counters)
        counters["api_calls"] = api_calls
        counters["logins"] = self._logins
        return ClientMetrics(**counters)

    def count(self, name: str) -> None:
        with self._counters_lock:
            self._counters[name] += 1

    def ensure_open(self) -> None:
        if self._closed:
            raise DatabaseError(f"the rotating client for secret {self.secret_id!r} is closed")

    def read_ticket(self) -> int:
        """The number of the first read of the secret that starts after this call."""
        return self._reads_started + 1

    def read_done(self, ticket: int) -> bool:
        """True when the read ``ticket`` names (or a later one) has finished."""
        return self._reads_done >= ticket

    def schedule_check(
        self,
        schedule: RotationSchedule,
        *,
        derive_deadline: bool = False,
        margin: float = 3600.0,
        clock_per_wall_second: float = 1.0,
        wall_now: dt.datetime | None = None,
    ) -> ScheduleCheck:
        """Compare the policy with the secret's rotation schedule; maybe cap the next refresh."""
        # In the clock's own days: a demo that compresses time compresses both.
        interval = schedule.rotation_days * DAY if schedule.rotation_days else None
        window = schedule.window_hours * 3600.0 if schedule.window_hours else DAY
        warning = rotation_schedule_warning(self.policy, interval, rotation_window=window) if schedule.enabled else None
        if warning is not None:
            _log.warning("secret %s: %s", self.secret_id, warning)
            self.events.emit("schedule_warning", message=warning)
        deadline: float | None = None
        if derive_deadline and schedule.enabled and schedule.next_rotation is not None:
            now_wall = wall_now if wall_now is not None else dt.datetime.now(dt.UTC)
            seconds = (schedule.next_rotation - now_wall).total_seconds() * clock_per_wall_second
            deadline = deadline_before_rotation(self.clock(), seconds, margin=margin)
            self._deadline_cap = deadline
            gen = self.gen
            if deadline < gen.refresh_at:
                self._update(refresh_at=deadline, check_at=min(gen.check_at, deadline))
        return ScheduleCheck(
            rotation_enabled=schedule.enabled,
            rotation_interval=interval,
            next_rotation=schedule.next_rotation,
            warning=warning,
            deadline=deadline,
        )

    def after_fork_in_child(self) -> None:
        """In a forked child: fresh locks, re-seeded jitter, and a re-read of the secret due at once.

        A lock another thread of the parent held at ``fork()`` would stay held
        forever in the child, and an inherited random state would make every
        child refresh at the same instant.
        """
        self._publish_lock = threading.Lock()
        self._counters_lock = threading.Lock()
        self.events.after_fork_in_child()
        self._rng.seed()
        gen = self._gen
        if gen is not None:
            now = self.clock()
            check_at = -math.inf if gen.refused or self._closed else now
            self._gen = replace(gen, in_flight=InFlight(), refresh_at=now, retry_at=None, check_at=check_at)
            self._on_publish(self._gen)

    def close(self) -> Generation[C, D] | None:
        """Mark the client closed: every later call takes the slow path, which refuses."""
        self._closed = True
        return self._update() if self._gen is not None else None

    def _install(self, gen: Generation[C, D]) -> None:
        with self._publish_lock:
            if self._closed:
                gen = replace(gen, check_at=-math.inf)
            self._gen = gen
            self._on_publish(gen)

    def _update(self, **changes: Any) -> Generation[C, D]:
        """Republish the live generation with ``changes`` (a refused or closed one stays off the hot path)."""
        with self._publish_lock:
            gen = replace(self.gen, **changes)
            if gen.refused or self._closed:
                gen = replace(gen, check_at=-math.inf)
            self._gen = gen
            self._on_publish(gen)
            return gen

    def _new_generation(self, credentials: MongoCredentials, client: C, now: float) -> Generation[C, D]:
        self._logins += 1
        refresh_at, expires_at = self._schedule(now)
        default_name = self.database_name or credentials.database
        default_database: D | None = client[default_name] if default_name else None  # type: ignore[index]
        return Generation(
            number=self._logins,
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

    def _parse(self, version: SecretVersion) -> MongoCredentials:
        return parse_secret(version.secret_string, secret_id=self.secret_id, version_id=version.version_id)
