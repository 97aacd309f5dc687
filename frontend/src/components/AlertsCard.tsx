/**
 * Your alerts: the stored ones (GET /api/v1/alerts, so they survive a reload) merged with the
 * live ones of the `alerts` channel, newest first, with relative times, unread state, and
 * "Mark read" / "Mark all read".
 */
import { useEffect, useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { errorMessage } from "../api/errors";
import { ALERTS_SHOWN, keys, markAlertRead, markAllAlertsRead, useAlertInbox, type AlertPage } from "../api/queries";
import { formatTime } from "../lib/format";
import { markAllReadInPage, markReadInPage, maxShownId, mergeAlerts, unreadCount } from "../lib/alertInbox";
import { relativeTime } from "../ws/alerts";
import { useAlerts } from "../ws/StreamProvider";
import { Empty, ErrorBox, Loading } from "./States";
import { useToast } from "./Toasts";

function useNow(everyMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

/** Marking read: the cached page changes at once, the server's answer then re-reads it. */
function useMarkRead() {
  const queryClient = useQueryClient();
  const toast = useToast();
  const settle = () => void queryClient.invalidateQueries({ queryKey: keys.alerts });
  const fail = (error: Error) => toast("error", `Could not mark alerts read: ${errorMessage(error)}`);
  const edit = async (change: (page: AlertPage | undefined) => AlertPage | undefined) => {
    await queryClient.cancelQueries({ queryKey: keys.alerts });
    queryClient.setQueryData<AlertPage>(keys.alerts, change);
  };
  const one = useMutation({
    mutationFn: markAlertRead,
    onMutate: (id: number) => edit((page) => markReadInPage(page, id, new Date().toISOString())),
    onError: fail,
    onSettled: settle,
  });
  const all = useMutation({
    mutationFn: markAllAlertsRead,
    onMutate: (maxId?: number) => edit((page) => markAllReadInPage(page, maxId, new Date().toISOString())),
    onError: fail,
    onSettled: settle,
  });
  return { one, all };
}

export function AlertsCard() {
  const live = useAlerts();
  const inbox = useAlertInbox();
  const now = useNow(30_000);
  const { one, all } = useMarkRead();
  const alerts = mergeAlerts(inbox.data?.items ?? [], live, ALERTS_SHOWN);
  const unread = unreadCount(inbox.data, live);

  return (
    <section className="card" aria-label="Alerts">
      <div className="alerts-title">
        <h2>Alerts</h2>
        {unread > 0 && (
          <span className="badge unread-count" aria-label={`${unread} unread`}>
            {unread} unread
          </span>
        )}
        <button
          type="button"
          className="link"
          disabled={unread === 0 || all.isPending}
          onClick={() => all.mutate(maxShownId(alerts))}
        >
          Mark all read
        </button>
      </div>
      {inbox.isError && <ErrorBox error={inbox.error} retry={() => void inbox.refetch()} />}
      {alerts.length === 0 ? (
        inbox.isPending ? <Loading what="Loading alerts" /> : <Empty>No alerts</Empty>
      ) : (
        <ul className="alerts">
          {alerts.map((a) => (
            <li key={a.key} className={`sev-${a.severity} ${a.read ? "read" : "unread"}`}>
              <div className="alert-head">
                <span className={`badge sev-${a.severity}`}>{a.severity}</span>
                <strong>{a.title}</strong>
                {a.similar > 0 && <span className="muted">(+{a.similar} similar)</span>}
                <time className="muted" dateTime={a.ts} title={formatTime(a.ts)}>
                  {relativeTime(a.ts, now)}
                </time>
                {!a.read && a.id !== null && (
                  <button
                    type="button"
                    className="link"
                    aria-label={`Mark read: ${a.title}`}
                    disabled={one.isPending && one.variables === a.id}
                    onClick={() => one.mutate(a.id!)}
                  >
                    Mark read
                  </button>
                )}
              </div>
              {a.body && <p className="alert-body">{a.body}</p>}
            </li>
          ))}
        </ul>
      )}
      <p className="muted note">
        Your latest {ALERTS_SHOWN} alerts, newest first: stored on the server with their read state, so they survive a
        reload; new ones arrive live. Unread ones are highlighted, read ones dimmed.
      </p>
    </section>
  );
}
