/** Fixtures for the strategies, backtests and deployments pages (shapes as the API sends them). */
import type { Backtest, Deployment, Strategy } from "../api/queries";

export const SMA_CROSS: Strategy = {
  name: "sma_cross",
  description: "Long while the fast SMA is above the slow SMA; flat otherwise.",
  source: "builtin",
  file: null,
  default_interval: "1d",
  vectorized: true,
  params_schema: {
    additionalProperties: false,
    properties: {
      fast: { default: 10, description: "Bars in the fast moving average.", maximum: 5000, minimum: 1, title: "Fast", type: "integer" },
      slow: { default: 50, description: "Bars in the slow moving average.", maximum: 10000, minimum: 2, title: "Slow", type: "integer" },
    },
    title: "SmaCrossParams",
    type: "object",
  },
};

export const MOMENTUM: Strategy = {
  name: "momentum_rotation",
  description: "Hold the top N symbols by 12-1 month return.",
  source: "builtin",
  file: null,
  default_interval: "1d",
  vectorized: false,
  params_schema: { properties: { top: { default: 10, minimum: 1, maximum: 50, title: "Top", type: "integer" } }, type: "object" },
};

export function backtestRun(overrides: Partial<Backtest> = {}): Backtest {
  return {
    id: "a".repeat(32),
    user_id: 2,
    status: "queued",
    progress: 0,
    request: {
      strategy: "sma_cross",
      symbols: ["NSE:INFY"],
      interval: "1d",
      start: "2024-01-01",
      end: "2024-12-31",
      params: { fast: 5, slow: 20 },
      cash: "1000000",
      costs: "bps:3",
      slippage_bps: null,
      engine: "event",
      seed: 0,
      benchmark: null,
    },
    summary: null,
    error: null,
    created_at: "2025-01-01T00:00:00Z",
    started_at: null,
    finished_at: null,
    ...overrides,
  };
}

export const SUMMARY = {
  initial_cash: "1000000",
  final_equity: "960965.05",
  fills: 2,
  round_trips: 1,
  bars: 250,
  charges: { bps: "603.29", total: "603.29" },
  metrics: {
    start: "2024-01-01T10:00:00+00:00",
    end: "2024-12-31T10:00:00+00:00",
    bars: 250,
    total_return: -0.039035,
    cagr: -0.019868,
    annual_volatility: 0.182398,
    sharpe: -0.0185,
    sortino: -0.0252,
    calmar: -0.0633,
    max_drawdown: -0.31392,
    max_drawdown_duration_days: 431,
    win_rate: 0.4,
    profit_factor: 0.8996,
    average_trade: -2602.33,
    trades: 1,
    exposure: 0.578,
    turnover: 29.4525,
    benchmark: { total_return: 0.25483, cagr: 0.12121, annual_volatility: 0.266709, sharpe: 0.5611, max_drawdown: -0.223937 },
    alpha: -0.071845,
    beta: 0.4756,
  },
  reproducibility: {
    source_hash: "68cde075406cb3f6",
    data_fingerprint: "c011b02353093cba",
    fill_model: { slippage_ticks: 0 },
    seed: 0,
    code_version: "0.1.0",
  },
};

export function succeededRun(overrides: Partial<Backtest> = {}): Backtest {
  return backtestRun({
    status: "succeeded",
    progress: 1,
    summary: SUMMARY,
    started_at: "2025-01-01T00:00:01Z",
    finished_at: "2025-01-01T00:00:02Z",
    ...overrides,
  });
}

export const TRADES = {
  fills: [
    { time: "2024-02-01T03:45:00Z", order_id: "bt-1", symbol: "NSE:INFY", side: "BUY", product: "CNC", quantity: 855, price: "1157.70", fees: "296.95", tag: null },
    { time: "2024-03-01T03:45:00Z", order_id: "bt-2", symbol: "NSE:INFY", side: "SELL", product: "CNC", quantity: 855, price: "1194.30", fees: "306.34", tag: null },
  ],
  round_trips: [
    {
      symbol: "NSE:INFY",
      side: "LONG",
      quantity: 855,
      entry_time: "2024-02-01T03:45:00Z",
      exit_time: "2024-03-01T03:45:00Z",
      entry_price: "1157.7000",
      exit_price: "1194.3000",
      gross_pnl: "31293.00",
      charges: "603.29",
      net_pnl: "30689.71",
      bars_held: 23,
    },
  ],
};

export function equityPoints(values: string[], start = Date.parse("2024-01-01T10:00:00Z")) {
  return values.map((equity, i) => ({
    time: new Date(start + i * 86_400_000).toISOString().replace(".000Z", "Z"),
    equity,
    benchmark: equity,
    drawdown: 0,
  }));
}

export function deployment(overrides: Partial<Deployment> = {}): Deployment {
  return {
    id: "d".repeat(32),
    user_id: 2,
    strategy: "sma_cross",
    params: { fast: 3, slow: 8 },
    symbols: ["NSE:TCS"],
    interval: "1m",
    status: "running",
    orders_sent: 2,
    bars: 40,
    error: null,
    created_at: "2025-01-31T04:00:00Z",
    updated_at: "2025-01-31T04:10:00Z",
    ...overrides,
  };
}
