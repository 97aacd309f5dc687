/**
 * One training run: status, stage and progress (the `jobs` channel, and a poll while live), the
 * error with its traceback when it failed; when it succeeded: the out-of-sample figures, the
 * checks, the per-fold metrics, the feature importance (bars) and the equity curve of the
 * signal backtest (lightweight-charts), and the run record.
 */
import { useMemo } from "react";
import { Link, useParams } from "react-router";
import { ApiError } from "../api/errors";
import { useMlEquity, useMlImportance, useMlRun, type MlRun } from "../api/queries";
import { ImportanceChart } from "../components/ImportanceChart";
import { LineChart, PALETTE, type ChartSeries } from "../components/LineChart";
import { ChecksBadge, MlErrorBox, MlRunStatus, useCancelMlRun, useMayCancelMlRun } from "../components/MlParts";
import { Empty, Loading } from "../components/States";
import { lineOf } from "../lib/backtests";
import { zoneOffsetSeconds } from "../lib/candles";
import { formatINR, formatTime } from "../lib/format";
import { checkRows, figuresOf, fmt, fmtPct, stageText } from "../lib/ml";

const OFFSET_IST = zoneOffsetSeconds("Asia/Kolkata");

export default function MlRunPage() {
  const { id = "" } = useParams();
  const run = useMlRun(id);
  if (run.isPending) return <Loading what="Loading the training run" />;
  if (!run.data) return <MlErrorBox error={run.error} retry={() => void run.refetch()} />;
  return <RunView run={run.data} />;
}

function RunView({ run }: { run: MlRun }) {
  const r = run.request;
  const succeeded = run.status === "succeeded" && run.result != null;
  const cancel = useCancelMlRun();
  const mayCancel = useMayCancelMlRun();
  const stage = stageText(run.progress);
  return (
    <div className="stack">
      <section className="card" aria-label="Training run">
        <div className="toolbar">
          <h1>
            {r.name} <span className="muted">·</span> {r.model} <span className="muted">on</span> {r.symbols.join(", ")}
          </h1>
          <MlRunStatus run={run} />
          <span className="spacer" />
          {mayCancel(run) && (
            <button type="button" className="danger" disabled={cancel.isPending} onClick={() => cancel.mutate(run.id)}>
              Cancel
            </button>
          )}
        </div>
        <p className="muted">
          {r.interval} bars, {r.start} → {r.end} · label {r.label} · {r.folds} folds · {r.trials} trials · costs {r.costs} · queued{" "}
          {formatTime(run.created_at)}
          {run.started_at && <> · started {formatTime(run.started_at)}</>}
          {run.finished_at && <> · finished {formatTime(run.finished_at)}</>} · <Link to="/models">all models</Link>
        </p>
        {run.status === "queued" && <p className="muted">Waiting for a training worker…</p>}
        {run.status === "running" && <p className="muted">{stage ? `Stage: ${stage}` : "Starting…"}</p>}
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
        {succeeded && <Headline run={run} />}
      </section>
      {succeeded && <Results run={run} />}
      <RunRecord run={run} />
    </div>
  );
}

function Headline({ run }: { run: MlRun }) {
  const f = figuresOf(run);
  const result = run.result!;
  return (
    <dl className="stats" aria-label="Out-of-sample summary">
      <div>
        <dt>Registered</dt>
        <dd>
          {result.model_name} v{result.version}
        </dd>
      </div>
      <div>
        <dt>OOS AUC</dt>
        <dd>
          {fmt(f.auc)}
          {f.aucSe !== undefined && <span className="muted small"> ± {fmt(f.aucSe)}</span>}
        </dd>
      </div>
      <div>
        <dt>IC (return)</dt>
        <dd>{fmt(f.icReturn)}</dd>
      </div>
      <div>
        <dt>Net Sharpe</dt>
        <dd>{fmt(f.sharpeNet, 2)}</dd>
      </div>
      <div>
        <dt>Total return</dt>
        <dd>{fmtPct(f.totalReturn)}</dd>
      </div>
      <div>
        <dt>Max drawdown</dt>
        <dd>{fmtPct(f.maxDrawdown)}</dd>
      </div>
      <div>
        <dt>Fills</dt>
        <dd>{f.trades ?? "—"}</dd>
      </div>
      <div>
        <dt>Checks</dt>
        <dd>
          <ChecksBadge checks={f.checks} />
        </dd>
      </div>
    </dl>
  );
}

const FOLD_COLUMNS: { key: string; label: string; digits?: 2 | 3 | 4; pct?: boolean }[] = [
  { key: "auc", label: "AUC" },
  { key: "auc_se", label: "AUC SE" },
  { key: "accuracy", label: "Accuracy", pct: true },
  { key: "log_loss", label: "Log loss" },
  { key: "brier", label: "Brier" },
  { key: "ic_return", label: "IC (return)" },
  { key: "base_rate", label: "Base rate", pct: true },
];

function Results({ run }: { run: MlRun }) {
  const result = run.result!;
  const equity = useMlEquity(run.id, true);
  const importance = useMlImportance(run.id, true);
  const checks = checkRows(result.checks);
  const series: ChartSeries[] = useMemo(
    () => [{ name: `Signal backtest equity (${run.request.costs}, net)`, color: PALETTE[0]!, points: lineOf(equity.data?.points ?? [], (p) => p.equity) }],
    [equity.data, run.request.costs],
  );
  const oos = result.oos ?? {};
  const noCurve = equity.error instanceof ApiError && equity.error.code === "ML_RESULT_MISSING";

  return (
    <>
      <div className="grid-two">
        <section className="card" aria-label="Checks">
          <h2>
            Checks <ChecksBadge checks={figuresOf(run).checks} />
          </h2>
          {checks.length === 0 ? (
            <Empty>No checks recorded.</Empty>
          ) : (
            <table aria-label="Checks">
              <tbody>
                {checks.map((c) => (
                  <tr key={c.name}>
                    <th scope="row">{c.name}</th>
                    <td>
                      <ChecksBadge checks={c.passed === null ? null : c.passed ? "passed" : "failed"} />
                    </td>
                    <td className="small">{c.detail}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <p className="muted small">Only a version that passed its checks may be promoted to champion or challenger.</p>
        </section>
        <section className="card" aria-label="Signal backtest">
          <h2>Signal backtest</h2>
          <p className="muted small">
            The out-of-sample predictions traded by <span className="mono">ml_signal</span> (entry at probability ≥ {run.request.threshold}),
            costs {run.request.costs}
            {typeof oos.start === "string" ? `, from ${oos.start}` : ""}; charges {typeof oos.charges === "number" ? formatINR(String(oos.charges)) : "—"}.
          </p>
          {equity.isPending ? (
            <Loading what="Loading the equity curve" />
          ) : noCurve ? (
            <Empty>The signal backtest made no equity curve.</Empty>
          ) : equity.error ? (
            <MlErrorBox error={equity.error} retry={() => void equity.refetch()} />
          ) : (
            <LineChart series={series} offset={OFFSET_IST} format="inr" label="Signal backtest equity chart" />
          )}
        </section>
      </div>
      <section className="card" aria-label="Folds">
        <h2>Walk-forward folds</h2>
        {result.folds.length === 0 ? (
          <Empty>No folds recorded.</Empty>
        ) : (
          <div className="table-wrap">
            <table aria-label="Folds">
              <thead>
                <tr>
                  <th>Fold</th>
                  <th>Test start</th>
                  <th>Test end</th>
                  <th className="num">Rows</th>
                  {FOLD_COLUMNS.map((c) => (
                    <th key={c.key} className="num">
                      {c.label}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {result.folds.map((fold, i) => (
                  <tr key={i}>
                    <th scope="row">{typeof fold.fold === "number" ? fold.fold + 1 : i + 1}</th>
                    <td className="nowrap">{typeof fold.start === "string" ? formatTime(fold.start) : "—"}</td>
                    <td className="nowrap">{typeof fold.end === "string" ? formatTime(fold.end) : "—"}</td>
                    <td className="num">{typeof fold.rows === "number" ? fold.rows : "—"}</td>
                    {FOLD_COLUMNS.map((c) => (
                      <td key={c.key} className="num">
                        {c.pct ? fmtPct(fold[c.key]) : fmt(fold[c.key], c.digits)}
                      </td>
                    ))}
                  </tr>
                ))}
                <tr className="strong">
                  <th scope="row">Pooled</th>
                  <td colSpan={2} className="muted small">
                    every out-of-sample row
                  </td>
                  <td className="num">{typeof oos.rows === "number" ? oos.rows : "—"}</td>
                  {FOLD_COLUMNS.map((c) => (
                    <td key={c.key} className="num">
                      {c.pct ? fmtPct(oos[c.key]) : fmt(oos[c.key], c.digits)}
                    </td>
                  ))}
                </tr>
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section className="card" aria-label="Feature importance">
        <h2>Feature importance</h2>
        {importance.isPending ? (
          <Loading what="Loading the feature importance" />
        ) : importance.error ? (
          <MlErrorBox error={importance.error} retry={() => void importance.refetch()} />
        ) : importance.data.features.length === 0 ? (
          <Empty>This model reports no feature importances ({run.request.model}).</Empty>
        ) : (
          <ImportanceChart features={importance.data.features} />
        )}
      </section>
    </>
  );
}

function RunRecord({ run }: { run: MlRun }) {
  const r = run.request;
  const result = run.result;
  const data = (result?.data ?? {}) as Record<string, unknown>;
  const rows: [string, React.ReactNode][] = [
    ["Run id", <span className="mono">{run.id}</span>],
    ["Model", `${r.model} → ${r.name}`],
    ["Symbols", r.symbols.join(", ")],
    ["Interval", r.interval],
    ["Range", `${r.start} → ${r.end}`],
    ["Label", `${r.label}${r.dead_zone ? ` (dead zone ${r.dead_zone})` : ""}`],
    ["Folds / trials", `${r.folds} / ${r.trials}`],
    ["Embargo", String(r.embargo)],
    ["Threshold", String(r.threshold)],
    ["Costs", r.costs],
    ["Seed", String(r.seed)],
  ];
  if (result) {
    rows.push(
      ["Rows", String(result.rows)],
      ["Bars used", typeof data.first_bar === "string" && typeof data.last_bar === "string" ? `${formatTime(data.first_bar)} → ${formatTime(data.last_bar)}` : "—"],
      ["Features", <span className="small">{result.features.join(", ")}</span>],
      ["MLflow run", <span className="mono">{result.run_id}</span>],
      ["Data fingerprint", <span className="mono break">{typeof data.fingerprint === "string" ? data.fingerprint : "—"}</span>],
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
    </section>
  );
}
