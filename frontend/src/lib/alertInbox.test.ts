import { describe, expect, it } from "vitest";
import type { AlertPage, StoredAlert } from "../api/queries";
import type { AlertItem } from "../ws/alerts";
import { markAllReadInPage, markReadInPage, maxShownId, mergeAlerts, newestId, unreadCount } from "./alertInbox";

const stored = (id: number, minute: number, read = false): StoredAlert => ({
  id,
  user_id: 2,
  kind: "order_rejected",
  severity: "warning",
  title: `stored ${id}`,
  body: "",
  similar: 0,
  created_at: `2025-01-31T10:${String(minute).padStart(2, "0")}:00Z`,
  read_at: read ? "2025-01-31T11:00:00Z" : null,
});

let local = 1;
const live = (alertId: number | null, minute: number, title = `live ${alertId}`): AlertItem => ({
  id: local++,
  alertId,
  kind: "risk_halt",
  severity: "critical",
  title,
  body: "",
  ts: `2025-01-31T10:${String(minute).padStart(2, "0")}:00Z`,
  similar: 0,
});

const page = (items: StoredAlert[], unread_count: number): AlertPage => ({ items, next_cursor: null, unread_count });

describe("the alert inbox", () => {
  it("shows a live alert the server already lists as the server has it, read state included", () => {
    const views = mergeAlerts([stored(7, 5, true), stored(6, 4)], [live(7, 5, "live copy")], 20);
    expect(views.map((v) => [v.id, v.title, v.read])).toEqual([
      [7, "stored 7", true],
      [6, "stored 6", false],
    ]);
  });

  it("adds newer live alerts unread, newest first, and keeps unstored ones (no id)", () => {
    const views = mergeAlerts([stored(3, 1, true)], [live(9, 8), live(null, 6, "unstored"), live(4, 2)], 20);
    expect(views.map((v) => [v.id, v.title, v.read])).toEqual([
      [9, "live 9", false],
      [null, "unstored", false],
      [4, "live 4", false],
      [3, "stored 3", true],
    ]);
    expect(new Set(views.map((v) => v.key)).size).toBe(4);
    expect(mergeAlerts([stored(3, 1)], [live(9, 8), live(4, 2)], 2).map((v) => v.id)).toEqual([9, 4]);
  });

  it("counts the server's unread plus live alerts stored after the page was read", () => {
    const p = page([stored(5, 3), stored(4, 2, true)], 3); // one more unread beyond the page
    expect(newestId(p)).toBe(5);
    expect(unreadCount(p, [])).toBe(3);
    expect(unreadCount(p, [live(5, 3), live(6, 4), live(6, 4), live(null, 5)])).toBe(4);
    expect(unreadCount(undefined, [live(1, 1)])).toBe(1);
    expect(unreadCount(page([], 0), [])).toBe(0);
  });

  it("marks one read in the cached page, once", () => {
    const p = page([stored(5, 3), stored(4, 2)], 2);
    const once = markReadInPage(p, 4, "2025-01-31T12:00:00Z")!;
    expect(once.items.map((a) => a.read_at)).toEqual([null, "2025-01-31T12:00:00Z"]);
    expect(once.unread_count).toBe(1);
    expect(markReadInPage(once, 4, "2025-01-31T13:00:00Z")).toBe(once); // already read: unchanged
    expect(markReadInPage(once, 99, "2025-01-31T13:00:00Z")).toBe(once); // not on the page
    expect(markReadInPage(undefined, 4, "x")).toBeUndefined();
  });

  it("marks all read up to the newest shown id, leaving newer ones unread", () => {
    const p = page([stored(8, 5), stored(7, 4), stored(6, 3, true), stored(5, 2)], 4);
    const upTo7 = markAllReadInPage(p, 7, "2025-01-31T12:00:00Z")!;
    expect(upTo7.items.map((a) => a.read_at !== null)).toEqual([false, true, true, true]);
    expect(upTo7.unread_count).toBe(1);
    const everything = markAllReadInPage(p, undefined, "2025-01-31T12:00:00Z")!;
    expect(everything.items.every((a) => a.read_at !== null)).toBe(true);
    expect(everything.unread_count).toBe(0);
  });

  it("takes the newest shown id for mark-all-read, ignoring unstored alerts", () => {
    const views = mergeAlerts([stored(3, 1)], [live(null, 9), live(12, 8)], 20);
    expect(maxShownId(views)).toBe(12);
    expect(maxShownId(mergeAlerts([], [live(null, 1)], 20))).toBeUndefined();
  });
});
