/**
 * The `jobs` channel (docs/websocket.md): each backtest event patches the cached run and the
 * history pages in place, so progress bars move without a request; when a run ends its full
 * record (finished_at, the summary) is re-read.
 */
import type { InfiniteData, QueryClient } from "@tanstack/react-query";
import { keys, type Backtest, type BacktestPage } from "../api/queries";
import { applyJobEvent, applyJobEventToPage, isLive, parseJobFrame, type JobEvent } from "../lib/backtests";
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
