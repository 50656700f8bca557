"""RuntimeMetrics and its exporters: Prometheus text, the /metrics server, OpenTelemetry instruments."""

from __future__ import annotations

import sys
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pgmq_runtime import metrics_export
from pgmq_runtime.metrics import CATALOGUE, RuntimeMetrics, consumer_samples, listener_samples
from pgmq_runtime.stats import ConsumerStats


class Source:
    """Stands in for a consumer's stats: counts set by the test."""

    def __init__(self, **counts: int) -> None:
        self.stats = ConsumerStats(0, 0, 0, 0, 0)
        self.set(**counts)

    def set(self, **counts: int) -> None:
        fields = {"claimed_from_events": 0, "claimed_by_catch_up": 0, "catch_up_reads": 0, "gaps": 0, "reconnects": 0}
        self.stats = ConsumerStats(**(fields | counts))  # type: ignore[arg-type]


def _watched(*sources: Source) -> RuntimeMetrics:
    m = RuntimeMetrics(buckets=(0.01, 0.1, 1.0))
    for source in sources:
        m.watch(source, lambda s=source: consumer_samples(s.stats))
    return m


def _scrape(m: RuntimeMetrics) -> str:
    registry = CollectorRegistry()
    metrics_export.register_prometheus(m, registry)
    return generate_latest(registry).decode()


def test_counters_sum_the_sources_and_split_claims_into_disjoint_paths():
    a = Source(claimed_from_events=5, claimed_by_catch_up=7, claimed_by_recheck=3, deleted=4, handled=4, failed=1)
    b = Source(claimed_from_events=1, retries=2, dead_lettered=1)
    counters = _watched(a, b).counters()
    assert counters[("claimed", (("path", "event"),))] == 6
    assert counters[("claimed", (("path", "catch_up"),))] == 4
    assert counters[("claimed", (("path", "recheck"),))] == 3
    assert counters[("acknowledged", (("action", "delete"),))] == 4
    assert counters[("handler_calls", (("outcome", "failed"),))] == 1
    assert (counters[("retries", ())], counters[("dead_lettered", ())]) == (2, 1)


def test_a_retired_source_keeps_its_counts():
    a = Source(claimed_from_events=5)
    m = _watched(a)
    a.set(claimed_from_events=9)
    m.retire(a)
    a.set(claimed_from_events=100)  # no longer read
    assert m.counters()[("claimed", (("path", "event"),))] == 9


def test_every_catalogue_metric_is_described_in_prometheus_text():
    m = _watched(Source(claimed_from_events=2, deleted=2, handled=2))
    m.handler_done(0.05, ok=True)
    m.handler_done(3.0, ok=False)
    m.event_delay(0.002)
    text = _scrape(m)
    for spec in CATALOGUE:
        assert f"# HELP {spec.full_name}" in text
    assert 'pgmq_runtime_claimed_total{path="event"} 2.0' in text
    assert 'pgmq_runtime_acknowledged_total{action="delete"} 2.0' in text
    assert 'pgmq_runtime_handler_duration_seconds_bucket{le="0.1",outcome="ok"} 1.0' in text
    assert 'pgmq_runtime_handler_duration_seconds_bucket{le="1.0",outcome="failed"} 0.0' in text
    assert 'pgmq_runtime_handler_duration_seconds_bucket{le="+Inf",outcome="failed"} 1.0' in text
    assert 'pgmq_runtime_handler_duration_seconds_sum{outcome="failed"} 3.0' in text
    assert 'pgmq_runtime_event_delay_seconds_bucket{le="0.01"} 1.0' in text
    assert "pgmq_runtime_events_dropped_total 0.0" in text


def test_listener_stats_map_to_the_event_counters():
    from pgmq_runtime.listener import ListenerStats

    stats = ListenerStats(
        events=10, invalid_events=2, reconnects=1, dropped=3, last_event_at=None, connected=True, channels=()
    )
    assert listener_samples(stats) == {
        ("events_received", ()): 10,
        ("events_invalid", ()): 2,
        ("events_dropped", ()): 3,
        ("listener_reconnects", ()): 1,
    }


def test_the_metrics_server_answers_and_moves_with_the_counters():
    source = Source(claimed_from_events=1)
    server = metrics_export.serve_prometheus(_watched(source), port=0)
    try:
        first = urllib.request.urlopen(server.url, timeout=5).read().decode()
        source.set(claimed_from_events=42)
        second = urllib.request.urlopen(server.url, timeout=5).read().decode()
    finally:
        server.close()
    assert 'pgmq_runtime_claimed_total{path="event"} 1.0' in first
    assert 'pgmq_runtime_claimed_total{path="event"} 42.0' in second


def test_a_taken_port_is_one_clear_error():
    server = metrics_export.serve_prometheus(RuntimeMetrics(), port=0)
    try:
        with pytest.raises(metrics_export.MetricsExportError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
            metrics_export.serve_prometheus(RuntimeMetrics(), port=server.port)
    finally:
        server.close()


def test_opentelemetry_reads_the_same_counters_and_histograms():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    source = Source(claimed_from_events=3, archived=2)
    m = _watched(source)
    metrics_export.instrument_opentelemetry(m, meter)
    m.handler_done(0.2, ok=True)
    data = reader.get_metrics_data()
    points = {
        metric.name: [
            (dict(p.attributes or {}), getattr(p, "value", None) or getattr(p, "count", None))
            for p in metric.data.data_points
        ]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert ({"path": "event"}, 3) in points["pgmq_runtime_claimed"]
    assert ({"action": "archive"}, 2) in points["pgmq_runtime_acknowledged"]
    assert points["pgmq_runtime_handler_duration_seconds"] == [({"outcome": "ok"}, 1)]


def test_a_missing_library_is_named_with_its_extra(monkeypatch):
    # None in sys.modules makes the import fail, as if the package were not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.metrics", None)
    with pytest.raises(metrics_export.MetricsExportError, match=r"pgmq-codegen\[otel\]"):
        metrics_export.instrument_opentelemetry(RuntimeMetrics())
