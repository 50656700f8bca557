"""Expose a :class:`~pgmq_runtime.metrics.RuntimeMetrics` to Prometheus or OpenTelemetry.

Both read the same catalogue (:data:`pgmq_runtime.metrics.CATALOGUE`):

- :func:`prometheus_collector` / :func:`register_prometheus`: a
  ``prometheus_client`` collector that reads the counters at scrape time
  (extra ``pgmq-codegen[prometheus]``);
- :func:`serve_prometheus`: a small HTTP server answering ``/metrics`` on a
  thread of its own (what ``pgmq-codegen worker --metrics-port`` starts);
- :func:`instrument_opentelemetry`: observable counters and histograms on an
  OpenTelemetry ``Meter`` (extra ``pgmq-codegen[otel]``; the application
  configures the SDK and its exporter).

The optional libraries are imported when these are called, never before.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgmq_runtime.errors import PgmqNotifyError
from pgmq_runtime.metrics import CATALOGUE, LabelSet, MetricSpec, RuntimeMetrics

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry


class MetricsExportError(PgmqNotifyError):
    """The exporter's library is not installed, or its server cannot start."""


def _require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MetricsExportError(
            f"{module} is not installed: pip install 'pgmq-codegen[{extra}]' to export metrics this way"
        ) from exc


# -- Prometheus ------------------------------------------------------------------


class _PrometheusCollector:
    """A prometheus_client collector reading ``metrics`` at each scrape."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self.metrics = metrics
        self._core = _require("prometheus_client.core", "prometheus")

    def describe(self) -> list[Any]:
        # Described without reading the sources: registering never touches them.
        return [self._family(spec) for spec in CATALOGUE]

    def collect(self) -> Iterator[Any]:
        families = {spec.name: self._family(spec) for spec in CATALOGUE}
        for (name, labels), value in sorted(self.metrics.counters().items()):
            families[name].add_metric([v for _, v in labels], value)
        for (name, labels), hist in sorted(self.metrics.histograms().items()):
            buckets = [(_le(b), float(n)) for b, n in zip(hist.buckets, hist.counts, strict=True)]
            buckets.append(("+Inf", float(hist.count)))
            families[name].add_metric([v for _, v in labels], buckets, hist.sum)
        yield from families.values()

    def _family(self, spec: MetricSpec) -> Any:
        if spec.kind == "counter":
            return self._core.CounterMetricFamily(spec.full_name, spec.help, labels=list(spec.labels))
        return self._core.HistogramMetricFamily(spec.full_name, spec.help, labels=list(spec.labels))


def _le(bound: float) -> str:
    return repr(float(bound))


def prometheus_collector(metrics: RuntimeMetrics) -> Any:
    """A ``prometheus_client`` collector for ``metrics`` (register it on any registry)."""
    return _PrometheusCollector(metrics)


def register_prometheus(metrics: RuntimeMetrics, registry: CollectorRegistry | None = None) -> Any:
    """Register ``metrics`` on ``registry`` (default: prometheus_client's global one); returns the collector."""
    client = _require("prometheus_client", "prometheus")
    collector = prometheus_collector(metrics)
    (registry if registry is not None else client.REGISTRY).register(collector)
    return collector


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server; :meth:`close` stops it."""

    host: str
    port: int
    _server: Any
    _thread: Any

    @property
    def url(self) -> str:
        """Where to scrape."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_prometheus(metrics: RuntimeMetrics, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``metrics`` (only these) at ``http://host:port/metrics`` from a daemon thread.

    ``port=0`` picks a free port (see :attr:`MetricsServer.port`). Raises
    :class:`MetricsExportError` if prometheus_client is missing or the port is taken.
    """
    client = _require("prometheus_client", "prometheus")
    registry = client.CollectorRegistry()
    registry.register(prometheus_collector(metrics))
    try:
        server, thread = client.start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsExportError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
    return MetricsServer(host, int(server.server_address[1]), server, thread)


# -- OpenTelemetry ------------------------------------------------------------------


def instrument_opentelemetry(metrics: RuntimeMetrics, meter: Any = None) -> list[Any]:
    """Create the catalogue's instruments on ``meter`` (default: ``metrics.get_meter("pgmq_runtime")``).

    Counters become observable counters read at each collection; histogram
    observations are recorded on OpenTelemetry histograms as they happen (from
    now on). Returns the instruments.
    """
    otel = _require("opentelemetry.metrics", "otel")
    meter = meter if meter is not None else otel.get_meter("pgmq_runtime")
    instruments: list[Any] = []
    histograms: dict[str, Any] = {}
    for spec in CATALOGUE:
        if spec.kind == "counter":
            instruments.append(
                meter.create_observable_counter(
                    spec.full_name, callbacks=[_counter_callback(metrics, spec, otel)], description=spec.help
                )
            )
        else:
            histograms[spec.name] = meter.create_histogram(spec.full_name, unit="s", description=spec.help)
            instruments.append(histograms[spec.name])

    def record(spec: MetricSpec, labels: LabelSet, value: float) -> None:
        histograms[spec.name].record(value, attributes=dict(labels))

    metrics.add_observer(record)
    return instruments


def _counter_callback(metrics: RuntimeMetrics, spec: MetricSpec, otel: Any) -> Any:
    def observe(_options: Any) -> list[Any]:
        return [
            otel.Observation(value, attributes=dict(labels))
            for (name, labels), value in metrics.counters().items()
            if name == spec.name
        ]

    return observe
