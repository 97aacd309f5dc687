/** Query keys and data hooks (TanStack Query) over the typed client. */
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "./client";
import { ApiError } from "./errors";

export type Order = Schemas["OrderOut"];
export type Trade = Schemas["TradeOut"];
export type Position = Schemas["PositionOut"];
export type Wallet = Schemas["WalletOut"];
export type Instrument = Schemas["InstrumentOut"];
export type User = Schemas["UserOut"];
export type LedgerEntry = Schemas["EntryOut"];
export type OrderStatus = Schemas["OrderStatus"];
export type EntryKind = Schemas["EntryKind"];
export type RiskState = Schemas["RiskStateOut"];
export type RiskScopeState = Schemas["StateOut"];
export type AccountLimits = Schemas["AccountLimitsOut"];
export type LimitsIn = Schemas["LimitsIn"];
export type Strategy = Schemas["StrategyOut"];
export type StrategyLoadError = Schemas["StrategyLoadErrorOut"];
export type BacktestIn = Schemas["BacktestIn"];
export type Backtest = Schemas["BacktestOut"];
export type BacktestPage = Schemas["BacktestPageOut"];
export type BacktestFill = Schemas["BacktestFillOut"];
export type RoundTrip = Schemas["RoundTripOut"];
export type EquityPoint = Schemas["EquityPointOut"];
export type Deployment = Schemas["DeploymentOut"];
export type DeploymentIn = Schemas["DeploymentIn"];
export type DeploymentActivity = Schemas["DeploymentActivityOut"];
export type DeploymentFill = Schemas["DeploymentFillOut"];
export type MlRunIn = Schemas["MLRunIn"];
export type MlRun = Schemas["MLRunOut"];
export type MlRunPage = Schemas["MLRunPageOut"];
export type MlRunStatus = Schemas["MLRunStatus"];
export type MlTrainResult = Schemas["TrainResultOut"];
export type MlEquity = Schemas["MLEquityOut"];
export type FeatureImportance = Schemas["FeatureImportanceOut"];
export type RegisteredModel = Schemas["RegisteredModelOut"];
export type ModelVersion = Schemas["ModelVersionOut"];
export type PromoteIn = Schemas["PromoteIn"];
export type SignalPoint = Schemas["SignalPointOut"];
export type StoredAlert = Schemas["AlertOut"];
export type AlertPage = Schemas["AlertPageOut"];

export const LIVE_STATUSES: OrderStatus[] = ["NEW", "OPEN", "PARTIALLY_FILLED"];

export const keys = {
  me: ["me"] as const,
  wallet: ["wallet"] as const,
  ledger: (filters: object) => ["ledger", filters] as const,
  positions: ["positions"] as const,
  orders: ["orders"] as const,
  ordersList: (status: string) => ["orders", "list", status] as const,
  openOrders: ["orders", "open"] as const,
  trades: ["trades"] as const,
  instrument: (ref: string) => ["instrument", ref] as const,
  instruments: (q: string) => ["instruments", q] as const,
  candles: (symbol: string, interval: string) => ["candles", symbol, interval] as const,
  users: ["admin", "users"] as const,
  audit: (filters: object) => ["admin", "audit", filters] as const,
  risk: ["risk"] as const,
  riskState: (userId?: number) => ["risk", "state", userId ?? "me"] as const,
  riskLimits: (userId?: number) => ["risk", "limits", userId ?? "defaults"] as const,
  strategies: ["strategies"] as const,
  backtests: ["backtests"] as const,
  backtestList: ["backtests", "list"] as const,
  backtest: (id: string) => ["backtests", "one", id] as const,
  backtestTrades: (id: string) => ["backtests", "trades", id] as const,
  backtestEquity: (id: string) => ["backtests", "equity", id] as const,
  deployments: ["deployments"] as const,
  deploymentList: ["deployments", "list"] as const,
  deployment: (id: string) => ["deployments", "one", id] as const,
  deploymentActivity: (id: string) => ["deployments", "activity", id] as const,
  ml: ["ml"] as const,
  mlRunList: ["ml", "runs", "list"] as const,
  mlRun: (id: string) => ["ml", "runs", "one", id] as const,
  mlEquity: (id: string) => ["ml", "runs", "equity", id] as const,
  mlImportance: (id: string) => ["ml", "runs", "importance", id] as const,
  mlModels: ["ml", "models"] as const,
  mlSignals: (model: string, symbol: string, start: string, end: string) => ["ml", "signals", model, symbol, start, end] as const,
  alerts: ["alerts"] as const,
};

/** Kill switches, halt and trading_allowed: polled every 5 s, and re-read on order frames. */
export function useRiskState(userId?: number, enabled = true) {
  return useQuery({
    queryKey: keys.riskState(userId),
    queryFn: () => unwrap(api.GET("/api/v1/risk/state", { params: { query: { user_id: userId } } })),
    refetchInterval: 5_000,
    enabled,
  });
}

/** Why trading is blocked, in words (null when it is allowed or the state is unknown). */
export function riskBlockReason(state: RiskState | undefined): string | null {
  if (!state || state.trading_allowed) return null;
  const g = state.global;
  const a = state.account;
  const why = (reason: string | null | undefined) => (reason ? `: ${reason}` : "");
  if (g.kill_switch) return `Trading is stopped platform-wide by the global kill switch${why(g.kill_reason)}`;
  if (a.kill_switch) return `Your account's kill switch is engaged${why(a.kill_reason)}`;
  if (a.halted) return `Your account is halted${a.halt_kind ? ` (${a.halt_kind.replace(/_/g, " ")})` : ""}${why(a.halt_reason)}`;
  if (g.halted) return `Trading is halted platform-wide${why(g.halt_reason)}`;
  return "Trading is not allowed for this account right now";
}

export function useMe(enabled: boolean) {
  return useQuery({
    queryKey: keys.me,
    queryFn: () => unwrap(api.GET("/api/v1/auth/me")),
    enabled,
    staleTime: 60_000,
  });
}

export function useWallet() {
  return useQuery({ queryKey: keys.wallet, queryFn: () => unwrap(api.GET("/api/v1/wallet")) });
}

export function usePositions() {
  return useQuery({
    queryKey: keys.positions,
    queryFn: () => unwrap(api.GET("/api/v1/positions")),
    // day P&L and marks come from the server; quotes move unrealised P&L in between
    refetchInterval: 30_000,
  });
}

/** Live orders, newest first: one request for every live status. */
export function useOpenOrders() {
  return useQuery({
    queryKey: keys.openOrders,
    queryFn: async () => {
      const page = await unwrap(
        api.GET("/api/v1/orders", { params: { query: { status: [...LIVE_STATUSES], limit: 500 } } }),
      );
      return page.items;
    },
  });
}

/** Your orders, newest first, in any of `statuses` (all when empty: `?status=A&status=B`). */
export function useOrders(statuses: readonly OrderStatus[]) {
  return useInfiniteQuery({
    queryKey: keys.ordersList(statuses.join(",")),
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/api/v1/orders", {
          params: { query: { status: statuses.length ? [...statuses] : undefined, cursor: pageParam ?? undefined, limit: 50 } },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor,
  });
}

export function useTrades(limit = 20, symbol?: string) {
  return useQuery({
    queryKey: [...keys.trades, limit, symbol ?? ""],
    queryFn: () => unwrap(api.GET("/api/v1/trades", { params: { query: { limit, symbol } } })),
  });
}

export function useInstrument(ref: string | null) {
  return useQuery({
    queryKey: keys.instrument(ref ?? ""),
    queryFn: () => unwrap(api.GET("/api/v1/instruments/{ref}", { params: { path: { ref: ref! } } })),
    enabled: !!ref,
    staleTime: 5 * 60_000,
  });
}

export function useInstrumentSearch(q: string) {
  return useQuery({
    queryKey: keys.instruments(q),
    queryFn: () => unwrap(api.GET("/api/v1/instruments", { params: { query: { q, limit: 12 } } })),
    enabled: q.trim().length > 0,
    staleTime: 60_000,
  });
}

export interface LedgerFilters {
  kind: EntryKind | "";
  since: string;
  until: string;
}

export function useLedger(filters: LedgerFilters) {
  return useInfiniteQuery({
    queryKey: keys.ledger(filters),
    initialPageParam: null as number | null,
    queryFn: ({ pageParam }) =>
      unwrap(
        api.GET("/api/v1/wallet/ledger", {
          params: {
            query: {
              kind: filters.kind || undefined,
              since: filters.since ? new Date(filters.since).toISOString() : undefined,
              until: filters.until ? new Date(filters.until).toISOString() : undefined,
              cursor: pageParam ?? undefined,
              limit: 100,
            },
          },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor,
  });
}

// --- strategies, backtests, deployments ---------------------------------------------------------

export function useStrategies() {
  return useQuery({
    queryKey: keys.strategies,
    queryFn: () => unwrap(api.GET("/api/v1/strategies")),
    staleTime: 60_000,
  });
}

const BACKTEST_LIVE = ["queued", "running"];

/** Backtests, newest first, in keyset pages (`next_cursor` goes back as `before`). */
export function useBacktests() {
  return useInfiniteQuery({
    queryKey: keys.backtestList,
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) =>
      unwrap(api.GET("/api/v1/backtests", { params: { query: { before: pageParam ?? undefined, limit: 50 } } })),
    getNextPageParam: (last) => last.next_cursor,
    // the `jobs` channel moves the live ones; a slow poll catches what a dropped stream missed
    refetchInterval: (q) =>
      q.state.data?.pages.some((p) => p.items.some((r) => BACKTEST_LIVE.includes(r.status))) ? 5_000 : false,
  });
}

export function useBacktest(id: string) {
  return useQuery({
    queryKey: keys.backtest(id),
    queryFn: () => unwrap(api.GET("/api/v1/backtests/{run_id}", { params: { path: { run_id: id } } })),
    refetchInterval: (q) => (q.state.data && BACKTEST_LIVE.includes(q.state.data.status) ? 3_000 : false),
  });
}

export function useBacktestTrades(id: string, enabled: boolean) {
  return useQuery({
    queryKey: keys.backtestTrades(id),
    queryFn: () => unwrap(api.GET("/api/v1/backtests/{run_id}/trades", { params: { path: { run_id: id } } })),
    enabled,
    staleTime: Infinity, // a finished run never changes
  });
}

export function backtestEquityQuery(id: string, enabled = true) {
  return {
    queryKey: keys.backtestEquity(id),
    queryFn: () =>
      unwrap(api.GET("/api/v1/backtests/{run_id}/equity", { params: { path: { run_id: id }, query: { max_points: 2000 } } })),
    enabled,
    staleTime: Infinity,
  };
}

export function useBacktestEquity(id: string, enabled: boolean) {
  return useQuery(backtestEquityQuery(id, enabled));
}

export function useDeployments() {
  return useQuery({
    queryKey: keys.deploymentList,
    queryFn: () => unwrap(api.GET("/api/v1/deployments")),
    refetchInterval: 10_000,
  });
}

export function useDeployment(id: string, enabled = true) {
  return useQuery({
    queryKey: keys.deployment(id),
    queryFn: () => unwrap(api.GET("/api/v1/deployments/{deployment_id}", { params: { path: { deployment_id: id } } })),
    enabled,
    refetchInterval: 5_000,
  });
}

/** Fills, charges and P&L; every 5 s, and on `orders`/`trades` frames (StreamProvider). */
export function useDeploymentActivity(id: string, enabled = true) {
  return useQuery({
    queryKey: keys.deploymentActivity(id),
    queryFn: () =>
      unwrap(api.GET("/api/v1/deployments/{deployment_id}/activity", { params: { path: { deployment_id: id } } })),
    enabled,
    refetchInterval: 5_000,
  });
}

// --- machine learning: training runs, registered models, signals -------------------------------

const ML_LIVE: MlRunStatus[] = ["queued", "running"];

/**
 * Retry an ML request as the app's default does (5xx, twice), except ML_EXTRA_MISSING: a server
 * without the ml extra answers 503 until someone installs it.
 */
export function mlRetry(count: number, error: Error): boolean {
  if (error instanceof ApiError && (error.status < 500 || error.code === "ML_EXTRA_MISSING")) return false;
  return count < 2;
}

/** Training runs, newest first, in keyset pages (an admin sees everyone's, others their own). */
export function useMlRuns() {
  return useInfiniteQuery({
    queryKey: keys.mlRunList,
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) =>
      unwrap(api.GET("/api/v1/ml/runs", { params: { query: { before: pageParam ?? undefined, limit: 50 } } })),
    getNextPageParam: (last) => last.next_cursor,
    retry: mlRetry,
    // the `jobs` channel moves the live ones; a slow poll catches what a dropped stream missed
    refetchInterval: (q) =>
      q.state.data?.pages.some((p) => p.items.some((r) => ML_LIVE.includes(r.status))) ? 5_000 : false,
  });
}

export function useMlRun(id: string) {
  return useQuery({
    queryKey: keys.mlRun(id),
    queryFn: () => unwrap(api.GET("/api/v1/ml/runs/{run_id}", { params: { path: { run_id: id } } })),
    retry: mlRetry,
    // a training run takes seconds to minutes: follow it closely while it is live
    refetchInterval: (q) => (q.state.data && ML_LIVE.includes(q.state.data.status) ? 2_000 : false),
  });
}

export function useMlEquity(id: string, enabled: boolean) {
  return useQuery({
    queryKey: keys.mlEquity(id),
    queryFn: () =>
      unwrap(api.GET("/api/v1/ml/runs/{run_id}/equity", { params: { path: { run_id: id }, query: { max_points: 2000 } } })),
    enabled,
    retry: mlRetry,
    staleTime: Infinity, // a finished run never changes
  });
}

export function useMlImportance(id: string, enabled: boolean) {
  return useQuery({
    queryKey: keys.mlImportance(id),
    queryFn: () => unwrap(api.GET("/api/v1/ml/runs/{run_id}/importance", { params: { path: { run_id: id } } })),
    enabled,
    retry: mlRetry,
    staleTime: Infinity,
  });
}

export function useMlModels(enabled = true) {
  return useQuery({
    queryKey: keys.mlModels,
    queryFn: () => unwrap(api.GET("/api/v1/ml/models")),
    enabled,
    retry: mlRetry,
    staleTime: 30_000,
  });
}

/** A model's stored signals for one symbol, days start..end (UTC, inclusive). */
export function useMlSignals(model: string, symbol: string, start: string, end: string) {
  return useQuery({
    queryKey: keys.mlSignals(model, symbol, start, end),
    queryFn: () =>
      unwrap(api.GET("/api/v1/ml/signals", { params: { query: { model, symbol, start: start || undefined, end: end || undefined } } })),
    enabled: !!model && !!symbol,
    retry: mlRetry,
    staleTime: 60_000,
  });
}

// --- the alert inbox ---------------------------------------------------------------------------

/** Alerts the dashboard shows: the newest stored ones (read or not) merged with live ones. */
export const ALERTS_SHOWN = 20;

/**
 * Your stored alerts, newest first, with your unread count. Live alerts arrive on the `alerts`
 * channel (merged in by the card); the slow poll brings what has no stream: an admin's
 * platform-wide alerts, and anything a dropped stream missed.
 */
export function useAlertInbox() {
  return useQuery({
    queryKey: keys.alerts,
    queryFn: () => unwrap(api.GET("/api/v1/alerts", { params: { query: { limit: ALERTS_SHOWN } } })),
    refetchInterval: 60_000,
  });
}

export function markAlertRead(id: number) {
  return unwrap(api.POST("/api/v1/alerts/{alert_id}/read", { params: { path: { alert_id: id } } }));
}

/** Mark read every unread alert up to `maxId` (the newest shown), or all without one. */
export function markAllAlertsRead(maxId?: number) {
  return unwrap(api.POST("/api/v1/alerts/read-all", { body: maxId ? { max_id: maxId } : {} }));
}
