/** Risk at a glance (kill switches, halt, trading allowed) and the kill-switch confirm dialog. */
import { useState, type FormEvent } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { keys, riskBlockReason, useRiskState, type RiskScopeState } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { formatTime } from "../lib/format";
import { ErrorBox, Loading } from "./States";
import { useToast } from "./Toasts";

function ScopeLine({ label, s }: { label: string; s: RiskScopeState }) {
  return (
    <li>
      <strong>{label}:</strong>{" "}
      {s.kill_switch ? (
        <span className="neg">
          kill switch engaged{s.kill_reason ? ` — ${s.kill_reason}` : ""}
          {s.kill_at ? <span className="muted small"> (since {formatTime(s.kill_at)})</span> : null}
        </span>
      ) : (
        <span>kill switch off</span>
      )}
      {s.halted && (
        <span className="neg">
          {" "}
          · halted{s.halt_kind ? ` (${s.halt_kind.replace(/_/g, " ")})` : ""}
          {s.halt_reason ? ` — ${s.halt_reason}` : ""}
        </span>
      )}
    </li>
  );
}

/** Dashboard card: GET /risk/state, refreshed every 5 s and on order frames. */
export function RiskCard() {
  const { canTrade } = useAuth();
  const state = useRiskState();
  const [confirm, setConfirm] = useState(false);
  const data = state.data;
  return (
    <section className="card" aria-label="Risk">
      <div className="toolbar">
        <h2>Risk</h2>
        <span className="spacer" />
        {data && (
          <span className={`badge ${data.trading_allowed ? "ok" : "danger"}`} role="status" aria-label="Trading status">
            {data.trading_allowed ? "Trading allowed" : "Trading blocked"}
          </span>
        )}
      </div>
      {state.isPending ? (
        <Loading />
      ) : !data ? (
        <ErrorBox error={state.error} retry={() => void state.refetch()} />
      ) : (
        <>
          <ul className="plain">
            <ScopeLine label="Platform" s={data.global} />
            <ScopeLine label="Your account" s={data.account} />
          </ul>
          {!data.trading_allowed && <p className="muted small">{riskBlockReason(data)}</p>}
          {canTrade && (
            <button
              type="button"
              className={data.account.kill_switch ? "" : "danger"}
              onClick={() => setConfirm(true)}
            >
              {data.account.kill_switch ? "Release my kill switch…" : "Engage my kill switch…"}
            </button>
          )}
          {confirm && (
            <KillSwitchDialog
              scope="account"
              engage={!data.account.kill_switch}
              onClose={() => setConfirm(false)}
            />
          )}
        </>
      )}
    </section>
  );
}

/**
 * Confirm an engage or release, with a reason (the API requires one) and, when engaging,
 * whether to also close every position at market.
 */
export function KillSwitchDialog({
  scope,
  engage,
  userId,
  onClose,
}: {
  scope: "account" | "global";
  engage: boolean;
  userId?: number;
  onClose: () => void;
}) {
  const [reason, setReason] = useState("");
  const [squareOff, setSquareOff] = useState(false);
  const queryClient = useQueryClient();
  const toast = useToast();
  const what = scope === "global" ? "the global kill switch" : userId ? `the kill switch of account ${userId}` : "your account's kill switch";
  const mutation = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/api/v1/risk/kill-switch", {
          body: { scope, engaged: engage, reason: reason.trim(), square_off: engage && squareOff, ...(userId ? { user_id: userId } : {}) },
        }),
      ),
    onSuccess: (out) => {
      toast(
        engage ? "error" : "success",
        `${engage ? "Engaged" : "Released"} ${what}` +
          (engage ? `: ${out.cancelled_orders} order(s) cancelled, ${out.square_off_orders} square-off order(s)` : ""),
      );
      void queryClient.invalidateQueries({ queryKey: keys.risk });
      void queryClient.invalidateQueries({ queryKey: keys.orders });
      onClose();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (reason.trim() && !mutation.isPending) mutation.mutate();
  };
  const title = `${engage ? "Engage" : "Release"} ${what}?`;
  return (
    <div className="modal-backdrop">
      <form className="card modal" role="dialog" aria-modal="true" aria-label={title} onSubmit={submit}>
        <h3>{title}</h3>
        <p className="small">
          {engage
            ? "Every open order in scope is cancelled and new orders are refused until the switch is released."
            : "New orders will be accepted again (unless another switch or a halt applies)."}
        </p>
        <label>
          Reason
          <input value={reason} onChange={(e) => setReason(e.target.value)} maxLength={256} required autoFocus />
        </label>
        {engage && (
          <label className="check">
            <input type="checkbox" checked={squareOff} onChange={(e) => setSquareOff(e.target.checked)} /> Also close
            every position at market
          </label>
        )}
        {mutation.error != null && <ErrorBox error={mutation.error} />}
        <div className="row-buttons">
          <button type="submit" className={engage ? "danger" : "primary"} disabled={!reason.trim() || mutation.isPending}>
            {engage ? "Engage" : "Release"}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </div>
  );
}
