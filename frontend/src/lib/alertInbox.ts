/**
 * The dashboard's alerts: the server's inbox (GET /api/v1/alerts, with read state: it survives
 * a reload) merged with this tab's live alerts from the `alerts` channel, and the optimistic
 * edits of marking them read. Pure functions; AlertsCard wires them to the queries.
 */
import type { AlertPage, StoredAlert } from "../api/queries";
import type { AlertItem, AlertSeverity } from "../ws/alerts";

export interface AlertView {
  /** React key: stored and live alerts never share one */
  key: string;
  /** the inbox id; null: a live alert the server could not store (it cannot be marked read) */
  id: number | null;
  kind: string;
  severity: AlertSeverity;
  title: string;
  body: string;
  /** ISO 8601 UTC */
  ts: string;
  similar: number;
  read: boolean;
}

function fromStored(a: StoredAlert): AlertView {
  return {
    key: `s${a.id}`,
    id: a.id,
    kind: a.kind,
    severity: a.severity,
    title: a.title,
    body: a.body,
    ts: a.created_at,
    similar: a.similar,
    read: a.read_at !== null,
  };
}

function fromLive(a: AlertItem): AlertView {
  return {
    key: `l${a.id}`,
    id: a.alertId,
    kind: a.kind,
    severity: a.severity,
    title: a.title,
    body: a.body,
    ts: a.ts,
    similar: a.similar,
    read: false,
  };
}

function newestFirst(a: AlertView, b: AlertView): number {
  const byTime = Date.parse(b.ts) - Date.parse(a.ts);
  if (byTime) return byTime;
  return (b.id ?? Number.MAX_SAFE_INTEGER) - (a.id ?? Number.MAX_SAFE_INTEGER);
}

/**
 * Stored alerts, plus the live ones the stored page does not list yet (unread), newest first,
 * at most `max`. A live alert the page already has is shown as the server has it (its read
 * state is the server's).
 */
export function mergeAlerts(stored: readonly StoredAlert[], live: readonly AlertItem[], max: number): AlertView[] {
  const known = new Set(stored.map((a) => a.id));
  const extra = live.filter((a) => a.alertId === null || !known.has(a.alertId)).map(fromLive);
  return [...extra, ...stored.map(fromStored)].sort(newestFirst).slice(0, max);
}

/** The newest inbox id in the page, or 0. */
export function newestId(page: AlertPage | undefined): number {
  return page?.items.reduce((m, a) => Math.max(m, a.id), 0) ?? 0;
}

/**
 * The unread count: the server's, plus the live alerts stored after the page was read (their
 * id is newer than any in it, so the server's count did not include them yet).
 */
export function unreadCount(page: AlertPage | undefined, live: readonly AlertItem[]): number {
  const newest = newestId(page);
  const fresh = new Set(live.filter((a) => a.alertId !== null && a.alertId > newest).map((a) => a.alertId));
  return (page?.unread_count ?? 0) + fresh.size;
}

/** The newest id among the shown alerts: "mark all read" marks up to it, not past it. */
export function maxShownId(views: readonly AlertView[]): number | undefined {
  const ids = views.map((v) => v.id).filter((id): id is number => id !== null);
  return ids.length ? Math.max(...ids) : undefined;
}

/** The page with alert `id` marked read at `at` (unchanged when it is not there or read). */
export function markReadInPage(page: AlertPage | undefined, id: number, at: string): AlertPage | undefined {
  if (!page) return page;
  const hit = page.items.find((a) => a.id === id && a.read_at === null);
  if (!hit) return page;
  return {
    ...page,
    items: page.items.map((a) => (a === hit ? { ...a, read_at: at } : a)),
    unread_count: Math.max(0, page.unread_count - 1),
  };
}

/** The page with every alert up to `maxId` (all without one) marked read at `at`. */
export function markAllReadInPage(page: AlertPage | undefined, maxId: number | undefined, at: string): AlertPage | undefined {
  if (!page) return page;
  const inScope = (a: StoredAlert) => a.read_at === null && (maxId === undefined || a.id <= maxId);
  const items = page.items.map((a) => (inScope(a) ? { ...a, read_at: at } : a));
  // Older unread alerts beyond this page are marked too; newer ones are all on it (newest first).
  return { ...page, items, unread_count: items.filter((a) => a.read_at === null).length };
}
