/**
 * The Models page's logic: the training form's checks (mirroring MLRunIn and the service's
 * `normalise_request`) and its POST /ml/runs body; a run's headline figures (OOS AUC, net Sharpe,
 * checks) read from its result; the `jobs` channel's `ml_train` events folded into the cached
 * runs; a model's stored signals as chart markers.
 */
import { ApiError } from "../api/errors";
import type { MlRun, MlRunIn, MlRunPage, MlRunStatus, SignalPoint } from "../api/queries";

export const ML_MODELS = ["xgboost", "lstm"] as const;
export const ML_INTERVALS = ["1m", "5m", "15m", "30m", "1h", "1d"] as const;
export const ML_ALIASES = ["champion", "challenger"] as const;
export type MlModelKind = (typeof ML_MODELS)[number];
export type MlInterval = (typeof ML_INTERVALS)[number];
export type MlAlias = (typeof ML_ALIASES)[number];

export interface TrainForm {
  model: MlModelKind;
  symbols: string[];
  interval: MlInterval;
  start: string;
  end: string;
  label: string;
  folds: string;
  trials: string;
  threshold: string;
  costs: "india" | "bps";
  bps: string;
  name: string;
}

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
/** dataset.py's _LABEL: forward:H or triple-barrier[:H[:PT[:SL]]] */
const LABEL_RE = /^(?:forward:(\d+)|triple-barrier(?::(\d+)(?::([\d.]+)(?::([\d.]+))?)?)?)$/;
/** schemas.py's MODEL_NAME_PATTERN: also a file name, so no separators */
export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const BPS_RE = /^[0-9]{1,4}(\.[0-9]{1,8})?$/;
const MAX_SYMBOLS = 200;

function validDate(text: string): boolean {
  if (!DATE_RE.test(text)) return false;
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(text);
}

function wholeIn(text: string, low: number, high: number): boolean {
  const t = text.trim();
  return /^\d+$/.test(t) && Number(t) >= low && Number(t) <= high;
}

/** Problems per field (keys are MLRunIn's field names), empty when the form may be sent. */
export function validateTrain(form: TrainForm): Record<string, string> {
  const errors: Record<string, string> = {};
  if (form.symbols.length === 0) errors.symbols = "Choose at least one symbol.";
  else if (new Set(form.symbols).size !== form.symbols.length) errors.symbols = "A symbol is listed twice.";
  else if (form.symbols.length > MAX_SYMBOLS) errors.symbols = `At most ${MAX_SYMBOLS} symbols.`;

  if (!validDate(form.start)) errors.start = "A date, YYYY-MM-DD.";
  if (!validDate(form.end)) errors.end = "A date, YYYY-MM-DD.";
  if (!errors.start && !errors.end && form.start > form.end) errors.end = "The end is before the start.";

  const label = LABEL_RE.exec(form.label.trim());
  if (!label) {
    errors.label = "forward:H or triple-barrier[:H[:PT[:SL]]], e.g. forward:5.";
  } else {
    const horizon = Number(label[1] ?? label[2] ?? 10);
    const barriers = [label[3], label[4]].filter((x) => x !== undefined).map(Number);
    if (horizon < 1 || horizon > 10_000) errors.label = "The horizon must be 1 to 10000 bars.";
    else if (barriers.some((b) => !Number.isFinite(b) || b <= 0)) errors.label = "Barriers must be positive.";
  }

  if (!wholeIn(form.folds, 2, 20)) errors.folds = "A whole number from 2 to 20.";
  if (!wholeIn(form.trials, 0, 500)) errors.trials = "A whole number from 0 to 500.";
  const threshold = Number(form.threshold.trim());
  if (!form.threshold.trim() || !Number.isFinite(threshold) || threshold <= 0 || threshold >= 1) {
    errors.threshold = "A probability strictly between 0 and 1.";
  }
  if (form.costs === "bps") {
    const t = form.bps.trim();
    if (!BPS_RE.test(t) || Number(t) > 1000) errors.costs = "Costs must be a number of basis points (0 to 1000).";
  }
  const name = form.name.trim();
  if (name && !MODEL_NAME_RE.test(name)) {
    errors.name = "Letters, digits, '.', '_' or '-' (starting with a letter or digit), at most 100.";
  }
  return errors;
}

/** The POST /ml/runs body of a valid form (an empty name: the server's MODEL-INTERVAL). */
export function trainBody(form: TrainForm): MlRunIn {
  const body: MlRunIn = {
    model: form.model,
    symbols: form.symbols,
    interval: form.interval,
    start: form.start,
    end: form.end,
    label: form.label.trim(),
    dead_zone: 0,
    folds: Number(form.folds.trim()),
    trials: Number(form.trials.trim()),
    embargo: 0.01,
    threshold: Number(form.threshold.trim()),
    costs: form.costs === "india" ? "india" : `bps:${form.bps.trim()}`,
    seed: 0,
  };
  const name = form.name.trim();
  if (name) body.name = name;
  return body;
}

// --- a run's figures ----------------------------------------------------------------------------

export const isMlLive = (status: MlRunStatus | string) => status === "queued" || status === "running";

function finite(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

export interface RunFigures {
  version?: number;
  auc?: number;
  aucSe?: number;
  sharpeNet?: number;
  totalReturn?: number;
  maxDrawdown?: number;
  trades?: number;
  icReturn?: number;
  checks: "passed" | "failed" | null;
}

/** The headline figures of a succeeded run (all undefined before, or when the JSON had NaN). */
export function figuresOf(run: Pick<MlRun, "result">): RunFigures {
  const r = run.result;
  if (!r) return { checks: null };
  const oos = r.oos ?? {};
  const passed = (r.checks ?? {}).passed;
  return {
    version: r.version,
    auc: finite(oos.auc),
    aucSe: finite(oos.auc_se),
    sharpeNet: finite(oos.sharpe_net),
    totalReturn: finite(oos.total_return),
    maxDrawdown: finite(oos.max_drawdown),
    trades: finite(oos.trades),
    icReturn: finite(oos.ic_return),
    checks: typeof passed === "boolean" ? (passed ? "passed" : "failed") : null,
  };
}

const fixed = (digits: number) => new Intl.NumberFormat("en-IN", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const formats = { 2: fixed(2), 3: fixed(3), 4: fixed(4) } as const;
const pct = new Intl.NumberFormat("en-IN", { style: "percent", minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** A metric with `digits` decimals, "—" when missing or not finite. */
export function fmt(value: unknown, digits: 2 | 3 | 4 = 3): string {
  const v = finite(value);
  return v === undefined ? "—" : formats[digits].format(v);
}

export function fmtPct(value: unknown): string {
  const v = finite(value);
  return v === undefined ? "—" : pct.format(v);
}

/** One check of the result's `checks` ({lookahead: {passed, error?}, edge: {passed, ...}}). */
export interface CheckRow {
  name: string;
  passed: boolean | null;
  detail: string;
}

export function checkRows(checks: Record<string, unknown> | undefined): CheckRow[] {
  if (!checks) return [];
  const rows: CheckRow[] = [];
  for (const [name, value] of Object.entries(checks)) {
    if (name === "passed" || !value || typeof value !== "object") continue;
    const c = value as Record<string, unknown>;
    let detail = "";
    if (name === "edge") {
      detail = `AUC ${fmt(c.auc)} vs 0.5 + 2 × SE ${fmt(c.auc_se)}${typeof c.rule === "string" ? ` (${c.rule})` : ""}`;
    } else if (name === "lookahead") {
      detail = typeof c.error === "string" ? c.error : "no feature reads a later bar";
    } else if (typeof c.error === "string") {
      detail = c.error;
    }
    rows.push({ name, passed: typeof c.passed === "boolean" ? c.passed : null, detail });
  }
  return rows;
}

/** The stage report: "folds 2/3", or null while queued. */
export function stageText(progress: MlRun["progress"]): string | null {
  if (!progress.stage) return null;
  return progress.total > 0 ? `${progress.stage} ${progress.done}/${progress.total}` : progress.stage;
}

// --- errors -------------------------------------------------------------------------------------

export function isExtraMissing(error: unknown): boolean {
  return error instanceof ApiError && error.code === "ML_EXTRA_MISSING";
}

/** The pip command a 503 ML_EXTRA_MISSING names, when it does. */
export function pipCommand(error: unknown): string | null {
  if (!(error instanceof ApiError)) return null;
  const pip = (error.details as { pip?: unknown } | null | undefined)?.pip;
  return typeof pip === "string" ? pip : null;
}

// --- the jobs channel ---------------------------------------------------------------------------

export interface MlJobEvent {
  kind: "ml_train";
  id: string;
  status: MlRunStatus;
  fraction: number;
  stage: { stage: string | null; done: number; total: number } | null;
  result?: { run_id?: string; model_name?: string; version?: number };
  error?: { code: string; message: string; trace?: string | null };
}

const STATUSES: MlRunStatus[] = ["queued", "running", "succeeded", "failed", "cancelled"];
const RANK: Record<MlRunStatus, number> = { queued: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };

/** An `ml_train` event of the `jobs` channel (backtests' events are not), or null. */
export function parseMlJobFrame(frame: { channel?: string; data?: unknown }): MlJobEvent | null {
  if (frame.channel !== "jobs" || !frame.data || typeof frame.data !== "object") return null;
  const d = frame.data as Record<string, unknown>;
  if (d.kind !== "ml_train" || typeof d.id !== "string" || !STATUSES.includes(d.status as MlRunStatus)) return null;
  const fraction = typeof d.progress === "number" && Number.isFinite(d.progress) ? Math.min(1, Math.max(0, d.progress)) : 0;
  let stage: MlJobEvent["stage"] = null;
  if (d.stage && typeof d.stage === "object") {
    const s = d.stage as Record<string, unknown>;
    stage = {
      stage: typeof s.stage === "string" ? s.stage : null,
      done: typeof s.done === "number" ? s.done : 0,
      total: typeof s.total === "number" ? s.total : 0,
    };
  }
  return {
    kind: "ml_train",
    id: d.id,
    status: d.status as MlRunStatus,
    fraction,
    stage,
    result: d.result && typeof d.result === "object" ? (d.result as MlJobEvent["result"]) : undefined,
    error: d.error && typeof d.error === "object" ? (d.error as MlJobEvent["error"]) : undefined,
  };
}

/** A run with an event applied; a stale event (running after the end, a lower fraction) never moves it back. */
export function applyMlJobEvent(run: MlRun, event: MlJobEvent): MlRun {
  if (run.id !== event.id) return run;
  if (RANK[event.status] < RANK[run.status]) return run;
  if (!isMlLive(run.status) && run.status !== event.status) return run;
  const fraction =
    event.status === "succeeded" ? 1 : event.status === run.status ? Math.max(run.progress.fraction, event.fraction) : event.fraction;
  const stage = event.stage ?? { stage: run.progress.stage, done: run.progress.done, total: run.progress.total };
  return {
    ...run,
    status: event.status,
    progress: { ...run.progress, ...stage, fraction },
    error: event.error ? { code: event.error.code, message: event.error.message, trace: event.error.trace ?? null } : run.error,
  };
}

export function applyMlJobEventToPage(page: MlRunPage, event: MlJobEvent): MlRunPage {
  let changed = false;
  const items = page.items.map((r) => {
    const next = applyMlJobEvent(r, event);
    if (next !== r) changed = true;
    return next;
  });
  return changed ? { ...page, items } : page;
}

// --- signals on the price chart -----------------------------------------------------------------

export interface SignalMark {
  /** ISO time the signal is known (its bar's end) */
  at: string;
  signal: 1 | -1;
  /** the model's probability, when stored */
  value: number | null;
}

/**
 * Where a model's signal turns +1 or −1 (from 0, the other side, or the start): one marker per
 * change rather than per bar, so a long run of the same signal is one arrow.
 */
export function signalMarks(points: Pick<SignalPoint, "time" | "signal" | "value">[]): SignalMark[] {
  const out: SignalMark[] = [];
  let previous = 0;
  for (const p of points) {
    const s = p.signal > 0 ? 1 : p.signal < 0 ? -1 : 0;
    if (s !== 0 && s !== previous) out.push({ at: p.time, signal: s, value: finite(p.value) ?? null });
    previous = s;
  }
  return out;
}

/** The UTC days (YYYY-MM-DD) of the first and last bar: the signals request's start and end. */
export function barDays(bars: { time: number }[]): { start: string; end: string } {
  if (!bars.length) return { start: "", end: "" };
  const day = (t: number) => new Date(t * 1000).toISOString().slice(0, 10);
  return { start: day(bars[0]!.time), end: day(bars[bars.length - 1]!.time) };
}
