/**
 * The `jobs` channel (docs/websocket.md): each backtest (and ML training) event patches the cached run and the
 * history pages in place, so progress bars move without a request; when a run ends its full
 * record (finished_at, the summary) is re-read.
 */
import type { InfiniteData, QueryClient } from "@tanstack/react-query";
import { keys, type Backtest, type BacktestPage, type MlRun, type MlRunPage } from "../api/queries";
import { applyJobEvent, applyJobEventToPage, isLive, parseJobFrame, type JobEvent } from "../lib/backtests";
import { applyMlJobEvent, applyMlJobEventToPage, isMlLive, parseMlJobFrame, type MlJobEvent } from "../lib/ml";
import type { Frame } from "./client";

export function applyJobFrame(queryClient: QueryClient, frame: Frame): JobEvent | null {
  const event = parseJobFrame(frame);
  if (!event) return null;
  queryClient.setQueryData<Backtest>(keys.backtest(event.id), (old) => (old ? applyJobEvent(old, event) : old));
  let listed = false;
  queryClient.setQueryData<InfiniteData<BacktestPage>>(keys.backtestList, (old) => {
    if (!old) return old;
    const pages = old.pages.map((p) => applyJobEventToPage(p, event));
    listed = pages.some((p, i) => p !== old.pages[i]);
    return listed ? { ...old, pages } : old;
  });
  if (!isLive(event.status)) {
    // the event carries status, progress and summary; the run's row has the rest
    void queryClient.invalidateQueries({ queryKey: keys.backtest(event.id) });
    void queryClient.invalidateQueries({ queryKey: keys.backtestList });
  } else if (!listed && event.status === "queued") {
    // a run queued elsewhere (another tab, the API): show it
    void queryClient.invalidateQueries({ queryKey: keys.backtestList });
  }
  return event;
}

/**
 * The `jobs` channel's `ml_train` events: patch the cached training run and the runs' pages in
 * place (progress, stage); the end re-reads the run, the list and the registered models (a
 * succeeded run registered a version).
 */
export function applyMlJobFrame(queryClient: QueryClient, frame: Frame): MlJobEvent | null {
  const event = parseMlJobFrame(frame);
  if (!event) return null;
  queryClient.setQueryData<MlRun>(keys.mlRun(event.id), (old) => (old ? applyMlJobEvent(old, event) : old));
  let listed = false;
  queryClient.setQueryData<InfiniteData<MlRunPage>>(keys.mlRunList, (old) => {
    if (!old) return old;
    const pages = old.pages.map((p) => applyMlJobEventToPage(p, event));
    listed = pages.some((p, i) => p !== old.pages[i]);
    return listed ? { ...old, pages } : old;
  });
  if (!isMlLive(event.status)) {
    void queryClient.invalidateQueries({ queryKey: keys.mlRun(event.id) });
    void queryClient.invalidateQueries({ queryKey: keys.mlRunList });
    if (event.status === "succeeded") void queryClient.invalidateQueries({ queryKey: keys.mlModels });
  } else if (!listed && event.status === "queued") {
    void queryClient.invalidateQueries({ queryKey: keys.mlRunList });
  }
  return event;
}
