"""OpenTelemetry metrics for the rotating clients: ``RotatingMongoClient(..., meter_provider=provider)``.

Optional: it needs ``opentelemetry-api`` (``pip install 'secretswitch[otel]'``)
and is imported only when a client is given a ``MeterProvider``; without one
nothing of OpenTelemetry is imported. To use the global provider, pass it:
``meter_provider=opentelemetry.metrics.get_meter_provider()``.

How it stays off the hot path: the counters are fed by the client's own
events (delivered after a refresh, a switch or a repair, never on a cache
hit) and by the Secrets Manager seam after each API call; the gauges and
the auth-failure counter are callbacks the SDK runs when it collects, and
read :meth:`~client.shell.RotatingShell.health` and the metrics snapshot.
``database()`` and ``client`` are not wrapped.

One set of instruments per ``MeterProvider`` (an SDK keeps the first
callback of an observable instrument registered twice): every client on the
same provider reports through it, told apart by ``secret.id``. A client
reports its gauges from its first read of the secret until it is closed.

Instruments (``secret.id`` on every one, ``db.user`` where a user is involved;
docs/observability.md has the table):

* counters: ``secretswitch.secretsmanager.calls`` (+ ``rpc.method``,
  ``outcome``, ``error.type``), ``secretswitch.client.refreshes``,
  ``.switches``, ``.auth.failures`` (observable), ``.auth.recoveries``,
  ``.auth.recovery_failures``, ``.refresh.failures``, ``.malformed_secrets``,
  ``.login_check.failures``;
* gauges: ``secretswitch.client.credentials.age`` (s),
  ``.refresh.due_in`` (s), ``.past_upper_bound`` (0/1), ``.healthy`` (0/1).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from .events import ClientEvent
from .health import ClientHealth

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Counter, MeterProvider, Observation

__all__ = ["METER_NAME", "ClientTelemetry"]

METER_NAME = "secretswitch.client"

# Event kind -> (counter, which user the event is about).
_COUNTED: dict[str, tuple[str, str]] = {
    "refreshed": ("refreshes", "to_user"),
    "switched": ("switches", "to_user"),
    "auth_recovered": ("auth_recoveries", "to_user"),
    "auth_recovery_failed": ("auth_recovery_failures", "from_user"),
    "refresh_failed": ("refresh_failures", "from_user"),
    "malformed_secret": ("malformed_secrets", "from_user"),
    "check_failed": ("check_failures", "to_user"),
}


class _Instruments:
    """The instruments of one ``MeterProvider``, and the clients its callbacks report on."""

    def __init__(self, meter_provider: MeterProvider) -> None:
        from opentelemetry.metrics import Observation

        self._observation = Observation
        meter = meter_provider.get_meter(METER_NAME)
        self.clients: weakref.WeakSet[ClientTelemetry] = weakref.WeakSet()
        self.calls = meter.create_counter(
            "secretswitch.secretsmanager.calls", unit="{call}", description="Secrets Manager API calls, by outcome"
        )
        self.counters: dict[str, Counter] = {
            "refreshes": meter.create_counter(
                "secretswitch.client.refreshes", unit="{refresh}", description="Reads of AWSCURRENT that succeeded"
            ),
            "switches": meter.create_counter(
                "secretswitch.client.switches",
                unit="{switch}",
                description="MongoClients swapped in after the first (rotations and repairs)",
            ),
            "auth_recoveries": meter.create_counter(
                "secretswitch.client.auth.recoveries", unit="{recovery}", description="Refused logins repaired"
            ),
            "auth_recovery_failures": meter.create_counter(
                "secretswitch.client.auth.recovery_failures",
                unit="{failure}",
                description="Repairs of a refused login that found no version of the secret that logs in",
            ),
            "refresh_failures": meter.create_counter(
                "secretswitch.client.refresh.failures",
                unit="{failure}",
                description="Reads of the secret that Secrets Manager failed (the old credentials stay)",
            ),
            "malformed_secrets": meter.create_counter(
                "secretswitch.client.malformed_secrets",
                unit="{read}",
                description="Reads that returned an unusable secret string (the old credentials stay)",
            ),
            "check_failures": meter.create_counter(
                "secretswitch.client.login_check.failures",
                unit="{failure}",
                description="New credentials that did not pass the login check (the old client stays)",
            ),
        }
        meter.create_observable_counter(
            "secretswitch.client.auth.failures",
            callbacks=[self._auth_failures],
            unit="{failure}",
            description="Refused logins (authentication failures) seen by run and collection",
        )
        meter.create_observable_gauge(
            "secretswitch.client.credentials.age",
            callbacks=[self._gauge(lambda h: h.credential_age)],
            unit="s",
            description="Seconds since the credentials in use were last read from Secrets Manager",
        )
        meter.create_observable_gauge(
            "secretswitch.client.refresh.due_in",
            callbacks=[self._gauge(lambda h: h.seconds_until_refresh)],
            unit="s",
            description="Seconds until the next refresh is due (negative: overdue)",
        )
        meter.create_observable_gauge(
            "secretswitch.client.past_upper_bound",
            callbacks=[self._gauge(lambda h: int(h.past_upper_bound))],
            unit="1",
            description="1 when the credentials were last read more than refresh_interval ago",
        )
        meter.create_observable_gauge(
            "secretswitch.client.healthy",
            callbacks=[self._gauge(lambda h: int(h.ok))],
            unit="1",
            description="1 when health().ok",
        )

    def _live(self) -> list[ClientTelemetry]:
        return [client for client in list(self.clients) if client.reporting]

    def _auth_failures(self, options: CallbackOptions) -> Iterable[Observation]:
        return [self._observation(client.auth_failures(), client.attributes) for client in self._live()]

    def _gauge(
        self, read: Callable[[ClientHealth], float | int | None]
    ) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def callback(options: CallbackOptions) -> Iterator[Observation]:
            for client in self._live():
                health = client.health()
                value = read(health)
                if value is None or health.active_user is None:
                    continue  # not started yet
                yield self._observation(value, {**client.attributes, "db.user": health.active_user})

        return callback


_by_provider: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = weakref.WeakKeyDictionary()
_by_provider_lock = threading.Lock()


def _instruments(meter_provider: MeterProvider) -> _Instruments:
    with _by_provider_lock:
        found = _by_provider.get(meter_provider)
        if found is None:
            found = _by_provider[meter_provider] = _Instruments(meter_provider)
        return found


class ClientTelemetry:
    """Reports one rotating client through a ``MeterProvider`` (built by the client's shell).

    Args:
        meter_provider: where the instruments live.
        secret_id: the ``secret.id`` attribute (a name or ARN, never a value).
        health: the client's ``health()``.
        auth_failures: the client's cumulative count of refused logins.
    """

    def __init__(
        self,
        meter_provider: MeterProvider,
        *,
        secret_id: str,
        health: Callable[[], ClientHealth],
        auth_failures: Callable[[], int],
    ) -> None:
        self.attributes: dict[str, str] = {"secret.id": secret_id}
        self.health = health
        self.auth_failures = auth_failures
        self.reporting = False  # from the first event (the first read) until "closed"
        self._instruments = _instruments(meter_provider)
        self._instruments.clients.add(self)

    def on_event(self, event: ClientEvent) -> None:
        """Count ``event`` (subscribe this to the client's events)."""
        if event.kind == "closed":
            self.reporting = False
            self._instruments.clients.discard(self)
            return
        self.reporting = True
        counted = _COUNTED.get(event.kind)
        if counted is None:
            return
        name, user_field = counted
        user = getattr(event, user_field) or (event.from_user if user_field == "to_user" else None)
        attributes = dict(self.attributes) if user is None else {**self.attributes, "db.user": user}
        self._instruments.counters[name].add(1, attributes)

    def on_call(self, operation: str, error: str | None) -> None:
        """Count one Secrets Manager API call (register this with the Secrets Manager seam)."""
        attributes = {**self.attributes, "rpc.method": operation}
        if error is None:
            attributes["outcome"] = "success"
        else:
            attributes["outcome"] = "failure"
            attributes["error.type"] = error
        self._instruments.calls.add(1, attributes)
