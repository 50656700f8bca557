"""``pgmq-codegen worker MODULE:FUNCTION``: run a handler on the messages of queues, for services without asyncio code.

:func:`load_handler` and :func:`serve` are the typed functions behind the verb
(cli.py is its shell). :func:`serve` runs until SIGTERM or SIGINT (a second
one cancels running handlers) and returns the consumer's final stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from pgmq_runtime import metrics_export, worker
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import PgmqConsumer, queues_in_namespace
from pgmq_runtime.errors import PgmqNotifyError, describe_error
from pgmq_runtime.metrics import RuntimeMetrics
from pgmq_runtime.retries import RetryPolicy
from pgmq_runtime.stats import ConsumerStats
from pgmq_runtime.worker import Handler

log = logging.getLogger(__name__)


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
    with _EarlySignals() as early:
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
        early.forward_to(consumer)
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


class _EarlySignals:
    """SIGTERM/SIGINT while the worker starts (before ``consumer.run`` takes the signals): a clean stop.

    Without it a container stopped during start-up would die of the signal
    (exit 143) instead of stopping like it does once running. Once ``run``
    installs its own handlers they take over; on exit the process's previous
    handlers come back.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.consumer: PgmqConsumer | None = None
        self.requested = False
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> _EarlySignals:
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for sig in self._SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s while starting: stopping", sig.name)
        self.requested = True
        if self.consumer is not None:
            self.consumer.stop()

    def forward_to(self, consumer: PgmqConsumer) -> None:
        """Stop ``consumer`` on a signal from now on (at once, if one came already)."""
        self.consumer = consumer
        if self.requested:
            consumer.stop()

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig, previous in self._previous.items():
            loop.remove_signal_handler(sig)
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, previous)
