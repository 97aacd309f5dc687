/**
 * Strategies: the built-in and user strategies (and the user files that failed to load); the
 * selected one's parameter form, generated from its params_schema, with the run fields; "Run
 * backtest" and "Deploy on paper" for traders and admins (a viewer gets the form read-only).
 */
import { useMemo, useState, type FormEvent } from "react";
import { NavLink, useNavigate, useParams } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { keys, useStrategies, type Strategy } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { ParamFields } from "../components/ParamFields";
import { Empty, ErrorBox, Loading } from "../components/States";
import { SymbolSearch } from "../components/SymbolSearch";
import { useToast } from "../components/Toasts";
import { isoDate } from "../lib/backtests";
import { fieldErrors } from "../lib/fieldErrors";
import { defaultValues, fieldsFromSchema, paramsBody, validateParams } from "../lib/paramsForm";
import { BACKTEST_INTERVALS, backtestBody, deploymentBody, validateRun, type RunForm, type RunInterval } from "../lib/runForm";

export function StrategiesPage() {
  const { name } = useParams();
  const strategies = useStrategies();
  const list = strategies.data?.strategies ?? [];
  const selected = list.find((s) => s.name === name);
  return (
    <div className="grid-split">
      <section className="card" aria-label="Strategies">
        <div className="toolbar">
          <h2>Strategies</h2>
        </div>
        {strategies.data?.errors.map((e) => (
          <p key={`${e.file}:${e.line ?? ""}`} className="banner warn" role="alert">
            <strong>Could not load</strong>{" "}
            <span className="mono">
              {e.file}
              {e.line != null ? `:${e.line}` : ""}
            </span>{" "}
            {e.message}
          </p>
        ))}
        {strategies.isPending ? (
          <Loading what="Loading strategies" />
        ) : strategies.error ? (
          <ErrorBox error={strategies.error} retry={() => void strategies.refetch()} />
        ) : list.length === 0 ? (
          <Empty>No strategies.</Empty>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Description</th>
                  <th>Source</th>
                  <th>Vectorized</th>
                </tr>
              </thead>
              <tbody>
                {list.map((s) => (
                  <tr key={s.name} className={s.name === name ? "selected" : ""}>
                    <td className="nowrap">
                      <NavLink to={`/strategies/${encodeURIComponent(s.name)}`}>{s.name}</NavLink>
                    </td>
                    <td>{s.description}</td>
                    <td>
                      <span className="badge" title={s.file ?? undefined}>
                        {s.source}
                      </span>
                    </td>
                    <td>{s.vectorized ? "yes" : "no"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {selected ? (
        <StrategyForm key={selected.name} strategy={selected} />
      ) : (
        <section className="card" aria-label="Strategy">
          {name && strategies.data ? (
            <ErrorBox error={new Error(`No strategy named ${name}.`)} />
          ) : (
            <Empty>Choose a strategy to see its parameters, backtest it or deploy it on paper.</Empty>
          )}
        </section>
      )}
    </div>
  );
}

function initialForm(strategy: Strategy): RunForm {
  const interval = (BACKTEST_INTERVALS as readonly string[]).includes(strategy.default_interval)
    ? (strategy.default_interval as RunInterval)
    : "1d";
  return {
    symbols: [],
    interval,
    start: isoDate(-365),
    end: isoDate(-1),
    cash: "1000000",
    costs: "india",
    bps: "",
    slippage: "",
    engine: "event",
    seed: "0",
    benchmark: "",
  };
}

function StrategyForm({ strategy }: { strategy: Strategy }) {
  const { canTrade } = useAuth();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const toast = useToast();
  const fields = useMemo(() => fieldsFromSchema(strategy.params_schema), [strategy.params_schema]);
  const [params, setParams] = useState<Record<string, string>>(() => defaultValues(fields));
  const [form, setForm] = useState<RunForm>(() => initialForm(strategy));
  const [checked, setChecked] = useState<"run" | "deploy" | null>(null);
  const [apiErrors, setApiErrors] = useState<Record<string, string>>({});
  const [confirmDeploy, setConfirmDeploy] = useState(false);

  const paramErrors = validateParams(fields, params);
  const runErrors = validateRun(form, { vectorized: strategy.vectorized, deploy: checked === "deploy" });
  const shown = (key: string, client: string | undefined) => (checked ? client : undefined) ?? apiErrors[key];

  const run = useMutation({
    mutationFn: () =>
      unwrap(api.POST("/api/v1/backtests", { body: backtestBody(strategy.name, form, paramsBody(fields, params)) })),
    onSuccess: (created) => {
      queryClient.setQueryData(keys.backtest(created.id), created);
      void queryClient.invalidateQueries({ queryKey: keys.backtestList });
      toast("info", `Backtest of ${strategy.name} queued`);
      navigate(`/backtests/${created.id}`);
    },
    onError: (error) => setApiErrors(fieldErrors(error)),
  });
  const deploy = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/api/v1/strategies/{name}/deployments", {
          params: { path: { name: strategy.name } },
          body: deploymentBody(form, paramsBody(fields, params)),
        }),
      ),
    onSuccess: (created) => {
      void queryClient.invalidateQueries({ queryKey: keys.deployments });
      toast("success", `Deployed ${strategy.name} on paper`);
      navigate(`/deployments/${created.id}`);
    },
    onError: (error) => {
      setApiErrors(fieldErrors(error));
      setConfirmDeploy(false);
    },
  });
  const busy = run.isPending || deploy.isPending;
  const failure = run.error ?? deploy.error;

  const set = <K extends keyof RunForm>(key: K, value: RunForm[K]) => {
    setForm((f) => ({ ...f, [key]: value }));
    const apiKey = key === "slippage" ? "slippage_bps" : key === "bps" ? "costs" : key;
    setApiErrors(({ [apiKey]: _gone, ...rest }) => rest);
  };
  const setParam = (name: string, value: string) => {
    setParams((p) => ({ ...p, [name]: value }));
    setApiErrors(({ [`params.${name}`]: _gone, ...rest }) => rest);
  };

  const submitRun = (e: FormEvent) => {
    e.preventDefault();
    setChecked("run");
    run.reset();
    deploy.reset();
    const problems = {
      ...validateParams(fields, params),
      ...validateRun(form, { vectorized: strategy.vectorized }),
    };
    if (Object.keys(problems).length === 0) run.mutate();
  };
  const askDeploy = () => {
    setChecked("deploy");
    run.reset();
    deploy.reset();
    const problems = { ...validateParams(fields, params), ...validateRun(form, { vectorized: strategy.vectorized, deploy: true }) };
    if (Object.keys(problems).length === 0) setConfirmDeploy(true);
  };

  const paramShown = Object.fromEntries(fields.map((f) => [f.name, shown(`params.${f.name}`, paramErrors[f.name])]));
  const paramsGeneral = apiErrors.params;
  const fieldError = (key: string, id: string) => {
    const text = shown(key, runErrors[key]);
    return text ? (
      <p id={id} className="field-error" role="alert">
        {text}
      </p>
    ) : null;
  };

  return (
    <section className="card" aria-label="Strategy">
      <div className="toolbar">
        <h2>{strategy.name}</h2>
        <span className="badge">{strategy.source}</span>
        {strategy.vectorized && <span className="badge">vectorized</span>}
      </div>
      <p className="muted">{strategy.description}</p>
      {strategy.file && <p className="muted small mono">{strategy.file}</p>}
      <form className="run-form" aria-label="Backtest" noValidate onSubmit={submitRun}>
        <fieldset className="plain" disabled={!canTrade || busy}>
          <h3>Parameters</h3>
          <ParamFields fields={fields} values={params} errors={paramShown} onChange={setParam} />
          {paramsGeneral && <p className="field-error" role="alert">{paramsGeneral}</p>}

          <h3>Run</h3>
          <div className="form-grid">
            <div className="field wide">
              <SymbolSearch
                key={form.symbols.join(",")}
                value=""
                label="Add symbol"
                onChange={(ref) => {
                  if (!form.symbols.includes(ref)) set("symbols", [...form.symbols, ref]);
                }}
              />
              <ul className="chips" aria-label="Symbols">
                {form.symbols.map((s) => (
                  <li key={s} className="chip">
                    {s}
                    {canTrade && (
                      <button
                        type="button"
                        className="link"
                        aria-label={`Remove ${s}`}
                        onClick={() => set("symbols", form.symbols.filter((x) => x !== s))}
                      >
                        ×
                      </button>
                    )}
                  </li>
                ))}
                {form.symbols.length === 0 && <li className="muted small">No symbol chosen yet.</li>}
              </ul>
              {fieldError("symbols", "symbols-error")}
            </div>
            <div className="field">
              <label htmlFor="run-interval">Interval</label>
              <select id="run-interval" value={form.interval} onChange={(e) => set("interval", e.target.value as RunInterval)}>
                {BACKTEST_INTERVALS.map((i) => (
                  <option key={i} value={i}>
                    {i}
                  </option>
                ))}
              </select>
              {fieldError("interval", "interval-error")}
            </div>
            <div className="field">
              <label htmlFor="run-start">Start</label>
              <input id="run-start" type="date" value={form.start} aria-invalid={!!shown("start", runErrors.start)} onChange={(e) => set("start", e.target.value)} />
              {fieldError("start", "start-error")}
            </div>
            <div className="field">
              <label htmlFor="run-end">End</label>
              <input id="run-end" type="date" value={form.end} aria-invalid={!!shown("end", runErrors.end)} onChange={(e) => set("end", e.target.value)} />
              {fieldError("end", "end-error")}
            </div>
            <div className="field">
              <label htmlFor="run-cash">Cash (INR)</label>
              <input id="run-cash" inputMode="decimal" value={form.cash} aria-invalid={!!shown("cash", runErrors.cash)} onChange={(e) => set("cash", e.target.value)} />
              {fieldError("cash", "cash-error")}
            </div>
            <div className="field">
              <label htmlFor="run-costs">Costs</label>
              <div className="inline-form">
                <select id="run-costs" value={form.costs} onChange={(e) => set("costs", e.target.value as RunForm["costs"])}>
                  <option value="india">india</option>
                  <option value="bps">bps:N</option>
                </select>
                {form.costs === "bps" && (
                  <input
                    aria-label="Costs (bps)"
                    inputMode="decimal"
                    size={5}
                    placeholder="bps"
                    value={form.bps}
                    aria-invalid={!!shown("costs", runErrors.costs)}
                    onChange={(e) => set("bps", e.target.value)}
                  />
                )}
              </div>
              <small className="help">india: the dated NSE charges; bps:N: a flat N basis points per fill</small>
              {fieldError("costs", "costs-error")}
            </div>
            <div className="field">
              <label htmlFor="run-slippage">Slippage (bps)</label>
              <input
                id="run-slippage"
                inputMode="decimal"
                placeholder="paper broker's model"
                value={form.slippage}
                aria-invalid={!!shown("slippage_bps", runErrors.slippage_bps)}
                onChange={(e) => set("slippage", e.target.value)}
              />
              {fieldError("slippage_bps", "slippage-error")}
            </div>
            <div className="field">
              <label htmlFor="run-engine">Engine</label>
              <select id="run-engine" value={form.engine} onChange={(e) => set("engine", e.target.value as RunForm["engine"])}>
                <option value="event">event</option>
                {strategy.vectorized && <option value="vector">vector</option>}
              </select>
              {fieldError("engine", "engine-error")}
            </div>
            <div className="field">
              <label htmlFor="run-seed">Seed</label>
              <input id="run-seed" inputMode="numeric" value={form.seed} aria-invalid={!!shown("seed", runErrors.seed)} onChange={(e) => set("seed", e.target.value)} />
              {fieldError("seed", "seed-error")}
            </div>
            <div className="field">
              <label htmlFor="run-benchmark">Benchmark</label>
              <input
                id="run-benchmark"
                placeholder="the symbols (default)"
                value={form.benchmark}
                aria-invalid={!!shown("benchmark", runErrors.benchmark)}
                onChange={(e) => set("benchmark", e.target.value)}
              />
              {fieldError("benchmark", "benchmark-error")}
            </div>
          </div>
        </fieldset>
        {failure != null && <ErrorBox error={failure} />}
        {canTrade && !confirmDeploy && (
          <div className="row-buttons">
            <button type="submit" className="primary" disabled={busy}>
              {run.isPending ? "Queueing…" : "Run backtest"}
            </button>
            <button type="button" disabled={busy} onClick={askDeploy}>
              Deploy on paper
            </button>
          </div>
        )}
        {canTrade && confirmDeploy && (
          <div className="banner" role="group" aria-label="Confirm deployment">
            <p>
              Deploy <strong>{strategy.name}</strong> on <strong>{form.symbols.join(", ")}</strong> at {form.interval}: it
              places paper orders in your account until you stop it.
            </p>
            <div className="row-buttons">
              <button type="button" className="primary" disabled={busy} onClick={() => deploy.mutate()}>
                {deploy.isPending ? "Deploying…" : "Confirm deploy"}
              </button>
              <button type="button" disabled={busy} onClick={() => setConfirmDeploy(false)}>
                Back
              </button>
            </div>
          </div>
        )}
        {!canTrade && <p className="muted small">Read-only: viewers cannot run backtests or deploy.</p>}
      </form>
    </section>
  );
}
