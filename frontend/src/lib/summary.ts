/**
 * The Dashboard's account summary from the REST data (GET /positions, GET /wallet), in exact
 * decimal arithmetic: equity, cash, day P&L and unrealised P&L.
 *
 * Equity = wallet total + Σ CNC quantity × last_price + Σ MIS unrealised P&L (an MIS position's
 * margin is already inside the wallet total). A figure that needs a mark the server does not
 * have (last_price / unrealised_pnl / day_pnl null on an open position) is null rather than a
 * wrong number, and `missing*` lists the symbols to say why.
 */
import { add, mulInt, parseDec, toString, type Dec } from "./decimal";

export interface SummaryPosition {
  symbol: string;
  product: string;
  quantity: number;
  last_price: string | null;
  unrealised_pnl: string | null;
  day_pnl: string | null;
}

export interface SummaryBalance {
  available: string;
  held: string;
  margin: string;
  total: string;
}

export interface AccountSummary {
  /** null when a mark is missing (see missingMarks) or there is no INR balance */
  equity: string | null;
  cash: string | null;
  dayPnl: string | null;
  unrealisedPnl: string | null;
  /** open positions without a mark (so equity is unknown) */
  missingMarks: string[];
  /** open positions without a day P&L (so day P&L is unknown) */
  missingDayPnl: string[];
}

const ZERO: Dec = { units: 0n, scale: 0 };

function label(p: SummaryPosition): string {
  return `${p.symbol} (${p.product})`;
}

export function computeSummary(
  positions: readonly SummaryPosition[],
  balance: SummaryBalance | null | undefined,
): AccountSummary {
  const missingMarks: string[] = [];
  const missingDayPnl: string[] = [];
  let holdings = ZERO; // CNC market value + MIS unrealised
  let unrealised = ZERO;
  let day = ZERO;
  let unrealisedKnown = true;
  for (const p of positions) {
    const open = p.quantity !== 0;
    const dayPnl = p.day_pnl === null ? null : parseDec(p.day_pnl);
    // a closed position can still carry today's (realised) day P&L
    if (dayPnl) day = add(day, dayPnl);
    else if (open) missingDayPnl.push(label(p));
    if (!open) continue;
    const mark = p.last_price === null ? null : parseDec(p.last_price);
    const upnl = p.unrealised_pnl === null ? null : parseDec(p.unrealised_pnl);
    if (upnl) unrealised = add(unrealised, upnl);
    else unrealisedKnown = false;
    if (p.product === "CNC") {
      if (!mark) {
        missingMarks.push(label(p));
        continue;
      }
      holdings = add(holdings, mulInt(mark, p.quantity));
    } else {
      if (!upnl) {
        missingMarks.push(label(p));
        continue;
      }
      holdings = add(holdings, upnl);
    }
  }
  const total = balance ? parseDec(balance.total) : null;
  return {
    equity: total && !missingMarks.length ? toString(add(total, holdings)) : null,
    cash: balance ? balance.available : null,
    dayPnl: missingDayPnl.length ? null : toString(day),
    unrealisedPnl: !unrealisedKnown ? null : toString(unrealised),
    missingMarks,
    missingDayPnl,
  };
}
