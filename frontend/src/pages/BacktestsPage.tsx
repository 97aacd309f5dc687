/**
 * Backtests: the history (newest first, keyset pages), live status and progress from the `jobs`
 * channel, cancel for live runs; tick 2–4 finished runs and Compare for their metrics side by
 * side and their equity curves overlaid, normalised to 1.0 (lightweight-charts).
 */
import { useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { useQueries } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { backtestEquityQuery, keys, useBacktests, type Backtest } from "../api/queries";
import { LineChart, PALETTE, type ChartSeries } from "../components/LineChart";
import { RunStatus, useCancelBacktest, useMayCancel } from "../components/RunStatus";
import { Empty, ErrorBox, Loading } from "../components/States";
import { METRICS, bestIndex, formatMetric, metricsOf, normaliseEquity, paramsText, summaryOf } from "../lib/backtests";
import { zoneOffsetSeconds } from "../lib/candles";
import { formatINR, formatTime } from "../lib/format";

const MAX_COMPARE = 4;

export default function BacktestsPage() {
  const runs = useBacktests();
  const items = runs.data?.pages.flatMap((p) => p.items) ?? [];
  const [params, setParams] = useSearchParams();
  // ?compare=<id>&compare=<id>: a comparison is a link
  const comparing = useMemo(
    () => [...new Set(params.getAll("compare").flatMap((v) => v.split(",")).filter(Boolean))].slice(0, MAX_COMPARE),
    [params],
  );
  const [selected, setSelected] = useState<string[]>(comparing);
  const cancel = useCancelBacktest();
  const mayCancel = useMayCancel();

  const toggle = (id: string, on: boolean) =>
    setSelected((s) => (on ? (s.includes(id) ? s : [...s, id].slice(0, MAX_COMPARE)) : s.filter((x) => x !== id)));
  const compare = () => setParams(new URLSearchParams(selected.map((id) => ["compare", id])));

  return (
    <div className="stack">
      <section className="card" aria-label="Backtests">
        <div className="toolbar">
          <h2>Backtests</h2>
          <span className="spacer" />
          <span className="muted small">Tick 2–4 finished runs to compare them.</span>
          <button type="button" className="primary" disabled={selected.length < 2} onClick={compare}>
            Compare{selected.length ? ` (${selected.length})` : ""}
          </button>
          {comparing.length > 0 && (
            <button
              type="button"
              onClick={() => {
                setSelected([]);
                setParams({});
              }}
            >
              Clear
            </button>
          )}
        </div>
        {runs.isPending ? (
          <Loading what="Loading backtests" />
        ) : runs.error && !items.length ? (
          <ErrorBox error={runs.error} retry={() => void runs.refetch()} />
        ) : items.length === 0 ? (
          <Empty>
            No backtests yet. Run one from <Link to="/strategies">Strategies</Link>.
          </Empty>
        ) : (
          <>
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th>
                      <span className="sr-only">Compare</span>
                    </th>
                    <th>Strategy</th>
                    <th>Symbols</th>
                    <th>Interval</th>
                    <th>Range</th>
                    <th>Status</th>
                    <th className="num">Total return</th>
                    <th className="num">Sharpe</th>
                    <th className="num">Max drawdown</th>
                    <th>Created</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {items.map((r) => {
                    const m = metricsOf(r);
                    const checked = selected.includes(r.id);
                    return (
                      <tr key={r.id} className={checked ? "selected" : ""}>
                        <td>
                          <input
                            type="checkbox"
                            aria-label={`Compare ${r.request.strategy} ${r.id.slice(0, 8)}`}
                            checked={checked}
                            disabled={r.status !== "succeeded" || (!checked && selected.length >= MAX_COMPARE)}
                            onChange={(e) => toggle(r.id, e.target.checked)}
                          />
                        </td>
                        <td className="nowrap">
                          <Link to={`/backtests/${r.id}`} title={paramsText(r.request.params)}>
                            {r.request.strategy}
                          </Link>{" "}
                          <span className="muted small mono">{r.id.slice(0, 8)}</span>
                        </td>
                        <td>{r.request.symbols.join(", ")}</td>
                        <td>{r.request.interval}</td>
                        <td className="nowrap">
                          {r.request.start} → {r.request.end}
                        </td>
                        <td>
                          <RunStatus run={r} />
                        </td>
                        <td className={`num ${signOf(m.total_return)}`}>{formatMetric(m.total_return, "pct")}</td>
                        <td className="num">{formatMetric(m.sharpe, "ratio")}</td>
                        <td className="num">{formatMetric(m.max_drawdown, "pct")}</td>
                        <td className="nowrap">{formatTime(r.created_at)}</td>
                        <td className="nowrap">
                          {mayCancel(r) && (
                            <button type="button" className="small danger" disabled={cancel.isPending} onClick={() => cancel.mutate(r.id)}>
                              Cancel
                            </button>
                          )}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
            {runs.error != null && <ErrorBox error={runs.error} />}
            {runs.hasNextPage && (
              <button type="button" onClick={() => void runs.fetchNextPage()} disabled={runs.isFetchingNextPage}>
                {runs.isFetchingNextPage ? "Loading…" : "Load more"}
              </button>
            )}
          </>
        )}
      </section>
      {comparing.length >= 2 && <Compare ids={comparing} />}
    </div>
  );
}

function signOf(v: number | undefined): string {
  return typeof v === "number" ? (v > 0 ? "pos" : v < 0 ? "neg" : "") : "";
}

/** Metrics side by side and the equity curves overlaid, each divided by its starting cash. */
function Compare({ ids }: { ids: string[] }) {
  const runs = useQueries({
    queries: ids.map((id) => ({
      queryKey: keys.backtest(id),
      queryFn: () => unwrap(api.GET("/api/v1/backtests/{run_id}", { params: { path: { run_id: id } } })),
    })),
  });
  const equities = useQueries({ queries: ids.map((id) => backtestEquityQuery(id)) });
  const loaded = runs.map((q) => q.data).filter((r): r is Backtest => !!r);
  const error = [...runs, ...equities].find((q) => q.error)?.error;
  const pending = runs.some((q) => q.isPending) || equities.some((q) => q.isPending);

  // rebuild the chart's series only when a query's data changed, not on every render
  const dataKey = [...runs, ...equities].map((q) => q.dataUpdatedAt).join(",");
  const series: ChartSeries[] = useMemo(
    () =>
      ids.flatMap((_id, i) => {
        const run = runs[i]?.data;
        const points = equities[i]?.data?.points;
        if (!run || !points) return [];
        return [{ name: runName(run, i), color: PALETTE[i % PALETTE.length]!, points: normaliseEquity(points, run.request.cash) }];
      }),
    // eslint-disable-next-line react-hooks/exhaustive-deps -- dataKey stands for the queries' data
    [dataKey],
  );

  return (
    <section className="card" aria-label="Comparison">
      <div className="toolbar">
        <h2>Comparison</h2>
      </div>
      {error != null && <ErrorBox error={error} />}
      {pending && <Loading what="Loading the runs" />}
      {loaded.length === ids.length && (
        <>
          <div className="table-wrap">
            <table aria-label="Metrics side by side">
              <thead>
                <tr>
                  <th>Metric</th>
                  {loaded.map((r, i) => (
                    <th key={r.id} className="num">
                      <span className="swatch" style={{ background: PALETTE[i % PALETTE.length] }} aria-hidden="true" />{" "}
                      <Link to={`/backtests/${r.id}`}>{runName(r, i)}</Link>
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                <tr>
                  <th scope="row">Symbols</th>
                  {loaded.map((r) => (
                    <td key={r.id} className="num">
                      {r.request.symbols.join(", ")} · {r.request.interval}
                    </td>
                  ))}
                </tr>
                <tr>
                  <th scope="row">Range</th>
                  {loaded.map((r) => (
                    <td key={r.id} className="num nowrap">
                      {r.request.start} → {r.request.end}
                    </td>
                  ))}
                </tr>
                <tr>
                  <th scope="row">Parameters</th>
                  {loaded.map((r) => (
                    <td key={r.id} className="num mono small">
                      {paramsText(r.request.params) || "defaults"}
                    </td>
                  ))}
                </tr>
                <tr>
                  <th scope="row">Final equity</th>
                  {loaded.map((r) => (
                    <td key={r.id} className="num">
                      {formatINR(summaryOf(r)?.final_equity)}
                    </td>
                  ))}
                </tr>
                {METRICS.map((def) => {
                  const values = loaded.map((r) => metricsOf(r)[def.key]);
                  const best = bestIndex(values, def.better);
                  return (
                    <tr key={def.key}>
                      <th scope="row">{def.label}</th>
                      {values.map((v, i) => (
                        <td key={loaded[i]!.id} className={`num ${i === best ? "strong best" : ""}`}>
                          {formatMetric(v, def.format)}
                        </td>
                      ))}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <h3>Equity, normalised to 1.0 at the start</h3>
          <LineChart series={series} offset={zoneOffsetSeconds("Asia/Kolkata")} format="growth" label="Equity curves compared" />
        </>
      )}
    </section>
  );
}

function runName(r: Backtest, i: number): string {
  return `${i + 1}. ${r.request.strategy} ${r.id.slice(0, 6)}`;
}
