/**
 * Backtest results for display: the summary's metrics, equity curves normalised for comparison,
 * and the `jobs` WebSocket frames folded into the runs the UI holds.
 *
 * Money (final equity, charges, P&L in the summary and the curves) arrives as decimal strings and
 * is shown as sent; numbers become floats only as chart coordinates and ratios.
 */
import type { Backtest, BacktestPage, EquityPoint } from "../api/queries";

export type BacktestStatus = Backtest["status"];
export const LIVE_BACKTEST: BacktestStatus[] = ["queued", "running"];
export const isLive = (status: BacktestStatus | string) => status === "queued" || status === "running";

export interface Metrics {
  total_return?: number;
  cagr?: number;
  annual_volatility?: number;
  sharpe?: number;
  sortino?: number;
  calmar?: number;
  max_drawdown?: number;
  max_drawdown_duration_days?: number;
  win_rate?: number;
  profit_factor?: number;
  average_trade?: number;
  trades?: number;
  exposure?: number;
  turnover?: number;
  alpha?: number;
  beta?: number;
  benchmark?: Partial<Record<"total_return" | "cagr" | "annual_volatility" | "sharpe" | "max_drawdown", number>>;
  [key: string]: unknown;
}

export interface Summary {
  initial_cash?: string;
  final_equity?: string;
  final_cash?: string;
  fills?: number;
  orders?: number;
  round_trips?: number;
  bars?: number;
  seconds?: number;
  charges?: Record<string, string>;
  metrics?: Metrics;
  reproducibility?: {
    source_hash?: string;
    data_fingerprint?: string;
    fill_model?: Record<string, unknown>;
    seed?: number;
    code_version?: string;
  };
  [key: string]: unknown;
}

export function summaryOf(run: Pick<Backtest, "summary">): Summary | null {
  return (run.summary as Summary | null) ?? null;
}

export function metricsOf(run: Pick<Backtest, "summary">): Metrics {
  return summaryOf(run)?.metrics ?? {};
}

export type MetricFormat = "pct" | "ratio" | "int" | "days" | "inr";

export interface MetricDef {
  key: keyof Metrics & string;
  label: string;
  format: MetricFormat;
  /** larger is better (for highlighting the best run in a comparison) */
  better?: "high" | "low";
  benchmark?: boolean;
}

export const METRICS: MetricDef[] = [
  { key: "total_return", label: "Total return", format: "pct", better: "high", benchmark: true },
  { key: "cagr", label: "CAGR", format: "pct", better: "high", benchmark: true },
  { key: "annual_volatility", label: "Volatility (annual)", format: "pct", better: "low", benchmark: true },
  { key: "sharpe", label: "Sharpe", format: "ratio", better: "high", benchmark: true },
  { key: "sortino", label: "Sortino", format: "ratio", better: "high" },
  { key: "calmar", label: "Calmar", format: "ratio", better: "high" },
  { key: "max_drawdown", label: "Max drawdown", format: "pct", better: "high", benchmark: true },
  { key: "max_drawdown_duration_days", label: "Max drawdown duration", format: "days", better: "low" },
  { key: "win_rate", label: "Win rate", format: "pct", better: "high" },
  { key: "profit_factor", label: "Profit factor", format: "ratio", better: "high" },
  { key: "average_trade", label: "Average trade", format: "inr", better: "high" },
  { key: "trades", label: "Round trips", format: "int" },
  { key: "exposure", label: "Exposure", format: "pct" },
  { key: "turnover", label: "Turnover", format: "ratio" },
  { key: "alpha", label: "Alpha", format: "pct", better: "high" },
  { key: "beta", label: "Beta", format: "ratio" },
];

const pct = new Intl.NumberFormat("en-IN", { style: "percent", minimumFractionDigits: 2, maximumFractionDigits: 2 });
const ratio = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const int = new Intl.NumberFormat("en-IN", { maximumFractionDigits: 0 });
const inr = new Intl.NumberFormat("en-IN", { style: "currency", currency: "INR" });

export function formatMetric(value: unknown, format: MetricFormat): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "—";
  switch (format) {
    case "pct":
      return pct.format(value);
    case "ratio":
      return ratio.format(value);
    case "int":
      return int.format(value);
    case "days":
      return `${int.format(value)} d`;
    case "inr":
      // the summary's metrics are JSON numbers; String() gives back the digits the server sent
      return inr.format(String(value) as unknown as number);
  }
}

/** The index of the best value of a row (null when no rule or fewer than two values). */
export function bestIndex(values: unknown[], better: "high" | "low" | undefined): number | null {
  if (!better) return null;
  let best: number | null = null;
  values.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) return;
    const b = best === null ? undefined : (values[best] as number);
    if (b === undefined || (better === "high" ? v > b : v < b)) best = i;
  });
  return values.filter((v) => typeof v === "number").length > 1 ? best : null;
}

export interface LinePoint {
  /** epoch seconds UTC */
  time: number;
  value: number;
}

/**
 * An equity curve as growth of 1.0: each point's equity divided by the starting cash (the
 * curve's own first point when the cash is unknown). The API may thin a long curve to buckets
 * whose last bar it keeps, so its first point is not the start: the cash is the right base.
 * Points are sorted by time, duplicates dropped (the chart needs strictly increasing times).
 */
export function normaliseEquity(points: Pick<EquityPoint, "time" | "equity">[], initialCash?: string | null): LinePoint[] {
  const parsed = points
    .map((p) => ({ time: Math.floor(Date.parse(p.time) / 1000), value: Number(p.equity) }))
    .filter((p) => Number.isFinite(p.time) && Number.isFinite(p.value))
    .sort((a, b) => a.time - b.time);
  const base = initialCash != null && Number(initialCash) > 0 ? Number(initialCash) : parsed[0]?.value;
  if (!base) return [];
  const out: LinePoint[] = [];
  for (const p of parsed) {
    const v = p.value / base;
    if (out.length && out[out.length - 1]!.time === p.time) out[out.length - 1] = { time: p.time, value: v };
    else out.push({ time: p.time, value: v });
  }
  return out;
}

/** A numeric series for the chart from decimal strings (null values skipped). */
export function lineOf<P extends { time: string } = EquityPoint>(points: P[], pick: (p: P) => string | number | null | undefined, scale = 1): LinePoint[] {
  const out: LinePoint[] = [];
  for (const p of points) {
    const raw = pick(p);
    if (raw === null || raw === undefined) continue;
    const time = Math.floor(Date.parse(p.time) / 1000);
    const value = Number(raw) * scale;
    if (!Number.isFinite(time) || !Number.isFinite(value)) continue;
    if (out.length && out[out.length - 1]!.time >= time) continue;
    out.push({ time, value });
  }
  return out;
}

// --- the `jobs` channel ---------------------------------------------------------------------

export interface JobEvent {
  kind: string;
  id: string;
  status: BacktestStatus;
  progress: number;
  summary?: Record<string, unknown>;
  error?: Backtest["error"];
}

const STATUSES: BacktestStatus[] = ["queued", "running", "succeeded", "failed", "cancelled"];

/** The job event of a `jobs` frame, or null when the frame is something else. */
export function parseJobFrame(frame: { channel?: string; data?: unknown }): JobEvent | null {
  if (frame.channel !== "jobs" || !frame.data || typeof frame.data !== "object") return null;
  const d = frame.data as Record<string, unknown>;
  if (typeof d.id !== "string" || !STATUSES.includes(d.status as BacktestStatus)) return null;
  if (d.kind !== undefined && d.kind !== "backtest") return null;
  const progress = typeof d.progress === "number" && Number.isFinite(d.progress) ? Math.min(1, Math.max(0, d.progress)) : 0;
  return {
    kind: "backtest",
    id: d.id,
    status: d.status as BacktestStatus,
    progress,
    summary: d.summary && typeof d.summary === "object" ? (d.summary as Record<string, unknown>) : undefined,
    error: d.error && typeof d.error === "object" ? (d.error as Backtest["error"]) : undefined,
  };
}

const RANK: Record<BacktestStatus, number> = { queued: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };

/**
 * A run with a job event applied: status, progress, and the summary or error that come with the
 * end. A stale event (a `running` arriving after the run ended, say) never moves a run back.
 */
export function applyJobEvent<T extends Backtest>(run: T, event: JobEvent): T {
  if (run.id !== event.id) return run;
  if (RANK[event.status] < RANK[run.status]) return run;
  if (!isLive(run.status) && run.status !== event.status) return run;
  const progress = event.status === "succeeded" ? 1 : event.status === run.status ? Math.max(run.progress, event.progress) : event.progress;
  return {
    ...run,
    status: event.status,
    progress,
    summary: event.summary ?? run.summary,
    error: event.error ?? run.error,
  };
}

/** A list page with the event applied to its run (the same object when it holds no such run). */
export function applyJobEventToPage(page: BacktestPage, event: JobEvent): BacktestPage {
  if (!page.items.some((r) => r.id === event.id)) return page;
  return { ...page, items: page.items.map((r) => applyJobEvent(r, event)) };
}

// --- small helpers --------------------------------------------------------------------------

/** "fast=5, slow=20" */
export function paramsText(params: Record<string, unknown> | undefined | null): string {
  if (!params) return "";
  return Object.entries(params)
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(", ");
}

/** Today's date in India (the exchange's zone) as YYYY-MM-DD, shifted by `days`. */
export function isoDate(days = 0, now = new Date()): string {
  const d = new Date(now.getTime() + days * 86_400_000);
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Kolkata" }).format(d);
}
