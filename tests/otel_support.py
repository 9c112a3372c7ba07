"""Reading the client's OpenTelemetry instruments back through the SDK's in-memory reader."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

# Every instrument the client creates (docs/observability.md), with its unit.
INSTRUMENTS = {
    "secretswitch.secretsmanager.calls": "{call}",
    "secretswitch.client.refreshes": "{refresh}",
    "secretswitch.client.switches": "{switch}",
    "secretswitch.client.auth.failures": "{failure}",
    "secretswitch.client.auth.recoveries": "{recovery}",
    "secretswitch.client.auth.recovery_failures": "{failure}",
    "secretswitch.client.refresh.failures": "{failure}",
    "secretswitch.client.malformed_secrets": "{read}",
    "secretswitch.client.login_check.failures": "{failure}",
    "secretswitch.client.credentials.age": "s",
    "secretswitch.client.refresh.due_in": "s",
    "secretswitch.client.past_upper_bound": "1",
    "secretswitch.client.healthy": "1",
}
GAUGES = {
    "secretswitch.client.credentials.age",
    "secretswitch.client.refresh.due_in",
    "secretswitch.client.past_upper_bound",
    "secretswitch.client.healthy",
}

Points = dict[str, dict[frozenset[tuple[str, Any]], float]]


def in_memory_provider() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


def collect(reader: InMemoryMetricReader) -> tuple[Points, dict[str, str]]:
    """Every data point by instrument name and attribute set, and each instrument's unit."""
    points: Points = {}
    units: dict[str, str] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                units[metric.name] = metric.unit or ""
                series = points.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    series[frozenset((point.attributes or {}).items())] = point.value  # type: ignore[union-attr]
    return points, units


def by_user(points: Points, name: str) -> dict[str | None, float]:
    """One instrument's values by ``db.user`` (every point must carry ``secret.id``)."""
    found: dict[str | None, float] = {}
    for attributes, value in points.get(name, {}).items():
        attrs = dict(attributes)
        assert attrs.get("secret.id"), f"{name}: a point without secret.id: {attrs}"
        user = attrs.get("db.user")
        found[user] = found.get(user, 0) + value
    return found


def calls(points: Points) -> dict[tuple[str, str, str | None], float]:
    """Secrets Manager calls by (operation, outcome, error type)."""
    found: dict[tuple[str, str, str | None], float] = {}
    for attributes, value in points.get("secretswitch.secretsmanager.calls", {}).items():
        attrs = dict(attributes)
        key = (attrs["rpc.method"], attrs["outcome"], attrs.get("error.type"))
        found[key] = found.get(key, 0) + value
    return found
