/**
 * The Dashboard's account summary from the REST data (GET /positions, GET /wallet), in exact
 * decimal arithmetic: equity, cash, day P&L and unrealised P&L.
 *
 * Equity = wallet total + Σ CNC quantity × last_price + Σ MIS unrealised P&L (an MIS position's
 * margin is already inside the wallet total). A figure that needs a mark the server does not
 * have (last_price / unrealised_pnl / day_pnl null on an open position) is null rather than a
 * wrong number, and `missing*` lists the symbols to say why.
 *
 * `markToLive` re-marks a REST position to a live quote (the positions table and the summary strip
 * both use it, so they agree after every `quotes:` frame).
 */
import { add, mulInt, parseDec, sub, toString, type Dec } from "./decimal";

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

/**
 * A position re-marked to the live last price, exactly:
 * - unrealised P&L = (live − average) × quantity (what the positions table shows);
 * - day P&L = REST day_pnl + quantity × (live − REST last_price), i.e. the REST figure moved by
 *   the price change since the server marked it;
 * - last_price = live.
 * A closed position, a missing/unparseable quote, or a missing average / REST mark leaves the
 * corresponding REST figure as it is.
 */
export function markToLive<
  P extends Pick<SummaryPosition, "quantity" | "last_price" | "unrealised_pnl" | "day_pnl"> & {
    average_price?: string | null;
  },
>(p: P, live: string | null | undefined): P {
  const mark = parseDec(live ?? "");
  if (!mark || p.quantity === 0) return p;
  const avg = parseDec(p.average_price ?? "");
  const restMark = parseDec(p.last_price ?? "");
  const restDay = parseDec(p.day_pnl ?? "");
  return {
    ...p,
    last_price: live ?? p.last_price,
    unrealised_pnl: avg ? toString(mulInt(sub(mark, avg), p.quantity)) : p.unrealised_pnl,
    day_pnl: restDay && restMark ? toString(add(restDay, mulInt(sub(mark, restMark), p.quantity))) : p.day_pnl,
  };
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
