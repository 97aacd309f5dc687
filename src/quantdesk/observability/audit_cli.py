"""``quantdesk audit``: verified exports of the audit trail, and retention (export, then purge).

Exit codes: 0 done (or nothing to do), 1 a failure (nothing deleted), 2 bad input or settings.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape

from quantdesk.settings import ConfigError, Settings

if TYPE_CHECKING:
    from quantdesk.observability.audit import Actor
    from quantdesk.observability.audit_export import AuditExportError, ExportFormat, ExportResult

# The values of audit_export.ExportFormat: that module (pyarrow, SQLAlchemy) loads only when an
# audit command runs, so the CLI starts fast.
FormatName = Literal["parquet", "csv"]

audit_app = typer.Typer(
    help="The audit trail: verified exports (Parquet, CSV) and retention.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)
IST = ZoneInfo("Asia/Kolkata")

FormatOpt = Annotated[FormatName, typer.Option("--format", help="parquet or csv.")]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="The export file, or an existing directory for the default name "
        "(audit-before-<cut-off>.<format>). Default: <data_dir>/audit-exports/.",
    ),
]


@audit_app.command("export")
def export_command(
    before: Annotated[
        str,
        typer.Option(
            "--before",
            help="Export rows with at < this: YYYY-MM-DD (00:00 UTC) or an ISO datetime with an "
            "offset (2026-01-01T00:00+05:30 is midnight IST). Not in the future.",
        ),
    ],
    fmt: FormatOpt = "parquet",
    out: OutOpt = None,
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Once the export verifies, delete exactly the rows in it."),
    ] = False,
) -> None:
    """Export every audit row before a cut-off to a file, verify it against the database (row
    count and SHA-256 content digest) and write a manifest beside it; with --delete, then remove
    those rows. Audited as audit.export / audit.purge."""
    from quantdesk.observability.audit_export import AuditExportError, parse_cutoff

    settings = _settings()
    try:
        cutoff = parse_cutoff(before, now=datetime.now(UTC))
    except AuditExportError as exc:
        raise _fail(exc) from exc
    _run(settings.data_dir, settings.resolved_database_url, cutoff, fmt, out, delete)


@audit_app.command("purge")
def purge_command(fmt: FormatOpt = "parquet", out: OutOpt = None) -> None:
    """Apply QUANTDESK_AUDIT_RETENTION_DAYS: export the rows older than the retention (from
    00:00 UTC of today minus N days), verify the file, then delete them. Retention 0: nothing."""
    from quantdesk.observability.audit_export import retention_cutoff

    settings = _settings()
    days = settings.audit_retention_days
    cutoff = retention_cutoff(days, now=datetime.now(UTC))
    if cutoff is None:
        console.print(
            "Audit retention is off (QUANTDESK_AUDIT_RETENTION_DAYS=0): the audit trail is "
            "kept forever; nothing purged.",
            soft_wrap=True,
        )
        return
    console.print(
        f"Retention {days} days: purging audit rows before {_when(cutoff)}.", soft_wrap=True
    )
    _run(settings.data_dir, settings.resolved_database_url, cutoff, fmt, out, True)


def _settings() -> Settings:
    try:
        return Settings()
    except (ConfigError, ValueError) as exc:
        err.print(f"[bold red]Invalid settings:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc


def _run(
    data_dir: Path,
    url: str,
    cutoff: datetime,
    fmt_name: FormatName,
    out: Path | None,
    delete: bool,
) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from quantdesk.bootstrap import cli_actor
    from quantdesk.observability.audit_export import AuditExportError, ExportFormat, resolve_output

    fmt = ExportFormat(fmt_name)
    try:
        path = resolve_output(out, default_dir=data_dir / "audit-exports", cutoff=cutoff, fmt=fmt)
    except AuditExportError as exc:
        raise _fail(exc) from exc
    try:
        result = _with_progress(url, cutoff, fmt, path, delete, cli_actor())
    except AuditExportError as exc:
        raise _fail(exc) from exc
    except (OSError, SQLAlchemyError) as exc:
        # The driver's message, without SQLAlchemy's statement dump.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        err.print(
            f"[bold red]AUDIT_EXPORT_FAILED:[/] {escape(reason)}\nNothing was deleted.",
            soft_wrap=True,
        )
        raise typer.Exit(1) from exc
    _report(result, cutoff)


def _with_progress(
    url: str, cutoff: datetime, fmt: ExportFormat, path: Path, delete: bool, actor: Actor
) -> ExportResult:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from quantdesk.db.engine import create_engine, create_sessionmaker
    from quantdesk.observability.audit_export import export_audit

    with Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=err.is_terminal,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        async def run() -> ExportResult:
            engine = create_engine(url)
            try:
                return await export_audit(
                    create_sessionmaker(engine),
                    before=cutoff,
                    fmt=fmt,
                    path=path,
                    actor=actor,
                    delete_rows=delete,
                    progress=progress,
                )
            finally:
                await engine.dispose()

        return asyncio.run(run())


def _when(ts: datetime) -> str:
    return f"{ts.isoformat()} ({ts.astimezone(IST).strftime('%Y-%m-%d %H:%M')} IST)"


def _report(result: ExportResult, cutoff: datetime) -> None:
    from quantdesk.observability.audit_export import manifest_path

    if result.manifest is None or result.path is None:
        console.print(f"No audit rows before {_when(cutoff)}: nothing exported.", soft_wrap=True)
        return
    m = result.manifest
    console.print(
        f"Exported {m.rows} audit rows (ids {m.first_id}-{m.last_id}, at < {_when(cutoff)}) to "
        f"{escape(str(result.path))} ({m.format}, {m.file_bytes} bytes).\n"
        f"Verified: {m.rows} rows read back, content digest {m.digest}.\n"
        f"Manifest: {escape(str(manifest_path(result.path)))}",
        soft_wrap=True,
    )
    if m.deleted_rows is not None:
        console.print(f"Deleted {result.deleted} audit rows from the database.", soft_wrap=True)
    for warning in result.warnings or []:
        err.print(f"[yellow]Warning:[/] {escape(warning)}", soft_wrap=True)


def _fail(exc: AuditExportError) -> typer.Exit:
    err.print(
        f"[bold red]{exc.code}:[/] {escape(exc.message)}\nNothing was deleted.", soft_wrap=True
    )
    return typer.Exit(exc.exit_code)
