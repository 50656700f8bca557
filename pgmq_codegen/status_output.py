"""Terminal output of ``pgmq-codegen status``: the view of a :class:`~pgmq_codegen.status.StatusReport`.

The CLI calls :func:`render` for ``--once`` and :func:`watch` for the live view
(Rich Live); :mod:`pgmq_codegen.status` takes the samples.
"""

from __future__ import annotations

import asyncio
import contextlib

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from pgmq_codegen import status
from pgmq_runtime.config import PgmqNotifyConfig

NONE = "\u2013"  # an en dash: not known yet


def render(report: status.StatusReport) -> RenderableType:
    """The whole view: install, queues, notification queue and the sessions that may hold it back, probe."""
    parts: list[RenderableType] = [f"[bold]{escape(report.database)}[/]  {report.taken_at:%Y-%m-%d %H:%M:%S} UTC"]
    install = report.install
    if install.in_sync:
        parts.append("install: [green]in sync with the config[/]")
    elif install.error:
        parts.append(f"install: [red]cannot compare: {escape(install.error)}[/]")
    else:
        parts.append(f"install: [red]{len(install.findings)} difference(s)[/] (pgmq-codegen diff shows the repair)")
        parts += [f"  [red]✗[/] {escape(f)}" for f in install.findings[:10]]
    queues = Table("queue", "depth", "oldest", "in/s", "out/s", title="queues", title_justify="left")
    for q in report.queues:
        queues.add_row(
            escape(q.name), f"{q.depth:,}", _age(q.oldest_age_seconds), _per_s(q.in_per_s), _per_s(q.out_per_s)
        )
    parts.append(queues)
    usage = report.notify_queue_usage
    colour = "red" if usage >= 0.25 else "yellow" if usage > 0 else "green"
    parts.append(f"notification queue: [{colour}]{usage:.4%} full[/]")
    if report.sessions:
        sessions = Table(
            "pid", "user", "application", "state", "open for", "listening", "last statement",
            title="sessions with a transaction open (the queue cannot pass a listening one)",
            title_justify="left",
        )  # fmt: skip
        for s in report.sessions:
            state = f"[red]{escape(s.state)}[/]" if s.idle_in_transaction else escape(s.state)
            sessions.add_row(
                str(s.pid), escape(s.user), escape(s.application), state, _age(s.transaction_seconds),
                s.listening, escape(s.last_query[:60]),
            )  # fmt: skip
        parts.append(sessions)
    probe = report.probe
    if probe.ok and probe.round_trip_ms is not None:
        parts.append(f"probe notification: [green]{probe.round_trip_ms:.1f} ms[/] round trip")
    else:
        parts.append(f"probe notification: [red]{escape(probe.detail)}[/]")
    return Group(*parts)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _per_s(value: float | None) -> str:
    return NONE if value is None else f"{value:,.1f}"


async def watch(
    dsn: str, config: PgmqNotifyConfig, interval: float, console: Console, stop: asyncio.Event | None = None
) -> None:
    """Redraw the view every ``interval`` seconds until ``stop`` is set (or the task is cancelled)."""
    stop = stop or asyncio.Event()
    previous: status.StatusReport | None = None
    with Live(console=console, auto_refresh=False) as live:
        while not stop.is_set():
            current = status.with_rates(previous, await status.read_status(dsn, config))
            live.update(render(current), refresh=True)
            previous = current
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
