"""``quantdesk charges``: a broker-style charges calculator on the command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from quantdesk.core.charges import Exchange, Segment

console = Console()
err = Console(stderr=True)

_LABELS = {
    "brokerage": "Brokerage",
    "stt": "STT",
    "exchange_charge": "Exchange transaction charge",
    "sebi_fee": "SEBI fee",
    "stamp_duty": "Stamp duty",
    "gst": "GST",
    "dp_charge": "DP charge",
}


def charges_command(
    segment: Annotated[
        Segment, typer.Option(help="equity_delivery (CNC) or equity_intraday (MIS).")
    ],
    exchange: Annotated[Exchange, typer.Option(case_sensitive=False, help="NSE or BSE.")],
    buy: Annotated[str, typer.Option("--buy", help="Buy price, e.g. 1000.50.")],
    sell: Annotated[str, typer.Option("--sell", help="Sell price.")],
    quantity: Annotated[int, typer.Option(help="Shares bought and sold.")],
    trade_date: Annotated[
        str | None, typer.Option("--date", help="Trade date, YYYY-MM-DD; default today in India.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON with decimal strings.")] = False,
) -> None:
    """Charges, P&L and break-even of buying and selling QUANTITY shares (Indian equity, at the
    rates in force on the date, Zerodha's brokerage)."""
    from quantdesk.charges import service
    from quantdesk.charges.schemas import ChargesEstimateOut
    from quantdesk.errors import AppError

    try:
        result = service.estimate(segment, exchange, buy, sell, quantity, trade_date)
    except AppError as exc:
        err.print(f"[bold red]{exc.code}:[/] {exc.message}", highlight=False)
        raise typer.Exit(2) from exc
    out = ChargesEstimateOut.of(result)
    if as_json:
        sys.stdout.write(out.model_dump_json(indent=2) + "\n")
        return
    table = Table(
        "", "rupees", title=f"{out.segment.value}, {out.exchange.value}, {out.trade_date}"
    )
    table.columns[1].justify = "right"
    table.add_row("Buy", f"{out.quantity} @ {out.buy_price}")
    table.add_row("Sell", f"{out.quantity} @ {out.sell_price}")
    table.add_row("Turnover", out.turnover)
    table.add_section()
    for name, label in _LABELS.items():
        table.add_row(label, getattr(out, name))
    table.add_section()
    table.add_row("[bold]Total charges[/]", f"[bold]{out.total}[/]")
    table.add_row("Gross P&L", out.gross_pnl)
    table.add_row("[bold]Net P&L[/]", f"[bold]{out.net_pnl}[/]")
    table.add_row("Points to break even", out.breakeven_points)
    console.print(table)
    console.print(
        f"{out.broker} tariff; statutory rates in force from {out.schedule_from}. STT and stamp "
        "duty are rounded to the rupee, the rest to the paisa.",
        style="dim",
    )
