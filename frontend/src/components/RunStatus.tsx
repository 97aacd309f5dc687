/** A backtest's status badge and, while it is queued or running, its progress bar. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { errorMessage } from "../api/errors";
import { keys, type Backtest } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { isLive } from "../lib/backtests";
import { useToast } from "./Toasts";

export function ProgressBar({ value, label }: { value: number; label: string }) {
  const pct = Math.round(Math.min(1, Math.max(0, value)) * 100);
  return (
    <span className="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
      <span className="progress-fill" style={{ width: `${pct}%` }} />
      <span className="progress-text">{pct}%</span>
    </span>
  );
}

export function RunStatus({ run }: { run: Pick<Backtest, "id" | "status" | "progress"> }) {
  return (
    <span className="run-status">
      <span className={`status status-${run.status}`}>{run.status}</span>
      {isLive(run.status) && <ProgressBar value={run.progress} label={`Progress of ${run.id.slice(0, 8)}`} />}
    </span>
  );
}

/** Cancel a queued or running run: its owner (a trader) or an admin. */
export function useCancelBacktest() {
  const queryClient = useQueryClient();
  const toast = useToast();
  return useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/backtests/{run_id}", { params: { path: { run_id: id } } })),
    onSuccess: (run) => {
      queryClient.setQueryData(keys.backtest(run.id), run);
      void queryClient.invalidateQueries({ queryKey: keys.backtestList });
      toast("info", "Backtest cancelled");
    },
    onError: (error) => toast("error", `Cancel refused: ${errorMessage(error)}`),
  });
}

/** Whether the logged-in user may cancel this run (the API decides anyway). */
export function useMayCancel(): (run: Pick<Backtest, "user_id" | "status">) => boolean {
  const { user, canTrade, isAdmin } = useAuth();
  return (run) => canTrade && isLive(run.status) && (isAdmin || run.user_id === user?.id);
}
