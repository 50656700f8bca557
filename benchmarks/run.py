"""One command for the whole benchmark: ``python3 -m benchmarks.run [--quick] [--out DIR] [--only runtime]``.

Starts a throwaway PostgreSQL (fsync and synchronous_commit on), installs
PGMQ and every variant in its own database, runs each phase with the variants
interleaved, prints the Markdown report and writes ``latest.md``,
``latest.json``, ``latency_cdf.png`` and ``scaling.png`` into ``--out``.
``--only runtime`` measures the runtime section alone (parsing and listener
drain) and writes ``runtime.md`` and ``runtime.json`` instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from benchmarks import consumers, latency, plots, producers, report, runtime_bench, server
from benchmarks.common import FULL, PRESETS, Sizes
from benchmarks.common import Progress as ProgressProtocol

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def total_steps(sizes: Sizes, only: str | None = None) -> int:
    """Every step the progress bar counts."""
    if only == "consumers":
        return 1 + consumers.run_count(sizes)
    if only == "runtime":
        return 1 + len(runtime_bench.PAYLOADS) + runtime_bench.drain_count(sizes)
    return (
        1
        + len(runtime_bench.PAYLOADS)
        + producers.cell_count(sizes)
        + latency.run_count(sizes)
        + consumers.run_count(sizes)
        + runtime_bench.drain_count(sizes)
    )


def run_runtime(
    sizes: Sizes, out: Path, progress: ProgressProtocol, fsync: bool = True
) -> tuple[report.Results, list[Path]]:
    """Only section 4: parse throughput and listener drain, with their targets; writes runtime.md and .json."""
    started = time.monotonic()
    parse = runtime_bench.parse_throughput(sizes, progress)
    progress.step("starting PostgreSQL and installing PGMQ and the trigger variant")
    with server.started(variants=(server.TRIGGER,), fsync=fsync) as bench:
        machine = server.machine_info(bench)
        drains = runtime_bench.drain_rate(bench, sizes, progress)
    drain_summary = runtime_bench.summarize_drain(drains)
    results = report.Results(
        machine=machine,
        sizes=sizes,
        seconds=time.monotonic() - started,
        parse=parse,
        drain=drain_summary,
        raw={"runtime": runtime_bench.to_json(parse, drains, drain_summary)},
    )
    return results, report.write(results, out, stem="runtime")


def run_benchmark(
    sizes: Sizes, out: Path, progress: ProgressProtocol, fsync: bool = True, only: str | None = None
) -> tuple[report.Results, list[Path]]:
    """Measure everything (or ``only="consumers"``), write the report files into ``out``; returns them."""
    started = time.monotonic()
    everything = only is None
    parse = runtime_bench.parse_throughput(sizes, progress) if everything else []
    progress.step("starting PostgreSQL and installing PGMQ and the variants")
    with server.started(fsync=fsync) as bench:
        machine = server.machine_info(bench)
        cells = producers.run(bench, sizes, progress) if everything else []
        producer_summary = producers.summarize(cells)
        latency_runs = latency.run(bench, sizes, progress) if everything else []
        latency_summary = latency.summarize(latency_runs)
        consumer_runs = consumers.run(bench, sizes, progress)
        consumer_summary = consumers.summarize(consumer_runs)
        drains = runtime_bench.drain_rate(bench, sizes, progress) if everything else []
        drain_summary = runtime_bench.summarize_drain(drains)
    results = report.Results(
        machine=machine,
        sizes=sizes,
        seconds=time.monotonic() - started,
        producers=producer_summary,
        latency=latency_summary,
        consumers=consumer_summary,
        parse=parse,
        drain=drain_summary,
        raw={
            "producers": producers.to_json(cells, producer_summary),
            "latency": latency.to_json(latency_runs, latency_summary),
            "consumers": consumers.to_json(consumer_runs, consumer_summary),
            "runtime": runtime_bench.to_json(parse, drains, drain_summary),
        },
    )
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
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write the results ({DEFAULT_OUT})")
    parser.add_argument(
        "--fsync",
        choices=("on", "off"),
        default="on",
        help="'off' only to compare with numbers measured without disk flushes (default: on, as in production)",
    )
    parser.add_argument(
        "--only",
        choices=("consumers", "runtime"),
        help="measure one section only (its tables; the other sections stay empty); 'runtime' (parse_event and "
        "listener drain, about 1 min) writes runtime.md and runtime.json instead of latest.*",
    )
    args = parser.parse_args(argv)
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
        progress = RichProgress(bar, total_steps(sizes, args.only))
        if args.only == "runtime":
            results, written = run_runtime(sizes, args.out, progress, fsync=args.fsync == "on")
        else:
            results, written = run_benchmark(sizes, args.out, progress, fsync=args.fsync == "on", only=args.only)
        progress.finish()
    sys.stdout.write(report.markdown(results))
    for path in written:
        console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
