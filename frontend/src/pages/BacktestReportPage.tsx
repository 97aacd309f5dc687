/**
 * One backtest: status and progress (live from the `jobs` channel), the error with its traceback
 * when it failed; when it succeeded, the metrics against the benchmark, equity vs benchmark and
 * drawdown (lightweight-charts), the candles of a symbol over the run's range with the fills as
 * buy/sell markers, the round trips, the charges and the run record; and the HTML tearsheet.
 */
import { useMemo, useState } from "react";
import { Link, useParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { ApiError, errorMessage } from "../api/errors";
import { keys, useBacktest, useBacktestEquity, useBacktestTrades, type Backtest, type BacktestFill, type RoundTrip } from "../api/queries";
import { LineChart, PALETTE, type ChartSeries } from "../components/LineChart";
import { PriceChart, type FillMark } from "../components/PriceChart";
import { RunStatus, useCancelBacktest, useMayCancel } from "../components/RunStatus";
import { Empty, ErrorBox, Loading } from "../components/States";
import { METRICS, formatMetric, lineOf, metricsOf, paramsText, summaryOf, type Metrics, type Summary } from "../lib/backtests";
import { toBars, zoneOffsetSeconds } from "../lib/candles";
import { dec, parseDec, sub, toString } from "../lib/decimal";
import { formatINR, formatPrice, formatQty, formatTime, signClass } from "../lib/format";
import { lockedDown, titleOf } from "../lib/tearsheet";

const OFFSET_IST = zoneOffsetSeconds("Asia/Kolkata");

export default function BacktestReportPage() {
  const { id = "" } = useParams();
  const run = useBacktest(id);
  if (run.isPending) return <Loading what="Loading the backtest" />;
  if (!run.data) return <ErrorBox error={run.error} retry={() => void run.refetch()} />;
  return <Report run={run.data} />;
}

function Report({ run }: { run: Backtest }) {
  const r = run.request;
  const succeeded = run.status === "succeeded";
  const cancel = useCancelBacktest();
  const mayCancel = useMayCancel();
  const summary = summaryOf(run);
  return (
    <div className="stack">
      <section className="card" aria-label="Backtest">
        <div className="toolbar">
          <h1>
            {r.strategy} <span className="muted">on</span> {r.symbols.join(", ")}
          </h1>
          <RunStatus run={run} />
          <span className="spacer" />
          {succeeded && <TearsheetButton id={run.id} />}
          {mayCancel(run) && (
            <button type="button" className="danger" disabled={cancel.isPending} onClick={() => cancel.mutate(run.id)}>
              Cancel
            </button>
          )}
        </div>
        <p className="muted">
          {r.interval} bars, {r.start} → {r.end} · {paramsText(r.params) || "default parameters"} · queued{" "}
          {formatTime(run.created_at)}
          {run.started_at && <> · started {formatTime(run.started_at)}</>}
          {run.finished_at && <> · finished {formatTime(run.finished_at)}</>} · <Link to="/backtests">all backtests</Link>
        </p>
        {run.status === "queued" && <p className="muted">Waiting for a worker…</p>}
        {run.status === "cancelled" && <p className="muted">This run was cancelled; it has no results.</p>}
        {run.status === "failed" && run.error && (
          <div className="error-box column" role="alert">
            <span>
              {run.error.message} [{run.error.code}]
            </span>
            {run.error.trace && (
              <details>
                <summary>Traceback</summary>
                <pre className="trace">{run.error.trace}</pre>
              </details>
            )}
          </div>
        )}
        {succeeded && summary && <SummaryStats summary={summary} />}
      </section>
      {succeeded && <Results run={run} />}
      <RunRecord run={run} />
    </div>
  );
}

function SummaryStats({ summary }: { summary: Summary }) {
  const initial = summary.initial_cash;
  const final = summary.final_equity;
  const net = initial && final && parseDec(initial) && parseDec(final) ? toString(sub(dec(final), dec(initial))) : null;
  return (
    <dl className="stats" aria-label="Summary">
      <div>
        <dt>Starting cash</dt>
        <dd>{formatINR(initial)}</dd>
      </div>
      <div>
        <dt>Final equity</dt>
        <dd>{formatINR(final)}</dd>
      </div>
      <div>
        <dt>Net P&amp;L</dt>
        <dd className={signClass(net)}>{formatINR(net)}</dd>
      </div>
      <div>
        <dt>Charges</dt>
        <dd>{formatINR(summary.charges?.total)}</dd>
      </div>
      <div>
        <dt>Fills</dt>
        <dd>{formatQty(summary.fills)}</dd>
      </div>
      <div>
        <dt>Round trips</dt>
        <dd>{formatQty(summary.round_trips)}</dd>
      </div>
      <div>
        <dt>Bars</dt>
        <dd>{formatQty(summary.bars)}</dd>
      </div>
    </dl>
  );
}

function Results({ run }: { run: Backtest }) {
  const equity = useBacktestEquity(run.id, true);
  const trades = useBacktestTrades(run.id, true);
  const m = metricsOf(run);
  const bench = m.benchmark ?? {};
  const summary = summaryOf(run);

  const [equitySeries, drawdownSeries] = useMemo((): [ChartSeries[], ChartSeries[]] => {
    const points = equity.data?.points ?? [];
    const eq: ChartSeries[] = [{ name: "Strategy equity", color: PALETTE[0]!, points: lineOf(points, (p) => p.equity) }];
    const b = lineOf(points, (p) => p.benchmark);
    if (b.length) eq.push({ name: `Benchmark (${run.request.benchmark ?? run.request.symbols.join(", ")})`, color: PALETTE[4]!, points: b, dashed: true });
    const dd: ChartSeries[] = [{ name: "Drawdown (%)", color: "#cf222e", points: lineOf(points, (p) => p.drawdown, 100), area: true }];
    return [eq, dd];
  }, [equity.data, run.request.benchmark, run.request.symbols]);

  return (
    <>
      <div className="grid-two">
        <section className="card" aria-label="Metrics">
          <h2>Metrics</h2>
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Metric</th>
                  <th className="num">Strategy</th>
                  <th className="num">Benchmark</th>
                </tr>
              </thead>
              <tbody>
                {METRICS.map((def) => (
                  <tr key={def.key}>
                    <th scope="row">{def.label}</th>
                    <td className="num">{formatMetric(m[def.key], def.format)}</td>
                    <td className="num muted">{def.benchmark ? formatMetric(bench[def.key as keyof typeof bench], def.format) : ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
        <section className="card" aria-label="Equity">
          <h2>Equity vs benchmark</h2>
          {equity.isPending ? (
            <Loading what="Loading the equity curve" />
          ) : equity.error ? (
            <ErrorBox error={equity.error} retry={() => void equity.refetch()} />
          ) : (
            <>
              <LineChart series={equitySeries} offset={OFFSET_IST} format="inr" label="Equity and benchmark chart" />
              <h3>Drawdown</h3>
              <LineChart series={drawdownSeries} offset={OFFSET_IST} format="pct" label="Drawdown chart" className="chart chart-mini" />
            </>
          )}
        </section>
      </div>
      <FillsOnPrice run={run} fills={trades.data?.fills} />
      <section className="card" aria-label="Round trips">
        <h2>Round trips</h2>
        {trades.isPending ? (
          <Loading what="Loading the trades" />
        ) : trades.error ? (
          <ErrorBox error={trades.error} retry={() => void trades.refetch()} />
        ) : trades.data.round_trips.length === 0 ? (
          <Empty>No round trips: the strategy never closed a position.</Empty>
        ) : (
          <RoundTrips trips={trades.data.round_trips} />
        )}
        {trades.data && trades.data.fills.length > 0 && (
          <details>
            <summary>All {trades.data.fills.length} fills</summary>
            <Fills fills={trades.data.fills} />
          </details>
        )}
      </section>
      {summary?.charges && (
        <section className="card" aria-label="Charges">
          <h2>Charges</h2>
          <table className="narrow">
            <tbody>
              {Object.entries(summary.charges).map(([k, v]) => (
                <tr key={k} className={k === "total" ? "strong" : ""}>
                  <th scope="row">{chargeLabel(k)}</th>
                  <td className="num">{formatINR(v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </>
  );
}

const CHARGE_LABELS: Record<string, string> = {
  bps: "Flat cost (bps)",
  brokerage: "Brokerage",
  stt: "STT",
  exchange: "Exchange transaction charges",
  exchange_txn: "Exchange transaction charges",
  sebi: "SEBI fees",
  stamp: "Stamp duty",
  stamp_duty: "Stamp duty",
  gst: "GST",
  ipft: "IPFT",
  dp: "DP charges",
  total: "Total",
};

function chargeLabel(key: string): string {
  return CHARGE_LABELS[key] ?? key.replace(/_/g, " ");
}

/** Candles of one symbol over the run's range with its fills; the run's interval when it fits. */
const CANDLE_STEPS = ["1m", "5m", "15m", "30m", "1h", "1d", "1w"] as const;
type CandleInterval = (typeof CANDLE_STEPS)[number];
const BARS_PER_SESSION: Record<CandleInterval, number> = { "1m": 375, "5m": 75, "15m": 25, "30m": 13, "1h": 7, "1d": 1, "1w": 0.2 };
const MAX_CANDLES = 10_000;

export function chartInterval(interval: string, start: string, end: string): CandleInterval {
  const days = Math.max(1, (Date.parse(end) - Date.parse(start)) / 86_400_000 + 1);
  const sessions = (days * 5) / 7;
  const from = Math.max(0, CANDLE_STEPS.indexOf(interval as CandleInterval));
  for (const step of CANDLE_STEPS.slice(from)) if (sessions * BARS_PER_SESSION[step] <= MAX_CANDLES * 0.9) return step;
  return "1w";
}

function FillsOnPrice({ run, fills }: { run: Backtest; fills: BacktestFill[] | undefined }) {
  const r = run.request;
  const [symbol, setSymbol] = useState(r.symbols[0] ?? "");
  const [bump, setBump] = useState(0);
  const base = chartInterval(r.interval, r.start, r.end);
  const interval = CANDLE_STEPS[Math.min(CANDLE_STEPS.indexOf(base) + bump, CANDLE_STEPS.length - 1)]!;
  const start = new Date(`${r.start}T00:00:00+05:30`).toISOString();
  const end = new Date(Date.parse(`${r.end}T00:00:00+05:30`) + 86_400_000).toISOString();
  const candles = useQuery({
    queryKey: [...keys.candles(symbol, interval), start, end],
    queryFn: async () => {
      try {
        return await unwrap(api.GET("/api/v1/market/candles", { params: { query: { symbol, interval, start, end, limit: MAX_CANDLES } } }));
      } catch (error) {
        // too many candles at this interval: step up (the chart only needs to show the fills)
        if (error instanceof ApiError && error.code === "MARKET_RANGE_TOO_LARGE" && interval !== "1w") setBump((b) => b + 1);
        throw error;
      }
    },
    staleTime: 5 * 60_000,
    enabled: !!symbol,
  });
  const bars = useMemo(() => toBars(candles.data?.candles ?? []), [candles.data]);
  const offset = useMemo(() => zoneOffsetSeconds(candles.data?.timezone ?? "Asia/Kolkata"), [candles.data]);
  const marks: FillMark[] = useMemo(
    () => (fills ?? []).filter((f) => f.symbol === symbol).map((f) => ({ side: f.side, quantity: f.quantity, price: f.price, at: f.time })),
    [fills, symbol],
  );
  return (
    <section className="card" aria-label="Price and fills">
      <div className="toolbar">
        <h2>Price and fills</h2>
        {r.symbols.length > 1 && (
          <label>
            Symbol{" "}
            <select value={symbol} onChange={(e) => setSymbol(e.target.value)}>
              {r.symbols.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
        )}
        <span className="muted small">
          {symbol}, {interval} candles{interval !== r.interval ? ` (the run used ${r.interval})` : ""}; ▲ buy, ▼ sell
        </span>
      </div>
      {candles.isPending ? (
        <Loading what="Loading candles" />
      ) : candles.error ? (
        <ErrorBox error={candles.error} retry={() => void candles.refetch()} />
      ) : bars.length === 0 ? (
        <Empty>No candles stored for {symbol} over the run's range.</Empty>
      ) : (
        <PriceChart
          symbol={symbol}
          interval={interval}
          bars={bars}
          offset={offset}
          trades={marks}
          overlays={{ sma: false, ema: false, bollinger: false }}
          live={false}
          markerText="side"
        />
      )}
    </section>
  );
}

function RoundTrips({ trips }: { trips: RoundTrip[] }) {
  return (
    <div className="table-wrap">
      <table aria-label="Round trips">
        <thead>
          <tr>
            <th>Symbol</th>
            <th>Side</th>
            <th className="num">Qty</th>
            <th>Entry</th>
            <th className="num">Entry price</th>
            <th>Exit</th>
            <th className="num">Exit price</th>
            <th className="num">Gross P&amp;L</th>
            <th className="num">Charges</th>
            <th className="num">Net P&amp;L</th>
            <th className="num">Bars</th>
          </tr>
        </thead>
        <tbody>
          {trips.map((t, i) => (
            <tr key={i}>
              <td>{t.symbol}</td>
              <td className={t.side === "LONG" ? "pos" : "neg"}>{t.side}</td>
              <td className="num">{formatQty(t.quantity)}</td>
              <td className="nowrap">{formatTime(t.entry_time)}</td>
              <td className="num">{formatPrice(t.entry_price)}</td>
              <td className="nowrap">{formatTime(t.exit_time)}</td>
              <td className="num">{formatPrice(t.exit_price)}</td>
              <td className={`num ${signClass(t.gross_pnl)}`}>{formatINR(t.gross_pnl)}</td>
              <td className="num">{formatINR(t.charges)}</td>
              <td className={`num ${signClass(t.net_pnl)}`}>{formatINR(t.net_pnl)}</td>
              <td className="num">{formatQty(t.bars_held)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Fills({ fills }: { fills: BacktestFill[] }) {
  return (
    <div className="table-wrap">
      <table aria-label="Fills">
        <thead>
          <tr>
            <th>Time</th>
            <th>Symbol</th>
            <th>Side</th>
            <th>Product</th>
            <th className="num">Qty</th>
            <th className="num">Price</th>
            <th className="num">Charges</th>
            <th>Tag</th>
          </tr>
        </thead>
        <tbody>
          {fills.map((f, i) => (
            <tr key={`${f.order_id}-${i}`}>
              <td className="nowrap">{formatTime(f.time)}</td>
              <td>{f.symbol}</td>
              <td className={f.side === "BUY" ? "pos" : "neg"}>{f.side}</td>
              <td>{f.product}</td>
              <td className="num">{formatQty(f.quantity)}</td>
              <td className="num">{formatPrice(f.price)}</td>
              <td className="num">{formatINR(f.fees)}</td>
              <td className="muted">{f.tag ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function barsRange(m: Metrics): string {
  const start = typeof m.start === "string" ? m.start : null;
  const end = typeof m.end === "string" ? m.end : null;
  if (!start || !end) return "—";
  return `${formatMetric(m.bars, "int")} bars, ${formatTime(start)} → ${formatTime(end)}`;
}

function RunRecord({ run }: { run: Backtest }) {
  const r = run.request;
  const repro = summaryOf(run)?.reproducibility;
  const rows: [string, React.ReactNode][] = [
    ["Run id", <span className="mono">{run.id}</span>],
    ["Strategy", r.strategy],
    ["Parameters", <span className="mono">{JSON.stringify(r.params)}</span>],
    ["Symbols", r.symbols.join(", ")],
    ["Interval", r.interval],
    ["Range", `${r.start} → ${r.end}`],
    ["Bars", barsRange(metricsOf(run))],
    ["Cash", formatINR(r.cash)],
    ["Costs", r.costs],
    ["Slippage", r.slippage_bps != null ? `${r.slippage_bps} bps` : "the paper broker's fill model"],
    ["Engine", r.engine],
    ["Seed", String(repro?.seed ?? r.seed)],
    ["Benchmark", r.benchmark ?? "default (the symbol, or their equal weight)"],
  ];
  if (repro) {
    if (repro.fill_model) rows.push(["Fill model", <span className="mono">{JSON.stringify(repro.fill_model)}</span>]);
    rows.push(
      ["Data fingerprint", <span className="mono break">{repro.data_fingerprint ?? "—"}</span>],
      ["Source hash", <span className="mono break">{repro.source_hash ?? "—"}</span>],
      ["Code version", <span className="mono">{repro.code_version ?? "—"}</span>],
    );
  }
  return (
    <section className="card" aria-label="Run record">
      <h2>Run record</h2>
      <dl className="record">
        {rows.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      {!repro && run.status !== "succeeded" && <p className="muted small">The data fingerprint, source hash and code version come with the result.</p>}
    </section>
  );
}

/**
 * "Open HTML tearsheet": the report needs the bearer token, so fetch it and open it from a blob
 * URL (scripts forbidden by a CSP meta, see lib/tearsheet.ts). The tab is opened in the click
 * itself so no popup blocker stops it, then pointed at the blob.
 */
function TearsheetButton({ id }: { id: string }) {
  const [state, setState] = useState<{ busy: boolean; error: unknown; title: string | null }>({ busy: false, error: null, title: null });
  const open = async () => {
    const win = window.open("", "_blank");
    setState({ busy: true, error: null, title: null });
    try {
      const html = await unwrap(api.GET("/api/v1/backtests/{run_id}/report", { params: { path: { run_id: id } }, parseAs: "text" }));
      const url = URL.createObjectURL(new Blob([lockedDown(html)], { type: "text/html" }));
      setTimeout(() => URL.revokeObjectURL(url), 120_000);
      if (win) {
        win.opener = null;
        win.location.href = url;
      } else {
        window.location.assign(url);
      }
      setState({ busy: false, error: null, title: titleOf(html) });
    } catch (error) {
      win?.close();
      setState({ busy: false, error, title: null });
    }
  };
  return (
    <span className="inline-form">
      <button type="button" disabled={state.busy} onClick={() => void open()}>
        {state.busy ? "Opening…" : "Open HTML tearsheet"}
      </button>
      {state.title && <span className="muted small">Opened “{state.title}” in a new tab</span>}
      {state.error != null && (
        <span className="field-error" role="alert">
          {errorMessage(state.error)}
        </span>
      )}
    </span>
  );
}
