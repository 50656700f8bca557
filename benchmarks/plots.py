"""PNG plots: the latency CDF and throughput against the number of producers.

matplotlib is optional (``pip install 'pgmq-codegen[bench]'``): without it the
run still writes its tables and says the plots were skipped.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import VARIANT_LABELS, Results


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write(results: Results, out: Path) -> list[Path]:
    """Write latency_cdf.png and scaling.png into ``out``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    written: list[Path] = []
    if results.latency:
        written.append(_latency_cdf(results, out / "latency_cdf.png"))
    if any(s.case.startswith("send-c") for s in results.producers):
        written.append(_scaling(results, out / "scaling.png"))
    return written


def _latency_cdf(results: Results, path: Path) -> Path:
    import matplotlib.pyplot as plt

    rates = sorted({s.rate for s in results.latency}, reverse=True)
    fig, axes = plt.subplots(1, len(rates), figsize=(7 * len(rates), 6), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        for s in (s for s in results.latency if s.rate == rate and s.cdf):
            xs = [max(x, 0.01) for x, _ in s.cdf]
            ys = [y for _, y in s.cdf]
            style = "-" if s.key.startswith(("trigger", "wrapper", "coalesce")) else "--"
            ax.step(xs, ys, style, where="post", label=s.label)
        ax.set_xscale("log")
        ax.set_xlabel("latency from send start (ms, log scale)")
        ax.set_ylabel("fraction of messages")
        ax.set_title(f"{rate} msg/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(0, 1.01)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=3, frameon=False)
    fig.suptitle(f"Latency CDF — {results.machine.get('cpu', '')}, {results.machine.get('cores', '?')} cores")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scaling(results: Results, path: Path) -> Path:
    import matplotlib.pyplot as plt

    rows = [s for s in results.producers if s.case.startswith("send-c")]
    fig, ax = plt.subplots(figsize=(7, 5))
    for variant in dict.fromkeys(s.variant for s in rows):
        own = sorted((s for s in rows if s.variant == variant), key=lambda s: s.clients)
        ax.plot([s.clients for s in own], [s.msgs_per_s for s in own], "o-", label=VARIANT_LABELS.get(variant, variant))
    ax.set_xscale("log", base=2)
    clients = sorted({s.clients for s in rows})
    ax.set_xticks(clients, [str(c) for c in clients])
    ax.set_xlabel("producer connections (pgbench clients, single sends)")
    ax.set_ylabel("messages per second")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Producer throughput against number of producers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
