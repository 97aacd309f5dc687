/**
 * Models: train a model (traders and admins: POST /ml/runs, then the run's page with its
 * progress), the training runs (status and progress from the `jobs` channel, OOS AUC, net
 * Sharpe, checks), and the registered models (versions, aliases, checks) with Promote for admins.
 */
import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { errorMessage } from "../api/errors";
import { keys, useMlModels, useMlRuns, type RegisteredModel } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { ChecksBadge, MlErrorBox, MlRunStatus, useCancelMlRun, useMayCancelMlRun } from "../components/MlParts";
import { Empty, Loading } from "../components/States";
import { SymbolSearch } from "../components/SymbolSearch";
import { useToast } from "../components/Toasts";
import { isoDate } from "../lib/backtests";
import { fieldErrors } from "../lib/fieldErrors";
import { formatTime } from "../lib/format";
import {
  ML_ALIASES,
  ML_INTERVALS,
  ML_MODELS,
  figuresOf,
  fmt,
  trainBody,
  validateTrain,
  type MlAlias,
  type MlInterval,
  type MlModelKind,
  type TrainForm,
} from "../lib/ml";

export default function ModelsPage() {
  const { canTrade } = useAuth();
  return (
    <div className="stack">
      {canTrade ? (
        <TrainCard />
      ) : (
        <p className="muted small">Training needs a trader account; a viewer reads the registered models.</p>
      )}
      <RunsCard />
      <ModelsCard />
    </div>
  );
}

function initialForm(): TrainForm {
  return {
    model: "xgboost",
    symbols: [],
    interval: "1d",
    start: isoDate(-730),
    end: isoDate(-1),
    label: "forward:5",
    folds: "5",
    trials: "0",
    threshold: "0.55",
    costs: "india",
    bps: "",
    name: "",
  };
}

function TrainCard() {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const toast = useToast();
  const [form, setForm] = useState<TrainForm>(initialForm);
  const [checked, setChecked] = useState(false);
  const [apiErrors, setApiErrors] = useState<Record<string, string>>({});
  const errors = validateTrain(form);
  const shown = (key: string) => (checked ? errors[key] : undefined) ?? apiErrors[key];

  const train = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/ml/runs", { body: trainBody(form) })),
    onSuccess: (run) => {
      queryClient.setQueryData(keys.mlRun(run.id), run);
      void queryClient.invalidateQueries({ queryKey: keys.mlRunList });
      toast("info", `Training of ${run.request.name} queued`);
      navigate(`/models/runs/${run.id}`);
    },
    onError: (error) => setApiErrors(fieldErrors(error)),
  });

  const set = <K extends keyof TrainForm>(key: K, value: TrainForm[K]) => {
    setForm((f) => ({ ...f, [key]: value }));
    const apiKey = key === "bps" ? "costs" : key;
    setApiErrors(({ [apiKey]: _gone, ...rest }) => rest);
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setChecked(true);
    train.reset();
    if (Object.keys(validateTrain(form)).length === 0) train.mutate();
  };
  const fieldError = (key: string) => {
    const text = shown(key);
    return text ? (
      <p id={`train-${key}-error`} className="field-error" role="alert">
        {text}
      </p>
    ) : null;
  };
  const invalid = (key: string) => ({
    "aria-invalid": !!shown(key),
    "aria-describedby": shown(key) ? `train-${key}-error` : undefined,
  });

  return (
    <section className="card" aria-label="Train a model">
      <div className="toolbar">
        <h2>Train a model</h2>
        <span className="muted small">Walk-forward folds (purged, embargoed), out-of-sample metrics, a signal backtest net of costs, then registered.</span>
      </div>
      <form className="run-form" aria-label="Train" noValidate onSubmit={submit}>
        <fieldset className="plain" disabled={train.isPending}>
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
                    <button type="button" className="link" aria-label={`Remove ${s}`} onClick={() => set("symbols", form.symbols.filter((x) => x !== s))}>
                      ×
                    </button>
                  </li>
                ))}
                {form.symbols.length === 0 && <li className="muted small">No symbol chosen yet.</li>}
              </ul>
              {fieldError("symbols")}
            </div>
            <div className="field">
              <label htmlFor="train-model">Model</label>
              <select id="train-model" value={form.model} onChange={(e) => set("model", e.target.value as MlModelKind)}>
                {ML_MODELS.map((m) => (
                  <option key={m} value={m}>
                    {m}
                  </option>
                ))}
              </select>
              {fieldError("model")}
            </div>
            <div className="field">
              <label htmlFor="train-interval">Interval</label>
              <select id="train-interval" value={form.interval} onChange={(e) => set("interval", e.target.value as MlInterval)}>
                {ML_INTERVALS.map((i) => (
                  <option key={i} value={i}>
                    {i}
                  </option>
                ))}
              </select>
              {fieldError("interval")}
            </div>
            <div className="field">
              <label htmlFor="train-start">Start</label>
              <input id="train-start" type="date" value={form.start} {...invalid("start")} onChange={(e) => set("start", e.target.value)} />
              {fieldError("start")}
            </div>
            <div className="field">
              <label htmlFor="train-end">End</label>
              <input id="train-end" type="date" value={form.end} {...invalid("end")} onChange={(e) => set("end", e.target.value)} />
              {fieldError("end")}
            </div>
            <div className="field">
              <label htmlFor="train-label">Label</label>
              <input id="train-label" value={form.label} {...invalid("label")} onChange={(e) => set("label", e.target.value)} />
              <small className="help">forward:H (sign of the H-bar return) or triple-barrier[:H[:PT[:SL]]]</small>
              {fieldError("label")}
            </div>
            <div className="field">
              <label htmlFor="train-folds">Folds</label>
              <input id="train-folds" type="number" min={2} max={20} step={1} value={form.folds} {...invalid("folds")} onChange={(e) => set("folds", e.target.value)} />
              <small className="help">walk-forward test folds, 2–20</small>
              {fieldError("folds")}
            </div>
            <div className="field">
              <label htmlFor="train-trials">Trials</label>
              <input id="train-trials" type="number" min={0} max={500} step={1} value={form.trials} {...invalid("trials")} onChange={(e) => set("trials", e.target.value)} />
              <small className="help">Optuna trials per fold (0: no search)</small>
              {fieldError("trials")}
            </div>
            <div className="field">
              <label htmlFor="train-threshold">Threshold</label>
              <input id="train-threshold" inputMode="decimal" value={form.threshold} {...invalid("threshold")} onChange={(e) => set("threshold", e.target.value)} />
              <small className="help">the signal backtest's entry probability</small>
              {fieldError("threshold")}
            </div>
            <div className="field">
              <label htmlFor="train-costs">Costs</label>
              <div className="inline-form">
                <select id="train-costs" value={form.costs} onChange={(e) => set("costs", e.target.value as TrainForm["costs"])}>
                  <option value="india">india</option>
                  <option value="bps">bps:N</option>
                </select>
                {form.costs === "bps" && (
                  <input aria-label="Costs (bps)" inputMode="decimal" size={5} placeholder="bps" value={form.bps} {...invalid("costs")} onChange={(e) => set("bps", e.target.value)} />
                )}
              </div>
              <small className="help">of the signal backtest</small>
              {fieldError("costs")}
            </div>
            <div className="field">
              <label htmlFor="train-name">Name</label>
              <input id="train-name" placeholder={`${form.model}-${form.interval}`} value={form.name} {...invalid("name")} onChange={(e) => set("name", e.target.value)} />
              <small className="help">the registered model (a new version each run)</small>
              {fieldError("name")}
            </div>
          </div>
        </fieldset>
        {train.error != null && <MlErrorBox error={train.error} />}
        <div className="row-buttons">
          <button type="submit" className="primary" disabled={train.isPending}>
            {train.isPending ? "Queueing…" : "Train"}
          </button>
        </div>
      </form>
    </section>
  );
}

function RunsCard() {
  const { isAdmin } = useAuth();
  const runs = useMlRuns();
  const items = runs.data?.pages.flatMap((p) => p.items) ?? [];
  const cancel = useCancelMlRun();
  const mayCancel = useMayCancelMlRun();
  return (
    <section className="card" aria-label="Training runs">
      <div className="toolbar">
        <h2>Training runs</h2>
        <span className="muted small">{isAdmin ? "Everyone's runs." : "Your runs."}</span>
      </div>
      {runs.isPending ? (
        <Loading what="Loading training runs" />
      ) : runs.error && !items.length ? (
        <MlErrorBox error={runs.error} retry={() => void runs.refetch()} />
      ) : items.length === 0 ? (
        <Empty>No training runs yet.</Empty>
      ) : (
        <>
          <div className="table-wrap">
            <table aria-label="Training runs">
              <thead>
                <tr>
                  <th>Model</th>
                  <th>Kind</th>
                  <th>Symbols</th>
                  <th>Interval</th>
                  <th>Status</th>
                  <th className="num">Version</th>
                  <th className="num">OOS AUC</th>
                  <th className="num">Net Sharpe</th>
                  <th>Checks</th>
                  <th>Created</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {items.map((r) => {
                  const f = figuresOf(r);
                  return (
                    <tr key={r.id}>
                      <td className="nowrap">
                        <Link to={`/models/runs/${r.id}`}>{r.request.name}</Link> <span className="muted small mono">{r.id.slice(0, 8)}</span>
                      </td>
                      <td>{r.request.model}</td>
                      <td>{r.request.symbols.join(", ")}</td>
                      <td>{r.request.interval}</td>
                      <td>
                        <MlRunStatus run={r} />
                        {r.status === "failed" && r.error && <span className="muted small"> {r.error.code}</span>}
                      </td>
                      <td className="num">{f.version != null ? `v${f.version}` : "—"}</td>
                      <td className="num">{fmt(f.auc)}</td>
                      <td className={`num ${signOf(f.sharpeNet)}`}>{fmt(f.sharpeNet, 2)}</td>
                      <td>
                        <ChecksBadge checks={f.checks} />
                      </td>
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
          {runs.error != null && <MlErrorBox error={runs.error} />}
          {runs.hasNextPage && (
            <button type="button" onClick={() => void runs.fetchNextPage()} disabled={runs.isFetchingNextPage}>
              {runs.isFetchingNextPage ? "Loading…" : "Load more"}
            </button>
          )}
        </>
      )}
    </section>
  );
}

function signOf(v: number | undefined): string {
  return typeof v === "number" ? (v > 0 ? "pos" : v < 0 ? "neg" : "") : "";
}

function ModelsCard() {
  const models = useMlModels();
  const list = models.data?.models ?? [];
  return (
    <section className="card" aria-label="Registered models">
      <div className="toolbar">
        <h2>Registered models</h2>
        <span className="muted small">champion: the version served to deployments; challenger: the one watched next to it. Only a version that passed its checks may take an alias.</span>
      </div>
      {models.isPending ? (
        <Loading what="Loading registered models" />
      ) : models.error ? (
        <MlErrorBox error={models.error} retry={() => void models.refetch()} />
      ) : list.length === 0 ? (
        <Empty>No registered models yet: a succeeded training run registers one.</Empty>
      ) : (
        list.map((m) => <ModelBlock key={m.name} model={m} />)
      )}
    </section>
  );
}

function ModelBlock({ model }: { model: RegisteredModel }) {
  const { isAdmin, user } = useAuth();
  const versions = [...model.versions].sort((a, b) => b.version - a.version); // newest first
  const aliases = Object.entries(model.aliases);
  return (
    <div className="model-block" role="group" aria-label={`Model ${model.name}`}>
      <div className="toolbar">
        <h3>{model.name}</h3>
        {aliases.length ? (
          aliases.map(([alias, v]) => (
            <span key={alias} className="badge">
              {alias} → v{v}
            </span>
          ))
        ) : (
          <span className="muted small">no alias</span>
        )}
        {model.description && <span className="muted small">{model.description}</span>}
      </div>
      <div className="table-wrap">
        <table aria-label={`Versions of ${model.name}`}>
          <thead>
            <tr>
              <th>Version</th>
              <th>Aliases</th>
              <th>Checks</th>
              <th className="num">OOS AUC</th>
              <th className="num">Net Sharpe</th>
              <th className="num">Fills</th>
              <th>Training run</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => (
              <tr key={v.version}>
                <th scope="row">v{v.version}</th>
                <td>
                  {v.aliases.length
                    ? v.aliases.map((a) => (
                        <span key={a} className="badge ok">
                          {a}
                        </span>
                      ))
                    : <span className="muted">—</span>}
                </td>
                <td>
                  <ChecksBadge checks={v.checks} />
                </td>
                <td className="num">{fmt(v.oos.auc)}</td>
                <td className={`num ${signOf(v.oos.sharpe_net)}`}>{fmt(v.oos.sharpe_net, 2)}</td>
                <td className="num">{fmt(v.oos.trades, 2).replace(/\.00$/, "")}</td>
                <td>
                  {!v.job_id ? (
                    <span className="muted">CLI</span>
                  ) : isAdmin || v.user_id === user?.id ? (
                    <Link to={`/models/runs/${v.job_id}`}>{v.job_id.slice(0, 8)}</Link>
                  ) : (
                    <span className="mono small" title="Another user's run">
                      {v.job_id.slice(0, 8)}
                    </span>
                  )}
                </td>
                <td className="nowrap">{formatTime(v.created)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {isAdmin && versions.length > 0 && <PromoteForm key={versions[0]!.version} model={model} />}
    </div>
  );
}

/** Admin: point champion or challenger at a version; the API's refusal (ML_CHECKS_FAILED, ...) in words. */
function PromoteForm({ model }: { model: RegisteredModel }) {
  const queryClient = useQueryClient();
  const toast = useToast();
  const newest = Math.max(...model.versions.map((v) => v.version));
  const [version, setVersion] = useState(newest);
  const [alias, setAlias] = useState<MlAlias>("champion");
  const promote = useMutation({
    mutationFn: () =>
      unwrap(api.POST("/api/v1/ml/models/{name}/promote", { params: { path: { name: model.name } }, body: { version, alias } })),
    onSuccess: (out) => {
      void queryClient.invalidateQueries({ queryKey: keys.mlModels });
      const was = out.previous_version != null && out.previous_version !== out.version ? ` (was v${out.previous_version})` : "";
      toast("success", `${out.name} v${out.version} is now ${out.alias}${was}`);
    },
    onError: (error) => toast("error", `Promote refused: ${errorMessage(error)}`),
  });
  const chosen = model.versions.find((v) => v.version === version);
  return (
    <form
      className="inline-form wrap"
      aria-label={`Promote ${model.name}`}
      onSubmit={(e) => {
        e.preventDefault();
        promote.mutate();
      }}
    >
      <label>
        Version{" "}
        <select
          value={version}
          onChange={(e) => {
            setVersion(Number(e.target.value));
            promote.reset();
          }}
        >
          {[...model.versions]
            .sort((a, b) => b.version - a.version)
            .map((v) => (
              <option key={v.version} value={v.version}>
                v{v.version}
                {v.checks ? ` (checks ${v.checks})` : ""}
              </option>
            ))}
        </select>
      </label>
      <label>
        Alias{" "}
        <select
          value={alias}
          onChange={(e) => {
            setAlias(e.target.value as MlAlias);
            promote.reset();
          }}
        >
          {ML_ALIASES.map((a) => (
            <option key={a} value={a}>
              {a}
            </option>
          ))}
        </select>
      </label>
      <button type="submit" className="primary" disabled={promote.isPending}>
        {promote.isPending ? "Promoting…" : "Promote"}
      </button>
      {chosen?.checks === "failed" && !promote.error && <span className="muted small">This version failed its checks: the API will refuse it.</span>}
      {promote.isSuccess && (
        <span className="muted small" role="status">
          v{promote.data.version} is now {promote.data.alias}.
        </span>
      )}
      {promote.error != null && (
        <span className="field-error" role="alert">
          {errorMessage(promote.error)}
        </span>
      )}
    </form>
  );
}
