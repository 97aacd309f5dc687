"""``quantdesk instruments ...``: import a broker's instrument list, search, seed the demo set."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the CLI starts fast: database modules load only when a command runs
    from sqlalchemy.ext.asyncio import AsyncSession

    from quantdesk.market.instruments import ImportReport
    from quantdesk.market.models import Instrument

app = typer.Typer(help="The instruments master.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

T = TypeVar("T")


class FileFormat(StrEnum):
    KITE = "kite"


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from quantdesk.cli import _settings
    from quantdesk.db.engine import create_engine, create_sessionmaker

    settings = _settings()

    async def main() -> T:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with create_sessionmaker(engine)() as db:
                return await work(db)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _show_report(report: ImportReport, out: Console) -> None:
    out.print(report.summary())
    if report.issues:
        table = Table("row", "line", "column", "code", "problem", title="Problems")
        for issue in report.issues:
            table.add_row(
                "" if issue.row is None else str(issue.row),
                "" if issue.line is None else str(issue.line),
                issue.column or "",
                issue.code,
                issue.message,
            )
        out.print(table)
        if report.issue_count > len(report.issues):
            out.print(f"... and {report.issue_count - len(report.issues)} more problems.")


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The CSV file.")],
    file_format: Annotated[
        FileFormat, typer.Option("--format", help="File layout (Kite: GET /instruments).")
    ] = FileFormat.KITE,
    drop_bad: Annotated[
        bool, typer.Option("--drop-bad", help="Write the good rows even if some are bad.")
    ] = False,
) -> None:
    """Import instruments from PATH, upserting by exchange and symbol. Any bad row rejects the
    file (exit 1, nothing written) unless --drop-bad."""
    from quantdesk.bootstrap import cli_actor
    from quantdesk.market import instruments

    report = _run(
        lambda db: instruments.import_kite_csv(
            db, path, actor=cli_actor(), drop_bad=drop_bad, filename=path.name
        )
    )
    _show_report(report, console if report.accepted else err)
    if not report.accepted:
        raise typer.Exit(1)


@app.command("search")
def search_command(
    q: Annotated[str, typer.Argument(help="Symbol prefix, part of the name, or ISIN.")] = "",
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """Search instruments (exact symbol first, then symbol prefix, then name)."""
    from quantdesk.market import instruments

    rows = _run(lambda db: instruments.search(db, q, limit, exchange=exchange))
    console.print(_table(rows, title=f"{len(rows)} instruments"))


@app.command("seed-demo")
def seed_demo_command() -> None:
    """Add the demo universe (NIFTY 50 stocks, NIFTY 50 and NIFTY BANK) where missing."""
    from quantdesk.bootstrap import cli_actor
    from quantdesk.market import instruments

    report = _run(lambda db: instruments.seed_demo_universe(db, cli_actor()))
    console.print(
        f"Demo universe: {report.inserted} instruments added, {report.existing} already present."
    )


def _table(rows: list[Instrument], title: str) -> Table:
    from quantdesk.market.schemas import InstrumentOut

    table = Table(
        "instrument", "name", "type", "ISIN", "tick", "lot", "band %", "last", title=title
    )
    for inst in rows:
        out = InstrumentOut.of(inst)
        table.add_row(
            out.ref,
            out.name,
            out.instrument_type,
            out.isin or "",
            out.tick_size,
            str(out.lot_size),
            out.price_band_pct or "",
            out.last_price or "",
        )
    return table
