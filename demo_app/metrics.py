"""``--metrics-port N``: the demo client's OpenTelemetry metrics in Prometheus text format, for the length of a run.

An OpenTelemetry SDK ``MeterProvider`` whose reader is OpenTelemetry's
Prometheus exporter, on a registry of its own (only the client's metrics),
served by ``prometheus_client`` on ``http://127.0.0.1:N/metrics`` (loopback
only). The client gets the provider as ``meter_provider=``, exactly as an
application would; docs/observability.md lists what it reports.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from secretswitch.client.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider

__all__ = ["HOST", "MetricsEndpoint"]

HOST = "127.0.0.1"


class MetricsEndpoint:
    """A Prometheus scrape endpoint for one demo run; :meth:`close` stops it.

    Args:
        port: the TCP port on 127.0.0.1 (0: any free one; :attr:`url` names it).

    Raises:
        ConfigurationError: the port is taken, or the ``demo`` extra is missing.
    """

    def __init__(self, port: int) -> None:
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from opentelemetry.sdk.metrics import MeterProvider
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError as exc:
            raise ConfigurationError(
                f"--metrics-port needs the demo extra's exporter ({exc.name} is missing): "
                "pip install 'secretswitch[demo]'"
            ) from exc
        registry = CollectorRegistry()
        self._reader = PrometheusMetricReader(registry=registry)
        self.meter_provider: MeterProvider = MeterProvider(metric_readers=[self._reader])
        try:
            self._server, self._thread = start_http_server(port, addr=HOST, registry=registry)
        except OSError as exc:
            self.meter_provider.shutdown()
            raise ConfigurationError(
                f"--metrics-port {port}: cannot listen on {HOST}:{port} ({exc.strerror}); choose another port"
            ) from exc
        self.port = int(self._server.server_port)
        self.url = f"http://{HOST}:{self.port}/metrics"
        self._closed = False

    def close(self) -> None:
        """Stop serving and shut the provider down (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self.meter_provider.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
