/**
 * The run fields of the Strategies page (symbols, interval, dates, cash, costs, slippage, engine,
 * seed, benchmark): the browser's checks, mirroring BacktestIn / BacktestRequest, and the bodies
 * of POST /backtests and POST /strategies/{name}/deployments. Money stays a decimal string.
 */
import type { BacktestIn, DeploymentIn } from "../api/queries";
import { cmp, dec, parseDec } from "./decimal";

export const BACKTEST_INTERVALS = ["1m", "5m", "15m", "30m", "1h", "1d"] as const;
export type RunInterval = (typeof BACKTEST_INTERVALS)[number];

export interface RunForm {
  symbols: string[];
  interval: RunInterval;
  start: string;
  end: string;
  cash: string;
  costs: "india" | "bps";
  bps: string;
  slippage: string;
  engine: "event" | "vector";
  seed: string;
  benchmark: string;
}

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
/** BacktestIn's decimal pattern: up to 13 integer digits and 8 decimals */
const MONEY_RE = /^[0-9]{1,13}(\.[0-9]{1,8})?$/;
const SYMBOL_RE = /^[A-Za-z0-9_-]+:[^\s:]+$/;

function validDate(text: string): boolean {
  if (!DATE_RE.test(text)) return false;
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(text);
}

function bps(text: string, what: string): string | null {
  const t = text.trim();
  if (!MONEY_RE.test(t)) return `${what} must be a number of basis points (0 to 1000).`;
  return cmp(dec(t), dec("1000")) > 0 ? `${what} must be at most 1000 bps.` : null;
}

/** Problems per field; `deploy` checks only what a deployment takes (symbols, interval). */
export function validateRun(form: RunForm, opts: { vectorized: boolean; deploy?: boolean }): Record<string, string> {
  const errors: Record<string, string> = {};
  if (form.symbols.length === 0) errors.symbols = "Choose at least one symbol.";
  if (new Set(form.symbols).size !== form.symbols.length) errors.symbols = "A symbol is listed twice.";
  if (opts.deploy) return errors;

  if (!validDate(form.start)) errors.start = "A date, YYYY-MM-DD.";
  if (!validDate(form.end)) errors.end = "A date, YYYY-MM-DD.";
  if (!errors.start && !errors.end && form.start > form.end) errors.end = "The end is before the start.";

  const cash = form.cash.trim();
  const c = MONEY_RE.test(cash) ? parseDec(cash) : null;
  if (!c) errors.cash = "Rupees, up to 8 decimals (e.g. 1000000).";
  else if (c.units <= 0n) errors.cash = "Must be more than 0.";
  else if (cmp(c, dec("1000000000000")) > 0) errors.cash = "At most ₹10^12.";

  if (form.costs === "bps") {
    const e = bps(form.bps, "Costs");
    if (e) errors.costs = e;
  }
  if (form.slippage.trim()) {
    const e = bps(form.slippage, "Slippage");
    if (e) errors.slippage_bps = e;
  }
  if (form.engine === "vector" && !opts.vectorized) errors.engine = "This strategy has no vectorized form.";
  const seed = form.seed.trim();
  if (seed && (!/^\d+$/.test(seed) || BigInt(seed) > 2147483647n)) errors.seed = "A whole number from 0 to 2147483647.";
  const bench = form.benchmark.trim();
  if (bench && !SYMBOL_RE.test(bench)) errors.benchmark = "EXCHANGE:SYMBOL, e.g. NSE:NIFTY50.";
  return errors;
}

export function backtestBody(strategy: string, form: RunForm, params: Record<string, unknown>): BacktestIn {
  const body: BacktestIn = {
    strategy,
    symbols: form.symbols,
    interval: form.interval,
    start: form.start,
    end: form.end,
    params,
    cash: form.cash.trim(),
    costs: form.costs === "india" ? "india" : `bps:${form.bps.trim()}`,
    engine: form.engine,
    seed: form.seed.trim() ? Number(form.seed.trim()) : 0,
  };
  if (form.slippage.trim()) body.slippage_bps = form.slippage.trim();
  if (form.benchmark.trim()) body.benchmark = form.benchmark.trim().toUpperCase();
  return body;
}

export function deploymentBody(form: RunForm, params: Record<string, unknown>): DeploymentIn {
  return { symbols: form.symbols, interval: form.interval, params };
}
