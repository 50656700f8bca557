"""One command for the whole benchmark: ``python3 -m benchmarks.run [--quick] [--out DIR]``.

Starts a throwaway PostgreSQL (fsync and synchronous_commit on), installs
PGMQ and every variant in its own database, runs each phase with the variants
interleaved, prints the Markdown report and writes ``latest.md``,
``latest.json``, ``latency_cdf.png`` and ``scaling.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from benchmarks import consumers, cost, latency, plots, producers, report, runtime_bench, scale, server
from benchmarks.common import FULL, PRESETS, Sizes
from benchmarks.common import Progress as ProgressProtocol

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
PARTIAL_OUT = DEFAULT_OUT / "partial"


PHASES = ("producers", "cost", "latency", "consumers", "runtime", "scale")


def total_steps(sizes: Sizes, only: tuple[str, ...] = PHASES) -> int:
    """Every step the progress bar counts."""
    per_phase = {
        "producers": producers.cell_count(sizes),
        "cost": cost.run_count(sizes),
        "latency": latency.run_count(sizes),
        "consumers": consumers.run_count(sizes),
        "runtime": len(runtime_bench.PAYLOADS) + runtime_bench.drain_count(sizes),
        "scale": scale.run_count(sizes),
    }
    return 1 + sum(per_phase[phase] for phase in only)


def run_benchmark(
    sizes: Sizes, out: Path, progress: ProgressProtocol, fsync: bool = True, only: tuple[str, ...] = PHASES
) -> tuple[report.Results, list[Path]]:
    """Measure the phases in ``only`` (all by default), write the report files into ``out``.

    Returns the results and the files written.
    """
    started = time.monotonic()
    raw: dict[str, Any] = {}
    results = report.Results(machine={}, sizes=sizes, seconds=0.0, raw=raw)
    if "runtime" in only:
        results.parse = runtime_bench.parse_throughput(sizes, progress)
    progress.step("starting PostgreSQL and installing PGMQ and the variants")
    with server.started(fsync=fsync) as bench:
        results.machine = server.machine_info(bench)
        if "producers" in only:
            cells = producers.run(bench, sizes, progress)
            results.producers = producers.summarize(cells)
            raw["producers"] = producers.to_json(cells, results.producers)
        if "cost" in only:
            cost_cells, counters, sent = cost.run(bench, sizes, progress)
            results.cost = cost.summarize(cost_cells, counters, sent)
            raw["cost"] = cost.to_json(cost_cells, results.cost)
        if "latency" in only:
            latency_runs = latency.run(bench, sizes, progress)
            results.latency = latency.summarize(latency_runs)
            raw["latency"] = latency.to_json(latency_runs, results.latency)
        if "consumers" in only:
            consumer_runs = consumers.run(bench, sizes, progress)
            results.consumers = consumers.summarize(consumer_runs)
            raw["consumers"] = consumers.to_json(consumer_runs, results.consumers)
        if "runtime" in only:
            drains = runtime_bench.drain_rate(bench, sizes, progress)
            results.drain = runtime_bench.summarize_drain(drains)
            raw["runtime"] = runtime_bench.to_json(results.parse, drains, results.drain)
        if "scale" in only:
            results.scale = scale.run(bench, sizes, progress)
            raw["scale"] = scale.to_json(results.scale)
    results.seconds = time.monotonic() - started
    written = report.write(results, out)
    if plots.available():
        written += plots.write(results, out)
    else:
        progress.note("matplotlib is not installed: plots skipped (pip install 'pgmq-codegen[bench]')")
    return results, written


class RichProgress:
    """Shows each step on a Rich progress bar (one line per step when not on a terminal, e.g. in CI)."""

    def __init__(self, bar: Progress, total: int) -> None:
        self.bar = bar
        self.total = total
        self.task = bar.add_task("starting", total=total)
        self._done = -1
        self._started = time.monotonic()

    def step(self, description: str) -> None:
        """Count the previous step as done and show this one."""
        if self._done >= 0:
            self.bar.advance(self.task)
        self._done += 1
        self.bar.update(self.task, description=description)
        if not self.bar.console.is_terminal:
            elapsed = time.monotonic() - self._started
            self.bar.console.print(f"[{self._done + 1}/{self.total} {elapsed:5.0f} s] {description}", highlight=False)

    def note(self, text: str) -> None:
        """Print a line above the bar."""
        self.bar.console.print(text)

    def finish(self) -> None:
        """Count the last step."""
        self.bar.update(self.task, completed=self.bar.tasks[0].total, description="done")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.run",
        description="Measure what pgmq-codegen's notifications cost and gain, on a throwaway PostgreSQL.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short run (~3 min), rougher numbers")
    size.add_argument("--tiny", action="store_true", help="smoke-test sizes (< 1 min); the numbers mean nothing")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the results ({DEFAULT_OUT}; with --only: {PARTIAL_OUT}, so the full run stays)",
    )
    parser.add_argument(
        "--fsync",
        choices=("on", "off"),
        default="on",
        help="'off' only to compare with numbers measured without disk flushes (default: on, as in production)",
    )
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma-separated phases to run, e.g. --only cost (default: all of {', '.join(PHASES)})",
    )
    args = parser.parse_args(argv)
    only = tuple(p for p in PHASES if p in args.only.split(","))
    unknown = set(args.only.split(",")) - set(PHASES)
    if unknown or not only:
        named = ", ".join(sorted(unknown)) or "(none given)"
        parser.error(f"--only: unknown phase(s) {named}; choose from {', '.join(PHASES)}")
    out = args.out or (DEFAULT_OUT if only == PHASES else PARTIAL_OUT)
    sizes = PRESETS["tiny"] if args.tiny else PRESETS["quick"] if args.quick else FULL

    console = Console(stderr=True)
    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        progress = RichProgress(bar, total_steps(sizes, only))
        results, written = run_benchmark(sizes, out, progress, fsync=args.fsync == "on", only=only)
        progress.finish()
    sys.stdout.write(report.markdown(results))
    for path in written:
        console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
