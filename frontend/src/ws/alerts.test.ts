import { describe, expect, it } from "vitest";
import { alertToastKind, MAX_ALERTS, parseAlertFrame, pushAlert, relativeTime, type AlertItem } from "./alerts";

describe("alerts", () => {
  it("reads the alert from the gateway's envelope", () => {
    const a = parseAlertFrame({
      type: "alert",
      channel: "alerts",
      data: { type: "alert", kind: "kill_switch", severity: "critical", title: "Kill switch engaged", body: "by admin", ts: "2025-01-31T10:00:00Z", similar: 2 },
    });
    expect(a).toMatchObject({ kind: "kill_switch", severity: "critical", title: "Kill switch engaged", body: "by admin", similar: 2 });
    expect(a?.alertId).toBeNull(); // no inbox id: not stored
    const stored = parseAlertFrame({ type: "alert", channel: "alerts", data: { type: "alert", id: 41, kind: "drawdown", title: "Drawdown" } });
    expect(stored?.alertId).toBe(41);
    expect(parseAlertFrame({ type: "alert", data: { id: "41", kind: "test" } })?.alertId).toBeNull();
    expect(parseAlertFrame({ type: "subscribed" })).toBeNull();
    expect(parseAlertFrame({ type: "alert", data: { kind: "test", severity: "loud" } })).toMatchObject({ title: "test", severity: "info" });
  });

  it("keeps the newest 20, newest first", () => {
    let list: AlertItem[] = [];
    for (let i = 0; i < 25; i++) {
      list = pushAlert(list, parseAlertFrame({ type: "alert", data: { kind: "test", title: `a${i}` } })!);
    }
    expect(list).toHaveLength(MAX_ALERTS);
    expect(list[0]!.title).toBe("a24");
    expect(list.at(-1)!.title).toBe("a5");
  });

  it("toasts warnings and worse, and says how long ago", () => {
    expect([alertToastKind("info"), alertToastKind("warning"), alertToastKind("error"), alertToastKind("critical")]).toEqual([
      null,
      "warning",
      "error",
      "error",
    ]);
    const now = Date.parse("2025-01-31T12:00:00Z");
    expect(relativeTime("2025-01-31T11:59:50Z", now)).toBe("just now");
    expect(relativeTime("2025-01-31T11:55:00Z", now)).toBe("5 min ago");
    expect(relativeTime("2025-01-31T09:30:00Z", now)).toBe("2 h ago");
    expect(relativeTime("2025-01-28T12:00:00Z", now)).toBe("3 d ago");
  });
});
