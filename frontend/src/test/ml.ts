/** Fixtures for the Models pages (shapes as the ML API sends them; figures from a real demo run). */
import type { MlRun, RegisteredModel } from "../api/queries";

export const RUN_A = "a".repeat(32);
export const RUN_B = "b".repeat(32);

export function mlRun(overrides: Partial<MlRun> = {}): MlRun {
  return {
    id: RUN_A,
    user_id: 2,
    kind: "train",
    status: "queued",
    progress: { stage: null, done: 0, total: 0, fraction: 0 },
    request: {
      model: "xgboost",
      symbols: ["NSE:INFY", "NSE:TCS", "NSE:HDFCBANK"],
      interval: "1d",
      start: "2024-01-01",
      end: "2026-11-30",
      label: "forward:5",
      dead_zone: 0,
      folds: 3,
      trials: 0,
      embargo: 0.01,
      name: "demo-xgb",
      threshold: 0.55,
      costs: "bps:3",
      seed: 0,
    },
    result: null,
    error: null,
    created_at: "2026-12-01T02:33:20Z",
    started_at: null,
    finished_at: null,
    ...overrides,
  };
}

const fold = (k: number, start: string, end: string, auc: number) => ({
  fold: k,
  rows: 345,
  start,
  end,
  params: { seed: 0 },
  n: 345,
  n_pos: 185,
  base_rate: 0.5362,
  auc,
  auc_se: 0.0312,
  log_loss: 0.7294,
  accuracy: 0.5884,
  brier: 0.2591,
  ic_return: 0.2143,
  rank_ic_return: 0.1924,
});

export function succeededMlRun(overrides: Partial<MlRun> = {}, passed = true): MlRun {
  return mlRun({
    status: "succeeded",
    progress: { stage: "backtest", done: 1, total: 1, fraction: 1 },
    started_at: "2026-12-01T02:33:21Z",
    finished_at: "2026-12-01T02:33:32Z",
    result: {
      run_id: "62776cba14c848c9aa6ba14d3e2e7d06",
      model_name: "demo-xgb",
      version: 1,
      folds: [
        fold(0, "2025-06-30T03:45:00+00:00", "2025-12-12T03:45:00+00:00", 0.6162),
        fold(1, "2025-12-15T03:45:00+00:00", "2026-06-05T03:45:00+00:00", 0.513),
        fold(2, "2026-06-08T03:45:00+00:00", "2026-11-20T03:45:00+00:00", 0.5168),
      ],
      oos: {
        n: 1034,
        auc: 0.5657,
        auc_se: 0.018,
        accuracy: 0.5338,
        log_loss: 0.7132,
        brier: 0.2569,
        base_rate: 0.4913,
        ic_return: 0.127,
        rows: 1034,
        sharpe_net: -0.4674,
        total_return: -0.085639,
        max_drawdown: -0.163777,
        trades: 94,
        charges: 18136.36,
        costs: "bps:3",
        start: "2025-06-30",
      },
      checks: passed
        ? { lookahead: { passed: true }, edge: { passed: true, auc: 0.5657, auc_se: 0.018, rule: "auc > 0.5 + 2 se" }, passed: true }
        : { lookahead: { passed: true }, edge: { passed: false, auc: 0.51, auc_se: 0.018, rule: "auc > 0.5 + 2 se" }, passed: false },
      rows: 1385,
      features: ["ret_1", "macd_signal", "atr_14"],
      importance: { macd_signal: 0.1058, atr_14: 0.0939, ret_1: 0.02 },
      data: {
        symbols: ["NSE:HDFCBANK", "NSE:INFY", "NSE:TCS"],
        first_bar: "2025-01-08T03:45:00+00:00",
        last_bar: "2026-11-20T03:45:00+00:00",
        fingerprint: "2246b7d9fb8c8b99",
        label: "forward:5",
      },
    },
    ...overrides,
  });
}

export function registeredModel(overrides: Partial<RegisteredModel> = {}): RegisteredModel {
  const version = (v: number, checks: "passed" | "failed", aliases: string[] = []) => ({
    version: v,
    run_id: `${v}`.repeat(32).slice(0, 32),
    aliases,
    checks,
    oos: { auc: v === 1 ? 0.5657 : 0.51, sharpe_net: v === 1 ? -0.4674 : 0.31, trades: 94 },
    user_id: 2,
    job_id: v === 1 ? RUN_A : RUN_B,
    created: `2026-12-0${v}T02:33:32Z`,
  });
  const aliases = overrides.aliases ?? {};
  const on = (v: number) => Object.entries(aliases).filter(([, n]) => n === v).map(([a]) => a);
  return {
    name: "demo-xgb",
    description: "",
    aliases,
    versions: [version(1, "passed", on(1)), version(2, "failed", on(2))],
    created: "2026-12-01T02:33:32Z",
    updated: "2026-12-02T02:33:32Z",
    ...overrides,
  };
}
