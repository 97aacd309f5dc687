/** This session's alerts from the WebSocket `alerts` channel, newest first, with relative times. */
import { useEffect, useState } from "react";
import { formatTime } from "../lib/format";
import { relativeTime } from "../ws/alerts";
import { useAlerts } from "../ws/StreamProvider";
import { Empty } from "./States";

function useNow(everyMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

export function AlertsCard() {
  const alerts = useAlerts();
  const now = useNow(30_000);
  return (
    <section className="card" aria-label="Alerts">
      <h2>Alerts</h2>
      {alerts.length === 0 ? (
        <Empty>No alerts this session</Empty>
      ) : (
        <ul className="alerts">
          {alerts.map((a) => (
            <li key={a.id} className={`sev-${a.severity}`}>
              <div className="alert-head">
                <span className={`badge sev-${a.severity}`}>{a.severity}</span>
                <strong>{a.title}</strong>
                {a.similar > 0 && <span className="muted">(+{a.similar} similar)</span>}
                <time className="muted" dateTime={a.ts} title={formatTime(a.ts)}>
                  {relativeTime(a.ts, now)}
                </time>
              </div>
              {a.body && <p className="alert-body">{a.body}</p>}
            </li>
          ))}
        </ul>
      )}
      <p className="muted note">
        Alerts arrive live and are kept only in this tab (the latest 20); they are not stored on the server
        yet, so a reload starts empty.
      </p>
    </section>
  );
}
