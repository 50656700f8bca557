"""Terminal output of ``pgmq-codegen diff``: a Rich table, JSON or repair SQL.

The CLI calls :func:`emit` with a report; everything printed here is plain
text wrapped in Rich objects, never markup, so names such as ``bigint[]`` print as they are.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pgmq_codegen.diff import KINDS, DiffReport

_KIND_STYLE = {
    "missing": "bold red",
    "changed": "yellow",
    "stale_fingerprint": "magenta",
    "untriggered_queue": "bold red",
    "extra": "cyan",
}
_KIND_LABEL = {
    "missing": "missing",
    "changed": "changed",
    "stale_fingerprint": "stale fingerprint",
    "untriggered_queue": "untriggered queue",
    "extra": "extra",
}


def findings_table(report: DiffReport) -> Table:
    """The findings as a Rich table (one row each, in report order)."""
    table = Table(title=Text(f"pgmq-codegen diff: {report.database}"), title_justify="left", show_lines=False)
    table.add_column("Kind", no_wrap=True)
    table.add_column("Object", no_wrap=True)
    table.add_column("Name", overflow="fold")
    table.add_column("Detail", overflow="fold")
    for finding in report.findings:
        table.add_row(
            Text(_KIND_LABEL[finding.kind], style=_KIND_STYLE[finding.kind]),
            Text(finding.object_type),
            Text(finding.name),
            Text(finding.detail),
        )
    return table


def summary_line(report: DiffReport) -> Text:
    """One line: in sync, or how many findings of each kind."""
    config = report.config
    where = f"schema {config.schema}, mode {config.mode}, fingerprint {config.fingerprint()}"
    if report.in_sync:
        text = Text("In sync: ", style="bold green")
        text.append(f"{report.database} carries exactly what the config installs ({where}).")
        return text
    counts = report.summary()
    parts = [f"{counts[kind]} {_KIND_LABEL[kind]}" for kind in KINDS if counts[kind]]
    text = Text("Drift: ", style="bold red")
    text.append(f"{', '.join(parts)} ({where}).")
    return text


def print_report(report: DiffReport, console: Console, *, hint_sql: bool = True) -> None:
    """The table (when there are findings) and the summary line."""
    if report.findings:
        console.print(findings_table(report))
    console.print(summary_line(report))
    if hint_sql and not report.in_sync:
        console.print(Text("Run with --sql to print the SQL that brings the database in line."))


def emit(report: DiffReport, *, out: Console, err: Console, as_json: bool, with_sql: bool) -> None:
    """Print a report the way ``diff`` does.

    * ``--json``: the JSON document on ``out`` (with ``repair_sql`` when ``--sql``);
    * ``--sql``: only the repair SQL on ``out`` (nothing when in sync), so it can
      be redirected into a migration file; the table goes to ``err``;
    * neither: the table and summary on ``out``.
    """
    if as_json:
        out.file.write(report.to_json(include_sql=with_sql))
        out.file.flush()
    elif with_sql:
        print_report(report, err, hint_sql=False)
        out.file.write(report.repair_sql())
        out.file.flush()
    else:
        print_report(report, out)
