"""Turn the measurements into ``latest.md`` (Markdown tables) and ``latest.json``."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import consumers, cost, latency, producers, runtime_bench, scale, server
from benchmarks.common import Sizes

VARIANT_LABELS = {v.name: v.label for v in server.ALL_VARIANTS}
TIMES = "\u00d7"  # the multiplication sign of "0.95x"
NONE = "\u2013"  # an en dash: not measured
# pgmq-codegen's variants: those announcing every message, and those coalescing announcements.
EACH = tuple(v.name for v in server.VARIANTS if v.announces_each)
COST_EACH = tuple(v.name for v in server.COST_VARIANTS if v.announces_each)
COALESCING = tuple(v.name for v in server.VARIANTS if v.coalesces)


@dataclass
class Results:
    """Everything one run measured."""

    machine: dict[str, Any]
    sizes: Sizes
    seconds: float
    producers: list[producers.Summary] = field(default_factory=list)
    latency: list[latency.LatencySummary] = field(default_factory=list)
    consumers: list[consumers.ConsumerSummary] = field(default_factory=list)
    parse: list[runtime_bench.ParseResult] = field(default_factory=list)
    drain: list[runtime_bench.DrainSummary] = field(default_factory=list)
    cost: list[cost.CostSummary] = field(default_factory=list)
    scale: scale.ScaleResults | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """One target of issue #8 or #9 and whether this run met it."""

    goal: str
    measured: str
    met: bool


def _rate(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}"


def _ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}{TIMES}"


def _spread(summary: producers.Summary) -> str:
    """A producer ratio with the range of its per-round ratios: how far to trust the median."""
    if math.isnan(summary.ratio_min):
        return _ratio(summary.ratio)
    return f"{_ratio(summary.ratio)} (rounds {summary.ratio_min:.2f}–{summary.ratio_max:.2f})"  # noqa: RUF001


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def machine_line(machine: dict[str, Any]) -> str:
    """One line naming the machine and the server settings."""
    settings = machine.get("settings", {})
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('memory_gb', '?')} GB RAM, "
        f"{machine.get('os', '?')}; PostgreSQL {str(machine.get('postgresql', '?')).split()[0]} "
        f"(fsync={settings.get('fsync', '?')}, synchronous_commit={settings.get('synchronous_commit', '?')}, "
        f"wal_sync_method={settings.get('wal_sync_method', '?')}, "
        f"shared_buffers={settings.get('shared_buffers', '?')}); "
        f"Python {machine.get('python', '?')}, psycopg {machine.get('psycopg', '?')}"
    )


def _producer(results: Results, case: str, variant: str) -> producers.Summary | None:
    return next((s for s in results.producers if s.case == case and s.variant == variant), None)


def _latency(results: Results, key: str, rate: int) -> latency.LatencySummary | None:
    return next((s for s in results.latency if s.key == key and s.rate == rate), None)


def lost_messages(results: Results) -> dict[str, int]:
    """Messages left unannounced or unclaimed where every one must arrive, by phase."""
    return {
        "producers (unannounced or twice)": sum(
            s.missing + s.duplicates for s in results.producers if s.variant in EACH + COALESCING
        ),
        "latency (not received or twice)": sum(s.missing + s.duplicates for s in results.latency if s.must_receive_all),
        "consumers (not acknowledged or twice)": sum(s.missing + s.duplicates for s in results.consumers),
        "listener drain (dropped)": sum(s.sent - s.received for s in results.drain),
        "cost per send (unannounced or twice)": sum(
            max(s.sent - s.announced, 0) + s.duplicates for s in _cost_checked(results)
        ),
    }


def _cost_checked(results: Results) -> list[cost.CostSummary]:
    """One summary per variant that must announce every message (the counts cover the whole phase)."""
    first = (results.cost[0].method, results.cost[0].case) if results.cost else ("", "")
    return [s for s in results.cost if (s.method, s.case) == first and s.variant in COST_EACH]


def targets(results: Results) -> list[Target]:
    """Each target of the issue, with what this run measured (trigger mode decides; wrapper shown beside)."""
    out: list[Target] = []
    for case, goal in (
        ("send-c1", f"single send, 1 connection ≥ 0.95{TIMES} plain"),
        ("batch100-c1", f"send_batch(100) ≥ 0.95{TIMES} plain"),
        ("batch1000-c1", f"send_batch(1,000) ≥ 0.95{TIMES} plain"),
    ):
        trig, wrap = _producer(results, case, "trigger"), _producer(results, case, "wrapper")
        if trig is None:
            continue
        measured = f"trigger {_spread(trig)}" + (f", wrapper {_spread(wrap)}" if wrap else "")
        out.append(Target(goal, measured, trig.ratio >= 0.95))
    event = _latency(results, "trigger-event", 500)
    if event is not None:
        out.append(
            Target(
                "event latency at 500 msg/s: p50 ≤ 1 ms, p99 ≤ 3 ms",
                f"p50 {_ms(event.p50)} ms, p99 {_ms(event.p99)} ms (send call alone: p50 {_ms(event.send_p50)} ms)",
                event.p50 <= 1 and event.p99 <= 3,
            )
        )
    claim = _latency(results, "trigger-claim", 500)
    if claim is not None:
        fast = _latency(results, "trigger-claim-async", 500)
        extra = f"; consumer with synchronous_commit=off: p50 {_ms(fast.p50)}, p99 {_ms(fast.p99)} ms" if fast else ""
        out.append(
            Target(
                "claim latency at 500 msg/s: p50 ≤ 2 ms, p99 ≤ 10 ms",
                f"p50 {_ms(claim.p50)} ms, p99 {_ms(claim.p99)} ms{extra}",
                claim.p50 <= 2 and claim.p99 <= 10,
            )
        )
    out += _coalesce_targets(results)
    out += _consumer_targets(results)
    out += _cost_targets(results)
    out += runtime_targets(results)
    lost = lost_messages(results)
    out.append(
        Target(
            "no message left unannounced or unclaimed, in any run",
            ", ".join(f"{name}: {count}" for name, count in lost.items()),
            not any(lost.values()),
        )
    )
    return out


def _cost(results: Results, case: str, variant: str, method: str = "client") -> cost.CostSummary | None:
    return next((s for s in results.cost if (s.method, s.case, s.variant) == (method, case, variant)), None)


# How the report names each way of sending a cost cell.
COST_METHODS = {"client": "statements from the client", "loop": "in-server loop"}


def _cost_targets(results: Results) -> list[Target]:
    """Issue #20: the default trigger's backend CPU within reach of the empty trigger's (the floor), both methods."""
    out: list[Target] = []
    for method, (case, limit, goal) in (
        (m, t)
        for m in COST_METHODS
        for t in (
            ("send-300b", 10.0, "trigger, single send with payload (300 bytes): ≤ floor + 10 µs of backend CPU"),
            ("batch100", 1.0, "trigger, send_batch(100): ≤ floor + 1 µs of backend CPU per message"),
        )
    ):
        trig = _cost(results, case, "trigger", method)
        if trig is None:
            continue
        measured = f"floor {trig.over_floor:+.1f} µs"
        before = _cost(results, case, server.TRIGGER_BEFORE.name, method)
        if before is not None:
            measured += f" (before #20: floor {before.over_floor:+.1f} µs)"
        bare = _cost(results, case, "notify_floor", method)
        if bare is not None:
            measured += f"; two bare NOTIFYs alone: floor {bare.over_floor:+.1f} µs"
        large = _cost(results, "send-7kb", "trigger", method) if case == "send-300b" else None
        if large is not None:
            measured += f"; 7 KB message: floor {large.over_floor:+.1f} µs"
        out.append(Target(f"{goal}, {COST_METHODS[method]}", measured, trig.over_floor <= limit))
    return out


def _coalesce_targets(results: Results) -> list[Target]:
    """Issue #9: coalescing keeps 4 producers near plain, claims within the window, each exactly once."""
    out: list[Target] = []
    window = server.COALESCE_MS
    name = server.COALESCE.name
    four = _producer(results, "send-c4", name)
    if four is not None:
        trig = _producer(results, "send-c4", "trigger")
        beside = f" (trigger without coalescing: {_ratio(trig.ratio)})" if trig else ""
        out.append(
            Target(
                f"4 producers with coalesce_ms={window} ≥ 0.85{TIMES} plain",
                f"{_spread(four)}{beside}",
                four.ratio >= 0.85,
            )
        )
    claim = _latency(results, f"{name}-claim", 500)
    if claim is not None:
        out.append(
            Target(
                f"claim p99 with coalesce_ms={window} ≤ window + 10 ms ({window + 10} ms) at 500 msg/s",
                f"p50 {_ms(claim.p50)} ms, p99 {_ms(claim.p99)} ms, max {_ms(claim.max)} ms",
                claim.p99 <= window + 10,
            )
        )
    rows = [s for s in results.latency if s.key == f"{name}-claim"]
    if rows:
        out.append(
            Target(
                f"every message claimed exactly once with coalesce_ms={window}",
                "; ".join(
                    f"{s.rate} msg/s: {s.received:,} of {s.sent:,} claimed, {s.missing:,} never, {s.duplicates:,} twice"
                    for s in rows
                ),
                all(s.missing == 0 and s.duplicates == 0 and s.sent > 0 for s in rows),
            )
        )
    return out


# Issue #17: parsing and draining keep up with what psycopg and json deliver.
PARSE_TARGET_PER_S = 250_000
PARSE_TARGET_RATIO = 0.8
DRAIN_TARGET_RATIO = 0.8


def runtime_targets(results: Results) -> list[Target]:
    """Issue #17: parse_event on message_with_payload, and the listener's drain against bare notifies()."""
    out: list[Target] = []
    parse = next((p for p in results.parse if p.kind == "message_with_payload"), None)
    if parse is not None:
        measured = f"{_rate(parse.events_per_s)} events/s ({parse.payload_bytes} B payload)"
        out.append(
            Target(
                f"parse_event on message_with_payload ≥ {PARSE_TARGET_PER_S:,}/s",
                measured,
                parse.events_per_s >= PARSE_TARGET_PER_S,
            )
        )
        out.append(
            Target(
                f"parse_event ≥ {PARSE_TARGET_RATIO}{TIMES} json.loads on the same payload",
                f"{_ratio(parse.ratio)} (json.loads alone {_rate(parse.json_only_per_s)}/s)",
                parse.ratio >= PARSE_TARGET_RATIO,
            )
        )
    raw = next((d for d in results.drain if d.reader == "raw"), None)
    for reader in ("listener-default", "listener-large"):
        drain = next((d for d in results.drain if d.reader == reader), None)
        if drain is None or raw is None:
            continue
        out.append(
            Target(
                f"{drain.label} drains ≥ {DRAIN_TARGET_RATIO}{TIMES} bare notifies()",
                f"{_ratio(drain.ratio)} ({_rate(drain.events_per_s)} against {_rate(raw.events_per_s)} events/s, "
                f"median of per-round ratios)",
                drain.ratio >= DRAIN_TARGET_RATIO,
            )
        )
    return out


def markdown(results: Results) -> str:
    """The whole report."""
    m, sizes = results.machine, results.sizes
    minutes, seconds = divmod(round(results.seconds), 60)
    lines = [
        "# pgmq-codegen benchmark",
        "",
        f"**Machine:** {machine_line(m)}.",
        f"**Run:** `{m.get('command', 'python3 -m benchmarks.run')}` ({sizes.name} sizes), "
        f"{m.get('date', '?')}, {minutes} min {seconds:02d} s.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [f"| {t.goal} | {t.measured} | {'yes' if t.met else '**no**'} |" for t in targets(results)]
    lines += _producer_tables(results)
    lines += _cost_table(results)
    lines += _latency_table(results)
    lines += _consumer_table(results)
    lines += _runtime_tables(results)
    lines += _scaling_table(results)
    lines += scale.markdown_lines(results.scale, sizes) if results.scale is not None else []
    return "\n".join(lines) + "\n"


def _producer_tables(results: Results) -> list[str]:
    if not results.producers:
        return []
    variants = list(dict.fromkeys(s.variant for s in results.producers))
    head = "| producer | " + " | ".join(VARIANT_LABELS.get(v, v) for v in variants) + " |"
    sizes = results.sizes
    each = (
        f"{sizes.producer_transactions} transactions per client"
        if sizes.producer_transactions
        else (f"{sizes.producer_seconds} s")
    )
    lines = [
        "",
        f"## 1. Producer throughput (pgbench, msgs/s; ratio to plain in the same round, median of "
        f"{sizes.producer_rounds} interleaved rounds of {each})",
        "",
        head,
        "|---|" + "---:|" * len(variants),
    ]
    cases = list(dict.fromkeys((s.case, s.label) for s in results.producers))
    for case, label in cases:
        cells = []
        for variant in variants:
            s = _producer(results, case, variant)
            if s is None:
                cells.append(NONE)
            elif variant == "plain":
                cells.append(f"{_rate(s.msgs_per_s)}/s")
            else:
                cells.append(f"{_ratio(s.ratio)} ({_rate(s.msgs_per_s)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    checks = []
    for variant in EACH + COALESCING:
        own = [s for s in results.producers if s.variant == variant]
        if not own:
            continue
        inserted = sum(s.inserted for s in own)
        announced = sum(s.announced for s in own)
        duplicates = sum(s.duplicates for s in own)
        if variant in EACH:
            checks.append(f"{variant}: {announced:,} of {inserted:,} messages announced, {duplicates} twice")
            continue
        # Only the first message of each window is announced: count notifications, not ids.
        notifications = sum(s.notifications for s in own)
        seconds = sum(s.seconds for s in own)
        per_message = notifications / inserted if inserted else math.nan
        per_second = notifications / seconds if seconds > 0 else math.nan
        checks.append(
            f"{variant}: {notifications:,} notifications for {inserted:,} messages ({per_message:.4f} per message, "
            f"{per_second:,.0f}/s over the pgbench runs), {duplicates} announced twice"
        )
    failed = sum(s.failed for s in results.producers)
    lines += [
        "",
        "Each ratio is the median of the per-round ratios (variant / plain, same case, same round); the msgs/s in "
        "parentheses is the median rate, so the two need not divide exactly. Per-round spread: `latest.json`.",
        "",
        f"Checked in every run: {'; '.join(checks)}; pgbench failed transactions: {failed}.",
    ]
    return lines


def _cost_table(results: Results) -> list[str]:
    if not results.cost:
        return []
    sizes = results.sizes
    lines: list[str] = []
    for method, section in (("client", "1b"), ("loop", "1c")):
        rows = [s for s in results.cost if s.method == method]
        if not rows:
            continue
        cases = list(dict.fromkeys((s.case, s.label) for s in rows))
        variants = list(dict.fromkeys(s.variant for s in rows))
        by_key = {(s.case, s.variant): s for s in rows}
        factor = cost.LOOP_FACTOR if method == "loop" else 1
        lines += [
            "",
            f"## {section}. Cost per send, {COST_METHODS[method]} (sending backend's CPU, µs per message; lower "
            f"quartile of {sizes.cost_rounds} interleaved rounds; a round: "
            f"{' / '.join(f'{c.statements(sizes) * factor} {c.key}' for c in cost.CASES)})",
            "",
            "| variant | " + " | ".join(label for _, label in cases) + " |",
            "|---|" + "---:|" * len(cases),
        ]
        for variant in variants:
            cells = []
            for case, _ in cases:
                s = by_key.get((case, variant))
                if s is None:
                    cells.append(NONE)
                elif variant == "plain":
                    cells.append(f"{s.us_per_message:.1f}")
                else:
                    floor = f", floor {s.over_floor:+.1f}" if variant != "floor" else ""
                    cells.append(f"{s.us_per_message:.1f} ({s.over_plain:+.1f}{floor})")
            lines.append(f"| {VARIANT_LABELS.get(variant, variant)} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "In parentheses: µs above plain `pgmq.send` and above the floor (an empty statement-level trigger with "
            "a transition table). The time is the backend's own CPU (`/proc/<pid>/schedstat`), not the wait for the "
            f"WAL flush. Interquartile range of the rounds, median over the cells above: "
            f"{_median_text([s.spread for s in rows])} µs per message (per cell: `latest.json`).",
        ]
        if method == "loop":
            lines += [
                "",
                f"The same statements ({cost.LOOP_FACTOR} times as many per cell), sent and committed back to back "
                "by a procedure in the server (`CALL bench_cost_loop`) with `synchronous_commit = off`: no round "
                "trip, no protocol work, no idle wait between statements and no WAL flush, so it measures the SQL "
                "and the commit's own work (NOTIFY included) steadily; 1b is what an application's send costs.",
            ]
    checks = [
        f"{s.variant}: {s.announced:,} of {s.sent:,} announced, {s.duplicates} twice" for s in _cost_checked(results)
    ]
    lines += ["", f"Checked (both tables): {'; '.join(checks) or 'nothing announced'}."]
    return lines


def _median_text(values: list[float]) -> str:
    values = sorted(values)
    return f"{values[len(values) // 2]:.1f}" if values else "n/a"


def _scaling_table(results: Results) -> list[str]:
    rows = [s for s in results.producers if s.case.startswith("send-c")]
    if not rows:
        return []
    variants = list(dict.fromkeys(s.variant for s in rows))
    lines = [
        "",
        "## 5. Scaling: single sends by producer connections (msgs/s, ratio to plain)",
        "",
        "| producers | " + " | ".join(VARIANT_LABELS.get(v, v) for v in variants) + " |",
        "|---:|" + "---:|" * len(variants),
    ]
    for clients in sorted({s.clients for s in rows}):
        cells = []
        for variant in variants:
            s = next((r for r in rows if r.clients == clients and r.variant == variant), None)
            if s is None:
                cells.append(NONE)
            elif variant == "plain":
                cells.append(f"{_rate(s.msgs_per_s)}")
            else:
                cells.append(f"{_rate(s.msgs_per_s)} ({_ratio(s.ratio)})")
        lines.append(f"| {clients} | " + " | ".join(cells) + " |")
    return lines


def _latency_table(results: Results) -> list[str]:
    if not results.latency:
        return []
    lines = [
        "",
        "## 2. Latency from the start of the send call (ms; pooled over "
        f"{results.sizes.latency_rounds} interleaved rounds)",
        "",
        "| path | rate (msg/s) | p50 | p95 | p99 | max | p50 after send returned | send call p50 | received / sent |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results.latency:
        received = f"{s.received:,} / {s.sent:,}"
        if s.missing:
            received += f" (**{s.missing:,} never {'read' if not s.must_receive_all else 'received'}**)"
        if s.duplicates:
            received += f" (**{s.duplicates:,} twice**)"
        lines.append(
            f"| {s.label} | {s.rate} | {_ms(s.p50)} | {_ms(s.p95)} | {_ms(s.p99)} | {_ms(s.max)} | "
            f"{_ms(s.after_return_p50)} | {_ms(s.send_p50)} | {received} |"
        )
    found = [_found(s) for s in results.latency if s.key == f"{server.COALESCE.name}-claim"]
    if found:
        lines += ["", f"How the consumer found the messages with coalesce_ms={server.COALESCE_MS}: {'; '.join(found)}."]
    return lines


def _found(s: latency.LatencySummary) -> str:
    """Claims of one coalescing row by origin: events, re-reads after coalesced events, other reads."""
    events = s.extra.get("claimed_from_events", 0)
    rechecked = s.extra.get("claimed_by_recheck", 0)
    # Whatever neither an event nor a re-check claimed came from the slow catch-up.
    other = max(s.received + s.duplicates - events - rechecked, 0)
    return (
        f"{s.rate} msg/s: {events:,} from events, {rechecked:,} by {s.extra.get('rechecks', 0):,} re-reads "
        f"after coalesced events, {other:,} by other reads"
    )


def _consumer_targets(results: Results) -> list[Target]:
    """Issue #16: PgmqConsumer.run with 1 worker at least 0.6x the batched read + delete(ids[]) loop."""
    run = next(
        (s for s in results.consumers if s.kind == consumers.TARGET_KIND and s.consumers == 1),
        None,
    )
    if run is None:
        return []
    beside = [
        f"{s.kind} {_ratio(s.ratio)}"
        for s in results.consumers
        if s.consumers == 1 and s.kind not in ("batched", consumers.TARGET_KIND)
    ]
    goal = f"PgmqConsumer.run (concurrency 16), 1 worker ≥ {consumers.TARGET_RATIO}{TIMES} the batched loop"
    measured = (
        f"{_ratio(run.ratio)} (rounds {_ratio(run.ratio_min)}-{_ratio(run.ratio_max)}), "
        f"{_rate(run.msgs_per_s)} msgs/s; " + ", ".join(beside)
    )
    return [Target(goal, measured, run.ratio >= consumers.TARGET_RATIO)]


def _consumer_table(results: Results) -> list[str]:
    if not results.consumers:
        return []
    counts = sorted({s.consumers for s in results.consumers})
    lines = [
        "",
        f"## 3. Consumer throughput (backlog of {results.sizes.consumer_messages:,} drained, each message claimed "
        f"then acknowledged, no work; msgs/s, median of {results.sizes.consumer_rounds} rounds, "
        "ratio to the batched loop with as many workers)",
        "",
        "| consumer | " + " | ".join(f"{n} worker{'s' if n > 1 else ''}" for n in counts) + " | acknowledged / sent |",
        "|---|" + "---:|" * len(counts) + "---:|",
    ]
    for kind, label in consumers.KINDS:
        own = [s for s in results.consumers if s.kind == kind]
        if not own:
            continue
        cells = []
        for n in counts:
            s = next((r for r in own if r.consumers == n), None)
            if s is None:
                cells.append(NONE)
            elif kind == "batched":
                cells.append(_rate(s.msgs_per_s))
            else:
                cells.append(f"{_rate(s.msgs_per_s)} ({_ratio(s.ratio)})")
        deleted, sent = sum(s.deleted for s in own), sum(s.messages for s in own)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {deleted:,} / {sent:,} |")
    return lines


def _runtime_tables(results: Results) -> list[str]:
    lines: list[str] = []
    if results.parse:
        lines += [
            "",
            "## 4. Runtime: parse throughput and listener drain rate",
            "",
            "| parse_event on | events/s | json.loads alone | ratio |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {p.label} | {_rate(p.events_per_s)} | {_rate(p.json_only_per_s)} | {_ratio(p.ratio)} |"
            for p in results.parse
        ]
    if results.drain:
        lines += [
            "",
            f"| drain a burst of {results.sizes.drain_notifications:,} notifications | events/s | "
            "ratio to notifies() | received / sent |",
            "|---|---:|---:|---:|",
        ]
        for d in results.drain:
            dropped = f" ({d.dropped:,} dropped, overflow marker)" if d.dropped else ""
            lines.append(
                f"| {d.label} | {_rate(d.events_per_s)} | {_ratio(d.ratio)} | {d.received:,} / {d.sent:,}{dropped} |"
            )
    return lines


def to_json(results: Results) -> dict[str, Any]:
    """Everything for latest.json."""
    return {
        "machine": results.machine,
        "machine_line": machine_line(results.machine),
        "sizes": asdict(results.sizes),
        "seconds": round(results.seconds, 1),
        "targets": [asdict(t) for t in targets(results)],
        "lost_messages": lost_messages(results),
        **results.raw,
    }


def write(results: Results, out: Path, stem: str = "latest") -> list[Path]:
    """Write ``{stem}.md`` and ``{stem}.json`` into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text(markdown(results), encoding="utf-8")
    js.write_text(json.dumps(to_json(results), indent=1, default=str) + "\n", encoding="utf-8")
    return [md, js]
