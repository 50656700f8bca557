"""``pgmq-codegen worker MODULE:FUNCTION``: run a handler on the messages of queues, for services without asyncio code.

:func:`load_handler` and :func:`serve` are the typed functions; :func:`register`
adds the verb to the Typer app (cli.py calls it). The worker stops cleanly on
SIGTERM or SIGINT (a second one cancels running handlers), prints a
``stopped`` line and exits 0; errors are one line on stderr and exit 2.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from pgmq_runtime import metrics_export, worker
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import PgmqConsumer, queues_in_namespace
from pgmq_runtime.errors import PgmqNotifyError, describe_error
from pgmq_runtime.metrics import RuntimeMetrics
from pgmq_runtime.retries import RetryPolicy
from pgmq_runtime.stats import ConsumerStats
from pgmq_runtime.worker import Handler


class WorkerCommandError(PgmqNotifyError):
    """The worker cannot start: a handler that does not load, no queue to consume."""


def load_handler(spec: str) -> Handler:
    """The function named by ``MODULE:FUNCTION`` (the current directory is importable, as with ``python -m``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise WorkerCommandError(f"handler {spec!r} must be MODULE:FUNCTION, e.g. myapp.handlers:handle")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise WorkerCommandError(f"cannot import {module_name!r}: {describe_error(exc)}") from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise WorkerCommandError(f"module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise WorkerCommandError(f"{spec!r} is not callable")
    handler: Handler = target
    return handler


async def serve(
    dsn: str,
    config: PgmqNotifyConfig,
    handler: Handler,
    *,
    queues: list[str],
    namespace: str | None,
    concurrency: int,
    visibility_timeout: int,
    retry: RetryPolicy,
    archive: bool,
    fifo: bool,
    poll_only: bool,
    grace_period: float,
    on_notice: Callable[[str], None] = lambda _text: None,
    metrics_port: int | None = None,
    metrics_host: str = "0.0.0.0",
) -> ConsumerStats:
    """Consume ``queues`` (or every queue of ``namespace``) with ``handler`` until SIGTERM/SIGINT.

    With ``metrics_port``, Prometheus metrics are served at ``/metrics`` while it runs.
    """
    names = list(queues)
    if namespace is not None:
        names += await queues_in_namespace(dsn, config, namespace)
    if not names:
        where = f"namespace {namespace!r}" if namespace is not None else "the command line"
        raise WorkerCommandError(f"no queue to consume: none in {where} (give --queue or --namespace)")
    runtime_metrics = RuntimeMetrics() if metrics_port is not None else None
    consumer = PgmqConsumer(
        dsn,
        names,
        config,
        visibility_timeout=visibility_timeout,
        fifo=fifo,
        poll_only=poll_only,
        metrics=runtime_metrics,
    )
    server = None
    if runtime_metrics is not None and metrics_port is not None:
        server = metrics_export.serve_prometheus(runtime_metrics, metrics_port, metrics_host)
        on_notice(f"metrics on {server.url}")
    try:
        async with consumer:
            await worker.check_queues(consumer, retry)
            queues_line = ", ".join(sorted(set(names)))
            on_notice(f"worker on {queues_line}, concurrency {concurrency}; SIGTERM or Ctrl-C stops")
            return await consumer.run(
                handler, concurrency=concurrency, retry=retry, archive=archive, grace_period=grace_period
            )
    finally:
        if server is not None:
            server.close()


def register(app: typer.Typer, guarded: Callable[[Callable[[], Any]], Any], load: Callable[[Path | None], Any]) -> None:
    """Add the ``worker`` verb to ``app``; ``guarded`` turns errors into exit 2, ``load`` reads the config."""

    @app.command("worker")
    def worker_verb(
        handler: Annotated[
            str, typer.Argument(help="The handler, MODULE:FUNCTION (async, or plain: runs in a thread).")
        ],
        dsn: Annotated[str, typer.Option("--dsn", envvar="PGMQ_CODEGEN_DSN", help="PostgreSQL connection string.")],
        queue: Annotated[list[str] | None, typer.Option("--queue", "-q", help="Queue to consume (repeatable).")] = None,
        namespace: Annotated[
            str | None, typer.Option("--namespace", "-n", help="Consume every existing queue of this namespace.")
        ] = None,
        concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Handlers run at once.")] = 1,
        visibility_timeout: Annotated[
            int, typer.Option("--visibility-timeout", min=1, help="Seconds a claim lasts (a heartbeat extends it).")
        ] = 30,
        max_attempts: Annotated[
            int, typer.Option("--max-attempts", min=1, help="Claims before a failing message is given up on.")
        ] = 5,
        dead_letter_queue: Annotated[
            str | None, typer.Option("--dead-letter-queue", help="Move given-up messages here (default: archive).")
        ] = None,
        archive: Annotated[
            bool, typer.Option("--archive", help="Archive handled messages instead of deleting them.")
        ] = False,
        fifo: Annotated[
            bool, typer.Option("--fifo", help="Keep x-pgmq-group FIFO order: one message per group in flight.")
        ] = False,
        poll_only: Annotated[bool, typer.Option("--poll-only", help="No LISTEN: poll (PgBouncer, replicas).")] = False,
        grace_period: Annotated[
            float, typer.Option("--grace-period", min=0, help="Seconds running handlers get to finish on stop.")
        ] = 30.0,
        metrics_port: Annotated[
            int | None,
            typer.Option("--metrics-port", min=0, max=65535, help="Serve Prometheus metrics at /metrics on this port."),
        ] = None,
        metrics_host: Annotated[
            str, typer.Option("--metrics-host", help="Address the metrics server binds.")
        ] = "0.0.0.0",
        config: Annotated[
            Path | None, typer.Option("--config", "-c", help="Config file (TOML).", dir_okay=False)
        ] = None,
    ) -> None:
        """Run a handler on every message of the queues: concurrently, acknowledged in batches, retried.

        A handler that returns deletes its message (or archives it, --archive);
        one that raises has it retried with a backoff, then archived (or moved
        to --dead-letter-queue) after --max-attempts. SIGTERM or Ctrl-C stops
        cleanly: no new claims, running handlers finish, exit 0.

        Example: pgmq-codegen worker myapp.handlers:handle --dsn postgresql://app@db/app
        --queue orders_queue --concurrency 16
        """
        cfg = load(config)
        out = Console(highlight=False, soft_wrap=True)
        err = Console(stderr=True, highlight=False, soft_wrap=True)

        def run() -> ConsumerStats:
            if not queue and namespace is None:
                raise WorkerCommandError("give --queue QUEUE or --namespace NAMESPACE")
            function = load_handler(handler)
            retry = RetryPolicy(max_attempts=max_attempts, dead_letter_queue=dead_letter_queue)
            return asyncio.run(
                serve(
                    dsn,
                    cfg,
                    function,
                    queues=list(queue or []),
                    namespace=namespace,
                    concurrency=concurrency,
                    visibility_timeout=visibility_timeout,
                    retry=retry,
                    archive=archive,
                    fifo=fifo,
                    poll_only=poll_only,
                    grace_period=grace_period,
                    on_notice=lambda text: err.print(f"[dim]{escape(text)}[/]"),
                    metrics_port=metrics_port,
                    metrics_host=metrics_host,
                )
            )

        stats: ConsumerStats = guarded(run)
        out.print(
            f"stopped: {stats.handled} handled, {stats.failed} failed, {stats.retries} retried, "
            f"{stats.dead_lettered} given up"
        )
