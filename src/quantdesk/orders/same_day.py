"""CNC same-day square-off: what a CNC sell closes of the same day's CNC buys is charged as
intraday, not delivery (shared/reference/india-charges.md, "Other rules worth modelling").

:meth:`~quantdesk.orders.service.Oms.apply_fill` charges every CNC fill as delivery when it
happens. With each CNC fill it also asks :func:`adjustment` for ONE journal entry that brings
the scrip's day to the reclassified charges (:meth:`ChargesCalculator.cnc_day`): the day's
adjustment as of this fill minus what earlier adjustments of that day already posted (found by
their ``ref``, :func:`adjustment_ref`). So partial fills adjust step by step, the total always
equals the reclassified charges, and recomputing never posts twice. The caller posts the entry
in the fill's transaction, after the fill's position row lock (fills of one scrip and account
are serialised) and with the fill's other entries (one lock order, no deadlock).

The fills' own ``fees`` (trades, positions) stay what was charged at fill time; the ledger
(the wallet) carries the adjustment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.core import ledger
from quantdesk.core.charges import (
    COMPONENTS,
    ChargesCalculator,
    ChargesError,
    CncFill,
    Exchange,
)
from quantdesk.core.orders import Product, Side
from quantdesk.errors import ValidationFailed
from quantdesk.orders.models import TradeRow
from quantdesk.wallet.models import JournalEntryRow, PostingRow

_IST: Final = ZoneInfo("Asia/Kolkata")
_ZERO: Final = Decimal(0)


def adjustment_ref(user_id: int, symbol: str, day: date) -> str:
    """The ``ref`` of every same-day adjustment of one account, scrip and (India) day."""
    return f"cnc-same-day:{user_id}:{symbol}:{day.isoformat()}"


async def adjustment(
    db: AsyncSession, calculator: ChargesCalculator, trade: TradeRow
) -> list[ledger.JournalEntry]:
    """The entry (none or one) that brings ``trade``'s scrip's CNC day to the reclassified
    charges, ``trade`` (the fill being applied, not stored yet) included. Only for CNC trades
    on the exchanges the charges schedule covers."""
    exchange = trade.symbol.partition(":")[0]
    if trade.product != Product.CNC.value or exchange not in Exchange.__members__:
        return []
    day = trade.at.astimezone(_IST).date()
    start = datetime.combine(day, datetime.min.time(), _IST).astimezone(UTC)
    q = select(TradeRow).where(
        TradeRow.user_id == trade.user_id,
        TradeRow.symbol == trade.symbol,
        TradeRow.product == Product.CNC.value,
        TradeRow.at >= start,
        TradeRow.at < start + timedelta(days=1),
    )
    trades = [*(await db.execute(q)).scalars(), trade]
    if all(t.side == Side.BUY.value for t in trades):
        return []  # nothing sold that day: nothing is intraday, nothing was adjusted before
    # In trading order; at one instant buys first, so a sell may close a buy of that instant.
    trades.sort(key=lambda t: (t.at, t.side != Side.BUY.value, t.id))
    try:
        fills = [CncFill(t.order_id, Side(t.side), t.quantity, t.price) for t in trades]
        target = calculator.cnc_day(exchange, day, fills)
    except ChargesError as exc:
        raise ValidationFailed(str(exc), code=exc.code) from exc
    ref = adjustment_ref(trade.user_id, trade.symbol, day)
    posted = await _posted(db, ref, trade.currency)
    delta = {c: a - posted.get(c, _ZERO) for c, a in target.adjustment.as_dict().items()}
    memo = (
        f"CNC same-day square-off, {trade.symbol} on {day.isoformat()}: "
        f"{target.intraday_quantity} bought and sold that day charged as intraday, not delivery "
        f"(day's adjustment {target.adjustment.total}; recomputed at trade {trade.broker_trade_id})"
    )
    entry = ledger.charges_adjustment(trade.user_id, delta, trade.currency, ref=ref, memo=memo)
    return [] if entry is None else [entry]


async def _posted(db: AsyncSession, ref: str, currency: str) -> dict[str, Decimal]:
    """What the adjustments with ``ref`` posted so far, per charge component."""
    accounts = {ledger.charge_account(c): c for c in COMPONENTS}
    q = (
        select(PostingRow.account, PostingRow.amount)
        .join(JournalEntryRow, JournalEntryRow.id == PostingRow.entry_id)
        .where(
            JournalEntryRow.ref == ref,
            JournalEntryRow.kind == ledger.EntryKind.ADJUSTMENT.value,
            PostingRow.currency == currency,
            PostingRow.account.in_(list(accounts)),
        )
    )
    # Summed here: SQLite stores money as text (see quantdesk.db.types.Money).
    sums: dict[str, Decimal] = {}
    for account, amount in (await db.execute(q)).all():
        sums[accounts[account]] = sums.get(accounts[account], _ZERO) + amount
    return sums
