"""The benchmark still runs end to end: tiny sizes, every row present, no message lost.

No timing is asserted: at these sizes the numbers mean nothing. The benchmark
starts its own PostgreSQL (fsync on), so this test needs no fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import consumers, cost, latency, producers, runtime_bench, server
from benchmarks.common import TINY
from pgmq_codegen.throwaway_postgres import LocalPostgresError, find_bindir

ROOT = Path(__file__).resolve().parents[2]


def _pgbench_available() -> bool:
    try:
        return (find_bindir() / "pgbench").exists()
    except LocalPostgresError:
        return False


@pytest.mark.skipif(not _pgbench_available(), reason="pgbench is not installed beside the PostgreSQL server binaries")
def test_benchmark_runs_at_tiny_sizes(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--tiny", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    markdown = (out / "latest.md").read_text(encoding="utf-8")
    assert done.stdout == markdown
    data = json.loads((out / "latest.json").read_text(encoding="utf-8"))

    # Every producer case with each of its variants.
    measured = {(s["case"], s["variant"]) for s in data["producers"]["summary"]}
    expected = {(case.key, v.name) for case in producers.CASES for v in case.variants(server.VARIANTS)}
    assert measured == expected
    for case in producers.CASES:
        assert f"| {case.label} |" in markdown

    # Cost per send: every case with every variant of that phase.
    assert {(s["case"], s["variant"]) for s in data["cost"]["summary"]} == {
        (case.key, v.name) for case in cost.CASES for v in server.COST_VARIANTS
    }
    for v in server.COST_VARIANTS:
        assert f"| {v.label} |" in markdown

    # Every latency path at every rate.
    rows = {(s["key"], s["rate"]) for s in data["latency"]["summary"]}
    assert rows == {(lv.key, rate) for lv in latency.latency_variants() for rate, _ in TINY.latency_rates}
    for lv in latency.latency_variants():
        assert f"| {lv.label} |" in markdown

    # Consumers, runtime and scaling rows.
    assert {(s["kind"], s["consumers"]) for s in data["consumers"]["summary"]} == {
        (kind, n) for kind, _ in consumers.KINDS for n in consumers.CONSUMER_COUNTS
    }
    assert {p["kind"] for p in data["runtime"]["parse"]} == {kind for kind, _, _ in runtime_bench.PAYLOADS}
    assert {d["reader"] for d in data["runtime"]["drain_summary"]} == {r for r, _ in runtime_bench.DRAIN_READERS}
    # Scale (issue 18): the shared LISTEN connection, and every notification of the bursts received.
    assert data["scale"]["connections"]["shared"]["listen"] == 1
    assert data["scale"]["connections"]["opt-out"]["listen"] == 10
    assert data["scale"]["received"] == data["scale"]["sent"]
    for section in ("## Targets", "## 1.", "## 1b.", "## 2.", "## 3.", "## 4.", "## 5.", "## Scale"):
        assert section in markdown
    for producers_count in (1, 2, 4, 8):
        assert f"\n| {producers_count} |" in markdown

    # The checked counts: nothing unannounced, unreceived, undeleted or dropped.
    assert data["lost_messages"] == dict.fromkeys(data["lost_messages"], 0)
    assert all(
        s["announced"] == s["inserted"] for s in data["producers"]["summary"] if s["variant"] in ("trigger", "wrapper")
    )
    assert all(s["missing"] == 0 for s in data["latency"]["summary"] if s["must_receive_all"])
    # Two producer-cost targets per way of sending (client statements, in-server loop).
    assert len(data["targets"]) == 18


@pytest.mark.skipif(not _pgbench_available(), reason="pgbench is not installed beside the PostgreSQL server binaries")
def test_the_cost_section_runs_alone(tmp_path: Path) -> None:
    """``--only cost`` measures that phase and nothing else, every message still announced."""
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--tiny", "--only", "cost", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    assert set(data) >= {"cost", "targets"} and not {"producers", "latency", "consumers", "runtime"} & set(data)
    assert {s["variant"] for s in data["cost"]["summary"]} == {v.name for v in server.COST_VARIANTS}
    assert {(s["method"], s["variant"]) for s in data["cost"]["summary"]} == {
        (method, v.name) for method in cost.METHODS for v in server.COST_VARIANTS
    }
    assert data["lost_messages"]["cost per send (unannounced or twice)"] == 0
    assert all(s["announced"] == s["sent"] > 0 for s in data["cost"]["summary"] if s["variant"] in report_each())


def report_each() -> tuple[str, ...]:
    """The cost variants that announce every message."""
    return tuple(v.name for v in server.COST_VARIANTS if v.announces_each)
