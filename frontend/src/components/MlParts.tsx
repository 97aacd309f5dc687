/** Shared pieces of the Models pages: a run's status and progress, its checks badge, cancel, and the ML errors in words. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { errorMessage } from "../api/errors";
import { keys, type MlRun } from "../api/queries";
import { useAuth } from "../auth/AuthContext";
import { isExtraMissing, isMlLive, pipCommand, stageText } from "../lib/ml";
import { ProgressBar } from "./RunStatus";
import { ErrorBox } from "./States";
import { useToast } from "./Toasts";

export function MlRunStatus({ run, withStage = false }: { run: Pick<MlRun, "id" | "status" | "progress">; withStage?: boolean }) {
  const stage = stageText(run.progress);
  return (
    <span className="run-status">
      <span className={`status status-${run.status}`}>{run.status}</span>
      {isMlLive(run.status) && <ProgressBar value={run.progress.fraction} label={`Progress of ${run.id.slice(0, 8)}`} />}
      {withStage && isMlLive(run.status) && stage && <span className="muted small">{stage}</span>}
    </span>
  );
}

export function ChecksBadge({ checks }: { checks: "passed" | "failed" | null | undefined }) {
  if (!checks) return <span className="muted">—</span>;
  return <span className={`badge ${checks === "passed" ? "ok" : "danger"}`}>{checks}</span>;
}

/**
 * An ML request's error: the server without the `ml` extra (503 ML_EXTRA_MISSING) gets a
 * sentence an operator can act on; anything else the envelope's message and code.
 */
export function MlErrorBox({ error, retry }: { error: unknown; retry?: () => void }) {
  if (isExtraMissing(error)) {
    const pip = pipCommand(error);
    return (
      <div className="banner warn" role="alert">
        <p>
          <strong>Machine learning is not available on this server.</strong> Its optional ML packages are not installed
          {pip ? (
            <>
              : an administrator can run <code>{pip}</code> and restart it
            </>
          ) : (
            ""
          )}
          . [ML_EXTRA_MISSING]
        </p>
      </div>
    );
  }
  return <ErrorBox error={error} retry={retry} />;
}

/** Cancel a queued or running training run: its owner (a trader) or an admin. */
export function useCancelMlRun() {
  const queryClient = useQueryClient();
  const toast = useToast();
  return useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/api/v1/ml/runs/{run_id}", { params: { path: { run_id: id } } })),
    onSuccess: (run) => {
      queryClient.setQueryData(keys.mlRun(run.id), run);
      void queryClient.invalidateQueries({ queryKey: keys.mlRunList });
      toast("info", "Training run cancelled");
    },
    onError: (error) => toast("error", `Cancel refused: ${errorMessage(error)}`),
  });
}

export function useMayCancelMlRun(): (run: Pick<MlRun, "user_id" | "status">) => boolean {
  const { user, canTrade, isAdmin } = useAuth();
  return (run) => canTrade && isMlLive(run.status) && (isAdmin || run.user_id === user?.id);
}
