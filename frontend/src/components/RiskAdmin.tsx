/** Admin risk controls: the global kill switch, an account's switch and re-arm, the limits editor. */
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { keys, useRiskState, type AccountLimits, type LimitsIn, type User } from "../api/queries";
import { KillSwitchDialog } from "./RiskPanel";
import { ErrorBox, Loading } from "./States";
import { useToast } from "./Toasts";

type IntField = "max_order_quantity" | "max_open_orders" | "max_orders_per_minute";
type DecField =
  | "max_order_value"
  | "max_position_value"
  | "max_gross_exposure"
  | "daily_loss_limit"
  | "fat_finger_pct"
  | "max_drawdown_pct";

const FIELDS: { key: IntField | DecField; label: string; int?: boolean }[] = [
  { key: "max_order_quantity", label: "Max order quantity", int: true },
  { key: "max_order_value", label: "Max order value (INR)" },
  { key: "max_position_value", label: "Max position value (INR)" },
  { key: "max_gross_exposure", label: "Max gross exposure (INR)" },
  { key: "max_open_orders", label: "Max open orders", int: true },
  { key: "max_orders_per_minute", label: "Max orders per minute", int: true },
  { key: "fat_finger_pct", label: "Fat finger (%)" },
  { key: "daily_loss_limit", label: "Daily loss limit (INR)" },
  { key: "max_drawdown_pct", label: "Max drawdown (%)" },
];
const EXCHANGES = ["NSE", "BSE"] as const;
const PRODUCTS = ["CNC", "MIS"] as const;

type Limits = AccountLimits["effective"];

interface LimitsForm {
  values: Record<IntField | DecField, string>;
  exchanges: string[];
  products: string[];
  squareOff: "" | "yes" | "no";
}

function toForm(l: Limits | null): LimitsForm {
  const values = {} as LimitsForm["values"];
  for (const f of FIELDS) values[f.key] = l?.[f.key] == null ? "" : String(l[f.key]);
  return {
    values,
    exchanges: l?.allowed_exchanges ?? [],
    products: l?.allowed_products ?? [],
    squareOff: l?.square_off_on_halt == null ? "" : l.square_off_on_halt ? "yes" : "no",
  };
}

/** The PUT body: set fields only (an empty field is "no limit" / "use the default"). */
export function limitsBody(form: LimitsForm): LimitsIn {
  const body: Record<string, unknown> = {};
  for (const f of FIELDS) {
    const v = form.values[f.key].trim();
    if (!v) continue;
    // integers go as numbers; anything else is sent as typed and the API's 422 explains it
    body[f.key] = f.int && /^\d+$/.test(v) ? Number(v) : v;
  }
  if (form.exchanges.length) body.allowed_exchanges = EXCHANGES.filter((e) => form.exchanges.includes(e));
  if (form.products.length) body.allowed_products = PRODUCTS.filter((p) => form.products.includes(p));
  if (form.squareOff) body.square_off_on_halt = form.squareOff === "yes";
  return body as LimitsIn;
}

export function RiskAdminSection({ users }: { users: User[] }) {
  const [target, setTarget] = useState<number | "">("");
  const userId = target === "" ? undefined : target;
  const own = useRiskState();
  const [globalDialog, setGlobalDialog] = useState(false);
  const g = own.data?.global;
  return (
    <section className="card" aria-label="Risk controls">
      <div className="toolbar">
        <h2>Risk controls</h2>
      </div>
      <div className="toolbar">
        <strong>Global kill switch:</strong>
        {g ? (
          <span className={g.kill_switch ? "neg" : ""}>
            {g.kill_switch ? `engaged${g.kill_reason ? ` — ${g.kill_reason}` : ""}` : "off"}
          </span>
        ) : (
          <span className="muted">…</span>
        )}
        {g && (
          <button type="button" className={g.kill_switch ? "" : "danger"} onClick={() => setGlobalDialog(true)}>
            {g.kill_switch ? "Release global kill switch…" : "Engage global kill switch…"}
          </button>
        )}
      </div>
      {own.error != null && <ErrorBox error={own.error} />}
      {globalDialog && g && <KillSwitchDialog scope="global" engage={!g.kill_switch} onClose={() => setGlobalDialog(false)} />}

      <label>
        Limits for{" "}
        <select
          aria-label="Limits for"
          className="fit"
          value={target}
          onChange={(e) => setTarget(e.target.value === "" ? "" : Number(e.target.value))}
        >
          <option value="">Platform defaults</option>
          {users.map((u) => (
            <option key={u.id} value={u.id}>
              {u.username} (#{u.id}, {u.role})
            </option>
          ))}
        </select>
      </label>
      {userId !== undefined && <AccountRisk key={`acct-${userId}`} userId={userId} />}
      <LimitsEditor key={`limits-${userId ?? "defaults"}`} userId={userId} />
    </section>
  );
}

function AccountRisk({ userId }: { userId: number }) {
  const state = useRiskState(userId);
  const [dialog, setDialog] = useState(false);
  const queryClient = useQueryClient();
  const toast = useToast();
  const rearm = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/risk/rearm", { body: { user_id: userId } })),
    onSuccess: () => {
      toast("success", `Account ${userId} re-armed`);
      void queryClient.invalidateQueries({ queryKey: keys.risk });
    },
  });
  const a = state.data?.account;
  if (state.isPending) return <Loading />;
  if (!a) return <ErrorBox error={state.error} />;
  return (
    <div className="toolbar wrap" aria-label="Account risk">
      <span>
        Account kill switch:{" "}
        <span className={a.kill_switch ? "neg" : ""}>{a.kill_switch ? `engaged — ${a.kill_reason ?? ""}` : "off"}</span>
      </span>
      <button type="button" className="small" onClick={() => setDialog(true)}>
        {a.kill_switch ? "Release…" : "Engage…"}
      </button>
      <span>
        Halt:{" "}
        <span className={a.halted ? "neg" : ""}>
          {a.halted ? `${(a.halt_kind ?? "halted").replace(/_/g, " ")} — ${a.halt_reason ?? ""}` : "none"}
        </span>
      </span>
      {a.halted && (
        <button type="button" className="small primary" disabled={rearm.isPending} onClick={() => rearm.mutate()}>
          Re-arm
        </button>
      )}
      {rearm.error != null && <ErrorBox error={rearm.error} />}
      {dialog && <KillSwitchDialog scope="account" userId={userId} engage={!a.kill_switch} onClose={() => setDialog(false)} />}
    </div>
  );
}

function LimitsEditor({ userId }: { userId?: number }) {
  const limits = useQuery({
    queryKey: keys.riskLimits(userId),
    queryFn: () => unwrap(api.GET("/api/v1/risk/limits", { params: { query: { user_id: userId } } })),
  });
  if (limits.isPending) return <Loading what="Loading limits" />;
  if (!limits.data) return <ErrorBox error={limits.error} retry={() => void limits.refetch()} />;
  return <LimitsFormView userId={userId} data={limits.data} />;
}

function LimitsFormView({ userId, data }: { userId?: number; data: AccountLimits }) {
  // an account edits its override (blank = the default applies); no user edits the defaults
  const [form, setForm] = useState<LimitsForm>(() => toForm(userId === undefined ? data.defaults : data.override));
  const queryClient = useQueryClient();
  const toast = useToast();
  const save = useMutation({
    mutationFn: () =>
      unwrap(api.PUT("/api/v1/risk/limits", { params: { query: { user_id: userId } }, body: limitsBody(form) })),
    onSuccess: () => {
      toast("success", userId === undefined ? "Saved the platform default limits" : `Saved the limits of account ${userId}`);
      void queryClient.invalidateQueries({ queryKey: ["risk", "limits"] });
    },
  });
  const hint = (key: IntField | DecField) => {
    const source = userId === undefined ? null : data.defaults[key];
    return source == null ? "no limit" : `default ${source}`;
  };
  const toggle = (list: "exchanges" | "products", value: string, on: boolean) =>
    setForm((f) => ({ ...f, [list]: on ? [...f[list], value] : f[list].filter((x) => x !== value) }));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!save.isPending) save.mutate();
  };
  return (
    <form onSubmit={submit} aria-label="Risk limits" className="stack">
      <p className="muted small">
        {userId === undefined
          ? "Platform defaults. A blank field is no limit."
          : "This account's override. A blank field uses the platform default."}{" "}
        Money in INR and percentages as decimals (e.g. 500000.00, 5).
      </p>
      <div className="limits-grid">
        {FIELDS.map((f) => (
          <label key={f.key}>
            {f.label}
            <input
              inputMode={f.int ? "numeric" : "decimal"}
              value={form.values[f.key]}
              placeholder={hint(f.key)}
              onChange={(e) => setForm((old) => ({ ...old, values: { ...old.values, [f.key]: e.target.value } }))}
            />
          </label>
        ))}
        <fieldset>
          <legend>Allowed exchanges</legend>
          {EXCHANGES.map((x) => (
            <label key={x} className="check">
              <input type="checkbox" checked={form.exchanges.includes(x)} onChange={(e) => toggle("exchanges", x, e.target.checked)} /> {x}
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Allowed products</legend>
          {PRODUCTS.map((x) => (
            <label key={x} className="check">
              <input type="checkbox" checked={form.products.includes(x)} onChange={(e) => toggle("products", x, e.target.checked)} /> {x}
            </label>
          ))}
        </fieldset>
        <label>
          Square off on halt
          <select value={form.squareOff} onChange={(e) => setForm((f) => ({ ...f, squareOff: e.target.value as LimitsForm["squareOff"] }))}>
            <option value="">{userId === undefined ? "no" : "default"}</option>
            <option value="yes">yes</option>
            <option value="no">no</option>
          </select>
        </label>
      </div>
      <p className="muted small" aria-label="Effective limits">
        Effective:{" "}
        {FIELDS.filter((f) => data.effective[f.key] != null)
          .map((f) => `${f.label} ${data.effective[f.key]}`)
          .join(" · ") || "no limits"}
      </p>
      {save.error != null && <ErrorBox error={save.error} />}
      <div className="row-buttons">
        <button type="submit" className="primary" disabled={save.isPending}>
          Save limits
        </button>
      </div>
    </form>
  );
}
