"""The ``pgmq-codegen`` command line: a thin shell over one typed API module per verb.

Exit codes: 0 success; 1 drift (``diff`` only); 2 error (invalid config or
arguments, lint failure, a file that would be overwritten, database trouble).
Errors print one line per problem on stderr; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from pgmq_codegen import (
    __version__,
    formats,
    generate_migration,
    init_config,
    log_setup,
    sql_script,
    validate_config,
)
from pgmq_codegen.errors import ConfigError, PgmqNotifyError
from pgmq_runtime.config import DEFAULT_CONFIG_FILE, PgmqNotifyConfig, load_config

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2

app = typer.Typer(
    name="pgmq-codegen",
    help=(
        "Make PGMQ event-driven: generate the SQL that makes every send emit a NOTIFY, "
        "lay it out as a migration for your tool, check a live database against it, "
        "and tail the events.\n\n"
        "Start with: pgmq-codegen init, then pgmq-codegen generate-migration --format flyway."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help text is printed as written: no Rich markup, so '[migration] name_prefix' and
    # 'pgmq-codegen[plpgsql-lint]' keep their brackets, and flags show no '<bool>'.
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"verbose": False}
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help=f"Config file (TOML). Default: ./{DEFAULT_CONFIG_FILE} if present, else built-in defaults.",
        dir_okay=False,
    ),
]

DsnOption = Annotated[
    str, typer.Option("--dsn", envvar="PGMQ_CODEGEN_DSN", metavar="DSN", help="PostgreSQL connection string.")
]


def _fail(exc: BaseException, code: int = EXIT_ERROR) -> NoReturn:
    if _state["verbose"]:
        err.print_exception()
    if isinstance(exc, ConfigError):
        where = f" ({exc.source})" if exc.source else ""
        err.print(f"[bold red]invalid config{where}:[/]")
        for problem in exc.problems:
            err.print(f"  [red]✗[/] [bold]{escape(problem.key)}[/]: {escape(problem.reason)}")
    else:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
    raise typer.Exit(code)


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``; turn our errors (and Ctrl-C) into a message and exit code."""
    try:
        return action()
    except PgmqNotifyError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


def _config(path: Path | None) -> PgmqNotifyConfig:
    return guarded(lambda: load_config(path))


def _version(value: bool) -> None:
    if value:
        out.print(f"pgmq-codegen {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks on errors (before or after the verb).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    log_level: Annotated[
        log_setup.LogLevel, typer.Option("--log-level", case_sensitive=False, help="Log records shown on stderr.")
    ] = log_setup.LogLevel.warning,
    log_format: Annotated[
        log_setup.LogFormat, typer.Option("--log-format", case_sensitive=False, help="text, or json: one per line.")
    ] = log_setup.LogFormat.text,
) -> None:
    """Global options."""
    _state["verbose"] = verbose
    log_setup.configure(log_level, log_format)


@app.command("init")
def init_command(
    path: Annotated[Path, typer.Argument(help="Where to write the config.", dir_okay=False)] = Path(
        DEFAULT_CONFIG_FILE
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented default config file.

    Every key is in it, with its default and meaning.
    """
    written = guarded(lambda: init_config.init_config(path, force))
    out.print(f"[green]wrote[/] {escape(str(written))}")
    out.print(f"next: edit it, then [bold]pgmq-codegen validate-config {escape(str(written))}[/]")


@app.command("validate-config")
def validate_config_command(
    path: Annotated[
        Path, typer.Argument(help=f"The config file to check. Default: ./{DEFAULT_CONFIG_FILE}.", dir_okay=False)
    ] = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """Check a config file: exit 0 if valid, 2 if not.

    Every problem is listed, one per line. A tasker-pgmq CLI config file is
    valid unchanged.
    """
    valid = guarded(lambda: validate_config.validate_config(path))
    config = valid.config
    out.print(f"[green]✓[/] {escape(str(path))} is valid (fingerprint {config.fingerprint()})")
    # The pattern as it is written in TOML (a literal string), not Python's repr with doubled backslashes.
    pattern = escape(f"'{config.queue_naming_pattern}'")
    out.print(f"  pattern {pattern}, mode {config.mode}, schema {escape(config.schema)}")
    out.print(escape(f"  channels: {', '.join(valid.channels)}"))


def _format_help() -> str:
    return "Migration tool: " + ", ".join(formats.writers())


@app.command("generate-migration")
def generate_migration_command(
    format_name: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help=_format_help())],
    config: ConfigOption = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            metavar="DIR",
            help="Folder to write into. Default: where the tool looks (per format).",
            file_okay=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", metavar="NAME", help="Migration name. Default: [migration] name_prefix."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Write a new migration even if the newest one of ours in the folder already installs this config.",
        ),
    ] = False,
) -> None:
    """Write the notification SQL as your tool's migration.

    The SQL is rendered and linted first. Files are ordered after the ones
    already in the folder and never overwrite one; with an invalid config or a
    failed lint nothing is written. When the newest migration of ours in the
    folder already installs exactly this config (same fingerprint), nothing is
    written and the exit code is 0 (--force writes another).

    Example: pgmq-codegen generate-migration --format flyway --output-dir db/migration
    """
    cfg = _config(config)
    result = guarded(lambda: generate_migration.generate_migration(cfg, format_name, output_dir, name, force=force))
    if result.already_installed_by is not None:
        out.print(
            f"[yellow]up to date:[/] {escape(str(result.already_installed_by))} already installs this config "
            f"(fingerprint {cfg.fingerprint()}); nothing written (--force writes another)"
        )
        return
    for path in result.files:
        out.print(f"[green]wrote[/] {escape(str(path))}")
    checks = f"{result.lint.statements} statements linted"
    if result.lint.pglast_available:
        checks += f", {result.lint.plpgsql_bodies} PL/pgSQL bodies parsed"
    else:
        checks += " (install pgmq-codegen[plpgsql-lint] to also parse PL/pgSQL bodies)"
    out.print(f"[dim]{escape(checks)}[/]")


@app.command("sql")
def sql_command(
    config: ConfigOption = None,
    rollback: Annotated[bool, typer.Option("--rollback", help="Print the rollback script instead.")] = False,
) -> None:
    """Print the install (or --rollback) SQL to stdout.

    Pipe it into psql, or into a migration file of your own.
    """
    cfg = _config(config)
    text = guarded(lambda: sql_script.sql_script(cfg, rollback))
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command("diff")
def diff(
    dsn: Annotated[
        str,
        typer.Option(
            "--dsn", envvar="PGMQ_CODEGEN_DSN", metavar="DSN", help="libpq DSN or URI of the database to check."
        ),
    ],
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (stable schema, version 1).")
    ] = False,
    with_sql: Annotated[
        bool,
        typer.Option(
            "--sql",
            help="Print the SQL that brings the database in line (what a new migration should contain) "
            "on stdout; the table goes to stderr. With --json, adds it as repair_sql.",
        ),
    ] = False,
) -> None:
    """Compare a live database with what the config installs.

    Exit 0 in sync, 1 drift, 2 error. Reports missing objects, definitions that
    differ from the rendered SQL (a hand-edited function is caught), stale
    fingerprints, queues whose messages do not notify, and objects of ours the
    config no longer asks for. Nothing in the database is changed.

    Example: pgmq-codegen diff --dsn postgresql://app@db/app --sql > V7__pgmq_notify_repair.sql
    """
    from pgmq_codegen import diff as diff_mod
    from pgmq_codegen import diff_output

    cfg = _config(config)
    report = guarded(lambda: diff_mod.compare(dsn, cfg))
    diff_output.emit(report, out=out, err=err, as_json=as_json, with_sql=with_sql)
    raise typer.Exit(EXIT_OK if report.in_sync else EXIT_DRIFT)


@app.command()
def listen(
    dsn: Annotated[
        str,
        typer.Option(
            "--dsn", envvar="PGMQ_CODEGEN_DSN", metavar="DSN", help="PostgreSQL connection string (URI or key=value)."
        ),
    ],
    config: ConfigOption = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NAMESPACE",
            help="Namespace to follow (repeatable). Default: all, via the global channel.",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line: the event as received plus its channel.")
    ] = False,
    self_check: Annotated[
        bool,
        typer.Option(
            "--self-check/--no-self-check",
            help="First check that a probe NOTIFY comes back (it does not through PgBouncer in transaction mode).",
        ),
    ] = True,
) -> None:
    """Live tail of notification events.

    It runs until Ctrl-C or SIGTERM (both exit 0). A dropped connection is
    re-established and shown as a GAP line: events sent meanwhile were not seen.
    Events go to stdout, status lines to stderr.

    Example: pgmq-codegen listen --dsn postgresql://app@localhost/app --namespace orders --json
    """
    from pgmq_codegen import listen as listen_mod
    from pgmq_runtime.events import ListenerItem

    cfg = _config(config)

    def show(item: ListenerItem) -> None:
        if json_output:
            sys.stdout.write(listen_mod.format_json_line(item) + "\n")
            sys.stdout.flush()
        else:
            out.print(listen_mod.rich_line(item))

    async def until_stopped() -> None:
        # SIGTERM (docker stop, systemd, kill) ends the tail like Ctrl-C: a "stopped" line, exit 0.
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await listen_mod.tail(
            dsn,
            cfg,
            namespace or [],
            show,
            on_notice=lambda text: err.print(f"[dim]{escape(text)}[/]"),
            stop=stop,
            self_check=self_check,
        )

    def run() -> None:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way out: exit 0
            asyncio.run(until_stopped())
        err.print("[dim]stopped[/]")

    guarded(run)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the generated files (their folder is printed).")] = False,
) -> None:
    """Show the whole job on a throwaway PostgreSQL.

    Config, Flyway migration, events: it writes a default config, generates a
    Flyway migration, starts a local PostgreSQL (as an unprivileged user),
    installs PGMQ from the pgmq package, applies the migration, sends a few
    messages with plain pgmq.send, prints the events that arrive, then cleans
    everything up.
    """
    from pgmq_codegen import demo as demo_mod

    guarded(lambda: demo_mod.run(out, keep=keep))


@app.command("worker")
def worker_command(
    handler: Annotated[str, typer.Argument(help="The handler, MODULE:FUNCTION (async, or plain: runs in a thread).")],
    dsn: DsnOption,
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", metavar="QUEUE", help="Queue to consume (repeatable).")
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", metavar="NAMESPACE", help="Consume every existing queue of this namespace."),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, metavar="N", help="Handlers run at once.")] = 1,
    visibility_timeout: Annotated[
        int,
        typer.Option(
            "--visibility-timeout", min=1, metavar="SECONDS", help="Seconds a claim lasts (a heartbeat extends it)."
        ),
    ] = 30,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, metavar="N", help="Claims before a failing message is given up on.")
    ] = 5,
    dead_letter_queue: Annotated[
        str | None,
        typer.Option("--dead-letter-queue", metavar="QUEUE", help="Move given-up messages here (default: archive)."),
    ] = None,
    archive: Annotated[
        bool, typer.Option("--archive", help="Archive handled messages instead of deleting them.")
    ] = False,
    fifo: Annotated[
        bool, typer.Option("--fifo", help="Keep x-pgmq-group FIFO order: one message per group in flight.")
    ] = False,
    poll_only: Annotated[bool, typer.Option("--poll-only", help="No LISTEN: poll (PgBouncer, replicas).")] = False,
    grace_period: Annotated[
        float,
        typer.Option(
            "--grace-period", min=0, metavar="SECONDS", help="Seconds running handlers get to finish on stop."
        ),
    ] = 30.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            metavar="PORT",
            help="Serve Prometheus metrics at /metrics on this port.",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", metavar="HOST", help="Address the metrics server binds.")
    ] = "0.0.0.0",
    config: ConfigOption = None,
) -> None:
    """Run a handler on every message of the queues.

    Concurrently, acknowledged in batches, retried. A handler that returns
    deletes its message (or archives it, --archive); one that raises has it
    retried with a backoff, then archived (or moved to --dead-letter-queue)
    after --max-attempts. SIGTERM or Ctrl-C stops cleanly: no new claims,
    running handlers finish, exit 0.

    Example: pgmq-codegen worker myapp.handlers:handle --dsn postgresql://app@db/app
    --queue orders_queue --concurrency 16
    """
    from pgmq_codegen import worker
    from pgmq_runtime.retries import RetryPolicy
    from pgmq_runtime.stats import ConsumerStats

    cfg = _config(config)

    def run() -> ConsumerStats:
        if not queue and namespace is None:
            raise worker.WorkerCommandError("give --queue QUEUE or --namespace NAMESPACE")
        function = worker.load_handler(handler)
        retry = RetryPolicy(max_attempts=max_attempts, dead_letter_queue=dead_letter_queue)
        return asyncio.run(
            worker.serve(
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

    stats = guarded(run)
    out.print(
        f"stopped: {stats.handled} handled, {stats.failed} failed, {stats.retries} retried, "
        f"{stats.dead_lettered} given up"
    )


@app.command("status")
def status_command(
    dsn: DsnOption,
    once: Annotated[bool, typer.Option("--once", help="Show one view and exit (for scripts).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: one JSON object on stdout.")] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.1, metavar="SECONDS", help="Seconds between samples (rates are per second)."),
    ] = 1.0,
    config: ConfigOption = None,
) -> None:
    """Live health of a database.

    Queues, install, notification queue, probe round trip: every queue's depth,
    oldest message age and messages/s in and out; whether the installed SQL
    matches the config; how full PostgreSQL's notification queue is and the
    sessions with a transaction open that may hold it back (a LISTENing session
    idle in a transaction stops it); the round trip of a probe notification.
    Ctrl-C or SIGTERM stops (exit 0).

    Example: pgmq-codegen status --dsn postgresql://app@db/app --once --json
    """
    from pgmq_codegen import status, status_output

    cfg = _config(config)

    def run() -> None:
        if as_json and not once:
            raise typer.BadParameter("--json needs --once")
        if once:
            report = asyncio.run(status.sample_twice(dsn, cfg, interval))
            if as_json:
                out.file.write(json.dumps(report.to_dict(), default=str) + "\n")
            else:
                out.print(status_output.render(report))
            return

        async def until_stopped() -> None:
            # SIGTERM ends the view like Ctrl-C: the last frame stays, exit 0.
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await status_output.watch(dsn, cfg, interval, out, stop)

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way out: exit 0
            asyncio.run(until_stopped())

    guarded(run)


# Click's exception classes, from whichever click this Typer uses (Typer 0.29 vendors its own):
# BadParameter derives from UsageError, which derives from ClickException.
_UsageError: type[Exception] = typer.BadParameter.__mro__[1]
_ClickException: type[Exception] = typer.BadParameter.__mro__[2]
_VERBOSE_FLAGS = ("--verbose", "-v")


def _verbose_first(args: list[str]) -> list[str]:
    """Move ``--verbose`` given after the verb (``pgmq-codegen sql --verbose``) before it."""
    cut = args.index("--") if "--" in args else len(args)
    head, tail = args[:cut], args[cut:]
    flags = [a for a in head if a in _VERBOSE_FLAGS]
    return [*flags[:1], *(a for a in head if a not in _VERBOSE_FLAGS), *tail]


def main(args: list[str] | None = None) -> None:
    """Console-script entry point.

    Usage errors (unknown option, missing value, bad choice) print one line on
    stderr and exit 2, like every other error; Typer's boxes are not used.
    """
    command = typer.main.get_command(app)
    argv = log_setup.hoist(_verbose_first(list(sys.argv[1:] if args is None else args)))
    try:
        code = command.main(args=argv, prog_name="pgmq-codegen", standalone_mode=False)
    except _ClickException as exc:
        message = exc.format_message()  # type: ignore[attr-defined]
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `pgmq-codegen`: the help, as before
            sys.stdout.write(message + "\n")
            sys.exit(EXIT_ERROR)
        if isinstance(exc, _UsageError) and ctx is not None:
            message += f" (see: {ctx.command_path} --help)"
        err.print(f"[bold red]error:[/] {escape(message)}")
        code = EXIT_ERROR
    except (typer.Abort, EOFError):
        err.print("interrupted")
        code = 130
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
