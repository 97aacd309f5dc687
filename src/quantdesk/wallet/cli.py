"""``quantdesk ledger``: check the stored ledger (DESIGN invariant 2)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from quantdesk.wallet.service import VerifyReport

app = typer.Typer(help="The wallet ledger.", no_args_is_help=True)


@app.command("verify")
def verify_command() -> None:
    """Check that every entry balances per currency and every cached balance equals the sum of
    its postings. Exit 0 when it holds, 1 naming the first discrepancy, 2 on bad settings."""
    # Imported here: the CLI starts without loading SQLAlchemy for other commands.
    from quantdesk.db.engine import create_engine, create_sessionmaker
    from quantdesk.settings import ConfigError, Settings
    from quantdesk.wallet.service import verify

    try:
        url = Settings().resolved_database_url
    except (ConfigError, ValueError) as exc:
        typer.echo(f"Invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def run() -> VerifyReport:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as db:
                return await verify(db)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    summary = (
        f"{report.entries} entries, {report.postings} postings, {report.accounts} accounts "
        f"checked in {report.seconds:.3f}s"
    )
    if report.discrepancy is None:
        typer.echo(f"Ledger OK: {summary}.")
        return
    d = report.discrepancy
    typer.echo(f"Ledger FAILED: {d.kind}: {d.message}", err=True)
    typer.echo(f"{report.discrepancies} discrepancies in all; {summary}.", err=True)
    raise typer.Exit(1)
