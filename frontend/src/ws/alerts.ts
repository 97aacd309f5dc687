/**
 * The `alerts` channel (docs/alerts.md): the server publishes each alert about you as
 * {"type": "alert", "id", "kind", "severity", "title", "body", "user_id", "ts", "similar", "data"},
 * which the gateway wraps as {"type": "alert", "channel": "alerts", "data": {...}}.
 * `id` is the alert's row in the server's inbox (GET /api/v1/alerts; null when it could not be
 * stored): the dashboard merges these live alerts into the stored ones by it (lib/alertInbox.ts).
 */
import type { Frame } from "./client";

export type AlertSeverity = "info" | "warning" | "error" | "critical";

export interface AlertItem {
  /** local id, for React keys */
  id: number;
  /** the server's inbox id (mark it read by this); null: not stored */
  alertId: number | null;
  kind: string;
  severity: AlertSeverity;
  title: string;
  body: string;
  /** ISO 8601 UTC */
  ts: string;
  /** how many similar alerts were suppressed before this one */
  similar: number;
}

export const MAX_ALERTS = 20;
const SEVERITIES: readonly string[] = ["info", "warning", "error", "critical"];
let nextId = 1;

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/** The alert in a frame of the `alerts` channel, or null when it is not one. */
export function parseAlertFrame(frame: Frame): AlertItem | null {
  if (frame.type !== "alert") return null;
  const raw = (frame.data && typeof frame.data === "object" ? frame.data : frame) as Record<string, unknown>;
  const title = str(raw.title);
  const kind = str(raw.kind);
  if (!title && !kind) return null;
  const severity = SEVERITIES.includes(str(raw.severity)) ? (raw.severity as AlertSeverity) : "info";
  return {
    id: nextId++,
    alertId: typeof raw.id === "number" && Number.isInteger(raw.id) && raw.id > 0 ? raw.id : null,
    kind,
    severity,
    title: title || kind.replace(/_/g, " "),
    body: str(raw.body),
    ts: str(raw.ts) || new Date().toISOString(),
    similar: typeof raw.similar === "number" ? raw.similar : 0,
  };
}

/** Newest first, at most MAX_ALERTS. */
export function pushAlert(list: readonly AlertItem[], alert: AlertItem): AlertItem[] {
  return [alert, ...list].slice(0, MAX_ALERTS);
}

/** warning/error/critical alerts also raise a toast. */
export function alertToastKind(severity: AlertSeverity): "warning" | "error" | null {
  if (severity === "warning") return "warning";
  if (severity === "error" || severity === "critical") return "error";
  return null;
}

/** "just now", "5 min ago", "2 h ago", "3 d ago" (ts in the future counts as now). */
export function relativeTime(iso: string, now: number): string {
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}
